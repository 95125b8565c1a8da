package raftstore

import (
	"context"
	"fmt"
	"log/slog"
	"strings"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

// OpenDB opens (creating if needed) the node's Badger DB in dir, where the
// groups' state machines keep their state (their Raft logs are in the WAL),
// tuned for a small machine: SyncWrites off (durability comes from Syncer),
// no compression, no block cache (tables are read through mmap and the OS
// page cache), two compactors, and values up to 1 MiB (Badger's default
// threshold) kept in the LSM tree so that deleted keys free space by
// compaction alone; larger values go to 64 MiB value-log files that only
// value-log GC reclaims. Badger's Info messages log at Debug.
func OpenDB(dir string, log *slog.Logger) (*badger.DB, error) {
	db, err := badger.Open(dbOptions(dir, log))
	if err != nil {
		return nil, fmt.Errorf("raftstore: open badger %s: %w", dir, err)
	}
	return db, nil
}

func dbOptions(dir string, log *slog.Logger) badger.Options {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return badger.DefaultOptions(dir).
		WithSyncWrites(false).
		WithLogger(badgerLogger{log.With("component", "badger")}).
		WithMetricsEnabled(false).
		WithCompression(options.None).
		WithBlockCacheSize(0).
		WithMemTableSize(64 << 20).
		WithNumMemtables(4).
		WithNumCompactors(2).
		WithValueLogFileSize(64 << 20).
		WithNumVersionsToKeep(1).
		WithDetectConflicts(false)
}

// badgerLogger adapts slog to badger.Logger.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) logf(level slog.Level, format string, args ...any) {
	ctx := context.Background()
	if !b.l.Enabled(ctx, level) {
		return
	}
	b.l.Log(ctx, level, strings.TrimSpace(fmt.Sprintf(format, args...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.logf(slog.LevelError, f, a...) }
func (b badgerLogger) Warningf(f string, a ...any) { b.logf(slog.LevelWarn, f, a...) }
func (b badgerLogger) Infof(f string, a ...any)    { b.logf(slog.LevelDebug, f, a...) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.logf(slog.LevelDebug-4, f, a...) }
