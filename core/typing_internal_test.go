package core

import (
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// mutableMembers is a member list a test can change, counting reads.
type mutableMembers struct {
	mu    sync.Mutex
	users []string
	reads int
}

func (m *mutableMembers) Members(string) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.reads++
	return slices.Clone(m.users), nil
}

func (m *mutableMembers) set(users ...string) {
	m.mu.Lock()
	m.users = users
	m.mu.Unlock()
}

// typerSubjects runs t through fanout and returns the subjects published to.
func typerSubjects(t *testing.T, ty *typer, pub chan *nats.Msg, sm memberLister, tt *syncpb.Typing) []string {
	t.Helper()
	ty.fanout(sm, tt)
	var subjects []string
	for {
		select {
		case m := <-pub:
			d := &syncpb.Deliver{}
			if err := proto.Unmarshal(m.Data, d); err != nil || len(d.Typing) != 1 || !proto.Equal(d.Typing[0], tt) {
				t.Fatalf("published %v (%v), want typing %v", d, err, tt)
			}
			subjects = append(subjects, m.Subject)
		default:
			slices.Sort(subjects)
			return subjects
		}
	}
}

func TestTyperFansOutToMembersOnly(t *testing.T) {
	pub := make(chan *nats.Msg, 64)
	now := time.Unix(1000, 0)
	ty := newTyper("local", 3, func(m *nats.Msg) error { pub <- m; return nil }, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	sm := &mutableMembers{users: []string{"u_b", "u_a"}}
	typing := func(user string) *syncpb.Typing {
		return &syncpb.Typing{ConvId: "c_1", UserId: user, DeviceId: "d_" + user, Typing: true, TtlMs: 5000}
	}
	user := func(u string) string { return syncproto.UserSubject("local", u) }

	// A member's typing reaches every member's subject (its own user's
	// too: its other devices).
	if got := typerSubjects(t, ty, pub, sm, typing("u_a")); !slices.Equal(got, []string{user("u_a"), user("u_b")}) {
		t.Fatalf("subjects %v", got)
	}
	// A stranger's goes nowhere.
	if got := typerSubjects(t, ty, pub, sm, typing("u_x")); len(got) != 0 {
		t.Fatalf("stranger's typing published to %v", got)
	}
	// Cached: one read so far.
	if sm.reads != 1 {
		t.Fatalf("%d member reads, want 1 (cached)", sm.reads)
	}
	// Membership changes: u_b leaves, u_c joins. Once forgotten, the new
	// list rules both ways.
	sm.set("u_a", "u_c")
	ty.forget("c_1")
	if got := typerSubjects(t, ty, pub, sm, typing("u_b")); len(got) != 0 {
		t.Fatalf("a former member's typing published to %v", got)
	}
	if got := typerSubjects(t, ty, pub, sm, typing("u_c")); !slices.Equal(got, []string{user("u_a"), user("u_c")}) {
		t.Fatalf("subjects %v", got)
	}
	// Without a forget the cache still expires.
	sm.set("u_a", "u_c", "u_d")
	now = now.Add(typingCacheTTL)
	if got := typerSubjects(t, ty, pub, sm, typing("u_d")); len(got) != 3 {
		t.Fatalf("after the cache TTL: subjects %v", got)
	}
	// A large group: once, on the conversation subject.
	sm.set("u_a", "u_c", "u_d", "u_e")
	ty.forget("c_1")
	if got := typerSubjects(t, ty, pub, sm, typing("u_e")); !slices.Equal(got, []string{syncproto.ConvSubject("local", "c_1")}) {
		t.Fatalf("large group: subjects %v", got)
	}
	if st := ty.stats(); st.Fanned != 4 || st.Strangers != 2 {
		t.Fatalf("stats %+v", st)
	}
}

// A member list read before a membership change is not cached after it.
func TestTyperDoesNotCacheAListReadBeforeAChange(t *testing.T) {
	ty := newTyper("local", 0, func(*nats.Msg) error { return nil }, time.Now, slog.New(slog.DiscardHandler))
	sm := &racingMembers{ty: ty, users: []string{"u_a"}}
	if _, err := ty.membersOf(sm, "c_1"); err != nil {
		t.Fatal(err)
	}
	if _, ok := ty.members["c_1"]; ok {
		t.Fatal("a list read across a forget was cached")
	}
	users, _ := ty.membersOf(sm, "c_1")
	if _, ok := ty.members["c_1"]; !ok || len(users) != 1 {
		t.Fatal("a clean read was not cached")
	}
}

// racingMembers forgets the conversation during its first read, as a
// membership change applied meanwhile would.
type racingMembers struct {
	ty    *typer
	users []string
	n     int
}

func (r *racingMembers) Members(conv string) ([]string, error) {
	r.n++
	if r.n == 1 {
		r.ty.forget(conv)
	}
	return r.users, nil
}

func TestTyperQueueIsBounded(t *testing.T) {
	ty := newTyper("local", 0, func(*nats.Msg) error { return nil }, time.Now, slog.New(slog.DiscardHandler))
	for range typingQueue + 10 {
		ty.enqueue(fixedMembers{"u_a"}, &syncpb.Typing{ConvId: "c_1", UserId: "u_a"})
	}
	if st := ty.stats(); st.Dropped != 10 {
		t.Fatalf("dropped %d, want 10", st.Dropped)
	}
}
