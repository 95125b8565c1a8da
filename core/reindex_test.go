package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
)

// A rebuild interrupted after its first batches resumes when run again
// (it does not start over), and the node then finds every message once.
func TestReindexResumes(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	r := newTestRegion(t, 3, testTiming) // one node is stopped and rebuilt
	users := r.Users("ana", "bo")
	conv := r.CreateGroup(users[0], users)
	const total = 60
	r.sendConcurrently(conv, users, 0, total)
	waitIndexed(t, r.Node(0), users[1], conv, total)
	waitMessages(t, r.Node(0), users[0], conv, total, time.Minute)
	r.Stop(0)

	cfg := r.Config(0)
	cfg.Search.BatchSize = 1
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	err := core.Reindex(ctx, cfg, time.Millisecond, func(p core.ReindexProgress) {
		if p.Indexed > 0 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted reindex: %v", err)
	}
	var last core.ReindexProgress
	if err := core.Reindex(context.Background(), cfg, time.Millisecond, func(p core.ReindexProgress) { last = p }); err != nil {
		t.Fatal(err)
	}
	if !last.Resumed || last.Left != 0 || last.Indexed == 0 || last.Indexed >= total {
		t.Fatalf("second run %+v: want it resumed, finishing what the first left", last)
	}
	r.Restart(0)
	r.WaitReady()
	waitIndexed(t, r.Node(0), users[1], conv, total)
}
