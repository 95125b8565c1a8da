package client

import (
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// typingLog records OnTyping calls.
type typingLog chan *syncpb.Typing

func (l typingLog) next(t *testing.T) *syncpb.Typing {
	t.Helper()
	select {
	case tt := <-l:
		return tt
	case <-time.After(20 * time.Second):
		t.Fatal("no OnTyping call within 20s")
		return nil
	}
}

func (l typingLog) none(t *testing.T) {
	t.Helper()
	select {
	case tt := <-l:
		t.Fatalf("unexpected OnTyping %v", tt)
	default:
	}
}

// An indicator that is not renewed ends by itself: OnTyping gets
// Typing false for it once its TTL lapses.
func TestTypingLapses(t *testing.T) {
	log := make(typingLog, 16)
	ts := newTypers(func(tt *syncpb.Typing) { log <- tt })
	defer ts.close()
	ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 1})
	if tt := log.next(t); !tt.Typing || tt.UserId != "u_a" {
		t.Fatalf("first call %v", tt)
	}
	if tt := log.next(t); tt.Typing || tt.ConvId != "c_1" || tt.UserId != "u_a" {
		t.Fatalf("lapse %v, want u_a stopped in c_1", tt)
	}
	ts.mu.Lock()
	n := len(ts.active)
	ts.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d typers tracked after the lapse", n)
	}
}

// A renewal supersedes the previous timer; "stopped" ends tracking; a
// lapse of a superseded generation does nothing.
func TestTypingRenewAndStop(t *testing.T) {
	log := make(typingLog, 16)
	ts := newTypers(func(tt *syncpb.Typing) { log <- tt })
	defer ts.close()
	k := typerKey{"c_1", "u_a"}
	ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 10000})
	log.next(t)
	ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_a", Typing: true, TtlMs: 10000})
	log.next(t)
	ts.lapse(k, 0) // the first timer's, had it fired late
	log.none(t)
	ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_a", Typing: false})
	if tt := log.next(t); tt.Typing {
		t.Fatalf("stop %v", tt)
	}
	ts.lapse(k, 1) // the renewal's timer, had it fired after the stop
	log.none(t)
}

// At most maxTypers are tracked; after close nothing is called.
func TestTypingBoundedAndClosed(t *testing.T) {
	calls := 0
	ts := newTypers(func(*syncpb.Typing) { calls++ })
	for i := range maxTypers + 10 {
		ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_" + string(rune('a'+i%26)) + string(rune('a'+i/26%26)) + string(rune('a'+i/676)), Typing: true, TtlMs: 10000})
	}
	ts.mu.Lock() // calls is written with mu held
	n, c := len(ts.active), calls
	ts.mu.Unlock()
	if n != maxTypers || c != maxTypers+10 {
		t.Fatalf("%d tracked, %d calls", n, c)
	}
	ts.close()
	ts.seen(&syncpb.Typing{ConvId: "c_1", UserId: "u_z", Typing: true})
	if calls != maxTypers+10 {
		t.Fatal("OnTyping called after close")
	}
}
