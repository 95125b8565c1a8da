package core_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Receipts flow from six devices while one core node is stopped and
// restarted: every acknowledged position is merged on all three nodes,
// the nodes end with identical state, and no device's acknowledged
// position ever goes back.
func TestRegionReceiptsConvergeThroughNodeRestart(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	users := r.Users("ana", "bo", "cy")
	conv := r.CreateGroup(users[0], users)
	const msgs = 40
	for i := 0; i < msgs; i++ {
		r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: users[0], Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{
			ConvId: conv, ClientMsgId: fmt.Sprint("m", i), Body: []byte("x")}}})
	}
	var devices []*syncpb.Caller
	for _, u := range users[1:] {
		for d := 0; d < 3; d++ {
			c := &syncpb.Caller{WorkspaceId: u.WorkspaceId, UserId: u.UserId, DeviceId: fmt.Sprintf("%s-d%d", u.DeviceId, d)}
			devices = append(devices, c)
		}
	}
	type key struct {
		dev string
		typ syncpb.ReceiptType
	}
	var mu sync.Mutex
	acked := map[key]uint64{}
	var nacks atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i, dev := range devices {
		wg.Add(1)
		go func(i int, dev *syncpb.Caller) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(i), 7))
			for {
				select {
				case <-stop:
					return
				default:
				}
				typ := syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED
				if rng.IntN(2) == 0 {
					typ = syncpb.ReceiptType_RECEIPT_TYPE_READ
				}
				seq := uint64(1 + rng.IntN(msgs))                                        // stale reports too
				ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second) // a restart under load can stall a call for a while
				resp, err := r.Call(ctx, r.ShardSubject(conv), &syncpb.CoreRequest{Caller: dev,
					Op: &syncpb.CoreRequest_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: conv, Seq: seq, Type: typ}}})
				cancel()
				if err != nil {
					t.Errorf("receipt from %s: %v", dev.DeviceId, err)
					return
				}
				got := resp.GetReceiptAck().GetSeq()
				if got < seq {
					t.Errorf("%s reported %d, acked %d", dev.DeviceId, seq, got)
				}
				mu.Lock()
				k := key{dev.DeviceId, typ}
				if got < acked[k] {
					t.Errorf("%s %v went back: %d after %d", dev.DeviceId, typ, got, acked[k])
				}
				acked[k] = max(acked[k], got)
				mu.Unlock()
				nacks.Add(1)
			}
		}(i, dev)
	}
	// more waits for k more acknowledged reports.
	more := func(k int64) {
		want := nacks.Load() + k
		poll.NoError(t, 60*time.Second, "receipts acknowledged", func() error {
			if got := nacks.Load(); got < want && !t.Failed() {
				return fmt.Errorf("only %d of %d", got, want)
			}
			return nil
		})
	}
	more(100)
	victim := 1
	stopped := r.Node(victim).Receipts()
	r.Stop(victim)
	before := stopped.Applied() // what it had stored when it stopped
	more(200)                   // receipts keep flowing on two nodes
	r.Restart(victim)
	more(200)
	close(stop)
	wg.Wait()
	if t.Failed() {
		return
	}

	// Every node converges to the acknowledged positions: the merged
	// state of each device is at least its highest ack, and equal across
	// the nodes.
	poll.NoError(t, 30*time.Second, "nodes converge", func() error {
		var states []map[string]crdt.Devices
		for _, n := range r.Live() {
			s := map[string]crdt.Devices{}
			for _, u := range users[1:] {
				d, err := n.Receipts().Devices(conv, u.UserId)
				if err != nil {
					return err
				}
				s[u.UserId] = d
			}
			states = append(states, s)
		}
		same := true
		for _, s := range states[1:] {
			for u, d := range s {
				same = same && d.Equal(states[0][u])
			}
		}
		mu.Lock()
		covered := true
		for _, dev := range devices {
			m := states[0][dev.UserId][dev.DeviceId]
			covered = covered && m.Read.Value >= acked[key{dev.DeviceId, syncpb.ReceiptType_RECEIPT_TYPE_READ}] &&
				m.DeliveredUpTo().Value >= acked[key{dev.DeviceId, syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED}]
		}
		mu.Unlock()
		if !same || !covered {
			return fmt.Errorf("same=%v covered=%v\n%v", same, covered, states)
		}
		return nil
	})
	// The restarted node resumed from its stored position: it merged each
	// later delta once and none from before.
	rs := r.Node(victim).Receipts()
	if got, want := rs.Merged(), rs.Applied()-before; got != want {
		t.Errorf("restarted node merged %d deltas, want %d (stream %d..%d)", got, want, before+1, rs.Applied())
	}
	for i, n := range r.Live() {
		t.Logf("node %d merged %d deltas, applied up to stream seq %d", i, n.Receipts().Merged(), n.Receipts().Applied())
	}
}
