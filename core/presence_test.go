package core_test

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// presenceWatch records the presence updates published in the region.
type presenceWatch struct {
	mu      sync.Mutex
	updates []*syncpb.PresenceUpdate
	asks    int
}

func (w *presenceWatch) count(user string, online bool) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	n := 0
	for _, u := range w.updates {
		if u.UserId == user && u.Online == online {
			n++
		}
	}
	return n
}

func (w *presenceWatch) snapshotAsks() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.asks
}

func (r *testRegion) watchPresence(edgeID string) *presenceWatch {
	r.t.Helper()
	w := &presenceWatch{}
	sub, err := r.Conn().Subscribe(syncproto.PresenceUserSubject(syncproto.DefaultRegion, "*"), func(m *nats.Msg) {
		d := &syncpb.Deliver{}
		if err := proto.Unmarshal(m.Data, d); err != nil {
			r.t.Errorf("undecodable presence: %v", err)
			return
		}
		w.mu.Lock()
		w.updates = append(w.updates, d.Presence...)
		w.mu.Unlock()
	})
	if err != nil {
		r.t.Fatal(err)
	}
	asks, err := r.Conn().Subscribe(syncproto.PresenceSnapshotSubject(syncproto.DefaultRegion, edgeID), func(*nats.Msg) {
		w.mu.Lock()
		w.asks++
		w.mu.Unlock()
	})
	if err != nil {
		r.t.Fatal(err)
	}
	r.t.Cleanup(func() { _ = sub.Unsubscribe(); _ = asks.Unsubscribe() })
	if err := r.Conn().Flush(); err != nil {
		r.t.Fatal(err)
	}
	return w
}

func (r *testRegion) publishBatch(b *syncpb.PresenceBatch) {
	r.t.Helper()
	data, err := proto.Marshal(b)
	if err != nil {
		r.t.Fatal(err)
	}
	if err := r.Conn().Publish(syncproto.PresenceSubject(syncproto.DefaultRegion), data); err != nil {
		r.t.Fatal(err)
	}
}

// Every core keeps the table; each change is published by the leader of
// the user's shard; lookups return only users sharing a
// conversation; a silent edge's users go offline when its lease ends.
func TestRegionPresence(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	us := r.Users("ana", "bo", "cy", "dee")
	ana, bo, cy, dee := us[0], us[1], us[2], us[3]
	conv := r.CreateGroup(ana, []*syncpb.Caller{ana, bo, cy})
	// Every replica holds the group before the edge reports anyone.
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "group on every replica", func() bool { _, err := localLastSeq(n, ana, conv); return err == nil })
	}
	w := r.watchPresence("e1")
	pd := func(c *syncpb.Caller) *syncpb.PresenceDevice {
		return &syncpb.PresenceDevice{WorkspaceId: c.WorkspaceId, UserId: c.UserId, DeviceId: c.DeviceId}
	}
	// The edge's first batch is a snapshot; it repeats it (as a real
	// edge's heartbeats and the cores' snapshot requests would) until
	// every node has it: a node's subscription may not have reached the
	// server the test publishes on yet. A long lease for now.
	seq := uint64(0)
	snapshot := func() {
		seq++
		r.publishBatch(&syncpb.PresenceBatch{EdgeId: "e1", Epoch: 7, Seq: seq, Reset_: true, Snapshot: true, SnapshotDone: true,
			LeaseMs: 60_000, Connected: []*syncpb.PresenceDevice{pd(bo), pd(dee)}})
	}
	snapshot()
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "every node holds the table", func() bool {
			if u, e := n.PresenceOnline(); u == 2 && e == 1 {
				return true
			}
			snapshot()
			return false
		})
	}
	poll.Until(t, 20*time.Second, "bo online", func() bool { return w.count(bo.UserId, true) >= 1 })

	lookup := func(c *syncpb.Caller, ids ...string) map[string]*syncpb.PresenceUpdate {
		resp := r.MustCall(syncproto.APISubject(syncproto.DefaultRegion), &syncpb.CoreRequest{Caller: c,
			Op: &syncpb.CoreRequest_GetPresence{GetPresence: &syncpb.GetPresenceRequest{UserIds: ids}}})
		out := map[string]*syncpb.PresenceUpdate{}
		for _, u := range resp.GetPresence().GetUsers() {
			out[u.UserId] = u
		}
		return out
	}
	got := lookup(ana)
	if !got[bo.UserId].GetOnline() || got[cy.UserId].GetOnline() || got[dee.UserId] != nil {
		t.Fatalf("ana's lookup: %v", got)
	}
	// dee shares nothing with ana: left out even when named.
	if got := lookup(ana, dee.UserId, bo.UserId); len(got) != 1 || got[bo.UserId] == nil {
		t.Fatalf("ana's lookup of dee and bo: %v", got)
	}
	// More names than members: the shard scans the members instead.
	if got := lookup(ana, dee.UserId, bo.UserId, cy.UserId, "u_nobody"); len(got) != 2 || got[bo.UserId] == nil || got[cy.UserId] == nil {
		t.Fatalf("ana's lookup of four: %v", got)
	}
	if got := lookup(dee); len(got) != 0 {
		t.Fatalf("dee's lookup: %v", got)
	}

	// A lost batch (seq 2) shows as a gap at seq 3: the cores ask for a
	// snapshot (each core asks; the edge coalesces).
	r.publishBatch(&syncpb.PresenceBatch{EdgeId: "e1", Epoch: 7, Seq: seq + 2, LeaseMs: 1000, Connected: []*syncpb.PresenceDevice{pd(cy)}})
	poll.Until(t, 20*time.Second, "snapshot asked", func() bool { return w.snapshotAsks() >= 1 })
	poll.Until(t, 20*time.Second, "cy online", func() bool { return w.count(cy.UserId, true) >= 1 })

	// The edge goes silent: its users go offline after the (now 1 s) lease.
	start := time.Now()
	poll.Until(t, 20*time.Second, "bo offline", func() bool { return w.count(bo.UserId, false) >= 1 })
	poll.Until(t, 20*time.Second, "cy offline", func() bool { return w.count(cy.UserId, false) >= 1 })
	t.Logf("offline seen %v after the last batch (lease 1 s)", time.Since(start))
	// Once, by the leader of bo's shard; more often if the shard was
	// between leaders at that moment (every node that sees none
	// publishes, and a new leader repeats recent changes).
	if n := w.count(bo.UserId, true); n < 1 || n > len(r.Live()) {
		t.Fatalf("bo's online change was published %d times", n)
	} else if n > 1 {
		t.Logf("bo's online change was published %d times (a leadership change)", n)
	}
	// Each node expires the lease on its own clock (checked every 100 ms),
	// so the node answering a lookup may lag the publisher by that much.
	poll.Until(t, 20*time.Second, "every node has bo offline with a last-seen time", func() bool {
		for range r.Live() {
			if b := lookup(ana, bo.UserId)[bo.UserId]; b.GetOnline() || b.GetLastSeenUnixMs() == 0 {
				return false
			}
		}
		return true
	})

	// A lookup without a caller is refused.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := r.Call(ctx, syncproto.APISubject(syncproto.DefaultRegion), &syncpb.CoreRequest{
		Op: &syncpb.CoreRequest_GetPresence{GetPresence: &syncpb.GetPresenceRequest{}}}); syncproto.AsError(err).Code != syncpb.Code_CODE_INVALID_ARGUMENT {
		t.Fatalf("lookup without caller: %v", err)
	}
}

// Last seen outlives a node's restart: the restarted node, which learns
// who is online from the edges, learns when the others left from the
// replicated last-seen bucket.
func TestRegionLastSeenSurvivesRestart(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	us := r.Users("ana", "bo")
	bo := us[1]
	pd := &syncpb.PresenceDevice{WorkspaceId: bo.WorkspaceId, UserId: bo.UserId, DeviceId: bo.DeviceId}
	seq := uint64(0)
	batch := func(b *syncpb.PresenceBatch) {
		seq++
		b.EdgeId, b.Epoch, b.Seq, b.LeaseMs = "e1", 9, seq, 60_000
		r.publishBatch(b)
	}
	// Online on every node (repeating the snapshot until each has it).
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "bo online everywhere", func() bool {
			if n.PresenceOf(bo.UserId).GetOnline() {
				return true
			}
			batch(&syncpb.PresenceBatch{Reset_: true, Snapshot: true, SnapshotDone: true, Connected: []*syncpb.PresenceDevice{pd}})
			return false
		})
	}
	batch(&syncpb.PresenceBatch{Disconnected: []*syncpb.PresenceDevice{pd}})
	var seen int64
	poll.Until(t, 20*time.Second, "bo offline with a last-seen time", func() bool {
		p := r.Node(0).PresenceOf(bo.UserId)
		seen = p.GetLastSeenUnixMs()
		return !p.GetOnline() && seen != 0
	})
	// The time is stored asynchronously by the publishing node: wait until
	// the bucket has it (a node that dies before writing loses that one).
	js, err := jetstream.New(r.Conn())
	if err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "bo's last-seen time stored", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		kv, err := js.KeyValue(ctx, "PARLEY_LASTSEEN_"+syncproto.DefaultRegion)
		if err != nil {
			return false
		}
		_, err = kv.Get(ctx, bo.UserId)
		return err == nil
	})
	victim := r.LeaderOf("s0") // any node will do; a leader makes it harder
	r.Stop(victim)
	r.Restart(victim)
	// Each node stamps the time it saw bo go; the stored one is the
	// publishing node's, within moments of node 0's.
	poll.Until(t, 20*time.Second, "the restarted node knows bo's last-seen time", func() bool {
		p := r.Node(victim).PresenceOf(bo.UserId)
		d := p.GetLastSeenUnixMs() - seen
		return !p.GetOnline() && p.GetLastSeenUnixMs() != 0 && d > -5000 && d < 5000
	})
}

// A lookup made right after a conversation is created sees its members,
// whichever node answers: membership is read on the shards' leaders, not
// on a follower's copy, which here lags by up to 10 s (CommitTimeout 5 s:
// followers learn of the commit only from the next AppendEntries).
func TestRegionPresenceLookupSeesNewConversation(t *testing.T) {
	timing := testTiming
	timing.CommitTimeout = 5 * time.Second
	r := newTestRegion(t, 3, timing)
	us := r.Users("ana", "bo", "cy")
	ana, bo, cy := us[0], us[1], us[2]
	r.CreateGroup(ana, []*syncpb.Caller{ana, bo, cy})
	// The API subject's queue group spreads the lookups over the nodes.
	for i := range 12 {
		resp := r.MustCall(syncproto.APISubject(syncproto.DefaultRegion), &syncpb.CoreRequest{Caller: ana,
			Op: &syncpb.CoreRequest_GetPresence{GetPresence: &syncpb.GetPresenceRequest{}}})
		got := map[string]bool{}
		for _, u := range resp.GetPresence().GetUsers() {
			got[u.UserId] = true
		}
		if len(got) != 2 || !got[bo.UserId] || !got[cy.UserId] {
			t.Fatalf("lookup %d right after the group was created: %v, want bo and cy", i, got)
		}
	}
}
