// Package datawait is the two wait conditions that read tasuki's own store:
// "wait.pipeline" (another pipeline's run of the same logical interval
// succeeded, or one task of it) and "wait.dataset" (a dataset was updated in
// the run's interval, or since the run was created).
//
// They exist so that pipelines owned by different people can depend on each
// other without being merged into one graph: the consumer waits on the
// producer's run or on the data it produced, and holds no execution slot
// while it waits (see attempt.Condition). They are checked where the store
// is, by the server's in-process executor: a remote worker has no store.
//
// Each check is a few index reads (the runs of one pipeline and interval,
// the newest update of a dataset since a time), so a wait poked every few
// seconds costs the store little, however long the history. Each condition
// takes only the store methods it reads (PipelineStore, DatasetStore), so a
// test or another executor can give it something smaller than a store.Store.
package datawait
