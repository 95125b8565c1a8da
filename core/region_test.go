package core_test

import (
	"context"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/core/group"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// testTiming is the harness's: quick elections that tolerate a loaded
// 2-core machine running -race.
var testTiming = coretest.Timing

// testRegion is a region of in-process nodes (core/coretest) and the test
// it belongs to, which the helpers below report to.
type testRegion struct {
	*coretest.Region
	t *testing.T
}

func newTestRegion(t *testing.T, n int, timing group.Timing) *testRegion {
	t.Helper()
	return newTestRegionWith(t, n, timing, nil)
}

// newTestRegionWith is newTestRegion with each node's config passed
// through mod (when not nil) before the nodes start.
func newTestRegionWith(t *testing.T, n int, timing group.Timing, mod func(*core.Config)) *testRegion {
	t.Helper()
	opts := coretest.Options{Base: core.Config{Timing: timing}}
	if mod != nil {
		opts.Node = func(_ int, c *core.Config) { mod(c) }
	}
	return &testRegion{Region: coretest.New(t, n, opts), t: t}
}

// newRegionWithGroup starts a 3-node region (skipped with -short) with
// users ana and bo in one group.
func newRegionWithGroup(t *testing.T) (*testRegion, []*syncpb.Caller, string) {
	t.Helper()
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	r := newTestRegion(t, 3, testTiming)
	users := r.Users("ana", "bo")
	return r, users, r.CreateGroup(users[0], users)
}

// localHistory reads every message of conv from one node's own replica;
// it fails with NOT_FOUND while the replica has not caught up to the
// conversation's creation.
func localHistory(n *core.Node, caller *syncpb.Caller, conv string) ([]*syncpb.Message, error) {
	var out []*syncpb.Message
	var cursor uint64
	for {
		resp := n.ReadLocal(context.Background(), n.ShardGroupOf(conv), &syncpb.CoreRequest{Caller: caller,
			Op: &syncpb.CoreRequest_History{History: &syncpb.HistoryRequest{ConvId: conv, Cursor: cursor,
				Limit: syncproto.MaxHistoryLimit, Direction: syncpb.Direction_DIRECTION_FORWARD}}})
		if e := syncproto.FromProto(resp.GetError()); e != nil {
			return nil, fmt.Errorf("%s: history %s: %w", n.NodeID(), conv, e)
		}
		h := resp.GetHistory()
		out = append(out, h.Messages...)
		if h.NextCursor == 0 || len(h.Messages) == 0 {
			return out, nil
		}
		cursor = h.NextCursor
	}
}

// localLastSeq is the last seq of conv on replica n.
func localLastSeq(n *core.Node, caller *syncpb.Caller, conv string) (uint64, error) {
	resp := n.ReadLocal(context.Background(), n.ShardGroupOf(conv), &syncpb.CoreRequest{Caller: caller,
		Op: &syncpb.CoreRequest_History{History: &syncpb.HistoryRequest{ConvId: conv, Limit: 1,
			Direction: syncpb.Direction_DIRECTION_BACKWARD}}})
	if e := syncproto.FromProto(resp.GetError()); e != nil {
		return 0, fmt.Errorf("%s: history %s: %w", n.NodeID(), conv, e)
	}
	return resp.GetHistory().GetLastSeq(), nil
}

type ack struct {
	seq   uint64
	msgID string
}

// TestRegionKeepsAckedMessagesThroughLeaderLoss: 10,000 sends from
// concurrent clients with retries while the leader of the busiest shard is
// killed and later restarted. Afterwards every acknowledged message is
// present exactly once, in gapless seq order, identically on all nodes.
func TestRegionKeepsAckedMessagesThroughLeaderLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	r := newTestRegion(t, 3, testTiming)
	users := r.Users("ana", "bo", "cy", "di")
	var convs []string
	for i := 0; i < 6; i++ {
		convs = append(convs, r.CreateGroup(users[i%len(users)], users))
	}
	hot := convs[0]
	hotGroup := r.Node(0).ShardGroupOf(hot)

	const total = 10000
	const senders = 32
	var (
		mu      sync.Mutex
		acked   = map[string]map[string]ack{} // conv -> client_msg_id -> ack
		next    atomic.Int64
		nAcked  atomic.Int64
		gaveUp  atomic.Int64
		retries atomic.Int64
	)
	for _, c := range convs {
		acked[c] = map[string]ack{}
	}
	var wg sync.WaitGroup
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for {
				i := next.Add(1)
				if i > total {
					return
				}
				// Half the traffic goes to the hot conversation.
				conv := hot
				if i%2 == 1 {
					conv = convs[1+int(i)%(len(convs)-1)]
				}
				caller := users[int(i)%len(users)]
				cmid := fmt.Sprintf("s%d-%d", s, i)
				req := &syncpb.CoreRequest{Caller: caller, Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
					ConvId: conv, ClientMsgId: cmid, Body: []byte(strings.Repeat("x", 200))}}}
				// A client retries the same client_msg_id until it is acked.
				var resp *syncpb.CoreResponse
				var err error
				for attempt := 0; attempt < 5; attempt++ {
					ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
					resp, err = r.Call(ctx, r.ShardSubject(conv), req)
					cancel()
					if err == nil {
						break
					}
					retries.Add(1)
				}
				if err != nil {
					gaveUp.Add(1)
					continue
				}
				a := resp.GetSendAck()
				mu.Lock()
				if prev, dup := acked[conv][cmid]; dup && prev.seq != a.Seq {
					t.Errorf("client_msg_id %s acked twice with seq %d and %d", cmid, prev.seq, a.Seq)
				}
				acked[conv][cmid] = ack{seq: a.Seq, msgID: a.MsgId}
				mu.Unlock()
				nAcked.Add(1)
			}
		}(s)
	}

	waitAcks := func(n int64) {
		poll.NoError(t, 3*time.Minute, "acks", func() error {
			if got := nAcked.Load(); got < n {
				return fmt.Errorf("only %d, waiting for %d", got, n)
			}
			return nil
		})
	}
	waitAcks(2000)
	victim := r.LeaderOf(hotGroup)
	t.Logf("killing %s, leader of %s, at %d acks", r.Config(victim).NodeID, hotGroup, nAcked.Load())
	r.Kill(victim)
	waitAcks(5000)
	t.Logf("restarting %s at %d acks", r.Config(victim).NodeID, nAcked.Load())
	r.Restart(victim)
	wg.Wait()
	t.Logf("acked %d, gave up %d, retries %d", nAcked.Load(), gaveUp.Load(), retries.Load())
	if nAcked.Load()+gaveUp.Load() != total {
		t.Fatalf("acked %d + gave up %d != %d", nAcked.Load(), gaveUp.Load(), total)
	}

	// Wait until every replica holds every acked message, then compare.
	for _, conv := range convs {
		want := acked[conv]
		var ref []*syncpb.Message
		for ni, n := range r.Live() {
			all := waitMessages(t, n, users[0], conv, len(want), 60*time.Second)
			checkLog(t, n.NodeID(), conv, all, want)
			msgs := userMessages(all)
			if ni == 0 {
				ref = msgs
				continue
			}
			if len(msgs) != len(ref) {
				t.Fatalf("%s: %s has %d messages, %s has %d", conv, n.NodeID(), len(msgs), r.Live()[0].NodeID(), len(ref))
			}
			for k := range msgs {
				if !proto.Equal(msgs[k], ref[k]) {
					t.Fatalf("%s: replicas differ at seq %d", conv, msgs[k].Seq)
				}
			}
		}
	}
}

func userMessages(all []*syncpb.Message) []*syncpb.Message {
	var out []*syncpb.Message
	for _, m := range all {
		if m.Kind == syncpb.MessageKind_MESSAGE_KIND_USER {
			out = append(out, m)
		}
	}
	return out
}

// checkLog verifies one replica's log of conv: seqs gapless from 1, every
// acked message present once with its acked seq, no client_msg_id twice.
func checkLog(t *testing.T, node, conv string, all []*syncpb.Message, want map[string]ack) {
	t.Helper()
	seen := map[string]uint64{}
	for i, m := range all {
		if m.Seq != uint64(i+1) {
			t.Fatalf("%s %s: message %d has seq %d: gap or reorder", node, conv, i, m.Seq)
		}
		if m.Kind != syncpb.MessageKind_MESSAGE_KIND_USER {
			continue
		}
		if prev, ok := seen[m.ClientMsgId]; ok {
			t.Fatalf("%s %s: client_msg_id %s stored twice (seq %d and %d)", node, conv, m.ClientMsgId, prev, m.Seq)
		}
		seen[m.ClientMsgId] = m.Seq
	}
	var missing []string
	for cmid, a := range want {
		got, ok := seen[cmid]
		if !ok {
			missing = append(missing, cmid)
			continue
		}
		if got != a.seq {
			t.Fatalf("%s %s: %s acked as seq %d but stored at %d", node, conv, cmid, a.seq, got)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		t.Fatalf("%s %s: %d acked messages missing, e.g. %v", node, conv, len(missing), missing[:min(5, len(missing))])
	}
}

// TestRegionNodeCatchesUpFromSnapshot: a node that was down while the log
// was compacted past it, and whose data was wiped, catches up from a
// snapshot; a node restarted from its own Badger directory catches up too.
func TestRegionNodeCatchesUpFromSnapshot(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	timing := snapshotTiming()
	// The wiped node misses `missed` entries: 700 in make test, 100,000
	// with PARLEY_TEST_LONG=1 (make test-long).
	missed := 700
	if os.Getenv("PARLEY_TEST_LONG") != "" {
		missed = 100_000
		timing.SnapshotThreshold = 8192
		timing.TrailingLogs = 1024
		timing.SnapshotInterval = time.Second
	}
	r := newTestRegion(t, 3, timing)
	users := r.Users("ana", "bo")
	conv := r.CreateGroup(users[0], users)
	name := r.Node(0).ShardGroupOf(conv)

	send := func(from, to int) { r.sendConcurrently(conv, users, from, to) }
	send(0, 100)
	// Stop a follower and wipe it; stop another... only one may be down.
	leader := r.LeaderOf(name)
	wiped := (leader + 1) % 3
	restarted := (leader + 2) % 3
	r.Stop(wiped)
	if err := os.RemoveAll(r.Config(wiped).DataDir); err != nil {
		t.Fatal(err)
	}
	send(100, 100+missed)
	r.Restart(wiped)
	waitMessages(t, r.Node(wiped), users[0], conv, 100+missed, 5*time.Minute)
	// The restored state is readable a moment before Raft records the
	// snapshot it came from.
	wr := r.Node(wiped).Group(name).Raft()
	poll.Until(t, 30*time.Second, "the wiped node installs a snapshot", func() bool {
		return wr.Stats()["last_snapshot_index"] != "0"
	})

	r.Stop(restarted)
	total := 100 + missed + 200
	send(100+missed, total)
	r.Restart(restarted)
	for _, n := range r.Live() {
		checkLog(t, n.NodeID(), conv, waitMessages(t, n, users[0], conv, total, 5*time.Minute), nil)
	}
}

// snapshotTiming is testTiming with snapshots every 200 entries and 50
// trailing logs, so a node a few hundred entries behind is sent one.
func snapshotTiming() group.Timing {
	timing := testTiming
	timing.SnapshotThreshold = 200
	timing.TrailingLogs = 50
	timing.SnapshotInterval = 200 * time.Millisecond
	return timing
}

// sendConcurrently sends messages m<from>..m<to-1> to conv from 32
// goroutines, alternating between the first two users, and fails the
// test on any error.
func (r *testRegion) sendConcurrently(conv string, users []*syncpb.Caller, from, to int) {
	t := r.t
	t.Helper()
	var wg sync.WaitGroup
	next := make(chan int)
	for range 32 {
		wg.Go(func() {
			for i := range next {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				_, err := r.Call(ctx, r.ShardSubject(conv), &syncpb.CoreRequest{Caller: users[i%2], Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
					ConvId: conv, ClientMsgId: fmt.Sprintf("m%d", i), Body: []byte("hello")}}})
				cancel()
				if err != nil {
					t.Errorf("send m%d: %v", i, err)
				}
			}
		})
	}
	for i := from; i < to; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
}

// waitMessages polls one replica until it holds want user messages of conv
// and returns all its messages (system ones included).
func waitMessages(t *testing.T, n *core.Node, caller *syncpb.Caller, conv string, want int, within time.Duration) []*syncpb.Message {
	t.Helper()
	var all []*syncpb.Message
	poll.NoError(t, within, n.NodeID()+" holds the messages", func() error {
		// A one-message page tells the replica's last seq; read everything
		// only once it could hold want messages.
		last, err := localLastSeq(n, caller, conv)
		if err != nil {
			return err
		}
		if last < uint64(want) {
			return fmt.Errorf("last seq %d, want %d messages", last, want)
		}
		if all, err = localHistory(n, caller, conv); err != nil {
			return err
		}
		if got := len(userMessages(all)); got < want {
			return fmt.Errorf("%d of %d messages", got, want)
		}
		return nil
	})
	return all
}

// TestRepliesNameTheAnsweringNode: a reply names the node that answered
// (the shard's leader on a shard subject), which edges use as a hint to
// send a shard's next request to its leader's NATS server.
func TestRepliesNameTheAnsweringNode(t *testing.T) {
	r, users, conv := newRegionWithGroup(t)
	leader := r.Node(r.LeaderOf(r.Node(0).ShardGroupOf(conv))).NodeID()
	req := &syncpb.CoreRequest{Caller: users[0], Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
		ConvId: conv, ClientMsgId: syncproto.NewClientMsgID(), Body: []byte("hi")}}}
	b, err := proto.Marshal(req)
	if err != nil {
		t.Fatal(err)
	}
	for _, subject := range []string{r.ShardSubject(conv), syncproto.APISubject(syncproto.DefaultRegion)} {
		m, err := r.Conn().Request(subject, b, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		got := m.Header.Get(syncproto.HeaderNode)
		switch {
		case subject == r.ShardSubject(conv) && got != leader:
			t.Errorf("%s: reply names %q, want the leader %q", subject, got, leader)
		case got == "" || !slices.ContainsFunc(r.Live(), func(n *core.Node) bool { return n.NodeID() == got }):
			t.Errorf("%s: reply names %q, not a node", subject, got)
		}
	}
}
