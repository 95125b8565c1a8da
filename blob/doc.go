// Package blob is the attachment byte store: one small Store interface
// that edges write upload bytes into and serve downloads from, and that
// the core deletes from when a blob's last reference goes. blob/disk keeps
// blobs in a local directory; blob/s3 keeps them in any S3 API bucket;
// blob/blobtest is the conformance suite both pass; blob/media sniffs
// types and makes thumbnails from a blob's bytes.
//
// Keys are chosen by the caller and checked by ValidKey before any store
// touches them. A Put either makes the whole blob visible under its key or
// leaves the key as it was; a second Put to the same key replaces the
// first as a whole.
package blob
