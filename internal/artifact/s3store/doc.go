// Package s3store is an artifact.Store in a bucket of an S3-compatible
// object store (AWS S3, MinIO, Ceph, R2, GCS's XML API...): the store the
// servers of a cluster share, so the artifacts of a run outlive the
// leader that ran it, and the data directories stay small.
//
// Each content is the object <prefix>sha256/<hex digits>. A Put is
// spooled to a local temporary file while it is hashed, checked against
// the digest it must have, and only then uploaded under its name: an
// object that exists always holds the content its name says. Contents
// are immutable, so a Put of a content the bucket has only refreshes the
// object's time (a copy onto itself), for Sweep.
package s3store
