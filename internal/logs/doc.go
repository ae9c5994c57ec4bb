// Package logs keeps the output of every task attempt, durably and in
// order, so that it can be read while the task runs (a terminal following a
// run, a browser over Server-Sent Events) and long after.
//
// A log is a sequence of lines `<RFC3339Nano UTC> <out|err> <text>`: each
// line says when it was written and which stream it came from, and secrets
// are masked before anything is stored. Lines of tasuki's own, where a log
// that outgrew Files.Limit was cut, have the stream name `log`. Writer does the formatting and
// masking; a Store decides where the bytes live. Files keeps one file per
// attempt, which is all a single server needs; Cluster keeps every log as
// compressed chunks in the database several servers share (the file as its
// write buffer), so any server serves any log, across a change of leader;
// a new leader goes on with the log of an attempt it took over (Resume).
// Buffer bounds what a remote worker holds while its server does not take
// its log.
package logs
