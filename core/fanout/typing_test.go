package fanout

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// typingSubjects runs t through the membership check and returns the
// subjects published to.
func typingSubjects(t *testing.T, f *Fanout, pub chan *nats.Msg, src Source, tt *syncpb.Typing) []string {
	t.Helper()
	f.typingOne(src, tt)
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

func TestTypingFansOutToMembersOnly(t *testing.T) {
	f, pub, now := newTestFanout(t, 3)
	src := &mutableMembers{users: []string{"u_b", "u_a"}}
	typing := func(user string) *syncpb.Typing {
		return &syncpb.Typing{ConvId: "c_1", UserId: user, DeviceId: "d_" + user, Typing: true, TtlMs: 5000}
	}
	user := func(u string) string { return syncproto.UserSubject("local", u) }

	// A member's typing reaches every member's subject (its own user's
	// too: its other devices).
	if got := typingSubjects(t, f, pub, src, typing("u_a")); !slices.Equal(got, []string{user("u_a"), user("u_b")}) {
		t.Fatalf("subjects %v", got)
	}
	// A stranger's goes nowhere.
	if got := typingSubjects(t, f, pub, src, typing("u_x")); len(got) != 0 {
		t.Fatalf("stranger's typing published to %v", got)
	}
	// Cached: one read so far.
	if src.reads != 1 {
		t.Fatalf("%d member reads, want 1 (cached)", src.reads)
	}
	// Membership changes: u_b leaves, u_c joins. Once forgotten, the new
	// list rules both ways.
	src.set("u_a", "u_c")
	f.Forget("c_1")
	if got := typingSubjects(t, f, pub, src, typing("u_b")); len(got) != 0 {
		t.Fatalf("a former member's typing published to %v", got)
	}
	if got := typingSubjects(t, f, pub, src, typing("u_c")); !slices.Equal(got, []string{user("u_a"), user("u_c")}) {
		t.Fatalf("subjects %v", got)
	}
	// Without a forget the cache still expires.
	src.set("u_a", "u_c", "u_d")
	*now = now.Add(DefaultMemberTTL)
	if got := typingSubjects(t, f, pub, src, typing("u_d")); len(got) != 3 {
		t.Fatalf("after the cache TTL: subjects %v", got)
	}
	// A large group: once, on the conversation subject.
	src.set("u_a", "u_c", "u_d", "u_e")
	f.Forget("c_1")
	if got := typingSubjects(t, f, pub, src, typing("u_e")); !slices.Equal(got, []string{syncproto.ConvSubject("local", "c_1")}) {
		t.Fatalf("large group: subjects %v", got)
	}
	if st := f.TypingStats(); st.Fanned != 4 || st.Strangers != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestTypingQueueIsBounded(t *testing.T) {
	f, _, _ := newTestFanout(t, 0)
	src := &mutableMembers{users: []string{"u_a"}}
	b, err := proto.Marshal(&syncpb.CoreRequest{Caller: &syncpb.Caller{UserId: "u_a"},
		Op: &syncpb.CoreRequest_Typing{Typing: &syncpb.Typing{ConvId: "c_1", UserId: "u_a"}}})
	if err != nil {
		t.Fatal(err)
	}
	for range typingQueue + 10 {
		f.Typing(b, func(string) Source { return src })
	}
	if st := f.TypingStats(); st.Dropped != 10 || st.Received != typingQueue+10 {
		t.Fatalf("stats %+v, want 10 dropped", st)
	}
}

// Typing that is malformed, not its caller's, or for a shard this node
// does not lead is dropped before the queue.
func TestTypingDropsWhatItCannotCheck(t *testing.T) {
	f, _, _ := newTestFanout(t, 0)
	src := &mutableMembers{users: []string{"u_a"}}
	some := func(string) Source { return src }
	none := func(string) Source { return nil }
	req := func(caller, user string) []byte {
		b, _ := proto.Marshal(&syncpb.CoreRequest{Caller: &syncpb.Caller{UserId: caller},
			Op: &syncpb.CoreRequest_Typing{Typing: &syncpb.Typing{ConvId: "c_1", UserId: user}}})
		return b
	}
	f.Typing([]byte{0xff}, some)
	f.Typing(req("u_b", "u_a"), some)
	f.Typing(req("u_a", "u_a"), none)
	if st := f.TypingStats(); st.Dropped != 3 || len(f.typing.q) != 0 {
		t.Fatalf("stats %+v, %d queued; want 3 dropped, none queued", st, len(f.typing.q))
	}
}
