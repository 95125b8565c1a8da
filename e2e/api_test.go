package e2e_test

// End-to-end tests of the /v1 API: a real one-node system (systest:
// single-node Raft shards on Badger, in-process NATS, the edge on
// 127.0.0.1:0) driven over real HTTP, both with the Go client
// (client/rest) and raw requests.

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

// raw is one raw HTTP exchange.
type raw struct {
	status int
	header http.Header
	body   []byte
}

// code is the stable error code of an error response ("" if none).
func (r raw) code(t *testing.T) string {
	t.Helper()
	var e struct {
		Error struct {
			Code        string `json:"code"`
			NumericCode int32  `json:"numeric_code"`
			Message     string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil {
		t.Fatalf("error body is not JSON (%d): %q", r.status, r.body)
	}
	if e.Error.Code == "" || e.Error.NumericCode == 0 || e.Error.Message == "" {
		t.Fatalf("error body lacks code, numeric_code or message (%d): %s", r.status, r.body)
	}
	return e.Error.Code
}

func (s *testSystem) do(t *testing.T, method, path, token string, body []byte) raw {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return raw{status: resp.StatusCode, header: resp.Header, body: b}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// allHistory reads a whole conversation forward in pages of limit.
func allHistory(t *testing.T, c *rest.Client, conv string, limit int) []rest.Message {
	t.Helper()
	var out []rest.Message
	var cursor uint64
	for {
		h, err := c.History(t.Context(), rest.HistoryRequest{ConvID: conv, Cursor: cursor, Limit: limit})
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Messages) > limit {
			t.Fatalf("page of %d exceeds limit %d", len(h.Messages), limit)
		}
		out = append(out, h.Messages...)
		if len(h.Messages) == 0 || h.NextCursor == 0 {
			return out
		}
		cursor = h.NextCursor
	}
}

// checkGapless fails unless msgs have seqs 1..len(msgs) in order.
func checkGapless(t *testing.T, msgs []rest.Message) {
	t.Helper()
	for i, m := range msgs {
		if m.Seq != uint64(i+1) {
			t.Fatalf("message %d has seq %d (want gapless from 1)", i, m.Seq)
		}
	}
}

func userMessages(msgs []rest.Message) []rest.Message {
	var out []rest.Message
	for _, m := range msgs {
		if m.Kind != "system" {
			out = append(out, m)
		}
	}
	return out
}

func TestAPIWalkthrough(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	ana, anaS := s.User(t, "acme", "ana")
	bo, boS := s.User(t, "acme", "bo")
	cy, cyS := s.User(t, "acme", "cy")

	me, dev, err := ana.Me(ctx)
	if err != nil || me.ID != anaS.User.ID || dev != anaS.Device.ID {
		t.Fatalf("me: %+v %q %v", me, dev, err)
	}

	g, err := ana.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "launch", MemberUsernames: []string{"bo"}})
	if err != nil {
		t.Fatal(err)
	}
	if g.Type != "group" || g.Title != "launch" || len(g.Members) != 2 {
		t.Fatalf("group %+v", g)
	}
	const n = 25
	acks := make([]*rest.SendResult, n)
	for i := range n {
		sender := ana
		if i%2 == 1 {
			sender = bo
		}
		if acks[i], err = sender.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: fmt.Sprintf("hello %d", i)}); err != nil {
			t.Fatal(err)
		}
		if i > 0 && acks[i].Seq != acks[i-1].Seq+1 {
			t.Fatalf("ack seq %d after %d", acks[i].Seq, acks[i-1].Seq)
		}
	}

	// A retry with the same client_msg_id returns the same answer.
	first, err := ana.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: "retry-me-1", Body: "once"})
	if err != nil {
		t.Fatal(err)
	}
	again, err := ana.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: "retry-me-1", Body: "once"})
	if err != nil {
		t.Fatal(err)
	}
	if again.MsgID != first.MsgID || again.Seq != first.Seq || again.TS != first.TS || !again.Duplicate || first.Duplicate {
		t.Fatalf("retry answered %+v, first %+v", again, first)
	}

	// Read-your-writes, forward paging with a cursor.
	all := allHistory(t, bo, g.ID, 7)
	checkGapless(t, all)
	um := userMessages(all)
	if len(um) != n+1 {
		t.Fatalf("%d user messages, want %d", len(um), n+1)
	}
	for i, m := range um[:n] {
		if m.Body != fmt.Sprintf("hello %d", i) || m.MsgID != acks[i].MsgID || m.Seq != acks[i].Seq || m.TS != acks[i].TS {
			t.Fatalf("message %d: %+v, ack %+v", i, m, acks[i])
		}
	}
	if um[1].SenderUserID != boS.User.ID || um[0].SenderUserID != anaS.User.ID || um[0].SenderDeviceID != anaS.Device.ID {
		t.Fatalf("senders: %+v %+v", um[0], um[1])
	}

	// Backward paging from the end returns the same messages, pages ascending.
	var back []rest.Message
	var cursor uint64
	for {
		h, err := bo.History(ctx, rest.HistoryRequest{ConvID: g.ID, Cursor: cursor, Limit: 10, Backward: true})
		if err != nil {
			t.Fatal(err)
		}
		for i := 1; i < len(h.Messages); i++ {
			if h.Messages[i].Seq <= h.Messages[i-1].Seq {
				t.Fatalf("backward page not ascending: %d then %d", h.Messages[i-1].Seq, h.Messages[i].Seq)
			}
		}
		back = append(h.Messages, back...)
		if len(h.Messages) == 0 || h.NextCursor == 0 {
			break
		}
		cursor = h.NextCursor
	}
	if len(back) != len(all) {
		t.Fatalf("backward read %d messages, forward %d", len(back), len(all))
	}
	for i := range back {
		if back[i].MsgID != all[i].MsgID {
			t.Fatalf("backward/forward differ at %d", i)
		}
	}
	// A page from the middle, forward.
	h, err := bo.History(ctx, rest.HistoryRequest{ConvID: g.ID, Cursor: 5, Limit: 3})
	if err != nil || len(h.Messages) != 3 || h.Messages[0].Seq != 6 || h.Messages[2].Seq != 8 {
		t.Fatalf("middle page: %+v %v", h, err)
	}

	// A stranger (same workspace, not a member) is refused everywhere.
	if _, err := cy.History(ctx, rest.HistoryRequest{ConvID: g.ID}); rest.Code(err) != syncpb.Code_CODE_NOT_MEMBER {
		t.Fatalf("stranger history: %v", err)
	}
	if _, err := cy.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: "let me in"}); rest.Code(err) != syncpb.Code_CODE_NOT_MEMBER {
		t.Fatalf("stranger send: %v", err)
	}
	if _, err := cy.Conversation(ctx, g.ID); rest.Code(err) != syncpb.Code_CODE_NOT_MEMBER {
		t.Fatalf("stranger get: %v", err)
	}
	if err := cy.Receipt(ctx, g.ID, 1, "read"); rest.Code(err) != syncpb.Code_CODE_NOT_MEMBER {
		t.Fatalf("stranger receipt: %v", err)
	}

	// Membership: add, promote, kick, leave, each leaving a system message.
	before := len(all)
	if _, err := ana.AddMembers(ctx, g.ID, nil, []string{"cy"}); err != nil {
		t.Fatal(err)
	}
	if _, err := cy.History(ctx, rest.HistoryRequest{ConvID: g.ID}); err != nil {
		t.Fatalf("new member reads history: %v", err)
	}
	if err := ana.SetRole(ctx, g.ID, boS.User.ID, "admin"); err != nil {
		t.Fatal(err)
	}
	if err := cy.RemoveMember(ctx, g.ID, boS.User.ID); rest.Code(err) != syncpb.Code_CODE_FORBIDDEN {
		t.Fatalf("member kicking an admin: %v", err)
	}
	if err := bo.RemoveMember(ctx, g.ID, cyS.User.ID); err != nil {
		t.Fatalf("admin kicks member: %v", err)
	}
	if _, err := cy.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: "still here?"}); rest.Code(err) != syncpb.Code_CODE_NOT_MEMBER {
		t.Fatalf("kicked member sends: %v", err)
	}
	if err := bo.RemoveMember(ctx, g.ID, boS.User.ID); err != nil {
		t.Fatalf("leave: %v", err)
	}
	after := allHistory(t, ana, g.ID, 100)
	checkGapless(t, after)
	var sys int
	for _, m := range after[before:] {
		if m.Kind == "system" {
			sys++
		}
	}
	if sys < 4 {
		t.Fatalf("%d system messages for add, role, kick, leave: %+v", sys, after[before:])
	}
	gc, err := ana.Conversation(ctx, g.ID)
	if err != nil || len(gc.Members) != 1 || gc.Members[0].UserID != anaS.User.ID || gc.Members[0].Role != "owner" {
		t.Fatalf("members at the end: %+v %v", gc, err)
	}

	// A 1:1 conversation is unique, whoever opens it.
	d1, err := ana.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"bo"}})
	if err != nil {
		t.Fatal(err)
	}
	d2, err := ana.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	d3, err := bo.CreateConversation(ctx, rest.NewConversation{Type: "direct", MemberUsernames: []string{"ana"}})
	if err != nil {
		t.Fatal(err)
	}
	if d1.ID != d2.ID || d1.ID != d3.ID || d1.Type != "direct" {
		t.Fatalf("direct conversations %s %s %s", d1.ID, d2.ID, d3.ID)
	}

	// Receipts are validated and stored per device.
	dm, err := ana.Send(ctx, rest.SendRequest{ConvID: d1.ID, Body: "psst"})
	if err != nil {
		t.Fatal(err)
	}
	if err := bo.Receipt(ctx, d1.ID, dm.Seq, "delivered"); err != nil {
		t.Fatal(err)
	}
	if err := bo.Receipt(ctx, d1.ID, dm.Seq, "read"); err != nil {
		t.Fatal(err)
	}
	if err := bo.Receipt(ctx, d1.ID, dm.Seq, "seen"); rest.Code(err) != syncpb.Code_CODE_INVALID_ARGUMENT {
		t.Fatalf("bad receipt type: %v", err)
	}
	if err := bo.Receipt(ctx, d1.ID, dm.Seq+100, "read"); rest.Code(err) != syncpb.Code_CODE_INVALID_ARGUMENT {
		t.Fatalf("receipt beyond the last message: %v", err)
	}
	dv, err := bo.Conversation(ctx, d1.ID)
	if err != nil || dv.ReadSeq != dm.Seq {
		t.Fatalf("bo's read position: %+v %v", dv, err)
	}

	// The conversation list holds both, for both.
	list, err := ana.Conversations(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ana's conversations: %d %v", len(list), err)
	}
	list, err = cy.Conversations(ctx)
	if err != nil || len(list) != 0 {
		t.Fatalf("cy's conversations after the kick: %d %v", len(list), err)
	}
}

func TestAPIErrors(t *testing.T) {
	s := startTestSystem(t, "", nil)
	_, anaS := s.User(t, "acme", "ana")
	_, boS := s.User(t, "acme", "bo")
	tok := anaS.AccessToken
	var conv struct {
		Conversation rest.Conversation `json:"conversation"`
	}
	r := s.do(t, "POST", "/v1/conversations", tok, mustJSON(t, map[string]any{"type": "group", "title": "t"}))
	if r.status != 201 || json.Unmarshal(r.body, &conv) != nil || conv.Conversation.ID == "" {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	gid := conv.Conversation.ID

	// Tokens that expired: signed with the system's own key 31 days ago
	// (refresh tokens live 30 days).
	keys, err := auth.ReadKeyFile(filepath.Join(s.dir, "edge", "token.keys"))
	if err != nil {
		t.Fatal(err)
	}
	past, err := auth.New(auth.Config{Keys: keys, Now: func() time.Time { return time.Now().Add(-31 * 24 * time.Hour) }})
	if err != nil {
		t.Fatal(err)
	}
	old, err := past.IssuePair(auth.Identity{WorkspaceID: anaS.User.WorkspaceID, UserID: anaS.User.ID, DeviceID: anaS.Device.ID}, testFamily)
	if err != nil {
		t.Fatal(err)
	}
	// A token signed by a key the system does not know.
	k, err := auth.GenerateKey("stranger")
	if err != nil {
		t.Fatal(err)
	}
	forger, err := auth.New(auth.Config{Keys: []auth.Key{k}})
	if err != nil {
		t.Fatal(err)
	}
	forged, err := forger.IssuePair(auth.Identity{WorkspaceID: anaS.User.WorkspaceID, UserID: anaS.User.ID, DeviceID: anaS.Device.ID}, testFamily)
	if err != nil {
		t.Fatal(err)
	}

	send := func(conv, body string) []byte {
		return mustJSON(t, map[string]any{"conv_id": conv, "client_msg_id": "x1", "body": body})
	}
	for _, tc := range []struct {
		name, method, path, token string
		body                      []byte
		status                    int
		code                      string
	}{
		{"no token", "GET", "/v1/conversations", "", nil, 401, "unauthenticated"},
		{"garbage token", "GET", "/v1/conversations", "garbage", nil, 401, "unauthenticated"},
		{"forged token", "GET", "/v1/conversations", forged.Access, nil, 401, "unauthenticated"},
		{"expired token", "GET", "/v1/conversations", old.Access, nil, 401, "token_expired"},
		{"refresh token as access", "GET", "/v1/conversations", anaS.RefreshToken, nil, 401, "unauthenticated"},
		{"expired refresh", "POST", "/v1/sessions/refresh", "", mustJSON(t, map[string]any{"refresh_token": old.Refresh}), 401, "token_expired"},
		{"wrong password", "POST", "/v1/sessions", "", mustJSON(t, map[string]any{"workspace": "acme", "username": "ana", "password": "nope nope nope"}), 401, "unauthenticated"},
		{"stranger sends", "POST", "/v1/messages", boS.AccessToken, send(gid, "hi"), 403, "not_member"},
		{"stranger reads", "GET", "/v1/conversations/" + gid + "/history", boS.AccessToken, nil, 403, "not_member"},
		{"unknown conversation", "GET", "/v1/conversations/c_aaaaaaaaaaaaaaaaaaaaaaaaaa/history", tok, nil, 404, "not_found"},
		{"send to unknown conversation", "POST", "/v1/messages", tok, send("c_aaaaaaaaaaaaaaaaaaaaaaaaaa", "hi"), 404, "not_found"},
		{"malformed JSON", "POST", "/v1/messages", tok, []byte(`{"conv_id":`), 400, "malformed"},
		{"wrong JSON type", "POST", "/v1/messages", tok, []byte(`{"conv_id":42}`), 400, "malformed"},
		{"two JSON values", "POST", "/v1/messages", tok, []byte(`{} {}`), 400, "malformed"},
		{"missing client_msg_id", "POST", "/v1/messages", tok, mustJSON(t, map[string]any{"conv_id": gid, "body": "x"}), 400, "invalid_argument"},
		{"bad conv id", "POST", "/v1/messages", tok, send("../../etc/passwd", "hi"), 400, "invalid_argument"},
		{"bad history limit", "GET", "/v1/conversations/" + gid + "/history?limit=-1", tok, nil, 400, "invalid_argument"},
		{"bad cursor", "GET", "/v1/conversations/" + gid + "/history?cursor=abc", tok, nil, 400, "invalid_argument"},
		{"bad dir", "GET", "/v1/conversations/" + gid + "/history?dir=sideways", tok, nil, 400, "invalid_argument"},
		{"oversized body", "POST", "/v1/messages", tok, send(gid, strings.Repeat("x", 300<<10)), 413, "too_large"},
		{"oversized message", "POST", "/v1/messages", tok, send(gid, strings.Repeat("x", 200<<10)), 413, "too_large"},
		{"username taken", "POST", "/v1/accounts", "", mustJSON(t, map[string]any{"workspace": "acme", "username": "ana", "password": testPassword}), 409, "conflict"},
		{"unknown route", "GET", "/v1/nope", tok, nil, 404, "not_found"},
		{"wrong method", "PUT", "/v1/messages", tok, nil, 405, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.do(t, tc.method, tc.path, tc.token, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			if got := r.code(t); tc.code != "" && got != tc.code {
				t.Fatalf("code %q, want %q", got, tc.code)
			}
		})
	}
	// The Go client refreshes an expired access token by itself.
	c := rest.New(s.base, rest.WithTokens(old.Access, anaS.RefreshToken))
	if _, err := c.Conversations(t.Context()); err != nil {
		t.Fatalf("client with an expired access token: %v", err)
	}
	if a, _ := c.Tokens(); a == old.Access {
		t.Fatal("access token was not refreshed")
	}
	// Nothing above hurt the server.
	if r := s.do(t, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
}

func TestAPIRateLimit(t *testing.T) {
	s := startTestSystem(t, "", func(c *system.Config) { c.Edge.HTTP.UserRate, c.Edge.HTTP.UserBurst = 0.5, 3 })
	_, anaS := s.User(t, "acme", "ana")
	var limited raw
	for i := range 10 {
		r := s.do(t, "GET", "/v1/conversations", anaS.AccessToken, nil)
		if r.status == 429 {
			limited = r
			break
		}
		if r.status != 200 || i >= 3 {
			t.Fatalf("call %d: %d %s", i, r.status, r.body)
		}
	}
	if limited.status != 429 || limited.code(t) != "rate_limited" {
		t.Fatalf("never limited: %d %s", limited.status, limited.body)
	}
	if secs, err := strconv.Atoi(limited.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", limited.header.Get("Retry-After"))
	}
	// Another user is not affected by ana's flood.
	_, boS := s.User(t, "acme", "bo")
	if r := s.do(t, "GET", "/v1/conversations", boS.AccessToken, nil); r.status != 200 {
		t.Fatalf("bo: %d %s", r.status, r.body)
	}
}

// Concurrent senders, each send racing a duplicate retry of itself: every
// message is stored once, seqs are gapless, and both answers agree.
func TestAPIConcurrentSendsWithRetries(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	const senders, each = 8, 40
	owner, _ := s.User(t, "acme", "owner")
	clients := make([]*rest.Client, senders)
	ids := make([]string, senders)
	for i := range senders {
		var sess *rest.Session
		clients[i], sess = s.User(t, "acme", fmt.Sprintf("s%d", i))
		ids[i] = sess.User.ID
	}
	g, err := owner.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "busy", MemberIDs: ids})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	acked := map[string]*rest.SendResult{}
	var wg sync.WaitGroup
	errs := make(chan error, senders*each)
	for i, c := range clients {
		wg.Go(func() {
			for j := range each {
				id := fmt.Sprintf("s%d-m%d", i, j)
				req := rest.SendRequest{ConvID: g.ID, ClientMsgID: id, Body: id}
				var a, b *rest.SendResult
				var ea, eb error
				var pair sync.WaitGroup
				pair.Go(func() { a, ea = c.Send(ctx, req) })
				pair.Go(func() { b, eb = c.Send(ctx, req) })
				pair.Wait()
				if ea != nil || eb != nil {
					errs <- fmt.Errorf("%s: %v / %v", id, ea, eb)
					return
				}
				if a.MsgID != b.MsgID || a.Seq != b.Seq || a.TS != b.TS || a.Duplicate == b.Duplicate {
					errs <- fmt.Errorf("%s: answers differ: %+v / %+v", id, a, b)
					return
				}
				mu.Lock()
				acked[id] = a
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	all := allHistory(t, owner, g.ID, 64)
	checkGapless(t, all)
	seen := map[string]bool{}
	for _, m := range userMessages(all) {
		if seen[m.ClientMsgID] {
			t.Fatalf("%s stored twice", m.ClientMsgID)
		}
		seen[m.ClientMsgID] = true
		a := acked[m.ClientMsgID]
		if a == nil || a.Seq != m.Seq || a.MsgID != m.MsgID || m.Body != m.ClientMsgID {
			t.Fatalf("stored %+v, acked %+v", m, a)
		}
	}
	if len(seen) != senders*each {
		t.Fatalf("%d messages stored, %d acked", len(seen), senders*each)
	}
}

// A restart on the same data directory keeps accounts, tokens, messages
// and dedupe memory, and seqs continue.
func TestAPIRestartKeepsEverything(t *testing.T) {
	dir := t.TempDir()
	s := startTestSystem(t, dir, nil)
	ctx := t.Context()
	ana, anaS := s.User(t, "acme", "ana")
	g, err := ana.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "kept"})
	if err != nil {
		t.Fatal(err)
	}
	var last *rest.SendResult
	for i := range 20 {
		if last, err = ana.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: fmt.Sprintf("k%d", i), Body: fmt.Sprintf("kept %d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	before := allHistory(t, ana, g.ID, 50)
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}

	s = startTestSystem(t, dir, nil)
	ana = rest.New(s.base, rest.WithTokens(anaS.AccessToken, anaS.RefreshToken))
	after := allHistory(t, ana, g.ID, 50)
	if len(after) != len(before) {
		t.Fatalf("%d messages after restart, %d before", len(after), len(before))
	}
	for i := range after {
		if !reflect.DeepEqual(after[i], before[i]) {
			t.Fatalf("message %d changed: %+v -> %+v", i, before[i], after[i])
		}
	}
	// The dedupe memory survived: a late retry of the last send.
	dup, err := ana.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: "k19", Body: "kept 19"})
	if err != nil || dup.MsgID != last.MsgID || dup.Seq != last.Seq || !dup.Duplicate {
		t.Fatalf("retry after restart: %+v %v (first %+v)", dup, err, last)
	}
	next, err := ana.Send(ctx, rest.SendRequest{ConvID: g.ID, Body: "after restart"})
	if err != nil || next.Seq != last.Seq+1 {
		t.Fatalf("next send: %+v %v (last seq %d)", next, err, last.Seq)
	}
	// Logging in again works too (accounts are durable).
	if _, err := rest.New(s.base).Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ana", Password: testPassword}); err != nil {
		t.Fatal(err)
	}
}

// Hostile inputs are answered with 4xx JSON errors, never a 5xx, a hang or
// a crash.
func TestAPIHostileInputs(t *testing.T) {
	s := startTestSystem(t, "", nil)
	_, anaS := s.User(t, "acme", "ana")
	tok := anaS.AccessToken
	junk := [][]byte{
		nil,
		{},
		[]byte("null"),
		[]byte("[]"),
		[]byte(`"string"`),
		[]byte("\xff\xfe\x00garbage"),
		[]byte(`{"conv_id":"` + strings.Repeat("c", 10_000) + `","client_msg_id":"x","body":"y"}`),
		[]byte(`{"conv_id":"c_\u0000","client_msg_id":"\u0000","body":"\ud800"}`),
		[]byte(`{"type":"group","member_ids":[` + strings.Repeat(`"u_x",`, 5000) + `"u_x"]}`),
		[]byte(`{"seq":-1,"type":"read","conv_id":"c_x"}`),
		[]byte(`{"seq":1e400}`),
		bytes.Repeat([]byte("["), 100_000),
	}
	paths := []struct{ method, path string }{
		{"POST", "/v1/accounts"},
		{"POST", "/v1/sessions"},
		{"POST", "/v1/sessions/refresh"},
		{"POST", "/v1/conversations"},
		{"POST", "/v1/messages"},
		{"POST", "/v1/receipts"},
		{"POST", "/v1/devices"},
		{"POST", "/v1/conversations/c_x/members"},
		{"PATCH", "/v1/conversations/c_x/members/u_x"},
	}
	for _, p := range paths {
		for i, b := range junk {
			r := s.do(t, p.method, p.path, tok, b)
			if r.status < 400 || r.status >= 500 {
				t.Errorf("%s %s junk %d: %d %s", p.method, p.path, i, r.status, r.body)
				continue
			}
			r.code(t)
		}
	}
	for _, q := range []string{"limit=1000000000", "cursor=-5", "cursor=99999999999999999999999", "dir=", "limit=0", "limit=abc"} {
		r := s.do(t, "GET", "/v1/conversations/c_x/history?"+q, tok, nil)
		if r.status < 400 || r.status >= 500 {
			t.Errorf("history ?%s: %d %s", q, r.status, r.body)
		}
	}
	for _, p := range []string{"/v1/conversations/%00", "/v1/conversations/" + strings.Repeat("a", 4000), "/v1/conversations/c_x/../../healthz"} {
		r := s.do(t, "GET", p, tok, nil)
		if r.status >= 500 {
			t.Errorf("GET %s: %d %s", p, r.status, r.body)
		}
	}
	if r := s.do(t, "GET", "/healthz", "", nil); r.status != 200 {
		t.Fatalf("healthz %d", r.status)
	}
	if r := s.do(t, "GET", "/readyz", "", nil); r.status != 200 {
		t.Fatalf("readyz %d %s", r.status, r.body)
	}
}

// A client_msg_id is its sender's: bo sending under the id ana used gets a
// message of his own (201, its own seq, stored), not ana's answer; each
// retry gets its sender's first answer (200, duplicate); and ana reusing
// her id for other content is 409 conflict, with nothing stored.
func TestAPISendIDsAreTheSenders(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	ana, anaS := s.User(t, "acme", "ana")
	bo, boS := s.User(t, "acme", "bo")
	g, err := ana.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "ids", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	send := func(tok string, body map[string]any) (raw, rest.SendResult) {
		t.Helper()
		body["conv_id"], body["client_msg_id"] = g.ID, "shared-1"
		r := s.do(t, "POST", "/v1/messages", tok, mustJSON(t, body))
		var ack rest.SendResult
		if r.status < 300 {
			if err := json.Unmarshal(r.body, &ack); err != nil {
				t.Fatalf("ack %s: %v", r.body, err)
			}
		}
		return r, ack
	}
	r, anaAck := send(anaS.AccessToken, map[string]any{"body": "from ana"})
	if r.status != http.StatusCreated {
		t.Fatalf("ana's send: %d %s", r.status, r.body)
	}
	r, boAck := send(boS.AccessToken, map[string]any{"body": "from bo"})
	if r.status != http.StatusCreated || boAck.Duplicate || boAck.Seq != anaAck.Seq+1 || boAck.MsgID == anaAck.MsgID {
		t.Fatalf("bo's send under ana's id: %d %s (ana's ack %+v): want a message of his own", r.status, r.body, anaAck)
	}
	for _, tc := range []struct {
		tok, body string
		want      rest.SendResult
	}{{anaS.AccessToken, "from ana", anaAck}, {boS.AccessToken, "from bo", boAck}} {
		r, again := send(tc.tok, map[string]any{"body": tc.body})
		if r.status != http.StatusOK || !again.Duplicate || again.Seq != tc.want.Seq || again.MsgID != tc.want.MsgID || again.TS != tc.want.TS {
			t.Fatalf("retry of %q: %d %s, want the first answer %+v", tc.body, r.status, r.body, tc.want)
		}
	}
	// Attachments are real uploads of the sender's (see attach_test.go).
	upID, err := ana.Upload(ctx, strings.NewReader("png"), 3, "x.png", "image/png", nil)
	if err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]map[string]any{
		"other body":         {"body": "from ana, edited"},
		"other content type": {"body": "from ana", "content_type": "text/markdown"},
		"binary body":        {"body_base64": "ZnJvbSBhbmE="}, // "from ana", as application/octet-stream
		"an attachment":      {"body": "from ana", "attachments": []map[string]any{{"id": upID}}},
	} {
		r, _ := send(anaS.AccessToken, body)
		if r.status != http.StatusConflict || r.code(t) != "conflict" || !strings.Contains(string(r.body), "client_msg_id") {
			t.Fatalf("ana reusing her id with %s: %d %s, want 409 conflict", name, r.status, r.body)
		}
	}
	// The Go client returns the 409 at once, as a CONFLICT error.
	if _, err := ana.Send(ctx, rest.SendRequest{ConvID: g.ID, ClientMsgID: "shared-1", Body: "yet another"}); rest.Code(err) != syncpb.Code_CODE_CONFLICT {
		t.Fatalf("rest client: %v, want CONFLICT", err)
	}
	msgs := userMessages(allHistory(t, bo, g.ID, 10))
	if len(msgs) != 2 || msgs[0].Body != "from ana" || msgs[0].SenderUserID != anaS.User.ID ||
		msgs[1].Body != "from bo" || msgs[1].SenderUserID != boS.User.ID || msgs[1].Seq != boAck.Seq || msgs[1].ClientMsgID != "shared-1" {
		t.Fatalf("stored: %+v", msgs)
	}
}
