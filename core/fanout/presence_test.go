package fanout

import (
	"slices"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// fixedPresence is every user online, with presence off in workspace off.
type fixedPresence struct{ off string }

func (p fixedPresence) Off(ws string) bool { return ws == p.off }

func (p fixedPresence) States(users []string) map[string]*syncpb.PresenceUpdate {
	out := map[string]*syncpb.PresenceUpdate{}
	for _, u := range users {
		out[u] = &syncpb.PresenceUpdate{UserId: u, Online: true}
	}
	return out
}

// noticeTargets runs one membership notice and returns, per user subject,
// whose states it carried.
func noticeTargets(t *testing.T, f *Fanout, pub chan *nats.Msg, src Source, added ...string) map[string][]string {
	t.Helper()
	f.notice(memberNotice{src: src, c: shard.Committed{ConvID: "c_1", MembersChanged: true, Added: added}})
	out := map[string][]string{}
	for len(pub) > 0 {
		m := <-pub
		d := &syncpb.Deliver{}
		if err := proto.Unmarshal(m.Data, d); err != nil {
			t.Fatal(err)
		}
		for _, p := range d.Presence {
			out[m.Subject] = append(out[m.Subject], p.UserId)
		}
		slices.Sort(out[m.Subject])
	}
	return out
}

// An added member hears every other member's presence, the others hear
// the added member's; large groups and workspaces with presence off hear
// nothing.
func TestMemberNotices(t *testing.T) {
	f, pub, _ := newTestFanout(t, 3)
	f.cfg.Presence = fixedPresence{off: "w_off"}
	src := &mutableMembers{users: []string{"u_a", "u_b", "u_c"}}
	user := func(u string) string { return syncproto.UserSubject("local", u) }
	got := noticeTargets(t, f, pub, src, "u_c")
	want := map[string][]string{user("u_a"): {"u_c"}, user("u_b"): {"u_c"}, user("u_c"): {"u_a", "u_b"}}
	if len(got) != len(want) {
		t.Fatalf("notices %v, want %v", got, want)
	}
	for s, users := range want {
		if !slices.Equal(got[s], users) {
			t.Fatalf("notices %v, want %v", got, want)
		}
	}
	src.set("u_a", "u_b", "u_c", "u_d")
	f.Forget("c_1")
	if got := noticeTargets(t, f, pub, src, "u_d"); len(got) != 0 {
		t.Fatalf("a large group was told %v", got)
	}
	f.cfg.Presence = fixedPresence{off: "w_1"}
	src.set("u_a", "u_b")
	f.Forget("c_1")
	if got := noticeTargets(t, f, pub, src, "u_b"); len(got) != 0 {
		t.Fatalf("a workspace with presence off was told %v", got)
	}
}

func TestLargeGroup(t *testing.T) {
	for _, tc := range []struct {
		rule    LargeGroup
		members int
		want    bool
	}{{0, 1_000_000, false}, {100, 100, false}, {100, 101, true}, {1, 2, true}} {
		if got := tc.rule.Is(tc.members); got != tc.want {
			t.Errorf("LargeGroup(%d).Is(%d) = %v, want %v", tc.rule, tc.members, got, tc.want)
		}
	}
}
