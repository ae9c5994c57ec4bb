// Package httptask provides the http task kind and the http wait condition
// of tasuki: an HTTP request made by the executor itself, in-process, with
// no shell and no curl in between.
//
// Calling an endpoint is the most common thing a pipeline does besides
// running a command, and doing it through a shell gets the details wrong
// in ways a pipeline author rarely notices: a secret spliced into a command
// line shows in the process list, a 503 exits 0, a hung server holds the
// slot forever, a huge answer fills the result store. Here ${VAR} is
// expanded in the URL, the headers and the body from the attempt's
// variables and secrets, without quoting rules; the log names the URL as
// the pipeline file wrote it, never the expanded one; 5xx, 429 and
// connection errors are retried within the attempt with a short backoff;
// every request has a time limit; and the body is read up to MaxBody, so
// the task's result (the decoded JSON body, or the text as a JSON string)
// stays small.
//
// Task is the attempt.Kind of tasks with an http: key; Wait is the
// attempt.Condition of waits with wait.http, checked once per poke. Both
// are registered with attempt.NewRegistry or Registry.With.
package httptask
