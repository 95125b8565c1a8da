// Package raftstore keeps the Raft logs and stable state of a node's many
// raft groups in one write-ahead log (WAL, wal.go) of preallocated
// segments, made durable by fdatasyncs that concurrent groups share; each
// group's raft.LogStore and raft.StableStore is a WALStore. It also opens
// the node's Badger DB, where the groups' state machines keep their state
// (OpenDB), and coalesces that DB's fsyncs (Syncer).
package raftstore

import "errors"

var (
	// ErrBadGroup is returned by WAL.Store for a group name outside
	// [a-z0-9_-]{1,32}.
	ErrBadGroup = errors.New("raftstore: bad group name")
	// ErrKeyNotFound is returned by Get for a key never Set. Its text is
	// exactly "not found", not "raftstore: ...": raft v1.8.0 compares
	// err.Error() == "not found" (raft.go requestVote, api.go NewRaft).
	ErrKeyNotFound = errors.New("not found")
)

// MaxGroupLen bounds group names.
const MaxGroupLen = 32

// ValidGroup reports whether name is a group name: [a-z0-9_-]{1,32}.
func ValidGroup(name string) bool {
	if len(name) == 0 || len(name) > MaxGroupLen {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
