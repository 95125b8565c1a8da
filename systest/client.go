package systest

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Password is every test user's password.
const Password = "correct horse battery"

// User signs name up in workspace at the edge at base and logs in as
// device "<name>-laptop", returning a client holding its tokens.
func User(t testing.TB, base, workspace, name string) (*rest.Client, *rest.Session) {
	t.Helper()
	c := rest.New(base)
	if _, err := c.Register(t.Context(), workspace, name, Password); err != nil {
		t.Fatalf("register %s/%s: %v", workspace, name, err)
	}
	sess, err := c.Login(t.Context(), rest.LoginRequest{Workspace: workspace, Username: name, Password: Password, DeviceName: name + "-laptop"})
	if err != nil {
		t.Fatalf("login %s/%s: %v", workspace, name, err)
	}
	return c, sess
}

// Login signs name in again as a new device.
func Login(t testing.TB, base, workspace, name, device string) (*rest.Client, *rest.Session) {
	t.Helper()
	c := rest.New(base)
	sess, err := c.Login(t.Context(), rest.LoginRequest{Workspace: workspace, Username: name, Password: Password, DeviceName: device})
	if err != nil {
		t.Fatalf("login %s as %s: %v", name, device, err)
	}
	return c, sess
}

// User is User at the system's edge.
func (s *System) User(t testing.TB, workspace, name string) (*rest.Client, *rest.Session) {
	t.Helper()
	return User(t, s.URL(), workspace, name)
}

// Login is Login at the system's edge.
func (s *System) Login(t testing.TB, workspace, name, device string) (*rest.Client, *rest.Session) {
	t.Helper()
	return Login(t, s.URL(), workspace, name, device)
}

// Dialer returns the SDK dialer of transport ("ws", "quic" or "wt") to
// e, trusting its dev certificate by hash.
func Dialer(e *edge.Edge, transport string) client.Dialer {
	opts := client.QUICOptions{TLS: client.PinnedTLS(e.CertHashes()...)}
	switch transport {
	case "quic":
		return client.QUIC(e.UDPAddr().String(), opts)
	case "wt":
		return client.WebTransport("https://"+e.UDPAddr().String()+"/v1/wt", opts)
	}
	return client.WebSocket("ws://" + e.Addr().String() + "/v1/ws")
}

// Dialer is Dialer to the system's edge.
func (s *System) Dialer(transport string) client.Dialer { return Dialer(s.Edge(), transport) }

// Inbox records what OnMessage handed the app. Safe for concurrent use.
type Inbox struct {
	mu   sync.Mutex
	msgs map[string][]*syncpb.Message
	ch   chan struct{}
}

// NewInbox returns an empty Inbox.
func NewInbox() *Inbox {
	return &Inbox{msgs: map[string][]*syncpb.Message{}, ch: make(chan struct{}, 1)}
}

// Add records m (a client.Config.OnMessage).
func (b *Inbox) Add(m *syncpb.Message) {
	b.mu.Lock()
	b.msgs[m.ConvId] = append(b.msgs[m.ConvId], m)
	b.mu.Unlock()
	select {
	case b.ch <- struct{}{}:
	default:
	}
}

// Get returns the messages of conv so far.
func (b *Inbox) Get(conv string) []*syncpb.Message {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.msgs[conv])
}

// Changed receives after an Add (several Adds may share one receive),
// for a test that waits on the inbox and something else at once.
func (b *Inbox) Changed() <-chan struct{} { return b.ch }

// WaitFor waits up to 60 s until the inbox holds n messages of conv, and
// returns them; what names the inbox in the failure.
func (b *Inbox) WaitFor(t testing.TB, conv string, n int, what string) []*syncpb.Message {
	t.Helper()
	deadline := time.After(60 * time.Second)
	for {
		if got := b.Get(conv); len(got) >= n {
			return got
		}
		select {
		case <-b.ch:
		case <-deadline:
			t.Fatalf("%s: %d of %d messages after 60s", what, len(b.Get(conv)), n)
		}
	}
}

// Dropper lets a test cut a session's current connection, as a network
// failure would: wrap the session's dialer with Dial, then Drop. Safe for
// concurrent use.
type Dropper struct {
	mu sync.Mutex
	tr client.Transport // the current connection
}

// Dial wraps inner, remembering the connection it makes.
func (d *Dropper) Dial(inner client.Dialer) client.Dialer {
	return func(ctx context.Context) (client.Transport, error) {
		tr, err := inner(ctx)
		if err == nil {
			d.mu.Lock()
			d.tr = tr
			d.mu.Unlock()
		}
		return tr, err
	}
}

// Drop closes the current connection; the SDK reconnects.
func (d *Dropper) Drop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.tr != nil {
		_ = d.tr.Close(nil)
	}
}

// Device is a user's SDK session and what it was handed. A test that
// dials a session its own way fills in C (and Box, Rest, Sess as it
// needs); Drop then does nothing.
type Device struct {
	C    *client.Client
	Box  *Inbox
	Rest *rest.Client
	Sess *rest.Session

	drops Dropper
}

// NewDevice dials a session for sess's device with dial, resuming from
// marks (conv -> seq), with quick reconnects; the test's cleanup closes
// it.
func NewDevice(t testing.TB, dial client.Dialer, rc *rest.Client, sess *rest.Session, marks map[string]uint64) *Device {
	t.Helper()
	d := &Device{Box: NewInbox(), Rest: rc, Sess: sess}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	var err error
	d.C, err = client.Dial(ctx, client.Config{
		Dial:       d.drops.Dial(dial),
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID:   sess.Device.ID,
		Watermarks: marks,
		OnMessage:  d.Box.Add,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.C.Close() })
	return d
}

// Device is NewDevice over transport ("ws", "quic", "wt") to the system's
// edge.
func (s *System) Device(t testing.TB, transport string, rc *rest.Client, sess *rest.Session, marks map[string]uint64) *Device {
	t.Helper()
	return NewDevice(t, s.Dialer(transport), rc, sess, marks)
}

// Drop closes the device's current connection, as a network failure
// would; the SDK reconnects.
func (d *Device) Drop() { d.drops.Drop() }
