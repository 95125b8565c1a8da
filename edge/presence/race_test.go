package presence

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// stateCore answers lookups from a table of states that tests change;
// afterLookup, when set, runs once a lookup's answer is read and before
// it is returned (the moment another change can slip in).
type stateCore struct {
	mu          sync.Mutex
	states      map[string]*syncpb.PresenceUpdate
	lookups     int
	afterLookup func(n int)
}

func (c *stateCore) Call(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	c.mu.Lock()
	ids := req.GetGetPresence().GetUserIds()
	if len(ids) == 0 {
		for id := range c.states {
			ids = append(ids, id)
		}
	}
	list := &syncpb.PresenceList{}
	for _, id := range ids {
		if p := c.states[id]; p != nil {
			list.Users = append(list.Users, proto.Clone(p).(*syncpb.PresenceUpdate))
		}
	}
	c.lookups++
	n, hook := c.lookups, c.afterLookup
	c.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Presence{Presence: list}}, nil
}

func (c *stateCore) set(p *syncpb.PresenceUpdate) {
	c.mu.Lock()
	c.states[p.UserId] = p
	c.mu.Unlock()
}

// updates records what a watcher was handed.
type updates struct {
	mu  sync.Mutex
	got []*syncpb.PresenceUpdate
	ch  chan struct{}
}

func newUpdates() *updates { return &updates{ch: make(chan struct{}, 1)} }

func (u *updates) deliver(p *syncpb.PresenceUpdate) {
	u.mu.Lock()
	u.got = append(u.got, p)
	u.mu.Unlock()
	select {
	case u.ch <- struct{}{}:
	default:
	}
}

// waitOnline waits until the last update of user says online.
func (u *updates) waitOnline(t *testing.T, user string, within time.Duration) {
	t.Helper()
	deadline := time.NewTimer(within)
	defer deadline.Stop()
	for {
		u.mu.Lock()
		var last *syncpb.PresenceUpdate
		for _, p := range u.got {
			if p.UserId == user {
				last = p
			}
		}
		u.mu.Unlock()
		if last != nil && last.Online {
			return
		}
		select {
		case <-u.ch:
		case <-deadline.C:
			t.Fatalf("%s never shown online within %v (last update %v)", user, within, last)
		}
	}
}

func newStateService(t *testing.T, core *stateCore) (*Service, *nats.Conn) {
	t.Helper()
	s, _, obs, _ := newTestService(t, func(c *Config) { c.Core = core })
	return s, obs
}

func publishUpdate(t *testing.T, nc *nats.Conn, p *syncpb.PresenceUpdate) {
	t.Helper()
	b, err := proto.Marshal(&syncpb.Deliver{Presence: []*syncpb.PresenceUpdate{p}})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish(syncproto.PresenceUserSubject(syncproto.DefaultRegion, p.UserId), b); err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil { // the server has handled it
		t.Fatal(err)
	}
}

// A change published after the core read a lookup's answer and before the
// edge subscribed to the user reaches nobody on NATS; the watcher must
// still be told (the edge looks the new subscriptions up again once the
// server has them).
func TestWatchSeesChangeBetweenLookupAndSubscribe(t *testing.T) {
	core := &stateCore{states: map[string]*syncpb.PresenceUpdate{
		"bo": {UserId: "bo", Online: false, LastSeenUnixMs: 100},
	}}
	s, obs := newStateService(t, core)
	core.afterLookup = func(n int) {
		if n != 1 {
			return
		}
		on := &syncpb.PresenceUpdate{UserId: "bo", Online: true, LastSeenUnixMs: 200}
		core.set(on)
		publishUpdate(t, obs, on) // before the edge subscribes: lost on NATS
	}
	got := newUpdates()
	ss := s.Join(caller("ana", "p"), got.deliver)
	list, err := ss.Watch(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Online {
		t.Fatalf("watch answered %v, want bo offline (the lookup's answer)", list)
	}
	got.waitOnline(t, "bo", 5*time.Second)
	if st := ss.States(); len(st) != 1 || !st[0].Online {
		t.Fatalf("known states %v, want bo online", st)
	}
}

// A lookup answered from a state older than what the edge already knows
// (another watcher's live update got here first) must not be handed to a
// new watcher as the current state.
func TestWatchAnswersTheNewestKnownState(t *testing.T) {
	core := &stateCore{states: map[string]*syncpb.PresenceUpdate{
		"bo": {UserId: "bo", Online: false, LastSeenUnixMs: 100},
	}}
	s, obs := newStateService(t, core)
	first := newUpdates()
	a := s.Join(caller("ana", "p"), first.deliver)
	if _, err := a.Watch(t.Context(), nil); err != nil {
		t.Fatal(err)
	}
	// bo comes online; ana's edge hears it live, but the core that answers
	// the next lookup has not applied it yet.
	publishUpdate(t, obs, &syncpb.PresenceUpdate{UserId: "bo", Online: true, LastSeenUnixMs: 200})
	first.waitOnline(t, "bo", 5*time.Second)
	c := s.Join(caller("cy", "p"), newUpdates().deliver)
	list, err := c.Watch(t.Context(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || !list[0].Online || list[0].LastSeenUnixMs != 200 {
		t.Fatalf("cy's watch answered %v, want bo online since 200", list)
	}
}

// After the NATS connection comes back, the users every session watches
// are looked up again: a change published while it was down reached
// nobody here.
func TestReconnectedLooksWatchedUsersUp(t *testing.T) {
	core := &stateCore{states: map[string]*syncpb.PresenceUpdate{
		"bo": {UserId: "bo", Online: false, LastSeenUnixMs: 100},
	}}
	s, _ := newStateService(t, core)
	got := newUpdates()
	ss := s.Join(caller("ana", "p"), got.deliver)
	idle := s.Join(caller("cy", "p"), newUpdates().deliver) // watches nobody: no lookup
	_ = idle
	if _, err := ss.Watch(t.Context(), []string{"bo"}); err != nil {
		t.Fatal(err)
	}
	core.set(&syncpb.PresenceUpdate{UserId: "bo", Online: true, LastSeenUnixMs: 200}) // never published
	s.Reconnected()
	got.waitOnline(t, "bo", 5*time.Second)
}
