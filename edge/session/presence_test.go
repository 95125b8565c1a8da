package session

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// fakePresence records joins, watches and leaves; Watch answers with every
// named user (or "bo" by default) online, after pushing a change through
// deliver, as a live update racing the catch-up would.
type fakePresence struct {
	mu      sync.Mutex
	joined  []string
	left    []string
	watches [][]string
}

type fakePresenceSession struct {
	p       *fakePresence
	caller  *syncpb.Caller
	deliver func(*syncpb.PresenceUpdate)
	once    sync.Once
}

func (p *fakePresence) Join(c *syncpb.Caller, deliver func(*syncpb.PresenceUpdate)) PresenceSession {
	p.mu.Lock()
	p.joined = append(p.joined, c.DeviceId)
	p.mu.Unlock()
	return &fakePresenceSession{p: p, caller: c, deliver: deliver}
}

func (s *fakePresenceSession) Watch(_ context.Context, ids []string) ([]*syncpb.PresenceUpdate, error) {
	s.p.mu.Lock()
	s.p.watches = append(s.p.watches, ids)
	s.p.mu.Unlock()
	if len(ids) == 0 {
		ids = []string{"bo"}
	}
	var out []*syncpb.PresenceUpdate
	for _, id := range ids {
		out = append(out, &syncpb.PresenceUpdate{UserId: id, Online: true})
	}
	s.deliver(&syncpb.PresenceUpdate{UserId: ids[0], Online: false, LastSeenUnixMs: 1})
	return out, nil
}

func (s *fakePresenceSession) States() []*syncpb.PresenceUpdate {
	return []*syncpb.PresenceUpdate{{UserId: "bo", Online: true, LastSeenUnixMs: 2}}
}

func (s *fakePresenceSession) Add([]*syncpb.PresenceUpdate) {}

func (s *fakePresenceSession) Leave() {
	s.once.Do(func() {
		s.p.mu.Lock()
		s.p.left = append(s.p.left, s.caller.DeviceId)
		s.p.mu.Unlock()
	})
}

func (p *fakePresence) snapshot() (joined, left []string, watches int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.joined...), append([]string(nil), p.left...), len(p.watches)
}

// The catch-up SyncResponse carries the watched users' presence, and a
// change that comes meanwhile follows it; PresenceSubscribe is answered
// with a SyncResponse holding only presence; the device leaves when the
// session ends.
func TestSessionPresence(t *testing.T) {
	fp := &fakePresence{}
	e := newEnv(t, func(c *Config) { c.Presence = fp })
	p, done := e.start(64)
	p.send(hello(e.token("u_a", "d_a"), "d_a", &syncpb.SyncPosition{}))
	if f := p.next(t); f.GetWelcome() == nil {
		t.Fatalf("want welcome, got %v", f)
	}
	cu := p.next(t)
	if got := cu.GetSyncResponse().GetPresence(); cu.Id != 0 || len(got) != 1 || got[0].UserId != "bo" || !got[0].Online {
		t.Fatalf("catch-up: %v", cu)
	}
	if f := p.next(t); f.GetPresence().GetUserId() != "bo" || f.GetPresence().Online {
		t.Fatalf("the change during the catch-up: %v", f)
	}
	p.send(&syncpb.Frame{Id: 5, Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: []string{"cy"}}}})
	var answer *syncpb.Frame
	for answer == nil {
		if f := p.next(t); f.Id == 5 {
			answer = f
		}
	}
	if got := answer.GetSyncResponse().GetPresence(); len(got) != 1 || got[0].UserId != "cy" {
		t.Fatalf("PresenceSubscribe answer: %v", answer)
	}
	// A device's own sync (as after a Resync) carries the known states.
	p.send(&syncpb.Frame{Id: 7, Body: &syncpb.Frame_SyncRequest{SyncRequest: &syncpb.SyncRequest{}}})
	for {
		if f := p.next(t); f.Id == 7 {
			if got := f.GetSyncResponse().GetPresence(); len(got) != 1 || got[0].LastSeenUnixMs != 2 {
				t.Fatalf("sync answer: %v", f)
			}
			break
		}
	}
	p.send(&syncpb.Frame{Id: 6, Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: []string{"Bad Id"}}}})
	for {
		if f := p.next(t); f.Id == 6 {
			wantError(t, f, 6, syncpb.Code_CODE_INVALID_ARGUMENT)
			break
		}
	}
	p.Close(nil)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("session did not end")
	}
	joined, left, watches := fp.snapshot()
	if len(joined) != 1 || len(left) != 1 || watches != 2 {
		t.Fatalf("joined %v left %v watches %d", joined, left, watches)
	}
}

// Without a presence service PresenceSubscribe is refused, not fatal.
func TestSessionPresenceOff(t *testing.T) {
	e := newEnv(t, nil)
	p := e.connect("u_a", "d_a", 16)
	p.send(&syncpb.Frame{Id: 3, Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{}}})
	for {
		if f := p.next(t); f.Id == 3 {
			wantError(t, f, 3, syncpb.Code_CODE_FORBIDDEN)
			break
		}
	}
}
