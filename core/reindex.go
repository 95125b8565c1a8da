package core

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/parley-chat/parley/core/directory"
	"github.com/parley-chat/parley/core/raftstore"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/core/search/indexer"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// reindexKey marks, in the node's DB, a rebuild of the search index that
// has not finished: the next Reindex resumes it instead of starting over.
var reindexKey = []byte("sx/reindex")

// ReindexProgress is where a rebuild stands.
type ReindexProgress struct {
	Resumed bool   // an unfinished rebuild was resumed
	Left    uint64 // messages left to index
	Indexed uint64 // docs written so far by this run
}

// Reindex rebuilds the search index of a stopped node from the messages
// its shards store (the node must not run: its DB is locked). A rebuild
// drops the index and every position, then indexes every conversation;
// interrupted, the next Reindex resumes from the stored positions (so
// does the node when it starts: it catches up the same way). progress,
// when set, is called about every interval.
func Reindex(ctx context.Context, cfg Config, interval time.Duration, progress func(ReindexProgress)) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	if cfg.Search.Disabled {
		return errors.New("core: reindex: search is off")
	}
	db, err := raftstore.OpenDB(filepath.Join(cfg.DataDir, "badger"), cfg.Logger)
	if err != nil {
		return fmt.Errorf("core: reindex: open badger (is the node running?): %w", err)
	}
	defer db.Close()
	if err := checkShardCount(db, cfg.ShardCount); err != nil {
		return err
	}
	resumed := false
	err = db.View(func(txn *badger.Txn) error {
		_, err := txn.Get(reindexKey)
		resumed = err == nil
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("core: reindex: %w", err)
	}
	if !resumed {
		if err := indexer.ResetPositions(db); err != nil {
			return fmt.Errorf("core: reindex: %w", err)
		}
		if cfg.Search.Engine != SearchTypesense {
			dir := cfg.Search.Dir
			if dir == "" {
				dir = filepath.Join(cfg.DataDir, "search")
			}
			if err := os.RemoveAll(dir); err != nil {
				return fmt.Errorf("core: reindex: %w", err)
			}
		}
		if err := db.Update(func(txn *badger.Txn) error { return txn.Set(reindexKey, nil) }); err != nil {
			return fmt.Errorf("core: reindex: %w", err)
		}
	}
	n := &Node{cfg: cfg, log: cfg.Logger, db: db, groups: map[string]*member{}}
	n.stopCtx, n.stopAll = context.WithCancel(ctx)
	defer n.stopAll()
	dir, err := directory.New(db, directory.Config{Group: route.DirGroup, Logger: cfg.Logger})
	if err != nil {
		return fmt.Errorf("core: reindex: %w", err)
	}
	n.groups[route.DirGroup] = &member{dir: dir}
	if err := n.openSearch(); err != nil {
		return err
	}
	defer n.engine.Close()
	for i := range cfg.ShardCount {
		if n.shardFSMs[i], err = shard.New(db, shard.Config{Group: route.ShardGroup(i), Directory: noDirectory{}, Logger: cfg.Logger}); err != nil {
			return fmt.Errorf("core: reindex: %w", err)
		}
	}
	done := make(chan error, 1)
	go func() { done <- n.indexer.Run(n.stopCtx) }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	report := func() {
		if progress != nil {
			st := n.indexer.Stats()
			progress(ReindexProgress{Resumed: resumed, Left: st.LagMessages, Indexed: st.Indexed})
		}
	}
	for !n.indexer.Idle() {
		select {
		case <-ctx.Done():
			n.stopAll()
			<-done
			return ctx.Err()
		case <-tick.C:
			report()
		}
	}
	report()
	n.stopAll()
	<-done
	if err := db.Update(func(txn *badger.Txn) error { return txn.Delete(reindexKey) }); err != nil {
		return fmt.Errorf("core: reindex: %w", err)
	}
	return nil
}

// noDirectory is the directory of shards opened only to be read.
type noDirectory struct{}

func (noDirectory) LookupUsers(context.Context, string, []string) ([]*syncpb.User, error) {
	return nil, errors.New("core: reindex reads shards only")
}
