// Package artifact keeps the output files of tasks (`outputs:` in a
// pipeline) in a content-addressed store and places them where the tasks
// that need them run, on any executor. Files are named by the SHA-256 of
// their content, so a file written by a thousand runs is kept once, and a
// digest read back is proof of the content.
//
// The pieces, in the order an artifact meets them:
//
//   - Collect, after an attempt succeeded, keeps the files its outputs
//     match (globs with ** below its working directory, never outside it)
//     and returns them as Files: path, digest, size and mode.
//   - A Store keeps contents by digest. Dir is the one on a local
//     directory (the server's data directory, a worker's cache); the
//     interface is the seam for an object store shared by the servers of
//     a cluster.
//   - Place, before an attempt starts, puts the files of its needs under
//     its artifacts directory ($TASUKI_ARTIFACTS/<need>/<path>), read-only,
//     hard-linked from a Dir when it can.
//   - Sweep deletes the contents nothing names any more (no kept run, no
//     cache entry), once they are old enough not to belong to an attempt
//     whose success is still being recorded.
//
// Remote workers move contents over the worker protocol (api): they keep
// a Dir of their own as a cache, download what a lease's needs name and
// upload what their attempts collected.
package artifact
