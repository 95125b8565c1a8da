package revoke

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// fakeDirectory answers list_revocations from a list, two per page.
type fakeDirectory struct {
	mu    sync.Mutex
	revs  []*syncpb.Revocation
	calls int
	fail  bool
}

func (d *fakeDirectory) Call(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls++
	l := req.GetListRevocations()
	if l == nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not list_revocations")
	}
	if d.fail {
		return nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no leader")
	}
	var page []*syncpb.Revocation
	start := 0
	if l.After != "" {
		start = int(l.After[0] - '0')
	}
	for i := start; i < len(d.revs) && len(page) < 2; i++ {
		if d.revs[i].RevokedUnixMs >= l.SinceUnixMs {
			page = append(page, d.revs[i])
		}
	}
	next := ""
	if start+2 < len(d.revs) {
		next = string(rune('0' + start + 2))
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Revocations{Revocations: &syncpb.RevocationList{Revocations: page, Next: next}}}, nil
}

func (d *fakeDirectory) add(rv *syncpb.Revocation) {
	d.mu.Lock()
	d.revs = append(d.revs, rv)
	d.mu.Unlock()
}

func (d *fakeDirectory) setFail(fail bool) {
	d.mu.Lock()
	d.fail = fail
	d.mu.Unlock()
}

func revocation(device string, at time.Time) *syncpb.Revocation {
	return &syncpb.Revocation{WorkspaceId: "w_1", UserId: "u_1", DeviceIds: []string{device}, NotBeforeUnixMs: syncproto.NotBeforeAll,
		Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: at.UnixMilli()}
}

// heard collects what OnRevoke was given.
type heard struct {
	mu   sync.Mutex
	devs []string
}

func (h *heard) add(rv *syncpb.Revocation) {
	h.mu.Lock()
	h.devs = append(h.devs, rv.DeviceIds...)
	h.mu.Unlock()
}

func (h *heard) count(dev string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, d := range h.devs {
		if d == dev {
			n++
		}
	}
	return n
}

func TestFollower(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns, nats.MaxReconnects(-1), nats.ReconnectWait(20*time.Millisecond))
	pub := natstest.Conn(t, ns)
	now := time.Now()
	dir := &fakeDirectory{}
	for _, d := range []string{"d_1", "d_2", "d_3"} {
		dir.add(revocation(d, now.Add(-time.Minute)))
	}
	dir.add(revocation("d_old", now.Add(-time.Hour))) // its tokens have all expired
	dir.setFail(true)
	set, err := auth.NewRevocations(auth.RevocationsConfig{})
	if err != nil {
		t.Fatal(err)
	}
	h := &heard{}
	f, err := New(Config{Conn: nc, Core: dir, Region: "local", Set: set, OnRevoke: h.add, MinRetry: 10 * time.Millisecond, MaxRetry: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- f.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})

	// While the directory cannot answer, nothing is ready.
	poll.Until(t, 10*time.Second, "a few failed catch-ups", func() bool { dir.mu.Lock(); defer dir.mu.Unlock(); return dir.calls >= 3 })
	if set.Ready() {
		t.Fatal("ready before any catch-up")
	}
	dir.setFail(false)
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	if err := f.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	if !set.Ready() || set.Len() != 3 || h.count("d_1") != 1 || h.count("d_3") != 1 || h.count("d_old") != 0 {
		t.Fatalf("after the catch-up: ready %v, %d held, heard %v", set.Ready(), set.Len(), h.devs)
	}

	// Published revocations apply as they come, once however often heard.
	publish := func(rv *syncpb.Revocation) {
		b, err := proto.Marshal(rv)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(syncproto.RevocationSubject("local"), b); err != nil {
			t.Fatal(err)
		}
	}
	live := revocation("d_live", time.Now())
	publish(live)
	publish(live)
	if err := pub.Publish(syncproto.RevocationSubject("local"), []byte("not a revocation")); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the published revocation", func() bool { return set.Revoked("d_live", time.Now()) })
	f.Apply(live) // the edge's own, heard again
	if n := h.count("d_live"); n != 1 {
		t.Fatalf("OnRevoke heard d_live %d times, want 1", n)
	}

	// A revocation made while the connection is down is read after it
	// comes back: here the server cuts the connection, which reconnects.
	missed := revocation("d_missed", time.Now())
	dir.add(missed)
	cid, err := nc.GetClientID()
	if err != nil {
		t.Fatal(err)
	}
	if err := ns.DisconnectClientByID(cid); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 10*time.Second, "the missed revocation", func() bool { return set.Ready() && set.Revoked("d_missed", time.Now()) })
	if n := h.count("d_missed"); n != 1 {
		t.Fatalf("OnRevoke heard d_missed %d times, want 1", n)
	}

	// Disconnected makes the set not ready until the next catch-up.
	dir.setFail(true)
	f.Disconnected()
	if set.Ready() {
		t.Fatal("ready after Disconnected")
	}
	dir.setFail(false)
	f.Reconnected()
	poll.Until(t, 10*time.Second, "ready again", set.Ready)
}

func TestConfigValidate(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	set, _ := auth.NewRevocations(auth.RevocationsConfig{})
	good := Config{Conn: nc, Core: &fakeDirectory{}, Region: "local", Set: set}
	if _, err := New(good); err != nil {
		t.Fatal(err)
	}
	for name, mod := range map[string]func(*Config){
		"no conn":   func(c *Config) { c.Conn = nil },
		"no core":   func(c *Config) { c.Core = nil },
		"no set":    func(c *Config) { c.Set = nil },
		"no region": func(c *Config) { c.Region = "" },
		"negative":  func(c *Config) { c.Poll = -1 },
		"min > max": func(c *Config) { c.MinRetry, c.MaxRetry = time.Second, time.Millisecond },
	} {
		c := good
		mod(&c)
		if _, err := New(c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
