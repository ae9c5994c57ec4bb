// Package artifact keeps the output files of tasks (`outputs:` in a
// pipeline) in a content-addressed store and places them where the tasks
// that need them run, on any executor. Files are named by the SHA-256 of
// their content, so a file written by a thousand runs is kept once, and a
// digest read back is proof of the content.
package artifact
