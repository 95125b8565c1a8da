package httpapi

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/corerpc"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

var _ Core = (*corerpc.Client)(nil)

type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// logSink keeps log records for assertions and echoes them to t.Log.
type logSink struct {
	t       *testing.T
	mu      sync.Mutex
	records []map[string]any
}

func (s *logSink) Enabled(context.Context, slog.Level) bool { return true }
func (s *logSink) Handle(_ context.Context, r slog.Record) error {
	m := map[string]any{"msg": r.Message, "level": r.Level.String()}
	r.Attrs(func(a slog.Attr) bool { m[a.Key] = a.Value.Any(); return true })
	s.mu.Lock()
	s.records = append(s.records, m)
	s.mu.Unlock()
	return nil
}
func (s *logSink) WithAttrs([]slog.Attr) slog.Handler { return s }
func (s *logSink) WithGroup(string) slog.Handler      { return s }

func (s *logSink) find(match func(map[string]any) bool) map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range s.records {
		if match(r) {
			return r
		}
	}
	return nil
}

type testEnv struct {
	t     *testing.T
	srv   *httptest.Server
	core  *fakeCore
	clock *fakeClock
	auth  *auth.Auth
	logs  *logSink
}

// newTestEnv starts NATS, the fake core, a corerpc client and the API
// behind a real HTTP server. tweak adjusts the API config.
func newTestEnv(t *testing.T, tweak func(*Config)) *testEnv {
	t.Helper()
	return newTestEnvAuth(t, nil, tweak)
}

// newTestEnvAuth is newTestEnv with authTweak adjusting the auth config.
func newTestEnvAuth(t *testing.T, authTweak func(*auth.Config), tweak func(*Config)) *testEnv {
	t.Helper()
	ns := natstest.Server(t)
	e := &testEnv{t: t, clock: &fakeClock{t: time.Unix(1_700_000_000, 0)}, logs: &logSink{t: t}}
	e.core = newFakeCore(t, natstest.Conn(t, ns))
	client, err := corerpc.New(corerpc.Config{Conn: natstest.Conn(t, ns), AttemptTimeout: 200 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	key, err := auth.GenerateKey("test")
	if err != nil {
		t.Fatal(err)
	}
	acfg := auth.Config{Keys: []auth.Key{key}, Argon2: auth.Argon2Params{Memory: 64, Time: 1, Threads: 1}, Now: e.clock.Now}
	if authTweak != nil {
		authTweak(&acfg)
	}
	e.auth, err = auth.New(acfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := Config{Core: client, Auth: e.auth, Logger: slog.New(e.logs), Now: e.clock.Now,
		MaxBodyBytes: 128 << 10, RequestTimeout: 5 * time.Second, UserRate: rate.Inf, IPRate: rate.Inf}
	if tweak != nil {
		tweak(&cfg)
	}
	api, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.srv = httptest.NewServer(api)
	t.Cleanup(e.srv.Close)
	return e
}

type result struct {
	status int
	header http.Header
	body   []byte
}

// json decodes the body into a generic map.
func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("response is not a JSON object: %v: %s", err, r.body)
	}
	return m
}

// errCode is the error.code of a JSON error response.
func (r result) errCode(t *testing.T) string {
	t.Helper()
	m := r.json(t)
	e, ok := m["error"].(map[string]any)
	if !ok {
		t.Fatalf("no error object in %s", r.body)
	}
	if _, ok := e["numeric_code"].(float64); !ok {
		t.Fatalf("no numeric_code in %s", r.body)
	}
	return e["code"].(string)
}

// do sends a request. body is sent as is when it is a string or []byte,
// else as JSON.
func (e *testEnv) do(method, path, token string, body any) result {
	e.t.Helper()
	return e.doWith(e.srv.Client(), method, path, token, body)
}

// doFrom is do from the client address ip, one of 127.0.0.0/8 (all of
// which is loopback on Linux), so that the server sees a client at ip.
func (e *testEnv) doFrom(ip, method, path, token string, body any) result {
	e.t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 5 * time.Second}
	tr := &http.Transport{DialContext: d.DialContext, DisableKeepAlives: true}
	defer tr.CloseIdleConnections()
	return e.doWith(&http.Client{Transport: tr}, method, path, token, body)
}

func (e *testEnv) doWith(client *http.Client, method, path, token string, body any) result {
	e.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	case []byte:
		rd = bytes.NewReader(b)
	default:
		j, err := json.Marshal(b)
		if err != nil {
			e.t.Fatal(err)
		}
		rd = bytes.NewReader(j)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, e.srv.URL+path, rd)
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return result{status: resp.StatusCode, header: resp.Header, body: b}
}

// want checks the status and decodes the JSON body into out (if not nil).
func (e *testEnv) want(r result, status int, out any) {
	e.t.Helper()
	if r.status != status {
		e.t.Fatalf("status %d, want %d: %s", r.status, status, r.body)
	}
	if out != nil {
		if err := json.Unmarshal(r.body, out); err != nil {
			e.t.Fatalf("decode %s: %v", r.body, err)
		}
	}
}

type session struct {
	sessionResponse
	password string
}

func (e *testEnv) register(ws, user string) {
	e.t.Helper()
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"workspace": ws, "username": user, "password": "password-" + user}), 201, nil)
}

func (e *testEnv) login(ws, user string) session {
	e.t.Helper()
	var s session
	e.want(e.do("POST", "/v1/sessions", "", map[string]string{"workspace": ws, "username": user, "password": "password-" + user}), 200, &s.sessionResponse)
	s.password = "password-" + user
	return s
}

func (e *testEnv) newUser(ws, user string) session {
	e.t.Helper()
	e.register(ws, user)
	return e.login(ws, user)
}

func TestAccountsAndSessions(t *testing.T) {
	e := newTestEnv(t, nil)
	var reg userResponse
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana", "display_name": "Ana"}), 201, &reg)
	if reg.User.Username != "ana" || reg.User.DisplayName != "Ana" || reg.User.WorkspaceRole != "owner" || !syncproto.ValidID(reg.User.ID) {
		t.Fatalf("registered %+v", reg.User)
	}
	if r := e.do("POST", "/v1/accounts", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-2"}); r.status != 409 || r.errCode(t) != "conflict" {
		t.Fatalf("second registration: %d %s", r.status, r.body)
	}

	s := e.login("acme", "ana")
	if s.TokenType != "Bearer" || s.ExpiresIn != int64(auth.DefaultAccessTTL/time.Second) || s.User == nil || s.User.ID != reg.User.ID || s.Device == nil {
		t.Fatalf("session %+v", s.sessionResponse)
	}

	var me meResponse
	e.want(e.do("GET", "/v1/me", s.AccessToken, nil), 200, &me)
	if me.User.ID != reg.User.ID || me.DeviceID != s.Device.ID {
		t.Fatalf("me %+v", me)
	}

	// Logging in again as the same device keeps the device and replaces
	// its refresh token: the first one is refused, the device stays.
	var again sessionResponse
	e.want(e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana", "device_id": s.Device.ID}), 200, &again)
	if again.Device.ID != s.Device.ID {
		t.Fatalf("device %s, want %s", again.Device.ID, s.Device.ID)
	}
	if r := e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": s.RefreshToken}); r.status != 401 || r.errCode(t) != "unauthenticated" {
		t.Fatalf("refresh with the token of an earlier log-in: %d %s", r.status, r.body)
	}

	// Refresh gives a working pair; an access token is not a refresh token.
	var ref sessionResponse
	e.want(e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": again.RefreshToken}), 200, &ref)
	e.want(e.do("GET", "/v1/me", ref.AccessToken, nil), 200, nil)
	if r := e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": s.AccessToken}); r.status != 401 {
		t.Fatalf("refresh with an access token: %d %s", r.status, r.body)
	}

	// A second device, listed, then revoked: its refresh stops working and
	// it can no longer be logged in as.
	var dev deviceResponse
	e.want(e.do("POST", "/v1/devices", s.AccessToken, map[string]string{"name": "laptop", "platform": "linux"}), 201, &dev)
	var devs devicesResponse
	e.want(e.do("GET", "/v1/devices", s.AccessToken, nil), 200, &devs)
	if len(devs.Devices) != 2 {
		t.Fatalf("devices %+v", devs)
	}
	var laptop sessionResponse
	e.want(e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana", "device_id": dev.Device.ID}), 200, &laptop)
	var revoked deviceResponse
	e.want(e.do("DELETE", "/v1/devices/"+dev.Device.ID, s.AccessToken, nil), 200, &revoked)
	if !revoked.Device.Revoked {
		t.Fatalf("revoke answered %+v", revoked.Device)
	}
	r := e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": laptop.RefreshToken})
	if r.status != 401 || r.errCode(t) != "unauthenticated" {
		t.Fatalf("refresh of a revoked device: %d %s", r.status, r.body)
	}
	r = e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana", "device_id": dev.Device.ID})
	if r.status != 403 {
		t.Fatalf("login as a revoked device: %d %s", r.status, r.body)
	}
	// Someone else's device id is simply not found.
	bo := e.newUser("acme", "bo")
	r = e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana", "device_id": bo.Device.ID})
	if r.status != 404 {
		t.Fatalf("login as another user's device: %d %s", r.status, r.body)
	}
}

func TestRegisterValidation(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		name string
		body map[string]string
	}{
		{"short password", map[string]string{"workspace": "w", "username": "u", "password": "1234567"}},
		{"long password", map[string]string{"workspace": "w", "username": "u", "password": strings.Repeat("p", 257)}},
		{"no workspace", map[string]string{"username": "u", "password": "password"}},
		{"no username", map[string]string{"workspace": "w", "password": "password"}},
		{"space in username", map[string]string{"workspace": "w", "username": "a b", "password": "password"}},
		{"control character", map[string]string{"workspace": "w\x00", "username": "u", "password": "password"}},
		{"long username", map[string]string{"workspace": "w", "username": strings.Repeat("u", 65), "password": "password"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/accounts", "", tc.body)
			if r.status != 400 || r.errCode(t) != "invalid_argument" {
				t.Fatalf("%d %s", r.status, r.body)
			}
		})
	}
	// Exactly 8 and 256 bytes are fine.
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"workspace": "w", "username": "eight", "password": "12345678"}), 201, nil)
	e.want(e.do("POST", "/v1/accounts", "", map[string]string{"workspace": "w", "username": "long", "password": strings.Repeat("p", 256)}), 201, nil)
}

func TestLoginFailuresLookAlike(t *testing.T) {
	e := newTestEnv(t, nil)
	e.register("acme", "ana")
	wrongPw := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "not-her-password"})
	noUser := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "nobody", "password": "not-her-password"})
	noWs := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "nowhere", "username": "ana", "password": "password-ana"})
	for _, r := range []result{wrongPw, noUser, noWs} {
		if r.status != 401 || !bytes.Equal(r.body, wrongPw.body) {
			t.Fatalf("login failure answers differ: %d %s vs %d %s", r.status, r.body, wrongPw.status, wrongPw.body)
		}
	}
}

func TestAuthFailures(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	otherKey, err := auth.GenerateKey("test") // same key id, other secret
	if err != nil {
		t.Fatal(err)
	}
	other, err := auth.New(auth.Config{Keys: []auth.Key{otherKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	forged, _, err := other.Issue(auth.Access, auth.Identity{WorkspaceID: s.User.WorkspaceID, UserID: s.User.ID, DeviceID: s.Device.ID})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		header string
		code   string
	}{
		{"no header", "", "unauthenticated"},
		{"basic auth", "Basic YWxhZGRpbjpvcGVuc2VzYW1l", "unauthenticated"},
		{"empty bearer", "Bearer ", "unauthenticated"},
		{"garbage", "Bearer abc.def", "unauthenticated"},
		{"refresh token", "Bearer " + s.RefreshToken, "unauthenticated"},
		{"forged", "Bearer " + forged, "unauthenticated"},
		{"lower-case scheme", "bearer " + s.AccessToken, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", e.srv.URL+"/v1/me", nil)
			if tc.header != "" {
				req.Header.Set("Authorization", tc.header)
			}
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			r := result{status: resp.StatusCode, header: resp.Header, body: b}
			if tc.code == "" {
				e.want(r, 200, nil)
				return
			}
			if r.status != 401 || r.errCode(t) != tc.code || r.header.Get("WWW-Authenticate") == "" {
				t.Fatalf("%d %v %s", r.status, r.header, r.body)
			}
		})
	}
	// Expired, by the injected clock.
	e.clock.Add(auth.DefaultAccessTTL)
	r := e.do("GET", "/v1/me", s.AccessToken, nil)
	if r.status != 401 || r.errCode(t) != "token_expired" {
		t.Fatalf("expired token: %d %s", r.status, r.body)
	}
	// The refresh token still works and its access token is good.
	var ref sessionResponse
	e.want(e.do("POST", "/v1/sessions/refresh", "", map[string]string{"refresh_token": s.RefreshToken}), 200, &ref)
	e.want(e.do("GET", "/v1/me", ref.AccessToken, nil), 200, nil)
}

// conv creates a conversation and returns it.
func (e *testEnv) conv(s session, body map[string]any, status int) *conversationJSON {
	e.t.Helper()
	var out conversationResponse
	e.want(e.do("POST", "/v1/conversations", s.AccessToken, body), status, &out)
	return out.Conversation
}

func TestDirectConversationMessagesReceipts(t *testing.T) {
	e := newTestEnv(t, nil)
	ana, bo := e.newUser("acme", "ana"), e.newUser("acme", "bo")

	dm := e.conv(ana, map[string]any{"type": "direct", "member_usernames": []string{"bo"}}, 201)
	if dm.Type != "direct" || len(dm.Members) != 2 || dm.ID != syncproto.DirectConversationID(ana.User.WorkspaceID, ana.User.ID, bo.User.ID) {
		t.Fatalf("direct conversation %+v", dm)
	}
	// Asking again, from either side, finds the same conversation.
	if again := e.conv(ana, map[string]any{"type": "direct", "member_ids": []string{bo.User.ID}}, 200); again.ID != dm.ID {
		t.Fatalf("repeated direct: %s, want %s", again.ID, dm.ID)
	}
	if back := e.conv(bo, map[string]any{"type": "direct", "member_usernames": []string{"ANA"}}, 200); back.ID != dm.ID {
		t.Fatalf("direct from the other side: %s, want %s", back.ID, dm.ID)
	}

	// Send, and retry the same client_msg_id: same answer, nothing stored twice.
	msg := map[string]any{"conv_id": dm.ID, "client_msg_id": "c-1", "body": "hello, bo"}
	var first, retry sendResponse
	e.want(e.do("POST", "/v1/messages", ana.AccessToken, msg), 201, &first)
	e.want(e.do("POST", "/v1/messages", ana.AccessToken, msg), 200, &retry)
	if first.Seq != 1 || first.Duplicate || !retry.Duplicate || retry.Seq != first.Seq || retry.MsgID != first.MsgID || retry.TS != first.TS || retry.ClientMsgID != "c-1" {
		t.Fatalf("first %+v, retry %+v", first, retry)
	}
	if c := e.core.lastCaller(); c.UserId != ana.User.ID || c.DeviceId != ana.Device.ID || c.WorkspaceId != ana.User.WorkspaceID {
		t.Fatalf("core saw caller %v, want the token's identity", c)
	}
	bin := []byte{0, 1, 2, 0xff}
	e.want(e.do("POST", "/v1/messages", ana.AccessToken, map[string]any{"conv_id": dm.ID, "client_msg_id": "c-2",
		"body_base64": base64.StdEncoding.EncodeToString(bin), "unknown_field": true}), 201, nil)
	if n := e.core.messageCount(dm.ID); n != 2 {
		t.Fatalf("core holds %d messages, want 2", n)
	}

	// History: backward by default, forward in pages.
	var h historyResponse
	e.want(e.do("GET", "/v1/conversations/"+dm.ID+"/history", bo.AccessToken, nil), 200, &h)
	if len(h.Messages) != 2 || h.LastSeq != 2 || h.Messages[0].Seq != 1 || h.NextCursor != 0 {
		t.Fatalf("history %+v", h)
	}
	if m := h.Messages[0]; m.Body == nil || *m.Body != "hello, bo" || m.BodyBase64 != nil || m.SenderUserID != ana.User.ID || m.Kind != "user" {
		t.Fatalf("text message %+v", m)
	}
	if m := h.Messages[1]; m.Body != nil || m.BodyBase64 == nil || *m.BodyBase64 != base64.StdEncoding.EncodeToString(bin) || m.ContentType != "application/octet-stream" {
		t.Fatalf("binary message %+v", m)
	}
	var page historyResponse
	e.want(e.do("GET", "/v1/conversations/"+dm.ID+"/history?limit=1", bo.AccessToken, nil), 200, &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != 2 || page.NextCursor != 2 {
		t.Fatalf("backward page %+v", page)
	}
	e.want(e.do("GET", "/v1/conversations/"+dm.ID+"/history?limit=1&cursor=2", bo.AccessToken, nil), 200, &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != 1 || page.NextCursor != 0 {
		t.Fatalf("second backward page %+v", page)
	}
	e.want(e.do("GET", "/v1/conversations/"+dm.ID+"/history?dir=forward&limit=1", bo.AccessToken, nil), 200, &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != 1 || page.NextCursor != 1 {
		t.Fatalf("forward page %+v", page)
	}
	e.want(e.do("GET", "/v1/conversations/"+dm.ID+"/history?dir=forward&limit=1&cursor=1", bo.AccessToken, nil), 200, &page)
	if len(page.Messages) != 1 || page.Messages[0].Seq != 2 || page.NextCursor != 0 {
		t.Fatalf("second forward page %+v", page)
	}

	// Receipts never go back.
	var rc receiptResponse
	e.want(e.do("POST", "/v1/receipts", bo.AccessToken, map[string]any{"conv_id": dm.ID, "seq": 2, "type": "read"}), 200, &rc)
	if rc.Seq != 2 || rc.Type != "read" || rc.ConvID != dm.ID {
		t.Fatalf("receipt %+v", rc)
	}
	e.want(e.do("POST", "/v1/receipts", bo.AccessToken, map[string]any{"conv_id": dm.ID, "seq": 1, "type": "read"}), 200, &rc)
	if rc.Seq != 2 {
		t.Fatalf("receipt went back to %d", rc.Seq)
	}

	var list conversationsResponse
	e.want(e.do("GET", "/v1/conversations?limit=10", bo.AccessToken, nil), 200, &list)
	if len(list.Conversations) != 1 || list.Conversations[0].ID != dm.ID {
		t.Fatalf("list %+v", list)
	}
	// The access log names user, device and conversation.
	if rec := e.logs.find(func(m map[string]any) bool {
		return m["msg"] == "http" && m["route"] == "/v1/messages" && m["conv"] == dm.ID && m["user"] == ana.User.ID && m["device"] == ana.Device.ID
	}); rec == nil {
		t.Fatal("no access log record for the send with user, device and conv")
	}
}

func TestDirectConversationRules(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	e.newUser("acme", "bo")
	e.newUser("acme", "cy")
	e.newUser("other", "dee")
	for _, tc := range []struct {
		name   string
		body   map[string]any
		status int
	}{
		{"with yourself", map[string]any{"type": "direct", "member_ids": []string{ana.User.ID}}, 400},
		{"with two", map[string]any{"type": "direct", "member_usernames": []string{"bo", "cy"}}, 400},
		{"with a title", map[string]any{"type": "direct", "title": "x", "member_usernames": []string{"bo"}}, 400},
		{"unknown user", map[string]any{"type": "direct", "member_usernames": []string{"zed"}}, 404},
		{"user of another workspace", map[string]any{"type": "direct", "member_usernames": []string{"dee"}}, 404},
		{"no type", map[string]any{"member_usernames": []string{"bo"}}, 400},
		{"bad type", map[string]any{"type": "channel", "member_usernames": []string{"bo"}}, 400},
		{"bad member id", map[string]any{"type": "group", "member_ids": []string{"U!"}}, 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do("POST", "/v1/conversations", ana.AccessToken, tc.body)
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.body)
			}
			r.errCode(t)
		})
	}
}

func TestGroupMembership(t *testing.T) {
	e := newTestEnv(t, nil)
	ana, bo, cy := e.newUser("acme", "ana"), e.newUser("acme", "bo"), e.newUser("acme", "cy")
	g := e.conv(ana, map[string]any{"type": "group", "title": "team", "member_ids": []string{bo.User.ID}}, 201)
	if g.Type != "group" || g.Title != "team" || len(g.Members) != 2 || !strings.HasPrefix(g.ID, syncproto.PrefixGroupConv) {
		t.Fatalf("group %+v", g)
	}
	var out conversationResponse
	e.want(e.do("POST", "/v1/conversations/"+g.ID+"/members", ana.AccessToken, map[string]any{"usernames": []string{"cy"}}), 200, &out)
	if len(out.Conversation.Members) != 3 {
		t.Fatalf("after add: %+v", out.Conversation.Members)
	}
	e.want(e.do("PATCH", "/v1/conversations/"+g.ID+"/members/"+bo.User.ID, ana.AccessToken, map[string]any{"role": "admin"}), 200, &out)
	for _, m := range out.Conversation.Members {
		if m.UserID == bo.User.ID && m.Role != "admin" {
			t.Fatalf("bo's role %q", m.Role)
		}
	}
	if r := e.do("PATCH", "/v1/conversations/"+g.ID+"/members/"+bo.User.ID, ana.AccessToken, map[string]any{"role": "king"}); r.status != 400 {
		t.Fatalf("bad role: %d %s", r.status, r.body)
	}
	// A plain member may not remove others (the core says FORBIDDEN).
	if r := e.do("DELETE", "/v1/conversations/"+g.ID+"/members/"+bo.User.ID, cy.AccessToken, nil); r.status != 403 || r.errCode(t) != "forbidden" {
		t.Fatalf("member kicking: %d %s", r.status, r.body)
	}
	e.want(e.do("DELETE", "/v1/conversations/"+g.ID+"/members/"+bo.User.ID, ana.AccessToken, nil), 200, &out)
	if len(out.Conversation.Members) != 2 {
		t.Fatalf("after kick: %+v", out.Conversation.Members)
	}
	// Leaving: the user id is the caller's own; the answer has no members.
	e.want(e.do("DELETE", "/v1/conversations/"+g.ID+"/members/"+cy.User.ID, cy.AccessToken, nil), 200, &out)
	if out.Conversation.ID != g.ID || len(out.Conversation.Members) != 0 {
		t.Fatalf("after leaving: %+v", out.Conversation)
	}
	if r := e.do("GET", "/v1/conversations/"+g.ID, cy.AccessToken, nil); r.status != 403 || r.errCode(t) != "not_member" {
		t.Fatalf("after leaving: %d %s", r.status, r.body)
	}
	if r := e.do("POST", "/v1/conversations/"+g.ID+"/members", ana.AccessToken, map[string]any{}); r.status != 400 {
		t.Fatalf("add nobody: %d %s", r.status, r.body)
	}
}

func TestStrangerIsForbidden(t *testing.T) {
	e := newTestEnv(t, nil)
	ana, _, eve := e.newUser("acme", "ana"), e.newUser("acme", "bo"), e.newUser("acme", "eve")
	dm := e.conv(ana, map[string]any{"type": "direct", "member_usernames": []string{"bo"}}, 201)
	e.want(e.do("POST", "/v1/messages", ana.AccessToken, map[string]any{"conv_id": dm.ID, "client_msg_id": "1", "body": "secret"}), 201, nil)
	for _, tc := range []struct {
		method, path string
		body         any
	}{
		{"GET", "/v1/conversations/" + dm.ID, nil},
		{"GET", "/v1/conversations/" + dm.ID + "/history", nil},
		{"POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "x", "body": "hi"}},
		{"POST", "/v1/receipts", map[string]any{"conv_id": dm.ID, "seq": 1, "type": "read"}},
		{"POST", "/v1/conversations/" + dm.ID + "/members", map[string]any{"user_ids": []string{eve.User.ID}}},
	} {
		r := e.do(tc.method, tc.path, eve.AccessToken, tc.body)
		if r.status != 403 || r.errCode(t) != "not_member" {
			t.Errorf("%s %s by a stranger: %d %s", tc.method, tc.path, r.status, r.body)
		}
		if strings.Contains(string(r.body), "secret") {
			t.Errorf("%s %s leaked the message", tc.method, tc.path)
		}
	}
	var list conversationsResponse
	e.want(e.do("GET", "/v1/conversations", eve.AccessToken, nil), 200, &list)
	if len(list.Conversations) != 0 {
		t.Fatalf("stranger lists %+v", list)
	}
	if r := e.do("GET", "/v1/conversations/c_doesnotexist", eve.AccessToken, nil); r.status != 404 || r.errCode(t) != "not_found" {
		t.Fatalf("missing conversation: %d %s", r.status, r.body)
	}
}

func TestMalformedRequests(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	dm := e.conv(ana, map[string]any{"type": "group"}, 201)
	big := strings.Repeat("x", syncproto.MaxBodySize+1)
	for _, tc := range []struct {
		name   string
		method string
		path   string
		body   any
		status int
		code   string
	}{
		{"not JSON", "POST", "/v1/messages", "{not json", 400, "malformed"},
		{"JSON array", "POST", "/v1/messages", "[1,2]", 400, "malformed"},
		{"wrong type", "POST", "/v1/messages", `{"conv_id": 7}`, 400, "malformed"},
		{"empty body", "POST", "/v1/messages", "", 400, "malformed"},
		{"trailing garbage", "POST", "/v1/messages", `{"conv_id":"x"} {}`, 400, "malformed"},
		{"body over the limit", "POST", "/v1/messages", `{"body":"` + strings.Repeat("x", 200<<10) + `"}`, 413, "too_large"},
		{"message over the limit", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "big", "body": big}, 413, "too_large"},
		{"body and body_base64", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "1", "body": "a", "body_base64": "YQ=="}, 400, "invalid_argument"},
		{"bad base64", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "1", "body_base64": "!!"}, 400, "invalid_argument"},
		{"no body", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "1"}, 400, "invalid_argument"},
		{"bad conv id", "POST", "/v1/messages", map[string]any{"conv_id": "C/../x", "client_msg_id": "1", "body": "a"}, 400, "invalid_argument"},
		{"bad client_msg_id", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "has space", "body": "a"}, 400, "invalid_argument"},
		{"too many attachments", "POST", "/v1/messages", map[string]any{"conv_id": dm.ID, "client_msg_id": "1", "attachments": make([]attachmentJSON, 33)}, 413, "too_large"},
		{"history bad dir", "GET", "/v1/conversations/" + dm.ID + "/history?dir=up", nil, 400, "invalid_argument"},
		{"history bad limit", "GET", "/v1/conversations/" + dm.ID + "/history?limit=501", nil, 400, "invalid_argument"},
		{"history bad cursor", "GET", "/v1/conversations/" + dm.ID + "/history?cursor=-1", nil, 400, "invalid_argument"},
		{"bad path id", "GET", "/v1/conversations/NOT_VALID", nil, 400, "invalid_argument"},
		{"receipt bad type", "POST", "/v1/receipts", map[string]any{"conv_id": dm.ID, "seq": 1, "type": "seen"}, 400, "invalid_argument"},
		{"receipt seq 0", "POST", "/v1/receipts", map[string]any{"conv_id": dm.ID, "seq": 0, "type": "read"}, 400, "invalid_argument"},
		{"receipt negative seq", "POST", "/v1/receipts", `{"conv_id":"x","seq":-1,"type":"read"}`, 400, "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.do(tc.method, tc.path, ana.AccessToken, tc.body)
			if r.status != tc.status || r.errCode(t) != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.body, tc.status, tc.code)
			}
		})
	}
	if n := e.core.messageCount(dm.ID); n != 0 {
		t.Fatalf("a malformed send reached the core: %d messages", n)
	}
}

func TestUnknownRoutes(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, tc := range []struct {
		method, path string
		status       int
		code         string
	}{
		{"GET", "/v1/nope", 404, "not_found"},
		{"GET", "/", 404, "not_found"},
		{"POST", "/v1/conversations/c_x/history", 405, "malformed"},
		{"DELETE", "/v1/me", 405, "malformed"},
	} {
		r := e.do(tc.method, tc.path, "", nil)
		if r.status != tc.status || r.errCode(t) != tc.code {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, r.status, r.body)
		}
		if tc.status == 405 && r.header.Get("Allow") == "" {
			t.Errorf("%s %s: 405 without Allow", tc.method, tc.path)
		}
	}
}

func TestRateLimits(t *testing.T) {
	e := newTestEnv(t, func(c *Config) {
		c.UserRate, c.UserBurst = rate.Every(time.Minute), 3
		c.IPRate, c.IPBurst = rate.Every(time.Hour), 4
	})
	// Two registrations and two logins use the IP's burst of 4.
	e.register("acme", "ana")
	e.register("acme", "bo")
	ana, bo := e.login("acme", "ana"), e.login("acme", "bo")
	r := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "acme", "username": "ana", "password": "password-ana"})
	if r.status != 429 || r.errCode(t) != "rate_limited" || r.header.Get("Retry-After") == "" {
		t.Fatalf("fifth unauthenticated call: %d %v %s", r.status, r.header, r.body)
	}
	// Each user has a bucket of 3.
	for i := 0; i < 3; i++ {
		e.want(e.do("GET", "/v1/me", ana.AccessToken, nil), 200, nil)
	}
	r = e.do("GET", "/v1/me", ana.AccessToken, nil)
	if r.status != 429 || r.errCode(t) != "rate_limited" {
		t.Fatalf("fourth call: %d %s", r.status, r.body)
	}
	if secs, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || secs < 1 {
		t.Fatalf("Retry-After %q", r.header.Get("Retry-After"))
	}
	e.want(e.do("GET", "/v1/me", bo.AccessToken, nil), 200, nil)
	// Health checks are never limited.
	for i := 0; i < 10; i++ {
		e.want(e.do("GET", "/healthz", "", nil), 200, nil)
	}
	// Time refills the bucket (the limiter uses the injected clock).
	e.clock.Add(time.Minute)
	e.want(e.do("GET", "/v1/me", ana.AccessToken, nil), 200, nil)
}

func TestSendRetriedAfterLostReply(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	g := e.conv(ana, map[string]any{"type": "group"}, 201)
	e.core.mu.Lock()
	e.core.dropSends = 1
	e.core.mu.Unlock()
	// The core commits but its reply is lost; the edge retries and the
	// core's dedupe returns the first result.
	var ack sendResponse
	e.want(e.do("POST", "/v1/messages", ana.AccessToken, map[string]any{"conv_id": g.ID, "client_msg_id": "once", "body": "x"}), 200, &ack)
	if ack.Seq != 1 || !ack.Duplicate {
		t.Fatalf("ack %+v", ack)
	}
	e.core.mu.Lock()
	sends := e.core.sends
	e.core.mu.Unlock()
	if sends != 2 || e.core.messageCount(g.ID) != 1 {
		t.Fatalf("%d send attempts, %d messages; want 2 attempts, 1 message", sends, e.core.messageCount(g.ID))
	}
}

// The core's CONFLICT for a client_msg_id reused with other content is
// 409 conflict, with the core's message, as openapi.json documents for
// POST /v1/messages; another user's send under the same id is his own.
func TestSendConflictIs409(t *testing.T) {
	e := newTestEnv(t, nil)
	ana := e.newUser("acme", "ana")
	bo := e.newUser("acme", "bo")
	g := e.conv(ana, map[string]any{"type": "group", "member_usernames": []string{"bo"}}, 201)
	send := func(s session, body string) result {
		return e.do("POST", "/v1/messages", s.AccessToken, map[string]any{"conv_id": g.ID, "client_msg_id": "m-1", "body": body})
	}
	var first, his sendResponse
	e.want(send(ana, "hello"), 201, &first)
	e.want(send(bo, "hi"), 201, &his)
	if his.Duplicate || his.Seq != first.Seq+1 {
		t.Fatalf("bo's send under ana's id: %+v (ana's %+v)", his, first)
	}
	r := send(ana, "hello again")
	if r.status != http.StatusConflict || r.errCode(t) != "conflict" || !strings.Contains(string(r.body), "client_msg_id already used") {
		t.Fatalf("reuse with other content: %d %s, want 409 conflict", r.status, r.body)
	}
	var doc oaDoc
	if err := json.Unmarshal(openapiDoc, &doc); err != nil {
		t.Fatal(err)
	}
	var op oaOperation
	if err := json.Unmarshal(doc.Paths["/v1/messages"]["post"], &op); err != nil {
		t.Fatal(err)
	}
	if _, ok := op.Responses["409"]; !ok {
		t.Fatal("openapi.json does not document 409 for POST /v1/messages")
	}
}

// /readyz is 503 while the core names no leader for the directory or for
// some shard, and 200 once every group has one; /livez is 200 throughout.
func TestReadyNeedsEveryShardLed(t *testing.T) {
	e := newTestEnv(t, nil)
	for _, missing := range []map[int]bool{{2: true}, {-1: true}, {0: true, 3: true}} {
		e.core.mu.Lock()
		e.core.leaderless = missing
		e.core.mu.Unlock()
		if r := e.do("GET", "/readyz", "", nil); r.status != 503 || r.errCode(t) != "unavailable" {
			t.Fatalf("readyz with %v leaderless: %d %s", missing, r.status, r.body)
		}
		e.want(e.do("GET", "/livez", "", nil), 200, nil)
	}
	e.core.mu.Lock()
	e.core.leaderless = nil
	e.core.mu.Unlock()
	var st statusResponse
	e.want(e.do("GET", "/readyz", "", nil), 200, &st)
	if st.Status != "ready" {
		t.Fatalf("readyz %+v", st)
	}
}

func TestHealthAndReadiness(t *testing.T) {
	e := newTestEnv(t, func(c *Config) { c.ReadyTimeout, c.RequestTimeout = 300*time.Millisecond, 500*time.Millisecond })
	var st statusResponse
	e.want(e.do("GET", "/readyz", "", nil), 200, &st)
	if st.Status != "ready" || st.ShardCount != fakeShards || st.Region != "local" {
		t.Fatalf("readyz %+v", st)
	}
	e.core.stop()
	// Cached for ReadyTTL, then the missing core shows.
	e.want(e.do("GET", "/readyz", "", nil), 200, nil)
	e.clock.Add(DefaultReadyTTL)
	if r := e.do("GET", "/readyz", "", nil); r.status != 503 || r.errCode(t) != "unavailable" {
		t.Fatalf("readyz without a core: %d %s", r.status, r.body)
	}
	e.want(e.do("GET", "/healthz", "", nil), 200, nil)
	// With the core gone, API calls fail with 503, not 500.
	r := e.do("POST", "/v1/sessions", "", map[string]string{"workspace": "a", "username": "b", "password": "password"})
	if r.status != 503 && r.status != 504 {
		t.Fatalf("login without a core: %d %s", r.status, r.body)
	}
}

func TestOpenAPIServed(t *testing.T) {
	e := newTestEnv(t, nil)
	r := e.do("GET", "/v1/openapi.json", "", nil)
	if r.status != 200 || !bytes.Equal(r.body, OpenAPI()) || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") {
		t.Fatalf("openapi: %d %v", r.status, r.header)
	}
}

// panicCore is a Core whose every call panics, standing in for a bug.
type panicCore struct{}

func (panicCore) Call(context.Context, *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	panic("boom")
}
func (panicCore) RegionInfo(context.Context) (*syncpb.RegionInfo, error) { panic("boom") }

func TestPanicBecomes500(t *testing.T) {
	e := newTestEnv(t, nil)
	s := e.newUser("acme", "ana")
	api, err := New(Config{Core: panicCore{}, Auth: e.auth, Logger: slog.New(e.logs), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(api)
	t.Cleanup(srv.Close)
	e.srv = srv
	r := e.do("GET", "/v1/me", s.AccessToken, nil)
	if r.status != 500 || r.errCode(t) != "internal" || strings.Contains(string(r.body), "boom") {
		t.Fatalf("panicking handler: %d %s", r.status, r.body)
	}
	e.want(e.do("GET", "/healthz", "", nil), 200, nil)
	if e.logs.find(func(m map[string]any) bool { return m["msg"] == "panic in handler" }) == nil {
		t.Fatal("panic not logged")
	}
}

func TestConfigValidate(t *testing.T) {
	a := &auth.Auth{}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Core: panicCore{}, Auth: a}, true},
		{"no core", Config{Auth: a}, false},
		{"no auth", Config{Core: panicCore{}}, false},
		{"negative body", Config{Core: panicCore{}, Auth: a, MaxBodyBytes: -1}, false},
		{"negative rate", Config{Core: panicCore{}, Auth: a, UserRate: -1}, false},
		{"negative timeout", Config{Core: panicCore{}, Auth: a, RequestTimeout: -1}, false},
		{"bad login throttle", Config{Core: panicCore{}, Auth: a, LoginThrottle: auth.ThrottleConfig{FreeFailures: -1}}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
