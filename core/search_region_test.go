package core_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// searchTotal is how many messages of conv node n's own index finds.
func searchTotal(n *core.Node, caller *syncpb.Caller, conv string) (int, []string, error) {
	resp := n.SearchLocal(context.Background(), &syncpb.CoreRequest{Caller: caller,
		Op: &syncpb.CoreRequest_Search{Search: &syncpb.SearchRequest{Query: "hello", ConvId: conv, Limit: syncproto.MaxSearchLimit}}})
	if e := syncproto.FromProto(resp.GetError()); e != nil {
		return 0, nil, e
	}
	var ids []string
	for _, h := range resp.GetSearch().GetHits() {
		ids = append(ids, h.MsgId)
	}
	return int(resp.GetSearch().GetTotal()), ids, nil
}

// TestRegionSearchThroughLeaderChangeAndRestore: every node of a 3-node
// region indexes its own copy; the shard's leader is stopped, messages go
// on through the new leader, and the old leader comes back far enough
// behind to be sent a snapshot. Afterwards every node's index holds every
// message once, with the same first page.
func TestRegionSearchThroughLeaderChangeAndRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	r := newTestRegion(t, 3, snapshotTiming())
	users := r.Users("ana", "bo")
	conv := r.CreateGroup(users[0], users)
	name := r.Node(0).ShardGroupOf(conv)

	r.sendConcurrently(conv, users, 0, 100)
	for _, n := range r.Live() {
		waitIndexed(t, n, users[1], conv, 100)
	}
	old := r.LeaderOf(name)
	r.Stop(old)
	const total = 800
	r.sendConcurrently(conv, users, 100, total)
	r.Restart(old)
	// 700 entries past the trailing 50: the old leader is sent a snapshot.
	or := r.Node(old).Group(name).Raft()
	poll.Until(t, 30*time.Second, "the old leader installs a snapshot", func() bool {
		return or.Stats()["last_snapshot_index"] != "0"
	})
	var first []string
	for i, n := range r.Live() {
		ids := waitIndexed(t, n, users[1], conv, total)
		if i == 0 {
			first = ids
		} else if fmt.Sprint(ids) != fmt.Sprint(first) {
			t.Errorf("%s's first page %v, %s's %v", n.NodeID(), ids, r.Live()[0].NodeID(), first)
		}
	}
}

// waitIndexed waits until node n's index finds want messages of conv
// (never more) and returns its first page's ids.
func waitIndexed(t *testing.T, n *core.Node, caller *syncpb.Caller, conv string, want int) []string {
	t.Helper()
	var ids []string
	poll.NoError(t, 2*time.Minute, n.NodeID()+" indexed the messages", func() error {
		got, page, err := searchTotal(n, caller, conv)
		switch {
		case err != nil:
			return err
		case got > want:
			t.Fatalf("%s's index finds %d messages, the store holds %d", n.NodeID(), got, want)
		case got < want:
			return fmt.Errorf("%s's index finds %d of %d", n.NodeID(), got, want)
		}
		ids = page
		return nil
	})
	return ids
}
