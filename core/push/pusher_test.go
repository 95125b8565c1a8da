package push

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

const (
	testGrace = 150 * time.Millisecond
	ws        = "w_test"
	conv      = "c_test"
)

type fakeDir struct {
	mu      sync.Mutex
	targets map[string][]DeviceTarget // by user
	removed []DeviceTarget
}

func (d *fakeDir) Targets(_ string, users []string) ([]DeviceTarget, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []DeviceTarget
	for _, u := range users {
		out = append(out, d.targets[u]...)
	}
	return out, nil
}

func (d *fakeDir) RemoveTarget(_ context.Context, _ string, t DeviceTarget) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.removed = append(d.removed, t)
	ts := d.targets[t.User]
	for i := range ts {
		if ts[i].Device == t.Device && ts[i].Target == t.Target {
			d.targets[t.User] = append(ts[:i:i], ts[i+1:]...)
			break
		}
	}
	return nil
}

type fakePresence struct {
	mu     sync.Mutex
	online map[string]bool
}

func (f *fakePresence) set(device string, on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.online[device] = on
}

func (f *fakePresence) DeviceOnline(_, device string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.online[device]
}

type fakeConvs struct {
	mu     sync.Mutex
	levels map[string]Level
	reads  map[string]uint64
}

func (f *fakeConvs) Level(_, user string) Level {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.levels[user]
}

func (f *fakeConvs) ReadSeq(_, user string) uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.reads[user]
}

func (f *fakeConvs) read(user string, seq uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reads[user] = seq
}

type service interface {
	subscribe(id string) Target
	answer(id string, statuses ...int)
	received() []Notification
}

// harness is a Pusher over a Badger DB and fakes, sending to a loopback
// Web Push service or gateway. Members: alice (the sender; a laptop with
// a target), bob (a phone with a target, a laptop without).
type harness struct {
	t         *testing.T
	kind      Kind
	dir       *fakeDir
	pres      *fakePresence
	convs     *fakeConvs
	svc       service
	gone      int // the status that means "gone"
	reg       *prometheus.Registry
	cfg       Config
	db        *badger.DB
	dbDir     string
	noContent bool

	p      *Pusher
	cancel context.CancelFunc
	done   chan error
	seq    uint64
}

func newHarness(t *testing.T, kind Kind, opts ...func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, kind: kind, dir: &fakeDir{targets: map[string][]DeviceTarget{}},
		pres: &fakePresence{online: map[string]bool{}}, convs: &fakeConvs{levels: map[string]Level{}, reads: map[string]uint64{}},
		dbDir: t.TempDir()}
	cfg := Config{Directory: h.dir, Presence: h.pres, Conversations: h.convs, Grace: testGrace,
		MinBackoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond, DeviceRate: 1000, DeviceBurst: 1000,
		NoContent: func(string) bool { return h.noContent }, Logger: testLogger(t)}
	client := NewHTTPClient(Guard{AllowLoopback: true}, 5*time.Second)
	switch kind {
	case KindWebPush:
		keys, err := GenerateVAPID()
		if err != nil {
			t.Fatal(err)
		}
		h.svc, h.gone = newPushService(t, keys), http.StatusGone
		cfg.WebPush = &WebPush{Keys: keys, Subscriber: "ops@parley.test", TTL: time.Hour, Client: client}
	case KindGateway:
		g := newFakeGateway(t)
		h.svc, h.gone = g, 0
		cfg.Gateways = map[string]Gateway{"gw": {URL: g.srv.URL + "/_matrix/push/v1/notify"}}
		cfg.Gateway = &GatewaySender{Gateways: cfg.Gateways, Client: client}
	}
	for _, o := range opts {
		o(&cfg)
	}
	h.cfg = cfg
	h.dir.targets["alice"] = []DeviceTarget{{User: "alice", Device: "a-laptop", Target: h.svc.subscribe("a-laptop")}}
	h.dir.targets["bob"] = []DeviceTarget{{User: "bob", Device: "b-phone", Target: h.svc.subscribe("b-phone")}}
	h.pres.set("b-laptop", true)
	h.start()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) start() {
	h.t.Helper()
	var err error
	if h.db, err = badger.Open(badger.DefaultOptions(h.dbDir).WithLogger(nil)); err != nil {
		h.t.Fatal(err)
	}
	h.reg = prometheus.NewRegistry()
	cfg := h.cfg
	cfg.Metrics = h.reg
	if h.p, err = New(h.db, cfg); err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- h.p.Run(ctx) }()
}

func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	if err := <-h.done; err != nil {
		h.t.Error(err)
	}
	h.cancel = nil
	if err := h.db.Close(); err != nil {
		h.t.Error(err)
	}
}

// send commits a message from alice's laptop.
func (h *harness) send(body string, mod ...func(*Message)) {
	h.seq++
	m := Message{Workspace: ws, Conv: conv, Title: "Team", Members: []string{"alice", "bob"}, Seq: h.seq,
		MsgID: fmt.Sprintf("m_%d", h.seq), Sender: "alice", SenderName: "Alice", Body: []byte(body),
		Committed: time.Now()}
	for _, f := range mod {
		f(&m)
	}
	h.p.Committed([]Message{m})
}

// flush waits until the pusher has taken everything given so far.
func (h *harness) flush() {
	h.t.Helper()
	b := make(chan struct{})
	h.p.intake <- event{barrier: b}
	select {
	case <-b:
	case <-time.After(5 * time.Second):
		h.t.Fatal("pusher intake stuck")
	}
}

// waitPushes waits for n pushes and returns them.
func (h *harness) waitPushes(n int) []Notification {
	h.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := h.svc.received()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("got %d pushes, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// quiet checks that after the grace has passed (three times over) and
// the queue is empty, exactly n pushes were made.
func (h *harness) quiet(n int) []Notification {
	h.t.Helper()
	h.flush()
	deadline := time.Now().Add(5 * time.Second)
	for h.p.Pending() > 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("%d pushes still pending", h.p.Pending())
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3 * testGrace) // nothing is due: a push now would be a bug
	got := h.svc.received()
	if len(got) != n {
		h.t.Fatalf("got %d pushes, want %d: %+v", len(got), n, got)
	}
	return got
}

func (h *harness) counter(name string, labels ...string) float64 {
	h.t.Helper()
	var c prometheus.Collector
	switch name {
	case "sent":
		c = h.p.m.sent.WithLabelValues(labels...)
	case "failed":
		c = h.p.m.failed.WithLabelValues(labels...)
	case "removed":
		c = h.p.m.removed.WithLabelValues(labels...)
	}
	return testutil.ToFloat64(c)
}

func TestPush(t *testing.T) {
	for _, kind := range []Kind{KindWebPush, KindGateway} {
		t.Run(kind.String(), func(t *testing.T) {
			t.Parallel()
			testPush(t, kind)
		})
	}
}

func testPush(t *testing.T, kind Kind) {
	t.Run("offline device pushed once with content", func(t *testing.T) {
		h := newHarness(t, kind)
		long := strings.Repeat("é", 150)
		h.send(long)
		got := h.quiet(1)
		n := got[0]
		if n.Type != TypeMessage || n.Conv != conv || n.Workspace != ws || n.Seq != 1 || n.MsgID != "m_1" || n.Count != 1 ||
			n.Title != "Team" || n.Sender != "Alice" || n.Body != strings.Repeat("é", PreviewLen) || n.Tag != "parley:"+conv || !strings.HasPrefix(n.ID, "p_") {
			t.Fatalf("push %+v", n)
		}
		if v := h.counter("sent", kind.String(), TypeMessage); v != 1 {
			t.Fatalf("sent metric %v", v)
		}
		if c := testutil.CollectAndCount(h.p.m.latency); c != 1 {
			t.Fatalf("latency series %d", c)
		}
	})
	t.Run("online device not pushed", func(t *testing.T) {
		h := newHarness(t, kind)
		h.pres.set("b-phone", true)
		h.send("hi")
		h.quiet(0)
	})
	t.Run("reconnect within grace not pushed", func(t *testing.T) {
		h := newHarness(t, kind)
		h.send("hi")
		h.flush()
		if h.p.Pending() != 1 {
			t.Fatalf("pending %d", h.p.Pending())
		}
		h.pres.set("b-phone", true)
		h.quiet(0)
	})
	t.Run("burst of 50 coalesced into one push", func(t *testing.T) {
		h := newHarness(t, kind)
		for i := 1; i <= 50; i++ {
			h.send(fmt.Sprintf("message %d", i))
		}
		got := h.quiet(1)
		if n := got[0]; n.Count != 50 || n.Seq != 50 || n.Body != "message 50" {
			t.Fatalf("push %+v", n)
		}
	})
	t.Run("read elsewhere clears", func(t *testing.T) {
		h := newHarness(t, kind)
		h.send("one")
		h.send("two")
		first := h.waitPushes(1)[0]
		// bob reads on the laptop.
		h.convs.read("bob", 2)
		h.p.Read(ws, conv, "bob", 2)
		got := h.quiet(2)
		c := got[1]
		if c.Type != TypeClear || c.Tag != first.Tag || c.Seq != 2 || c.Body != "" || c.Count != 0 || c.ID == first.ID {
			t.Fatalf("clear %+v after %+v", c, first)
		}
		// A second read sends no second clear.
		h.p.Read(ws, conv, "bob", 2)
		h.quiet(2)
	})
	t.Run("read within grace drops the push", func(t *testing.T) {
		h := newHarness(t, kind)
		h.send("one")
		h.flush()
		h.convs.read("bob", 1)
		h.p.Read(ws, conv, "bob", 1)
		h.quiet(0)
	})
	t.Run("gone removes the subscription", func(t *testing.T) {
		h := newHarness(t, kind)
		h.svc.answer("b-phone", h.gone)
		h.send("hi")
		h.quiet(0)
		h.dir.mu.Lock()
		removed := h.dir.removed
		h.dir.mu.Unlock()
		if len(removed) != 1 || removed[0].Device != "b-phone" {
			t.Fatalf("removed %+v", removed)
		}
		if v := h.counter("removed", kind.String()); v != 1 {
			t.Fatalf("removed metric %v", v)
		}
		h.send("again")
		h.quiet(0)
	})
	t.Run("no-content mode sends no text", func(t *testing.T) {
		h := newHarness(t, kind)
		h.noContent = true
		h.send("secret plans")
		n := h.quiet(1)[0]
		if n.Body != "" || n.Title != "" || n.Sender != "" || n.Count != 1 || n.Conv != conv || n.MsgID != "m_1" {
			t.Fatalf("push %+v", n)
		}
	})
	t.Run("end-to-end encrypted sends no text", func(t *testing.T) {
		h := newHarness(t, kind)
		h.send("ciphertext", func(m *Message) { m.E2EE = true })
		if n := h.quiet(1)[0]; n.Body != "" || n.Title != "" || n.Sender != "" {
			t.Fatalf("push %+v", n)
		}
	})
	t.Run("5xx retried, 4xx not", func(t *testing.T) {
		h := newHarness(t, kind)
		h.svc.answer("b-phone", 503, 502)
		h.send("one")
		h.quiet(1)
		if v := h.counter("failed", "5xx"); v != 2 {
			t.Fatalf("5xx failures %v", v)
		}
		h.svc.answer("b-phone", 400)
		h.send("two")
		h.quiet(1)
		if v := h.counter("failed", "4xx"); v != 1 {
			t.Fatalf("4xx failures %v", v)
		}
	})
	t.Run("muted and mentions-only", func(t *testing.T) {
		h := newHarness(t, kind)
		h.convs.levels["bob"] = LevelNone
		h.send("muted")
		h.quiet(0)
		h.convs.levels["bob"] = LevelMentions
		h.send("not for bob")
		h.quiet(0)
		h.send("@bob look", func(m *Message) { m.Mentions = []string{"bob"} })
		if n := h.quiet(1)[0]; n.Body != "@bob look" {
			t.Fatalf("push %+v", n)
		}
	})
	t.Run("sender's own devices not pushed", func(t *testing.T) {
		h := newHarness(t, kind)
		h.send("from alice")
		for _, n := range h.quiet(1) {
			if n.Seq != 1 {
				t.Fatalf("push %+v", n)
			}
		}
		// And alice's own message moved her read position: nothing to clear.
	})
}

// A push written to the queue survives a restart and is sent once, with
// the same id.
func TestPushSurvivesRestart(t *testing.T) {
	h := newHarness(t, KindWebPush, func(c *Config) { c.Grace = time.Hour })
	h.send("before the restart")
	h.flush()
	var id string
	for k := range h.p.byID {
		id = k
	}
	if id == "" {
		t.Fatal("nothing queued")
	}
	h.stop()
	h.cfg.Grace = testGrace
	h.cfg.Now = func() time.Time { return time.Now().Add(time.Hour) } // the hour has passed
	h.start()
	got := h.quiet(1)
	if got[0].ID != id || got[0].Body != "before the restart" {
		t.Fatalf("push %+v, want id %s", got[0], id)
	}
	h.stop()
	h.cfg.Now = nil
	h.start()
	h.quiet(1) // sent, and deleted: not again
}

// The device's rate limit holds pushes back, coalescing what comes in
// meanwhile, and loses none.
func TestPushDeviceRate(t *testing.T) {
	h := newHarness(t, KindWebPush, func(c *Config) { c.DeviceRate, c.DeviceBurst = 2, 1 })
	h.send("one")
	h.waitPushes(1)
	h.send("two")
	h.send("three")
	got := h.quiet(2)
	if got[1].Count != 2 || got[1].Seq != 3 {
		t.Fatalf("second push %+v", got[1])
	}
}

func TestQueueBounded(t *testing.T) {
	h := newHarness(t, KindWebPush, func(c *Config) { c.Grace, c.MaxPending = time.Hour, 1 })
	h.dir.targets["carol"] = []DeviceTarget{{User: "carol", Device: "c-phone", Target: h.svc.subscribe("c-phone")}}
	h.send("hi", func(m *Message) { m.Members = []string{"alice", "bob", "carol"} })
	h.flush()
	if h.p.Pending() != 1 {
		t.Fatalf("pending %d", h.p.Pending())
	}
	if v := h.counter("failed", "queue_full"); v != 1 {
		t.Fatalf("queue_full %v", v)
	}
}

func TestPreview(t *testing.T) {
	for _, tc := range []struct {
		body, ct, want string
	}{
		{"hello", "", "hello"},
		{"hello", "text/plain; charset=utf-8", "hello"},
		{"\x89PNG", "image/png", ""},
		{"\xff\xfe", "", ""},
		{strings.Repeat("a", 101), "", strings.Repeat("a", 100)},
	} {
		if got := preview([]byte(tc.body), tc.ct); got != tc.want {
			t.Errorf("preview(%q, %q) = %q, want %q", tc.body, tc.ct, got, tc.want)
		}
	}
}

// Past MaxSent, an older push record is forgotten for the new one: the
// newest push is still cleared.
func TestSentBounded(t *testing.T) {
	h := newHarness(t, KindWebPush, func(c *Config) { c.MaxSent = 1 })
	h.send("in c_test")
	h.waitPushes(1)
	h.send("in c_other", func(m *Message) { m.Conv = "c_other" })
	h.waitPushes(2)
	h.quiet(2)
	h.p.mu.Lock()
	n := len(h.p.sent)
	h.p.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d push records, want 1", n)
	}
	h.convs.read("bob", 2)
	h.p.Read(ws, "c_other", "bob", 2)
	if got := h.quiet(3); got[2].Type != TypeClear || got[2].Conv != "c_other" {
		t.Fatalf("clear %+v", got[2])
	}
}
