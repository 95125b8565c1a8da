package main

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/systest"
)

// parley reindex rebuilds a stopped node's index from its stored
// messages; the node then finds them as before.
func TestReindex(t *testing.T) {
	dir := t.TempDir()
	s := systest.Start(t, systest.Options{Dir: dir})
	rc, _ := s.User(t, "acme", "owner")
	c, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "r"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 30 {
		if _, err := rc.Send(t.Context(), rest.SendRequest{ConvID: c.ID, ClientMsgID: fmt.Sprintf("m-%d", i), Body: fmt.Sprintf("rebuild me %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	found := func(rc *rest.Client) int {
		res, err := rc.Search(t.Context(), rest.SearchRequest{Query: "rebuild", Limit: 100})
		if err != nil {
			t.Fatal(err)
		}
		return res.Total
	}
	poll.Until(t, 15*time.Second, "the 30 messages indexed", func() bool { return found(rc) == 30 })
	if err := s.Stop(); err != nil {
		t.Fatal(err)
	}
	var out, errOut strings.Builder
	if code := run([]string{"reindex", "--data", filepath.Join(dir, "core"), "--shards", "4"}, &out, &errOut); code != 0 {
		t.Fatalf("parley reindex: exit %d: %s%s", code, out.String(), errOut.String())
	}
	if !strings.Contains(out.String(), "30 indexed, 0 left") || !strings.Contains(out.String(), "done") {
		t.Fatalf("parley reindex printed %q", out.String())
	}
	s = systest.Start(t, systest.Options{Dir: dir})
	again, _ := s.Login(t, "acme", "owner", "owner-again")
	if n := found(again); n != 30 {
		t.Fatalf("after reindex %d found, want 30", n)
	}
}
