package presence

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }
func dev(user, device string) *syncpb.PresenceDevice {
	return &syncpb.PresenceDevice{WorkspaceId: "w1", UserId: user, DeviceId: device}
}

func newTestTable(t *testing.T) (*Table, *clock) {
	t.Helper()
	c := &clock{t: time.Unix(1_700_000_000, 0)}
	tb, err := New(Config{Now: c.now})
	if err != nil {
		t.Fatal(err)
	}
	return tb, c
}

// edgeFeed builds one edge's batches in seq order.
type edgeFeed struct {
	id    string
	epoch uint64
	seq   uint64
}

func (f *edgeFeed) batch(mod func(b *syncpb.PresenceBatch)) *syncpb.PresenceBatch {
	f.seq++
	b := &syncpb.PresenceBatch{EdgeId: f.id, Epoch: f.epoch, Seq: f.seq, LeaseMs: 1500}
	if mod != nil {
		mod(b)
	}
	return b
}

func (f *edgeFeed) snapshot(devs ...*syncpb.PresenceDevice) *syncpb.PresenceBatch {
	return f.batch(func(b *syncpb.PresenceBatch) {
		b.Reset_, b.Snapshot, b.SnapshotDone, b.Connected = true, true, true, devs
	})
}

func (f *edgeFeed) connect(devs ...*syncpb.PresenceDevice) *syncpb.PresenceBatch {
	return f.batch(func(b *syncpb.PresenceBatch) { b.Connected = devs })
}

func (f *edgeFeed) disconnect(devs ...*syncpb.PresenceDevice) *syncpb.PresenceBatch {
	return f.batch(func(b *syncpb.PresenceBatch) { b.Disconnected = devs })
}

// summary renders changes as "+u1 -u2", sorted.
func summary(cs []Change) string {
	var s []string
	for _, c := range cs {
		if c.Online {
			s = append(s, "+"+c.UserID)
		} else {
			s = append(s, "-"+c.UserID)
		}
	}
	slices.Sort(s)
	return strings.Join(s, " ")
}

func apply(t *testing.T, tb *Table, b *syncpb.PresenceBatch, want string, wantAsk bool) {
	t.Helper()
	cs, ask := tb.Apply(b)
	if got := summary(cs); got != want || ask != wantAsk {
		t.Fatalf("batch seq %d: changes %q ask %v, want %q ask %v", b.Seq, got, ask, want, wantAsk)
	}
}

func TestTableConnectDisconnectAcrossEdges(t *testing.T) {
	tb, _ := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	b := &edgeFeed{id: "b", epoch: 2}
	apply(t, tb, a.snapshot(), "", false)
	apply(t, tb, b.snapshot(), "", false)
	apply(t, tb, a.connect(dev("u1", "phone"), dev("u2", "phone")), "+u1 +u2", false)
	// u1's laptop on another edge: still one online change only.
	apply(t, tb, b.connect(dev("u1", "laptop")), "", false)
	apply(t, tb, a.disconnect(dev("u1", "phone")), "", false)
	if !tb.State("u1").Online {
		t.Fatal("u1 with a laptop still connected went offline")
	}
	apply(t, tb, b.disconnect(dev("u1", "laptop")), "-u1", false)
	if s := tb.State("u1"); s.Online || s.LastSeenUnixMs == 0 {
		t.Fatalf("u1 after its last device left: %v", s)
	}
	// Disconnecting what is not connected changes nothing.
	apply(t, tb, b.disconnect(dev("u9", "x")), "", false)
	if s := tb.State("nobody"); s.Online || s.LastSeenUnixMs != 0 {
		t.Fatalf("unknown user: %v", s)
	}
}

func TestTableLeaseExpiry(t *testing.T) {
	tb, c := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	b := &edgeFeed{id: "b", epoch: 1}
	apply(t, tb, a.snapshot(dev("u1", "phone"), dev("u2", "phone")), "+u1 +u2", false)
	apply(t, tb, b.snapshot(dev("u1", "laptop")), "", false)
	// Heartbeats from b only; a goes silent (killed).
	for range 3 {
		c.advance(500 * time.Millisecond)
		apply(t, tb, b.batch(nil), "", false)
		if cs := tb.Expire(); len(cs) != 0 {
			t.Fatalf("expired within the lease: %q", summary(cs))
		}
	}
	c.advance(10 * time.Millisecond) // 1.51 s since a's last batch
	apply(t, tb, b.batch(nil), "", false)
	cs := tb.Expire()
	if got := summary(cs); got != "-u2" {
		t.Fatalf("after a's lease: %q, want -u2 (u1 keeps its laptop on b)", got)
	}
	if cs[0].LastSeen != c.now() || tb.Edges() != 1 || tb.Online() != 1 {
		t.Fatalf("last seen %v edges %d online %d", cs[0].LastSeen, tb.Edges(), tb.Online())
	}
	// a comes back with its old epoch: unknown now, so it must resend all.
	apply(t, tb, a.batch(nil), "", true)
}

func TestTableGapAsksForSnapshot(t *testing.T) {
	tb, c := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	apply(t, tb, a.snapshot(dev("u1", "p")), "+u1", false)
	lost := a.connect(dev("u2", "p")) // never arrives
	_ = lost
	// The next batch shows the gap; its own delta still applies.
	apply(t, tb, a.disconnect(dev("u1", "p")), "-u1", true)
	// Asking again is rate-limited.
	apply(t, tb, a.batch(nil), "", false)
	c.advance(DefaultAskInterval)
	apply(t, tb, a.batch(nil), "", true)
	// The snapshot brings u2 back.
	apply(t, tb, a.snapshot(dev("u2", "p")), "+u2", false)
	apply(t, tb, a.batch(nil), "", false)
}

func TestTableSnapshotInParts(t *testing.T) {
	tb, _ := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	// A core that starts late sees a delta from an edge it does not know.
	apply(t, tb, a.connect(dev("u1", "p")), "+u1", true)
	apply(t, tb, a.batch(func(b *syncpb.PresenceBatch) {
		b.Reset_, b.Snapshot, b.Connected = true, true, []*syncpb.PresenceDevice{dev("u2", "p"), dev("u3", "p")}
	}), "", false)
	apply(t, tb, a.batch(func(b *syncpb.PresenceBatch) {
		b.Snapshot, b.Connected = true, []*syncpb.PresenceDevice{dev("u4", "p")}
	}), "", false)
	apply(t, tb, a.batch(func(b *syncpb.PresenceBatch) {
		b.Snapshot, b.SnapshotDone, b.Connected = true, true, []*syncpb.PresenceDevice{dev("u5", "p")}
	}), "+u2 +u3 +u4 +u5 -u1", false)
	if tb.Online() != 4 {
		t.Fatalf("online %d, want 4", tb.Online())
	}

	// A snapshot whose first part is lost is ignored until a whole one.
	tb2, _ := newTestTable(t)
	b := &edgeFeed{id: "b", epoch: 1}
	apply(t, tb2, b.snapshot(dev("u1", "p")), "+u1", false)
	b.batch(func(x *syncpb.PresenceBatch) { x.Reset_, x.Snapshot = true, true }) // lost
	apply(t, tb2, b.batch(func(x *syncpb.PresenceBatch) {
		x.Snapshot, x.SnapshotDone, x.Connected = true, true, []*syncpb.PresenceDevice{dev("u2", "p")}
	}), "", true)
	if !tb2.State("u1").Online || tb2.State("u2").Online {
		t.Fatal("a partial snapshot was applied")
	}
}

func TestTableClosingAndRestart(t *testing.T) {
	tb, _ := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	b := &edgeFeed{id: "b", epoch: 1}
	apply(t, tb, a.snapshot(dev("u1", "p"), dev("u2", "p")), "+u1 +u2", false)
	apply(t, tb, b.snapshot(dev("u2", "laptop")), "", false)
	apply(t, tb, a.batch(func(x *syncpb.PresenceBatch) { x.Closing = true }), "-u1", false)
	if tb.Edges() != 1 || !tb.State("u2").Online {
		t.Fatalf("after a closed: edges %d, u2 %v", tb.Edges(), tb.State("u2"))
	}
	// b restarts (new epoch): its old devices are gone at once, and its
	// first batch of the new epoch is a snapshot.
	b2 := &edgeFeed{id: "b", epoch: 2}
	apply(t, tb, b2.snapshot(dev("u3", "p")), "+u3 -u2", false)
	// A repeated batch only renews the lease.
	b2.seq--
	apply(t, tb, b2.connect(dev("u4", "p")), "", false)
}

func TestTableReconnectWithinABatchIsNoChange(t *testing.T) {
	tb, _ := newTestTable(t)
	a := &edgeFeed{id: "a", epoch: 1}
	apply(t, tb, a.snapshot(dev("u1", "old")), "+u1", false)
	// Device "old" left and "new" came in the same batch: u1 stays online.
	apply(t, tb, a.batch(func(b *syncpb.PresenceBatch) {
		b.Connected = []*syncpb.PresenceDevice{dev("u1", "new")}
		b.Disconnected = []*syncpb.PresenceDevice{dev("u1", "old")}
	}), "", false)
}

func TestConfigValidate(t *testing.T) {
	for i, c := range []Config{{Lease: -1}, {MinLease: time.Second, MaxLease: time.Millisecond}} {
		if _, err := New(c); err == nil {
			t.Errorf("config %d: no error", i)
		}
	}
}

func BenchmarkTableHeartbeat(b *testing.B) {
	for _, users := range []int{0, 10_000} {
		b.Run(fmt.Sprint(users, "users"), func(b *testing.B) {
			tb, err := New(Config{})
			if err != nil {
				b.Fatal(err)
			}
			f := &edgeFeed{id: "a", epoch: 1}
			var devs []*syncpb.PresenceDevice
			for i := range users {
				devs = append(devs, dev(fmt.Sprint("u", i), "p"))
			}
			tb.Apply(f.snapshot(devs...))
			b.ResetTimer()
			for range b.N {
				tb.Apply(f.batch(nil))
				tb.Expire()
			}
		})
	}
}

// Recent lists the current state of the users that changed since a time,
// whatever the change was.
func TestTableRecent(t *testing.T) {
	tb, c := newTestTable(t)
	e := &edgeFeed{id: "e1", epoch: 1}
	tb.Apply(e.snapshot(dev("ana", "p"), dev("bo", "p")))
	c.advance(10 * time.Second)
	since := c.now()
	tb.Apply(e.disconnect(dev("bo", "p")))
	c.advance(time.Second)
	tb.Apply(e.connect(dev("cy", "p")))
	got := map[string]bool{}
	for _, ch := range tb.Recent(since) {
		got[ch.UserID] = ch.Online
		if ch.LastSeen.Before(since) {
			t.Errorf("%s: last seen %v before %v", ch.UserID, ch.LastSeen, since)
		}
	}
	if len(got) != 2 || got["bo"] || !got["cy"] {
		t.Fatalf("recent %v, want bo offline and cy online (ana changed before)", got)
	}
	if n := len(tb.Recent(c.now().Add(time.Millisecond))); n != 0 {
		t.Fatalf("%d recent after the last change", n)
	}
}

func TestDeviceOnline(t *testing.T) {
	tb, c := newTestTable(t)
	a, b := &edgeFeed{id: "ea", epoch: 1}, &edgeFeed{id: "eb", epoch: 1}
	tb.Apply(a.snapshot(dev("u1", "phone")))
	tb.Apply(b.snapshot(dev("u1", "laptop")))
	if !tb.DeviceOnline("u1", "phone") || !tb.DeviceOnline("u1", "laptop") || tb.DeviceOnline("u1", "tablet") || tb.DeviceOnline("u2", "phone") {
		t.Fatal("wrong devices online")
	}
	tb.Apply(a.disconnect(dev("u1", "phone")))
	if tb.DeviceOnline("u1", "phone") || !tb.DeviceOnline("u1", "laptop") {
		t.Fatal("phone still online after disconnect")
	}
	// A lease that ran out counts for nothing, even before Expire.
	c.advance(2 * time.Second)
	if tb.DeviceOnline("u1", "laptop") {
		t.Fatal("laptop online on a dead edge")
	}
}
