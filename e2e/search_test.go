package e2e_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// searchUser is a logged-in user of a search test.
type searchUser struct {
	rc   *rest.Client
	sess *rest.Session
}

func (u searchUser) id() string { return u.sess.User.ID }

func newSearchUser(t *testing.T, s *testSystem, workspace, name string) searchUser {
	t.Helper()
	rc, sess := s.User(t, workspace, name)
	return searchUser{rc: rc, sess: sess}
}

func (u searchUser) search(t *testing.T, req rest.SearchRequest) *rest.SearchResult {
	t.Helper()
	res, err := u.rc.Search(t.Context(), req)
	if err != nil {
		t.Fatalf("search %+v: %v", req, err)
	}
	return res
}

func (u searchUser) send(t *testing.T, conv, body string) *rest.SendResult {
	t.Helper()
	ack, err := u.rc.Send(t.Context(), rest.SendRequest{ConvID: conv, ClientMsgID: fmt.Sprintf("m-%d", time.Now().UnixNano()), Body: body})
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

func hitIDs(r *rest.SearchResult) []string {
	var ids []string
	for _, h := range r.Hits {
		ids = append(ids, h.MsgID)
	}
	return ids
}

// waitFound waits until u's search finds msgID (the index follows the
// store by a moment).
func (u searchUser) waitFound(t *testing.T, req rest.SearchRequest, msgID string) *rest.SearchResult {
	t.Helper()
	var res *rest.SearchResult
	poll.Until(t, 15*time.Second, fmt.Sprintf("search %q finds %s", req.Query, msgID), func() bool {
		res = u.search(t, req)
		return slices.Contains(hitIDs(res), msgID)
	})
	return res
}

func TestSearch(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	owner, member := newSearchUser(t, s, "acme", "owner"), newSearchUser(t, s, "acme", "member")
	stranger, kicked := newSearchUser(t, s, "acme", "stranger"), newSearchUser(t, s, "acme", "kicked")
	late, other := newSearchUser(t, s, "acme", "late"), newSearchUser(t, s, "beta", "other")
	c, err := owner.rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "plans",
		MemberIDs: []string{member.id(), kicked.id()}})
	if err != nil {
		t.Fatal(err)
	}
	budget := owner.send(t, c.ID, "the quarterly budget meeting moved to Friday")
	cjk := owner.send(t, c.ID, "我家在上海东边")

	res := member.waitFound(t, rest.SearchRequest{Query: "budget"}, budget.MsgID)
	if res.Total != 1 || len(res.Hits) != 1 || res.Hits[0].ConvID != c.ID || res.Hits[0].SenderID != owner.id() || len(res.Hits[0].Marks) == 0 {
		t.Fatalf("member's search: %+v", res)
	}
	kicked.waitFound(t, rest.SearchRequest{Query: "budget"}, budget.MsgID)
	member.waitFound(t, rest.SearchRequest{Query: "东边"}, cjk.MsgID)

	t.Run("stranger sees what a nonexistent conversation gives", func(t *testing.T) {
		got := stranger.search(t, rest.SearchRequest{Query: "budget", ConvID: c.ID})
		none := stranger.search(t, rest.SearchRequest{Query: "budget", ConvID: "nosuchconv"})
		if len(got.Hits) != 0 || got.Total != 0 || got.NextCursor != "" || fmt.Sprint(got) != fmt.Sprint(none) {
			t.Fatalf("stranger with conv_id got %+v, a nonexistent conversation %+v", got, none)
		}
		if got := stranger.search(t, rest.SearchRequest{Query: "budget"}); len(got.Hits) != 0 {
			t.Fatalf("stranger found %v", hitIDs(got))
		}
	})
	t.Run("other workspace finds nothing", func(t *testing.T) {
		if got := other.search(t, rest.SearchRequest{Query: "budget"}); len(got.Hits) != 0 {
			t.Fatalf("other workspace found %v", hitIDs(got))
		}
		if got := other.search(t, rest.SearchRequest{Query: "budget", ConvID: c.ID}); len(got.Hits) != 0 {
			t.Fatalf("other workspace found %v", hitIDs(got))
		}
	})
	t.Run("CJK and phrases", func(t *testing.T) {
		for _, q := range []string{"上海", "海"} {
			if got := member.search(t, rest.SearchRequest{Query: q}); !slices.Equal(hitIDs(got), []string{cjk.MsgID}) {
				t.Errorf("%q found %v, want %s", q, hitIDs(got), cjk.MsgID)
			}
		}
		if got := member.search(t, rest.SearchRequest{Query: `"quarterly budget"`}); !slices.Equal(hitIDs(got), []string{budget.MsgID}) {
			t.Errorf("phrase found %v", hitIDs(got))
		}
		if got := member.search(t, rest.SearchRequest{Query: `"budget quarterly"`}); len(got.Hits) != 0 {
			t.Errorf("reversed phrase found %v", hitIDs(got))
		}
		if got := member.search(t, rest.SearchRequest{ConvID: c.ID}); len(got.Hits) != 2 {
			t.Errorf("conv_id alone found %v, want both messages", hitIDs(got))
		}
	})
	t.Run("kicked member finds nothing any more", func(t *testing.T) {
		if err := owner.rc.RemoveMember(ctx, c.ID, kicked.id()); err != nil {
			t.Fatal(err)
		}
		if got := kicked.search(t, rest.SearchRequest{Query: "budget"}); len(got.Hits) != 0 {
			t.Fatalf("kicked member found %v", hitIDs(got))
		}
		if err := member.rc.RemoveMember(ctx, c.ID, member.id()); err != nil { // leaves
			t.Fatal(err)
		}
		if got := member.search(t, rest.SearchRequest{Query: "budget", ConvID: c.ID}); len(got.Hits) != 0 {
			t.Fatalf("member who left found %v", hitIDs(got))
		}
	})
	t.Run("a user added a moment ago finds at once", func(t *testing.T) {
		if _, err := owner.rc.AddMembers(ctx, c.ID, []string{late.id()}, nil); err != nil {
			t.Fatal(err)
		}
		if got := late.search(t, rest.SearchRequest{Query: "budget"}); !slices.Equal(hitIDs(got), []string{budget.MsgID}) {
			t.Fatalf("late member found %v", hitIDs(got))
		}
	})
	t.Run("session gives what HTTP gives", func(t *testing.T) {
		d := s.Device(t, "ws", owner.rc, owner.sess, nil)
		for _, q := range []string{"budget", "海", "friday budget"} {
			ws, err := d.C.Search(ctx, &syncpb.SearchRequest{Query: q})
			if err != nil {
				t.Fatal(err)
			}
			http := owner.search(t, rest.SearchRequest{Query: q})
			var wsIDs []string
			for _, h := range ws.Hits {
				wsIDs = append(wsIDs, h.MsgId)
			}
			if !slices.Equal(wsIDs, hitIDs(http)) || int(ws.Total) != http.Total || len(wsIDs) == 0 {
				t.Errorf("%q: session %v (total %d), HTTP %v (total %d)", q, wsIDs, ws.Total, hitIDs(http), http.Total)
			}
		}
		_, err := d.C.Search(ctx, &syncpb.SearchRequest{Query: `"open`})
		if code := syncproto.AsError(err).Code; code != syncpb.Code_CODE_INVALID_ARGUMENT {
			t.Errorf("bad query over the session: %v", err)
		}
	})
	t.Run("bad query is invalid_argument", func(t *testing.T) {
		for _, q := range []string{`"open`, "a*", "from:", "-"} {
			_, err := owner.rc.Search(ctx, rest.SearchRequest{Query: q})
			if rest.Code(err) != syncpb.Code_CODE_INVALID_ARGUMENT {
				t.Errorf("%q: %v, want invalid_argument", q, err)
			}
		}
		if r := s.do(t, "GET", "/v1/search?q=%22open", owner.sess.AccessToken, nil); r.status != 400 || r.code(t) != "invalid_argument" {
			t.Errorf("GET /v1/search bad query: %d %s", r.status, r.body)
		}
	})
}

func TestSearchOffWorkspace(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	owner, member := newSearchUser(t, s, "quiet", "owner"), newSearchUser(t, s, "quiet", "member")
	if _, err := owner.rc.SetSearchOff(ctx, true); err != nil {
		t.Fatal(err)
	}
	c, err := owner.rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "quiet", MemberIDs: []string{member.id()}})
	if err != nil {
		t.Fatal(err)
	}
	hidden := owner.send(t, c.ID, "the secret recipe")
	// A marker in another workspace tells when the indexer has passed
	// the hidden message (it indexes in commit order per pass).
	probe := newSearchUser(t, s, "loud", "probe")
	pc, err := probe.rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "loud"})
	if err != nil {
		t.Fatal(err)
	}
	marker := probe.send(t, pc.ID, "recipe marker")
	probe.waitFound(t, rest.SearchRequest{Query: "marker"}, marker.MsgID)
	poll.Until(t, 15*time.Second, "indexer idle", func() bool { return s.node.SearchIdle() })
	if got := member.search(t, rest.SearchRequest{Query: "recipe"}); len(got.Hits) != 0 {
		t.Fatalf("search_off workspace found %v", hitIDs(got))
	}
	// Turned on again: what was sent while it was off was never indexed.
	if _, err := owner.rc.SetSearchOff(ctx, false); err != nil {
		t.Fatal(err)
	}
	if got := member.search(t, rest.SearchRequest{Query: "recipe"}); slices.Contains(hitIDs(got), hidden.MsgID) {
		t.Fatalf("message sent while search was off was indexed: %v", hitIDs(got))
	}
	after := owner.send(t, c.ID, "the public recipe")
	member.waitFound(t, rest.SearchRequest{Query: "recipe"}, after.MsgID)
}
