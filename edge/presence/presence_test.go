package presence

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// fakeCore answers GetPresence with every asked user (or a fixed list)
// online, and records the batches edges publish.
type fakeCore struct {
	mu      sync.Mutex
	batches []*syncpb.PresenceBatch
	allowed []string
}

func (f *fakeCore) Call(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	ids := req.GetGetPresence().GetUserIds()
	if len(ids) == 0 {
		ids = f.allowed
	}
	list := &syncpb.PresenceList{}
	for _, id := range ids {
		list.Users = append(list.Users, &syncpb.PresenceUpdate{UserId: id, Online: true})
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Presence{Presence: list}}, nil
}

func (f *fakeCore) all() []*syncpb.PresenceBatch {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]*syncpb.PresenceBatch(nil), f.batches...)
}

// waitBatch waits for a batch after index from that matches.
func (f *fakeCore) waitBatch(t *testing.T, from int, what string, match func(*syncpb.PresenceBatch) bool) (*syncpb.PresenceBatch, int) {
	t.Helper()
	var (
		got *syncpb.PresenceBatch
		at  int
	)
	poll.NoError(t, 10*time.Second, what, func() error {
		all := f.all()
		for i := from; i < len(all); i++ {
			if match(all[i]) {
				got, at = all[i], i
				return nil
			}
		}
		return fmt.Errorf("no such batch (%d batches)", len(all))
	})
	return got, at
}

func newTestService(t *testing.T, mod func(*Config)) (*Service, *fakeCore, *nats.Conn, func()) {
	t.Helper()
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	core := &fakeCore{}
	obs := natstest.Conn(t, ns)
	if _, err := obs.Subscribe(syncproto.PresenceSubject(syncproto.DefaultRegion), func(m *nats.Msg) {
		b := &syncpb.PresenceBatch{}
		if err := proto.Unmarshal(m.Data, b); err != nil {
			t.Errorf("bad batch: %v", err)
			return
		}
		core.mu.Lock()
		core.batches = append(core.batches, b)
		core.mu.Unlock()
	}); err != nil {
		t.Fatal(err)
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Conn: nc, Core: core, EdgeID: "e1", Interval: 100 * time.Millisecond, Lease: 300 * time.Millisecond, Linger: 10 * time.Millisecond, MaxPart: 2}
	if mod != nil {
		mod(&cfg)
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return s, core, obs, stop
}

func caller(user, device string) *syncpb.Caller {
	return &syncpb.Caller{WorkspaceId: "w1", UserId: user, DeviceId: device}
}

func TestReporterBatchesHeartbeatsSnapshotsAndClosing(t *testing.T) {
	s, core, obs, stop := newTestService(t, nil)
	// The first batch is a (here empty) snapshot: the cores learn the edge.
	first, _ := core.waitBatch(t, 0, "first snapshot", func(b *syncpb.PresenceBatch) bool { return true })
	if !first.Reset_ || !first.Snapshot || !first.SnapshotDone || first.Seq != 1 || first.EdgeId != "e1" || first.LeaseMs != 300 {
		t.Fatalf("first batch: %v", first)
	}
	var sessions []*Session
	for i := range 3 {
		sessions = append(sessions, s.Join(caller(fmt.Sprint("u", i), "d"), func(*syncpb.PresenceUpdate) {}))
	}
	// A second session of u0's same device (a reconnect) is not a new device.
	again := s.Join(caller("u0", "d"), func(*syncpb.PresenceUpdate) {})
	seen := map[string]bool{}
	from := 0
	for len(seen) < 3 {
		b, i := core.waitBatch(t, from, "connects", func(b *syncpb.PresenceBatch) bool { return len(b.Connected) > 0 })
		if len(b.Connected) > 2 {
			t.Fatalf("batch of %d devices, MaxPart is 2", len(b.Connected))
		}
		for _, d := range b.Connected {
			seen[d.UserId] = true
		}
		from = i + 1
	}
	again.Leave()
	sessions[1].Leave()
	sessions[1].Leave() // idempotent
	b, i := core.waitBatch(t, from, "disconnect", func(b *syncpb.PresenceBatch) bool { return len(b.Disconnected) > 0 })
	if len(b.Disconnected) != 1 || b.Disconnected[0].UserId != "u1" || len(b.Connected) != 0 {
		t.Fatalf("disconnect batch: %v", b)
	}
	// Heartbeats: empty batches keep coming, seq without gaps.
	core.waitBatch(t, i+1, "heartbeat", func(b *syncpb.PresenceBatch) bool {
		return len(b.Connected)+len(b.Disconnected) == 0 && !b.Snapshot
	})
	// A core asks for a snapshot: u0 and u2 in parts of 2 at most.
	if err := obs.Publish(syncproto.PresenceSnapshotSubject(syncproto.DefaultRegion, "e1"), nil); err != nil {
		t.Fatal(err)
	}
	start, j := core.waitBatch(t, i+1, "snapshot", func(b *syncpb.PresenceBatch) bool { return b.Reset_ })
	got := map[string]bool{}
	for _, d := range start.Connected {
		got[d.UserId] = true
	}
	if !start.SnapshotDone {
		done, _ := core.waitBatch(t, j+1, "snapshot end", func(b *syncpb.PresenceBatch) bool { return b.SnapshotDone })
		for _, d := range done.Connected {
			got[d.UserId] = true
		}
	}
	if len(got) != 2 || !got["u0"] || !got["u2"] {
		t.Fatalf("snapshot holds %v, want u0 and u2", got)
	}
	stop()
	last, _ := core.waitBatch(t, 0, "closing", func(b *syncpb.PresenceBatch) bool { return b.Closing })
	all := core.all()
	for k, b := range all {
		if b.Seq != uint64(k+1) || b.Epoch != first.Epoch {
			t.Fatalf("batch %d has seq %d epoch %d", k, b.Seq, b.Epoch)
		}
	}
	if last != all[len(all)-1] {
		t.Fatal("a batch followed the closing one")
	}
	if n := s.Devices(); n != 2 {
		t.Fatalf("devices %d, want 2", n)
	}
}

// Watchers of one user share one subscription; updates reach every
// watcher of the user and nobody else; the last watcher out unsubscribes.
func TestWatchSharesSubscriptions(t *testing.T) {
	s, core, obs, _ := newTestService(t, nil)
	core.allowed = []string{"bo", "cy"}
	type rec struct {
		mu  sync.Mutex
		got []string
	}
	record := func(r *rec) func(*syncpb.PresenceUpdate) {
		return func(p *syncpb.PresenceUpdate) {
			r.mu.Lock()
			r.got = append(r.got, fmt.Sprint(p.UserId, p.Online))
			r.mu.Unlock()
		}
	}
	var ra, rd rec
	ana := s.Join(caller("ana", "p"), record(&ra))
	dee := s.Join(caller("dee", "p"), record(&rd))
	ctx := t.Context()
	list, err := ana.Watch(ctx, nil)
	if err != nil || len(list) != 2 {
		t.Fatalf("ana watch: %v %v", list, err)
	}
	if _, err := dee.Watch(ctx, []string{"cy"}); err != nil {
		t.Fatal(err)
	}
	if n := s.Watched(); n != 2 {
		t.Fatalf("watched %d users, want 2", n)
	}
	// Changes carry a time after the lookups' (the fake core's states have
	// none), so the edge's look-up again of new subscriptions, whenever it
	// lands, cannot undo them.
	pub := func(user string, online bool) {
		b, _ := proto.Marshal(&syncpb.Deliver{Presence: []*syncpb.PresenceUpdate{{UserId: user, Online: online, LastSeenUnixMs: 1}}})
		if err := obs.Publish(syncproto.PresenceUserSubject(syncproto.DefaultRegion, user), b); err != nil {
			t.Fatal(err)
		}
	}
	pub("bo", false)
	pub("cy", false)
	pub("zed", true) // watched by nobody
	wait := func(r *rec, n int) []string {
		t.Helper()
		var got []string
		poll.NoError(t, 10*time.Second, "updates", func() error {
			r.mu.Lock()
			got = append([]string(nil), r.got...)
			r.mu.Unlock()
			if len(got) < n {
				return fmt.Errorf("%d updates, want %d", len(got), n)
			}
			return nil
		})
		return got
	}
	if got := wait(&ra, 2); len(got) != 2 {
		t.Fatalf("ana got %v", got)
	}
	if got := wait(&rd, 1); len(got) != 1 || got[0] != "cyfalse" {
		t.Fatalf("dee got %v", got)
	}
	// An update older than what is known is not passed on.
	b, _ := proto.Marshal(&syncpb.Deliver{Presence: []*syncpb.PresenceUpdate{{UserId: "cy", Online: true, LastSeenUnixMs: 5}}})
	_ = obs.Publish(syncproto.PresenceUserSubject(syncproto.DefaultRegion, "cy"), b)
	b, _ = proto.Marshal(&syncpb.Deliver{Presence: []*syncpb.PresenceUpdate{{UserId: "cy", Online: false, LastSeenUnixMs: 4}}})
	_ = obs.Publish(syncproto.PresenceUserSubject(syncproto.DefaultRegion, "cy"), b)
	pub("bo", true) // a marker: after it, both cy updates were handled
	got := wait(&ra, 4)
	if got[2] != "cytrue" || got[3] != "botrue" {
		t.Fatalf("ana got %v; the stale cy update must be dropped", got)
	}
	if st := dee.States(); len(st) != 1 || !st[0].Online || st[0].LastSeenUnixMs != 5 {
		t.Fatalf("dee's known states: %v", st)
	}
	// New conversation members (the core's notice) are added to ana's
	// default set, not to dee's chosen one.
	ana.Add([]*syncpb.PresenceUpdate{{UserId: "fay", Online: true, LastSeenUnixMs: 9}})
	dee.Add([]*syncpb.PresenceUpdate{{UserId: "gus", Online: true}})
	if !s.IsWatched("fay") || s.IsWatched("gus") {
		t.Fatalf("after Add: fay watched %v, gus watched %v", s.IsWatched("fay"), s.IsWatched("gus"))
	}
	if err := obs.Flush(); err != nil {
		t.Fatal(err)
	}
	// Narrowing ana to cy drops bo's subscription.
	if _, err := ana.Watch(ctx, []string{"cy"}); err != nil {
		t.Fatal(err)
	}
	if n := s.Watched(); n != 1 || s.IsWatched("fay") {
		t.Fatalf("watched %d users, want 1", n)
	}
	ana.Leave()
	dee.Leave()
	if n := s.Watched(); n != 0 {
		t.Fatalf("watched %d users after everyone left", n)
	}
	// Watch after Leave watches nothing.
	if _, err := ana.Watch(ctx, nil); err != nil || s.Watched() != 0 {
		t.Fatalf("watch after leave: %v, watched %d", err, s.Watched())
	}
}

func TestConfigValidate(t *testing.T) {
	nc := &nats.Conn{}
	for name, c := range map[string]Config{
		"no conn":     {Core: &fakeCore{}},
		"short lease": {Conn: nc, Core: &fakeCore{}, Interval: time.Second, Lease: time.Second},
		"bad edge id": {Conn: nc, Core: &fakeCore{}, EdgeID: "Not Valid"},
		"negative":    {Conn: nc, Core: &fakeCore{}, Linger: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	if err := (Config{Conn: nc, Core: &fakeCore{}}).Validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
}

// BenchmarkReporterHeartbeat is the edge's cost of one heartbeat batch
// (build, encode, publish) with 0 and 10,000 devices connected: the same,
// as a heartbeat carries no devices.
func BenchmarkReporterHeartbeat(b *testing.B) {
	for _, n := range []int{0, 10_000} {
		b.Run(fmt.Sprint(n, "devices"), func(b *testing.B) {
			nc := natstest.Conn(b, natstest.Server(b))
			s, err := New(Config{Conn: nc, Core: &fakeCore{}, EdgeID: "e1"})
			if err != nil {
				b.Fatal(err)
			}
			for i := range n {
				s.Join(caller(fmt.Sprint("u", i), "d"), func(*syncpb.PresenceUpdate) {})
			}
			s.rep.flush(false) // the snapshot
			b.ResetTimer()
			for range b.N {
				s.rep.flush(true)
			}
		})
	}
}
