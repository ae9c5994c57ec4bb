// Package slo judges freshness objectives: the promise that a dataset (or a
// pipeline's success) is fresh by a time of day, or never older than a
// maximum age during a daily period. It turns an objective into windows of
// time in its time zone (daylight saving included), judges each window met
// or breached from the times the data was updated, measures each breach,
// and sums windows into compliance.
//
// It does no I/O and reads no clock: the caller gives the update times and
// "now", so windows across days, weekends and daylight saving changes are
// judged the same in tests as on a server.
package slo
