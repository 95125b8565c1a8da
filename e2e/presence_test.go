package e2e_test

// End-to-end presence: a region of three core nodes (real Raft, clustered
// NATS) and two edges, Go SDK devices over WebSocket.

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/edge"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
	"github.com/parley-chat/parley/systest"
)

// presenceRegion is three core nodes (systest.Region) with presence
// configured, and edges a test starts on them.
type presenceRegion struct{ *systest.Region }

func startPresenceRegion(t testing.TB, presence core.PresenceConfig) *presenceRegion {
	t.Helper()
	// BalanceInterval as core's default: these tests are not about
	// leadership hand-overs.
	return &presenceRegion{systest.StartRegion(t, 3, systest.RegionOptions{Core: coretest.Options{
		Base: core.Config{Presence: presence, BalanceInterval: 2 * time.Second}}})}
}

// waitReplicated waits until every node's copy of conv's shard holds it:
// presence reads membership from the answering node's copy.
func (r *presenceRegion) waitReplicated(t *testing.T, u *presenceUser, conv string) {
	t.Helper()
	caller := &syncpb.Caller{WorkspaceId: u.sess.User.WorkspaceID, UserId: u.id}
	for _, n := range r.Live() {
		poll.NoError(t, 30*time.Second, n.NodeID()+": conversation replicated", func() error {
			resp := n.ReadLocal(t.Context(), n.ShardGroupOf(conv), &syncpb.CoreRequest{Caller: caller,
				Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}})
			if e := resp.GetError(); e != nil {
				return fmt.Errorf("%v", e)
			}
			return nil
		})
	}
}

// testEdge is an edge of the region whose Kill cuts its NATS connection
// before closing the edge: to the cores the edge goes silent with no
// closing batch, as when its process dies.
type testEdge = systest.Edge

// startEdge starts an edge on node i, with no QUIC port and no shutdown
// grace.
func (r *presenceRegion) startEdge(t *testing.T, i int) *testEdge {
	t.Helper()
	return r.StartEdge(t, i, systest.EdgeOptions{Config: func(c *edge.Config) {
		c.QUIC.Addr, c.ShutdownTimeout = "", time.Nanosecond
	}})
}

// watcherView records the presence a device was told, per user.
type watcherView struct {
	mu      sync.Mutex
	state   map[string]*syncpb.PresenceUpdate
	seen    map[string]int // updates per user
	offline map[string]int // offline updates per user
	wake    chan struct{}
}

func newWatcherView() *watcherView {
	return &watcherView{state: map[string]*syncpb.PresenceUpdate{}, seen: map[string]int{}, offline: map[string]int{}, wake: make(chan struct{}, 1)}
}

func (w *watcherView) on(p *syncpb.PresenceUpdate) {
	w.mu.Lock()
	w.state[p.UserId] = p
	w.seen[p.UserId]++
	if !p.Online {
		w.offline[p.UserId]++
	}
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *watcherView) current(user string) *syncpb.PresenceUpdate {
	p, _ := w.get(user)
	return p
}

func (w *watcherView) offlines(user string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.offline[user]
}

func (w *watcherView) get(user string) (*syncpb.PresenceUpdate, int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.state[user], w.seen[user]
}

// waitState waits until the watcher was told user is online (or not) and
// returns how long that took.
func (w *watcherView) waitState(t *testing.T, what, user string, online bool) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := time.After(30 * time.Second)
	for {
		if p, _ := w.get(user); p != nil && p.Online == online {
			return time.Since(start)
		}
		select {
		case <-w.wake:
		case <-deadline:
			p, _ := w.get(user)
			t.Fatalf("%s: watcher still sees %v after 30s", what, p)
		}
	}
}

type presenceUser struct {
	id   string
	rest *rest.Client
	sess *rest.Session
}

func (r *presenceRegion) user(t *testing.T, base, name string) *presenceUser {
	t.Helper()
	c := rest.New(base)
	if _, err := c.Register(t.Context(), "acme", name, testPassword); err != nil {
		t.Fatalf("register %s: %v", name, err)
	}
	sess, err := c.Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: name, Password: testPassword, DeviceName: name + "-1"})
	if err != nil {
		t.Fatal(err)
	}
	return &presenceUser{id: sess.User.ID, rest: c, sess: sess}
}

// device logs the user in as a new device (unless first) and connects it
// to te; onPresence may be nil.
func (u *presenceUser) device(t *testing.T, te *testEdge, first bool, onPresence func(*syncpb.PresenceUpdate)) *client.Client {
	t.Helper()
	rc, sess := u.rest, u.sess
	if !first {
		rc = rest.New(te.URL())
		var err error
		sess, err = rc.Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: sess.User.Username, Password: testPassword, DeviceName: "another"})
		if err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Dial:       client.WebSocket("ws://" + te.Addr().String() + "/v1/ws"),
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID:   sess.Device.ID,
		OnPresence: onPresence,
		MinBackoff: 50 * time.Millisecond, MaxBackoff: 500 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Devices connect and disconnect across two edges; one edge is killed
// (no closing batch): its users go offline for their watchers once the
// lease ends, except a user with a device left on the surviving edge.
func TestPresenceAcrossEdgesInRegion(t *testing.T) {
	r := startPresenceRegion(t, core.PresenceConfig{})
	a := r.startEdge(t, 0)
	b := r.startEdge(t, 1)
	ana := r.user(t, a.URL(), "ana")
	bo := r.user(t, a.URL(), "bo")
	cy := r.user(t, a.URL(), "cy")
	eve := r.user(t, a.URL(), "eve")
	dee := r.user(t, a.URL(), "dee") // shares no conversation with ana
	team, err := ana.rest.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "team",
		MemberIDs: []string{bo.id, cy.id, eve.id}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dee.rest.CreateConversation(t.Context(), rest.NewConversation{Type: "direct", MemberIDs: []string{bo.id}}); err != nil {
		t.Fatal(err)
	}
	r.waitReplicated(t, ana, team.ID)

	view := newWatcherView()
	anaDev := ana.device(t, a, true, view.on)
	// ana's catch-up told her the state of bo, cy and eve (offline).
	for _, u := range []*presenceUser{bo, cy, eve} {
		view.waitState(t, "initial", u.id, false)
	}

	boPhone := bo.device(t, b, true, nil) // on edge b
	_ = boPhone
	cy.device(t, b, true, nil)            // on edge b only
	bo.device(t, a, false, nil)           // bo's laptop on edge a
	eveDev := eve.device(t, a, true, nil) // on edge a
	dee.device(t, b, true, nil)
	for _, u := range []*presenceUser{bo, cy, eve} {
		t.Logf("%s online seen after %v", u.sess.User.Username, view.waitState(t, "connect", u.id, true))
	}

	// A clean disconnect: eve closes her only device.
	if err := eveDev.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("eve offline seen after %v (clean disconnect)", view.waitState(t, "disconnect", eve.id, false))
	if p, _ := view.get(eve.id); p.LastSeenUnixMs == 0 {
		t.Fatalf("eve offline without a last-seen time: %v", p)
	}

	// A conversation created while both are connected: ana is told fay's
	// state at once, and watches her from then on.
	fay := r.user(t, a.URL(), "fay")
	fayDev := fay.device(t, a, true, nil)
	if _, err := fay.rest.CreateConversation(t.Context(), rest.NewConversation{Type: "direct", MemberIDs: []string{ana.id}}); err != nil {
		t.Fatal(err)
	}
	t.Logf("fay online seen %v after the new conversation", view.waitState(t, "new member", fay.id, true))
	poll.Until(t, 20*time.Second, "ana's edge watches fay", func() bool { return a.Presence().IsWatched(fay.id) })
	if err := fayDev.Close(); err != nil {
		t.Fatal(err)
	}
	view.waitState(t, "new member leaves", fay.id, false)

	// PresenceSubscribe: dee is not ana's to watch; cy is.
	states, err := anaDev.Presence(t.Context(), dee.id, cy.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(states) != 1 || states[0].UserId != cy.id || !states[0].Online {
		t.Fatalf("ana's presence of dee and cy: %v", states)
	}
	// Widen back to everyone ana may watch. The answering core reads its
	// own copy of the shards, which may not hold fay's conversation yet.
	poll.Until(t, 20*time.Second, "ana's presence of everyone (4 users)", func() bool {
		states, err = anaDev.Presence(t.Context())
		if err != nil {
			t.Fatalf("ana's presence of everyone: %v", err)
		}
		return len(states) == 4
	})

	// Edge b dies: cy (only on b) goes offline; bo keeps its laptop on a.
	boOfflines := view.offlines(bo.id)
	b.Kill(t)
	took := view.waitState(t, "edge kill", cy.id, false)
	t.Logf("cy offline seen %v after edge b was killed (lease %v)", took, 1500*time.Millisecond)
	// Every node drops the lease at its own next check.
	for _, nd := range r.Live() {
		poll.Until(t, 20*time.Second, nd.NodeID()+" holds edge a's lease only", func() bool { _, edges := nd.PresenceOnline(); return edges == 1 })
	}
	// (An update may come twice around a leadership change; an offline
	// one must not come at all.)
	if p := view.current(bo.id); !p.Online || view.offlines(bo.id) != boOfflines {
		t.Fatalf("bo, with a laptop on the surviving edge: %v, %d offline updates since the kill", p, view.offlines(bo.id)-boOfflines)
	}
	if _, seen := view.get(dee.id); seen != 0 {
		t.Fatalf("ana was told about dee %d times", seen)
	}
}

// A workspace with presence turned off (operator setting) gets no
// presence: its lookups are refused (FORBIDDEN).
func TestPresenceOffForWorkspace(t *testing.T) {
	s := startTestSystem(t, "", nil)
	_, ana := s.User(t, "acme", "ana")
	// Restart with the workspace id known (Stop is idempotent: the
	// cleanup's is a no-op).
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
	s = startTestSystem(t, s.dir, func(c *system.Config) { c.Core.Presence.Off = []string{ana.User.WorkspaceID} })
	rc := rest.New(s.base)
	sess, err := rc.Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword, DeviceName: "x"})
	if err != nil {
		t.Fatal(err)
	}
	d := s.device(t, rc, sess, nil)
	_, err = d.C.Presence(t.Context())
	if syncproto.AsError(err).Code != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("presence in a workspace with presence off: %v, want FORBIDDEN", err)
	}
}

// The workspace's owner turns presence off over /v1 (a member may not):
// lookups are refused until the owner turns it back on.
func TestPresenceOffByWorkspaceOwner(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	anaRC, _ := s.User(t, "acme", "ana") // the first user owns the workspace
	boRC, boS := s.User(t, "acme", "bo")
	var re *rest.Error
	if _, err := boRC.SetPresenceOff(ctx, true); !errors.As(err, &re) || re.Code != syncpb.Code_CODE_FORBIDDEN || re.Status != 403 {
		t.Fatalf("a member turned presence off: %v", err)
	}
	if w, err := anaRC.SetPresenceOff(ctx, true); err != nil || !w.PresenceOff {
		t.Fatalf("the owner turning presence off: %+v, %v", w, err)
	}
	if w, err := boRC.Workspace(ctx); err != nil || !w.PresenceOff {
		t.Fatalf("a member reading the setting: %+v, %v", w, err)
	}
	d := s.device(t, boRC, boS, nil)
	if _, err := d.C.Presence(ctx); syncproto.AsError(err).Code != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("presence with presence off: %v, want FORBIDDEN", err)
	}
	if _, err := anaRC.SetPresenceOff(ctx, false); err != nil {
		t.Fatal(err)
	}
	if _, err := d.C.Presence(ctx); err != nil {
		t.Fatalf("presence back on: %v", err)
	}
}
