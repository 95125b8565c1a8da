package systest_test

import (
	"testing"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/systest"
)

// A system killed and restarted serves again at the same URL, on its
// data: the user's tokens and messages survived; so after Stop.
func TestSystemKillAndRestart(t *testing.T) {
	s := systest.Start(t, systest.Options{})
	rc, sess := s.User(t, "acme", "ana")
	g, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Send(t.Context(), rest.SendRequest{ConvID: g.ID, Body: "before"}); err != nil {
		t.Fatal(err)
	}
	url := s.URL()
	for _, fault := range []string{"kill", "stop"} {
		if fault == "kill" {
			s.Kill(t)
		} else if err := s.Stop(); err != nil {
			t.Fatal(err)
		}
		s.Restart(t)
		if s.URL() != url {
			t.Fatalf("after %s: restarted at %s, was %s", fault, s.URL(), url)
		}
		rc := rest.New(s.URL(), rest.WithTokens(sess.AccessToken, sess.RefreshToken))
		h, err := rc.History(t.Context(), rest.HistoryRequest{ConvID: g.ID, Limit: 10})
		if err != nil {
			t.Fatalf("after %s: %v", fault, err)
		}
		if n := len(h.Messages); n == 0 || h.Messages[n-1].Body != "before" {
			t.Fatalf("after %s: history %+v", fault, h.Messages)
		}
	}
}

// A device on an extra edge gets messages sent through the main one; a
// killed extra edge stops serving.
func TestSystemExtraEdge(t *testing.T) {
	s := systest.Start(t, systest.Options{})
	b := s.StartEdge(t, systest.EdgeOptions{})
	rc, _ := s.User(t, "acme", "ana")
	boRC, boSess := systest.User(t, b.URL(), "acme", "bo")
	bo := systest.NewDevice(t, systest.Dialer(b.Edge, "ws"), boRC, boSess, nil)
	g, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "t", MemberIDs: []string{boSess.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Send(t.Context(), rest.SendRequest{ConvID: g.ID, Body: "hi"}); err != nil {
		t.Fatal(err)
	}
	bo.Box.WaitFor(t, g.ID, 1, "bo")
	b.Kill(t)
	if _, err := rest.New(b.URL()).Login(t.Context(), rest.LoginRequest{Workspace: "acme", Username: "bo", Password: systest.Password}); err == nil {
		t.Fatal("a killed edge still serves")
	}
}
