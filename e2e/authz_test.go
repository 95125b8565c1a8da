package e2e_test

// The authorization matrix: every endpoint of the OpenAPI document and
// every frame type of the protocol schema, against every kind of bad token
// and every relation of the caller to a conversation, over HTTP and over a
// device session on every transport. The lists of endpoints and frame
// types come from the document and the schema, so a new one without a row
// fails the test.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// authzUser is one user of the fixture, logged in on one device.
type authzUser struct {
	name string
	rc   *rest.Client
	sess *rest.Session
}

func (u authzUser) id() string    { return u.sess.User.ID }
func (u authzUser) token() string { return u.sess.AccessToken }

// authzFixture is a system with a group conversation and a user of every
// relation to it: its owner, a member, a stranger of the same workspace,
// a kicked member, one who left, and an outsider of another workspace.
type authzFixture struct {
	s                                            *testSystem
	owner, member, stranger, kicked, left, other authzUser
	conv                                         string
	n                                            int    // users made so far (for fresh names)
	att                                          string // see attachment
	revoked                                      string // an access token of a revoked device of member
}

func newAuthzFixture(t *testing.T) *authzFixture {
	t.Helper()
	f := &authzFixture{s: startTestSystem(t, "", nil)}
	f.owner, f.member, f.stranger = f.newUser(t, "acme", "owner"), f.newUser(t, "acme", "member"), f.newUser(t, "acme", "stranger")
	f.kicked, f.left, f.other = f.newUser(t, "acme", "kicked"), f.newUser(t, "acme", "left"), f.newUser(t, "beta", "other")
	ctx := t.Context()
	c, err := f.owner.rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "team",
		MemberIDs: []string{f.member.id(), f.kicked.id(), f.left.id()}})
	if err != nil {
		t.Fatal(err)
	}
	f.conv = c.ID
	if _, err := f.owner.rc.Send(ctx, rest.SendRequest{ConvID: f.conv, ClientMsgID: "first", Body: "hello team"}); err != nil {
		t.Fatal(err)
	}
	if err := f.owner.rc.RemoveMember(ctx, f.conv, f.kicked.id()); err != nil {
		t.Fatal(err)
	}
	if err := f.left.rc.RemoveMember(ctx, f.conv, f.left.id()); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *authzFixture) newUser(t *testing.T, workspace, name string) authzUser {
	t.Helper()
	f.n++
	rc, sess := f.s.User(t, workspace, name)
	return authzUser{name: name, rc: rc, sess: sess}
}

// fresh is a new user of acme (a target for membership changes).
func (f *authzFixture) fresh(t *testing.T) authzUser {
	t.Helper()
	return f.newUser(t, "acme", fmt.Sprintf("fresh%d", f.n))
}

// badTokens are the tokens no request may pass with, and the code each
// gets: what an attacker holds, and what a device that lost its access
// holds.
func (f *authzFixture) badTokens(t *testing.T) []struct{ name, token, code string } {
	t.Helper()
	keys, err := auth.ReadKeyFile(filepath.Join(f.s.dir, "edge", "token.keys"))
	if err != nil {
		t.Fatal(err)
	}
	id := auth.Identity{WorkspaceID: f.member.sess.User.WorkspaceID, UserID: f.member.id(), DeviceID: f.member.sess.Device.ID}
	issue := func(keys []auth.Key, now time.Time) string {
		a, err := auth.New(auth.Config{Keys: keys, Argon2: auth.Argon2Params{Memory: 64, Time: 1},
			Now: func() time.Time { return now }})
		if err != nil {
			t.Fatal(err)
		}
		tok, _, err := a.Issue(auth.Access, id)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	otherKey, err := auth.GenerateKey(keys[0].ID) // the same key id, another secret
	if err != nil {
		t.Fatal(err)
	}
	if f.revoked == "" {
		_, doomed := f.s.Login(t, "acme", "member", "doomed")
		if err := f.member.rc.RevokeDevice(t.Context(), doomed.Device.ID); err != nil {
			t.Fatal(err)
		}
		f.revoked = doomed.AccessToken
	}
	return []struct{ name, token, code string }{
		{"no token", "", "unauthenticated"},
		{"garbage", "abc.def", "unauthenticated"},
		{"other key", issue([]auth.Key{otherKey}, time.Now()), "unauthenticated"},
		{"refresh token", f.member.sess.RefreshToken, "unauthenticated"},
		{"expired", issue(keys, time.Now().Add(-2*auth.DefaultAccessTTL)), "token_expired"},
		{"revoked", f.revoked, "revoked"},
	}
}

// The relations a caller can have to the fixture's conversation.
var relations = []string{"stranger", "other workspace", "kicked", "left", "member", "owner"}

func (f *authzFixture) as(relation string) authzUser {
	switch relation {
	case "stranger":
		return f.stranger
	case "other workspace":
		return f.other
	case "kicked":
		return f.kicked
	case "left":
		return f.left
	case "member":
		return f.member
	}
	return f.owner
}

// want is an expected answer: an HTTP status and, for errors, the code.
type want struct {
	status int
	code   string
}

var (
	notMember = want{403, "not_member"}
	forbidden = want{403, "forbidden"}
	notFound  = want{404, "not_found"}
)

// httpRow says how to call one operation of the OpenAPI document.
type httpRow struct {
	// public: no bearer token (token conditions do not apply).
	public bool
	// call makes the request as u with token (u's own unless a test
	// swaps it); path ids come from the fixture.
	call func(t *testing.T, f *authzFixture, u authzUser, token string) raw
	// byRelation is what each relation gets, for operations on the
	// fixture's conversation (nil: the operation is not about one).
	byRelation map[string]want
	// hides: every relation is answered alike (no oracle), and those
	// outside the conversation never see its messages in the answer.
	hides bool
}

// outsiders get the same answer everywhere: the conversation is not theirs.
func outsiders(member, owner want) map[string]want {
	return map[string]want{"stranger": notMember, "other workspace": notFound, "kicked": notMember, "left": notMember,
		"member": member, "owner": owner}
}

// hidden: outsiders are told the thing does not exist.
func hidden(member want) map[string]want {
	return map[string]want{"stranger": notFound, "other workspace": notFound, "kicked": notFound, "left": notFound,
		"member": member, "owner": member}
}

// attachment is an image the owner uploaded and sent in the fixture's
// conversation, made on first use.
func (f *authzFixture) attachment(t *testing.T) string {
	t.Helper()
	if f.att != "" {
		return f.att
	}
	img := pngBytes(t)
	id, err := f.owner.rc.Upload(t.Context(), bytes.NewReader(img), int64(len(img)), "pic.png", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.owner.rc.Send(t.Context(), rest.SendRequest{ConvID: f.conv, Body: "pic", Attachments: []rest.AttachmentRef{{ID: id}}}); err != nil {
		t.Fatal(err)
	}
	f.att = id
	return id
}

// tus is one raw tus request.
func (s *testSystem) tus(t *testing.T, method, path, token string, h map[string]string, body []byte) raw {
	t.Helper()
	h["Tus-Resumable"] = "1.0.0"
	return s.request(t, method, path, token, h, body)
}

// request is one raw request with headers h.
func (s *testSystem) request(t *testing.T, method, path, token string, h map[string]string, body []byte) raw {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), method, s.base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range h {
		req.Header.Set(k, v)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return raw{status: resp.StatusCode, header: resp.Header, body: b}
}

func jsonBody(t *testing.T, v any) []byte { t.Helper(); return mustJSON(t, v) }

var httpRows = map[string]httpRow{
	"GET /healthz":         {public: true, call: get("/healthz")},
	"GET /livez":           {public: true, call: get("/livez")},
	"GET /readyz":          {public: true, call: get("/readyz")},
	"GET /v1/openapi.json": {public: true, call: get("/v1/openapi.json")},
	"POST /v1/accounts":    {public: true, call: post("/v1/accounts", func(*authzFixture) any { return map[string]string{} })},
	"POST /v1/sessions":    {public: true, call: post("/v1/sessions", func(*authzFixture) any { return map[string]string{} })},
	"POST /v1/sessions/refresh": {public: true, call: post("/v1/sessions/refresh", func(*authzFixture) any {
		return map[string]string{"refresh_token": "x"}
	})},
	"GET /v1/me": {call: get("/v1/me")},
	// The workspace's users; none of another workspace's (TestLookupUsers in edge/httpapi).
	"GET /v1/users": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/users?ids="+u.id(), token, nil)
	}},
	"POST /v1/me/password": {call: post("/v1/me/password", func(*authzFixture) any {
		return map[string]string{"current_password": "not the password", "new_password": "a new password"}
	})},
	"POST /v1/devices": {call: post("/v1/devices", func(*authzFixture) any { return map[string]string{"name": "tablet"} })},
	"GET /v1/devices":  {call: get("/v1/devices")},
	"DELETE /v1/devices/{id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "DELETE", "/v1/devices/d_doesnotexist", token, nil)
	}},
	"PUT /v1/devices/{id}/push": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "PUT", "/v1/devices/d_doesnotexist/push", token, jsonBody(t, map[string]any{"gateway": map[string]string{"gateway": "gw", "push_key": "k"}}))
	}},
	"DELETE /v1/devices/{id}/push": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "DELETE", "/v1/devices/d_doesnotexist/push", token, nil)
	}},
	"GET /.well-known/parley/vapid-public-key": {public: true, call: get("/.well-known/parley/vapid-public-key")},
	"PUT /v1/conversations/{id}/notify": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "PUT", "/v1/conversations/"+f.conv+"/notify", token, jsonBody(t, map[string]string{"level": "mentions"}))
	}, byRelation: outsiders(want{204, ""}, want{204, ""})},
	"POST /v1/conversations": {call: post("/v1/conversations", func(*authzFixture) any { return map[string]string{"type": "group"} })},
	"GET /v1/conversations":  {call: get("/v1/conversations")},
	"GET /v1/unread":         {call: get("/v1/unread")},
	"GET /v1/workspace":      {call: get("/v1/workspace")},
	"PATCH /v1/workspace": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "PATCH", "/v1/workspace", token, jsonBody(t, map[string]bool{"presence_off": false}))
	}},
	// The fixture's conversation owner owns the workspace too: only it
	// removes users; another workspace's user does not find the target.
	"DELETE /v1/workspace/users/{user_id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "DELETE", "/v1/workspace/users/"+f.fresh(t).id(), token, nil)
	}, byRelation: map[string]want{"stranger": forbidden, "other workspace": notFound, "kicked": forbidden, "left": forbidden,
		"member": forbidden, "owner": {200, ""}}},
	// Search answers everyone alike: a conversation not the caller's finds
	// nothing, as one that does not exist (e2e/search_test.go).
	"GET /v1/search": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/search?q=hello&conv_id="+f.conv, token, nil)
	}, hides: true, byRelation: map[string]want{"stranger": {200, ""}, "other workspace": {200, ""}, "kicked": {200, ""}, "left": {200, ""},
		"member": {200, ""}, "owner": {200, ""}}},
	"GET /v1/conversations/{id}": {call: get("/v1/conversations/{conv}"), byRelation: outsiders(want{200, ""}, want{200, ""})},
	"GET /v1/conversations/{id}/history": {call: get("/v1/conversations/{conv}/history"),
		byRelation: outsiders(want{200, ""}, want{200, ""})},
	"GET /v1/conversations/{id}/receipts": {call: get("/v1/conversations/{conv}/receipts"),
		byRelation: outsiders(want{200, ""}, want{200, ""})},
	"POST /v1/messages": {call: post("/v1/messages", func(f *authzFixture) any {
		f.n++
		return map[string]string{"conv_id": f.conv, "client_msg_id": fmt.Sprint("authz-", f.n), "body": "hi"}
	}), byRelation: outsiders(want{201, ""}, want{201, ""})},
	"POST /v1/receipts": {call: post("/v1/receipts", func(f *authzFixture) any {
		return map[string]any{"conv_id": f.conv, "seq": 1, "type": "read"}
	}), byRelation: outsiders(want{200, ""}, want{200, ""})},
	"POST /v1/conversations/{id}/members": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		target := f.fresh(t)
		return f.s.do(t, "POST", "/v1/conversations/"+f.conv+"/members", token, jsonBody(t, map[string][]string{"user_ids": {target.id()}}))
	}, byRelation: outsiders(forbidden, want{200, ""})},
	"DELETE /v1/conversations/{id}/members/{user_id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		target := f.fresh(t)
		if _, err := f.owner.rc.AddMembers(t.Context(), f.conv, []string{target.id()}, nil); err != nil {
			t.Fatal(err)
		}
		return f.s.do(t, "DELETE", "/v1/conversations/"+f.conv+"/members/"+target.id(), token, nil)
	}, byRelation: outsiders(forbidden, want{200, ""})},
	"POST /v1/uploads": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.tus(t, "POST", "/v1/uploads", token, map[string]string{"Upload-Length": "4"}, nil)
	}},
	// Another user's upload is not found, as a missing one is.
	"PATCH /v1/uploads/{id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.tus(t, "PATCH", "/v1/uploads/"+f.attachment(t), token,
			map[string]string{"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}, []byte("x"))
	}, byRelation: map[string]want{"stranger": notFound, "other workspace": notFound, "kicked": notFound, "left": notFound,
		"member": notFound}},
	"GET /v1/uploads/{id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/uploads/"+f.attachment(t), token, nil)
	}, byRelation: map[string]want{"stranger": notFound, "other workspace": notFound, "kicked": notFound, "left": notFound,
		"member": notFound, "owner": {200, ""}}},
	// Only members see an attachment (the signed URL is followed); to
	// everyone else it does not exist.
	"GET /v1/attachments/{id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/attachments/"+f.attachment(t), token, nil)
	}, byRelation: hidden(want{200, ""})},
	"GET /v1/attachments/{id}/thumb": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/attachments/"+f.attachment(t)+"/thumb", token, nil)
	}, byRelation: hidden(want{200, ""})},
	// Signed URLs need no token; an unsigned one is refused.
	"GET /v1/blobs/{kind}/{id}": {public: true, call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "GET", "/v1/blobs/uploads/"+f.attachment(t)+"?exp=9999999999&sig=AAAA", token, nil)
	}},
	"PATCH /v1/conversations/{id}/members/{user_id}": {call: func(t *testing.T, f *authzFixture, u authzUser, token string) raw {
		return f.s.do(t, "PATCH", "/v1/conversations/"+f.conv+"/members/"+f.member.id(), token, jsonBody(t, map[string]string{"role": "member"}))
	}, byRelation: outsiders(forbidden, want{200, ""})},
}

func get(path string) func(*testing.T, *authzFixture, authzUser, string) raw {
	return func(t *testing.T, f *authzFixture, _ authzUser, token string) raw {
		return f.s.do(t, "GET", strings.ReplaceAll(path, "{conv}", f.conv), token, nil)
	}
}

func post(path string, body func(*authzFixture) any) func(*testing.T, *authzFixture, authzUser, string) raw {
	return func(t *testing.T, f *authzFixture, _ authzUser, token string) raw {
		return f.s.do(t, "POST", path, token, jsonBody(t, body(f)))
	}
}

// openAPIOperations lists "METHOD path" for every operation of the
// served OpenAPI document, with whether it names a bearer security.
func openAPIOperations(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "edge", "httpapi", "openapi.json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths map[string]map[string]struct {
			Security []map[string][]string `json:"security"`
		} `json:"paths"`
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	ops := map[string]bool{}
	for path, methods := range doc.Paths {
		for m, op := range methods {
			switch m {
			case "get", "post", "put", "patch", "delete":
				bearer := slices.ContainsFunc(op.Security, func(s map[string][]string) bool { _, ok := s["bearer"]; return ok })
				ops[strings.ToUpper(m)+" "+path] = bearer
			}
		}
	}
	return ops
}

func TestAuthorizationMatrixHTTP(t *testing.T) {
	ops := openAPIOperations(t)
	for _, op := range sortedKeys(ops) {
		row, ok := httpRows[op]
		if !ok {
			t.Errorf("%s is in openapi.json but has no row in httpRows: say how to call it and who may", op)
			continue
		}
		if row.public == ops[op] {
			t.Errorf("%s: openapi.json says bearer=%v, the row says public=%v", op, ops[op], row.public)
		}
	}
	for op := range httpRows {
		if _, ok := ops[op]; !ok {
			t.Errorf("httpRows has %s, which openapi.json does not", op)
		}
	}
	if t.Failed() {
		return
	}
	f := newAuthzFixture(t)
	for _, op := range sortedKeys(ops) {
		row := httpRows[op]
		t.Run(op, func(t *testing.T) {
			if !row.public {
				for _, bt := range f.badTokens(t) {
					r := row.call(t, f, f.member, bt.token)
					if r.status != 401 || r.code(t) != bt.code {
						t.Errorf("%s: %d %s, want 401 %s", bt.name, r.status, r.body, bt.code)
					}
					if r.header.Get("WWW-Authenticate") == "" {
						t.Errorf("%s: 401 without WWW-Authenticate", bt.name)
					}
				}
			}
			for _, rel := range relations {
				w, ok := row.byRelation[rel]
				if !ok {
					continue
				}
				u := f.as(rel)
				r := row.call(t, f, u, u.token())
				if r.status != w.status || (w.code != "" && r.code(t) != w.code) {
					t.Errorf("%s: %d %s, want %d %s", rel, r.status, r.body, w.status, w.code)
				}
				if (w.status >= 400 || row.hides && rel != "member" && rel != "owner") && strings.Contains(string(r.body), "hello team") {
					t.Errorf("%s: the refusal leaks the conversation's messages", rel)
				}
			}
		})
	}
}

// sortedKeys is m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// frameBodies lists the body fields of syncpb.Frame (the protocol's frame
// types) by name.
func frameBodies() []protoreflect.Name {
	oneof := (&syncpb.Frame{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
	var out []protoreflect.Name
	for i := 0; i < oneof.Fields().Len(); i++ {
		out = append(out, oneof.Fields().Get(i).Name())
	}
	return out
}

// rawSession is a device session driven frame by frame.
type rawSession struct {
	t    *testing.T
	tr   client.Transport
	next uint64
}

// dialRaw opens transport ("ws", "quic", "wt") to the fixture's edge and
// says hello with token; it returns the session and the hello's answer.
func dialRaw(t *testing.T, f *authzFixture, transport, token string) (*rawSession, *syncpb.Frame) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	tr, err := f.s.Dialer(transport)(ctx)
	if err != nil {
		t.Fatalf("dial %s: %v", transport, err)
	}
	t.Cleanup(func() { _ = tr.Close(nil) })
	r := &rawSession{t: t, tr: tr, next: 1}
	if err := tr.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(token, "")}}); err != nil {
		t.Fatalf("hello over %s: %v", transport, err)
	}
	return r, r.answer(1)
}

// answer reads frames until the one with id (pushes are skipped).
func (r *rawSession) answer(id uint64) *syncpb.Frame {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	for {
		f, err := r.tr.ReadFrame(ctx)
		if err != nil {
			r.t.Fatalf("waiting for the answer to frame %d: %v", id, err)
		}
		if f.Id == id {
			return f
		}
	}
}

// do sends f as the next request and returns its answer.
func (r *rawSession) do(f *syncpb.Frame) *syncpb.Frame {
	r.t.Helper()
	r.next++
	f.Id = r.next
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	if err := r.tr.WriteFrame(ctx, f); err != nil {
		r.t.Fatalf("write %T: %v", f.Body, err)
	}
	return r.answer(f.Id)
}

// ends waits for the edge to close the session.
func (r *rawSession) ends() {
	r.t.Helper()
	ctx, cancel := context.WithTimeout(r.t.Context(), 20*time.Second)
	defer cancel()
	for {
		if _, err := r.tr.ReadFrame(ctx); err != nil {
			if ctx.Err() != nil {
				r.t.Fatal("the edge did not close the session within 20s")
			}
			return
		}
	}
}

// sessionRow says what a client sending one frame type gets.
type sessionRow struct {
	// server: a frame only the edge sends; a client sending it is cut
	// with MALFORMED.
	server bool
	// build makes the frame u sends (requests are given an id).
	build func(f *authzFixture, u authzUser) *syncpb.Frame
	// check judges the answer u got given its relation; nil for frames
	// that get none (typing, pong: see the test).
	check func(t *testing.T, f *authzFixture, rel string, answer *syncpb.Frame)
}

// wantCode checks that answer is an Error with code, or (code 0) the
// answer type ok names.
func wantCode(t *testing.T, answer *syncpb.Frame, code syncpb.Code, ok func(*syncpb.Frame) bool) {
	t.Helper()
	if code != 0 {
		if e := answer.GetError(); e == nil || e.Code != code {
			t.Errorf("answer %v, want error %v", answer, code)
		}
		return
	}
	if !ok(answer) {
		t.Errorf("answer %v, want success", answer)
	}
}

// relationCode is the error each relation to the conversation gets from a
// request about it (0: it succeeds).
var relationCode = map[string]syncpb.Code{
	"stranger": syncpb.Code_CODE_NOT_MEMBER, "other workspace": syncpb.Code_CODE_NOT_FOUND,
	"kicked": syncpb.Code_CODE_NOT_MEMBER, "left": syncpb.Code_CODE_NOT_MEMBER,
}

func serverFrame(body func() *syncpb.Frame) sessionRow {
	return sessionRow{server: true, build: func(*authzFixture, authzUser) *syncpb.Frame { return body() }}
}

var sessionRows = map[protoreflect.Name]sessionRow{
	"hello": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello("x", "")}}
	}),
	"welcome":  serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{}}} }),
	"send_ack": serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{}}} }),
	"deliver":  serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_Deliver{Deliver: &syncpb.Deliver{}}} }),
	"sync_response": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_SyncResponse{SyncResponse: &syncpb.SyncResponse{}}}
	}),
	"history_response": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_HistoryResponse{HistoryResponse: &syncpb.HistoryResponse{}}}
	}),
	"search_response": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_SearchResponse{SearchResponse: &syncpb.SearchResponse{}}}
	}),
	"receipt_update": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_ReceiptUpdate{ReceiptUpdate: &syncpb.ReceiptUpdate{}}}
	}),
	"presence": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_Presence{Presence: &syncpb.PresenceUpdate{}}}
	}),
	"error":   serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_Error{Error: &syncpb.Error{}}} }),
	"resync":  serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_Resync{Resync: &syncpb.Resync{}}} }),
	"go_away": serverFrame(func() *syncpb.Frame { return &syncpb.Frame{Body: &syncpb.Frame_GoAway{GoAway: &syncpb.GoAway{}}} }),
	"receipt_ack": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{}}}
	}),
	"reauth_ack": serverFrame(func() *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_ReauthAck{ReauthAck: &syncpb.ReauthAck{}}}
	}),
	// A fresh token of the session's own device extends it, whatever the
	// caller's relation to any conversation.
	"reauth": {
		build: func(_ *authzFixture, u authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_Reauth{Reauth: &syncpb.Reauth{AccessToken: u.token()}}}
		},
		check: func(t *testing.T, _ *authzFixture, _ string, a *syncpb.Frame) {
			if a.GetReauthAck().GetTokenExpiresUnixMs() == 0 {
				t.Errorf("reauth answered %v", a)
			}
		},
	},
	"ping": {
		build: func(*authzFixture, authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 7}}}
		},
		check: func(t *testing.T, _ *authzFixture, _ string, a *syncpb.Frame) {
			if a.GetPong().GetNonce() != 7 {
				t.Errorf("ping answered %v", a)
			}
		},
	},
	"pong": {build: func(*authzFixture, authzUser) *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_Pong{Pong: &syncpb.Pong{}}}
	}},
	"typing": {build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
		return &syncpb.Frame{Body: &syncpb.Frame_Typing{Typing: &syncpb.Typing{ConvId: f.conv, Typing: true}}}
	}},
	"send": {
		build: func(f *authzFixture, u authzUser) *syncpb.Frame {
			f.n++
			return &syncpb.Frame{Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: f.conv, ClientMsgId: fmt.Sprint("authz-s-", f.n), Body: []byte("hi")}}}
		},
		check: func(t *testing.T, _ *authzFixture, rel string, a *syncpb.Frame) {
			wantCode(t, a, relationCode[rel], func(a *syncpb.Frame) bool { return a.GetSendAck().GetSeq() > 0 })
		},
	},
	"history_request": {
		build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_HistoryRequest{HistoryRequest: &syncpb.HistoryRequest{ConvId: f.conv, Limit: 10}}}
		},
		check: func(t *testing.T, _ *authzFixture, rel string, a *syncpb.Frame) {
			wantCode(t, a, relationCode[rel], func(a *syncpb.Frame) bool { return len(a.GetHistoryResponse().GetMessages()) > 0 })
		},
	},
	// A search names the conversation: every caller gets an answer, and
	// it never holds a message of a conversation the caller is not a
	// member of (the same empty page as a conversation that does not
	// exist).
	"search_request": {
		build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_SearchRequest{SearchRequest: &syncpb.SearchRequest{ConvId: f.conv}}}
		},
		check: func(t *testing.T, f *authzFixture, rel string, a *syncpb.Frame) {
			if a.GetError() != nil || a.GetSearchResponse() == nil {
				t.Fatalf("search by a %s answered %v, want a search response", rel, a)
			}
			for _, h := range a.GetSearchResponse().GetHits() {
				if relationCode[rel] != 0 && h.ConvId == f.conv {
					t.Errorf("search: a %s found %s/%d", rel, h.ConvId, h.Seq)
				}
			}
		},
	},
	"receipt": {
		build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: f.conv, Seq: 1, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}}}
		},
		check: func(t *testing.T, _ *authzFixture, rel string, a *syncpb.Frame) {
			wantCode(t, a, relationCode[rel], func(a *syncpb.Frame) bool { return a.GetReceiptAck() != nil })
		},
	},
	// A sync names conversations by watermark: one that is not the
	// caller's is left out of the answer, not an error.
	"sync_request": {
		build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_SyncRequest{SyncRequest: &syncpb.SyncRequest{
				Position: &syncpb.SyncPosition{Watermarks: []*syncpb.Watermark{{ConvId: f.conv, Seq: 0}}}, PerConversationLimit: 10}}}
		},
		check: func(t *testing.T, f *authzFixture, rel string, a *syncpb.Frame) {
			s := a.GetSyncResponse()
			if s == nil {
				t.Fatalf("sync answered %v", a)
			}
			has := slices.ContainsFunc(s.Changed, func(d *syncpb.ConversationDelta) bool { return d.ConvId == f.conv })
			if member := relationCode[rel] == 0; has != member {
				t.Errorf("sync: conversation in the answer %v, want %v", has, member)
			}
		},
	},
	// Presence of a user is shown only to those who share a conversation
	// with them: the owner is left out for the others.
	"presence_subscribe": {
		build: func(f *authzFixture, _ authzUser) *syncpb.Frame {
			return &syncpb.Frame{Body: &syncpb.Frame_PresenceSubscribe{PresenceSubscribe: &syncpb.PresenceSubscribe{UserIds: []string{f.owner.id()}}}}
		},
		check: func(t *testing.T, f *authzFixture, rel string, a *syncpb.Frame) {
			s := a.GetSyncResponse()
			if s == nil {
				t.Fatalf("presence subscribe answered %v", a)
			}
			shown := slices.ContainsFunc(s.Presence, func(p *syncpb.PresenceUpdate) bool { return p.UserId == f.owner.id() })
			if want := relationCode[rel] == 0 && rel != "owner"; shown != want {
				t.Errorf("the owner's presence shown %v, want %v", shown, want)
			}
		},
	},
}

func TestAuthorizationMatrixSessions(t *testing.T) {
	bodies := frameBodies()
	for _, b := range bodies {
		if _, ok := sessionRows[b]; !ok {
			t.Errorf("frame type %s is in the protocol schema but has no row in sessionRows: say what a client sending it gets", b)
		}
	}
	for b := range sessionRows {
		if !slices.Contains(bodies, b) {
			t.Errorf("sessionRows has %s, which the schema does not", b)
		}
	}
	if t.Failed() {
		return
	}
	f := newAuthzFixture(t)
	for _, transport := range []string{"ws", "quic", "wt"} {
		t.Run(transport, func(t *testing.T) {
			for _, bt := range f.badTokens(t) {
				if bt.token == "" {
					continue // a hello without a token is malformed: below
				}
				r, a := dialRaw(t, f, transport, bt.token)
				code := syncpb.Code_CODE_UNAUTHENTICATED
				switch bt.code {
				case "token_expired":
					code = syncpb.Code_CODE_TOKEN_EXPIRED
				case "revoked":
					code = syncpb.Code_CODE_REVOKED
				}
				if a.GetError().GetCode() != code {
					t.Errorf("hello with %s: %v, want %v", bt.name, a, code)
				}
				r.ends()
			}
			if _, a := dialRaw(t, f, transport, ""); a.GetError() == nil {
				t.Errorf("hello without a token: %v", a)
			}
			strangers := f.s.node.TypingStats().Strangers
			for _, b := range bodies {
				row := sessionRows[b]
				t.Run(string(b), func(t *testing.T) {
					for _, rel := range relations {
						u := f.as(rel)
						r, welcome := dialRaw(t, f, transport, u.token())
						if welcome.GetWelcome() == nil {
							t.Fatalf("%s: hello answered %v", rel, welcome)
						}
						fr := row.build(f, u)
						switch {
						case row.server:
							if a := r.do(fr); a.GetError().GetCode() != syncpb.Code_CODE_MALFORMED {
								t.Errorf("%s sending %s: %v, want MALFORMED", rel, b, a)
							}
							r.ends()
						case row.check == nil:
							// No answer: the session carries on.
							ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
							err := r.tr.WriteFrame(ctx, fr)
							cancel()
							if err != nil {
								t.Fatal(err)
							}
							if a := r.do(&syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: 1}}}); a.GetPong() == nil {
								t.Errorf("%s: after %s, ping answered %v", rel, b, a)
							}
						default:
							row.check(t, f, rel, r.do(fr))
						}
						_ = r.tr.Close(nil)
					}
				})
			}
			// The four relations outside the conversation typed in it: the
			// core dropped each as a stranger's.
			want := strangers + 4
			poll.NoError(t, 20*time.Second, "typing of non-members", func() error {
				if got := f.s.node.TypingStats().Strangers; got < want {
					return fmt.Errorf("%d dropped as strangers', want %d", got-strangers, 4)
				}
				return nil
			})
		})
	}
}
