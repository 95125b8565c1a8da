package rest_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// The handlers below stand in for the edge (edge/httpapi): they answer in
// its JSON shapes, and writeAPIError writes errors exactly as its
// writeError does. The client may not import edge, so the formats are
// copied here; openapi.json is the contract both follow.

// waitLimit bounds every wait in these tests. It only turns a hang into a
// failure; nothing is timed against it.
const waitLimit = 10 * time.Second

// writeJSON answers like httpapi's writeJSON.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic("rest_test: marshal: " + err.Error())
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}

// apiError is httpapi's errorJSON:
// {"error":{"code":"not_member","numeric_code":14,"message":"..."}}.
type apiError struct {
	Error struct {
		Code         string `json:"code"`
		NumericCode  int32  `json:"numeric_code"`
		Message      string `json:"message"`
		RetryAfterMS int64  `json:"retry_after_ms,omitempty"`
	} `json:"error"`
}

// writeAPIError answers like httpapi's (*API).writeError: the status for
// code, a Retry-After header in whole seconds for rate_limited or any
// retry hint, and the hint in milliseconds in the body.
func writeAPIError(w http.ResponseWriter, code syncpb.Code, msg string, retryAfter time.Duration) {
	if code == syncpb.Code_CODE_RATE_LIMITED || retryAfter > 0 {
		secs := int64((max(retryAfter, time.Second) + time.Second - 1) / time.Second)
		w.Header().Set("Retry-After", strconv.FormatInt(secs, 10))
	}
	if code == syncpb.Code_CODE_UNAUTHENTICATED || code == syncpb.Code_CODE_TOKEN_EXPIRED {
		w.Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
	}
	var e apiError
	e.Error.Code = syncproto.CodeName(code)
	e.Error.NumericCode = int32(code)
	e.Error.Message = msg
	e.Error.RetryAfterMS = retryAfter.Milliseconds()
	writeJSON(w, syncproto.HTTPStatus(code), e)
}

// dropConn closes the connection without an answer, as a crashed edge or
// a broken network path would.
func dropConn(t *testing.T, w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		t.Errorf("hijack: %v", err)
		return
	}
	_ = conn.Close()
}

// seen is one request as the server received it.
type seen struct {
	Method, Path, Query, Auth, ContentType string
	Body                                   []byte
}

// journal records requests; handlers run on server goroutines, so it locks.
type journal struct {
	mu   sync.Mutex
	reqs []seen
}

// add reads r's body and records r.
func (j *journal) add(r *http.Request) seen {
	b, _ := io.ReadAll(r.Body)
	s := seen{Method: r.Method, Path: r.URL.EscapedPath(), Query: r.URL.RawQuery, Auth: r.Header.Get("Authorization"),
		ContentType: r.Header.Get("Content-Type"), Body: b}
	j.mu.Lock()
	j.reqs = append(j.reqs, s)
	j.mu.Unlock()
	return s
}

func (j *journal) all() []seen {
	j.mu.Lock()
	defer j.mu.Unlock()
	return slices.Clone(j.reqs)
}

// count is how many requests went to path.
func (j *journal) count(path string) int {
	n := 0
	for _, s := range j.all() {
		if s.Path == path {
			n++
		}
	}
	return n
}

// newTestClient serves h on 127.0.0.1:0 and returns a client of it.
func newTestClient(t *testing.T, h http.Handler, opts ...rest.Option) *rest.Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return rest.New(srv.URL+"/", opts...) // the trailing slash is trimmed
}

// testCtx is a context that ends with the test, bounded by waitLimit.
func testCtx(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), waitLimit)
	t.Cleanup(cancel)
	return ctx
}

// recv waits for a value from ch, failing the test after waitLimit.
func recv[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitLimit):
		t.Fatalf("no %s within %v", what, waitLimit)
		panic("unreachable")
	}
}

// asAPIError fails the test unless err is a *rest.Error.
func asAPIError(t *testing.T, err error) *rest.Error {
	t.Helper()
	var e *rest.Error
	if !errors.As(err, &e) {
		t.Fatalf("err = %v (%T), want a *rest.Error", err, err)
	}
	return e
}

func decodeBody(t *testing.T, b []byte) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("request body %q: %v", b, err)
	}
	return m
}

var (
	testUser   = map[string]any{"id": "u1", "workspace_id": "w1", "username": "ann", "display_name": "Ann", "created_ts": 1700000000000, "workspace_role": "owner"}
	testDevice = map[string]any{"id": "d1", "user_id": "u1", "name": "laptop", "platform": "linux", "created_ts": 1700000000001, "revoked": false}
)

// sessionJSON is httpapi's sessionResponse (refresh answers omit user).
func sessionJSON(access, refresh string, user map[string]any) map[string]any {
	s := map[string]any{"access_token": access, "refresh_token": refresh, "token_type": "Bearer",
		"expires_in": 900, "refresh_expires_in": 2592000, "device": testDevice}
	if user != nil {
		s["user"] = user
	}
	return s
}

// ackJSON is httpapi's sendResponse for a message sent as body. Handlers
// call it on server goroutines, so it reports with Errorf, not Fatalf.
func ackJSON(t *testing.T, body []byte) map[string]any {
	var in map[string]any
	if err := json.Unmarshal(body, &in); err != nil {
		t.Errorf("send body %q: %v", body, err)
	}
	return map[string]any{"conv_id": in["conv_id"], "msg_id": "m-" + fmt.Sprint(in["client_msg_id"]), "seq": 7,
		"ts": 1700000000123, "client_msg_id": in["client_msg_id"], "duplicate": false}
}

func TestRegisterLoginAndBearer(t *testing.T) {
	var j journal
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/accounts", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeJSON(w, http.StatusCreated, map[string]any{"user": testUser})
	})
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeJSON(w, http.StatusOK, sessionJSON("acc-1", "ref-1", testUser))
	})
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeJSON(w, http.StatusOK, map[string]any{"user": testUser, "device_id": "d1"})
	})
	c := newTestClient(t, mux)
	ctx := testCtx(t)

	u, err := c.Register(ctx, "acme", "ann", "correct horse")
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	if u.ID != "u1" || u.Username != "ann" || u.WorkspaceRole != "owner" || u.CreatedTS != 1700000000000 {
		t.Errorf("Register user = %+v", u)
	}
	// Registering answers a user, not a session: no tokens yet.
	if a, r := c.Tokens(); a != "" || r != "" {
		t.Errorf("after Register, Tokens = %q, %q; want none", a, r)
	}

	s, err := c.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ann", Password: "correct horse", DeviceName: "laptop", Platform: "linux"})
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if s.AccessToken != "acc-1" || s.RefreshToken != "ref-1" || s.ExpiresIn != 900 || s.User.ID != "u1" || s.Device.ID != "d1" {
		t.Errorf("Login session = %+v", s)
	}
	if a, r := c.Tokens(); a != "acc-1" || r != "ref-1" {
		t.Errorf("after Login, Tokens = %q, %q; want acc-1, ref-1", a, r)
	}

	me, dev, err := c.Me(ctx)
	if err != nil {
		t.Fatalf("Me: %v", err)
	}
	if me.ID != "u1" || dev != "d1" {
		t.Errorf("Me = %+v, %q", me, dev)
	}

	reqs := j.all()
	if len(reqs) != 3 {
		t.Fatalf("server saw %d requests, want 3: %+v", len(reqs), reqs)
	}
	reg, login, get := reqs[0], reqs[1], reqs[2]
	if reg.Auth != "" || login.Auth != "" {
		t.Errorf("Authorization on register %q / login %q; want none", reg.Auth, login.Auth)
	}
	if reg.ContentType != "application/json" || login.ContentType != "application/json" {
		t.Errorf("Content-Type register %q / login %q; want application/json", reg.ContentType, login.ContentType)
	}
	if got := decodeBody(t, reg.Body); got["workspace"] != "acme" || got["username"] != "ann" || got["password"] != "correct horse" {
		t.Errorf("register body = %v", got)
	}
	lb := decodeBody(t, login.Body)
	if lb["workspace"] != "acme" || lb["username"] != "ann" || lb["password"] != "correct horse" || lb["device_name"] != "laptop" || lb["platform"] != "linux" {
		t.Errorf("login body = %v", lb)
	}
	if _, ok := lb["device_id"]; ok {
		t.Errorf("login body has device_id %v; an empty one must be omitted", lb["device_id"])
	}
	if get.Auth != "Bearer acc-1" {
		t.Errorf("Me Authorization = %q, want %q", get.Auth, "Bearer acc-1")
	}
	if get.ContentType != "" || len(get.Body) != 0 {
		t.Errorf("Me sent a body (%q, %q)", get.ContentType, get.Body)
	}
}

func TestLoginErrorKeepsTokens(t *testing.T) {
	var j journal
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeAPIError(w, syncpb.Code_CODE_UNAUTHENTICATED, "wrong workspace, username or password", 0)
	})
	mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeJSON(w, http.StatusOK, sessionJSON("acc-2", "ref-2", nil))
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

	_, err := c.Login(testCtx(t), rest.LoginRequest{Workspace: "acme", Username: "ann", Password: "wrong"})
	e := asAPIError(t, err)
	if e.Code != syncpb.Code_CODE_UNAUTHENTICATED || e.Status != http.StatusUnauthorized || e.Message != "wrong workspace, username or password" {
		t.Errorf("Login error = %+v", e)
	}
	if a, r := c.Tokens(); a != "acc-1" || r != "ref-1" {
		t.Errorf("after a failed Login, Tokens = %q, %q; want the old acc-1, ref-1", a, r)
	}
	if n := j.count("/v1/sessions/refresh"); n != 0 {
		t.Errorf("a failed login refreshed %d times", n)
	}
}

// expiringEdge accepts only access tokens it issued by refreshing ref-1
// (acc-2, acc-3, ...); any other access token is answered token_expired.
// Its refresh tokens rotate: only the newest (ref-1, then ref-2, ...)
// refreshes; an older one is answered refresh_token_reused.
func expiringEdge(t *testing.T, j *journal) *http.ServeMux {
	var mu sync.Mutex
	issued := map[string]bool{}
	n := 1
	current := "ref-1"
	authorized := func(r *http.Request) bool {
		mu.Lock()
		defer mu.Unlock()
		return issued[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
		s := j.add(r)
		var in struct {
			RefreshToken string `json:"refresh_token"`
		}
		if json.Unmarshal(s.Body, &in) != nil || !strings.HasPrefix(in.RefreshToken, "ref-") {
			writeAPIError(w, syncpb.Code_CODE_UNAUTHENTICATED, "invalid refresh token", 0)
			return
		}
		mu.Lock()
		if in.RefreshToken != current {
			mu.Unlock()
			writeAPIError(w, syncpb.Code_CODE_REFRESH_TOKEN_REUSED, "refresh token was already used", 0)
			return
		}
		n++
		access, refresh := "acc-"+strconv.Itoa(n), "ref-"+strconv.Itoa(n)
		issued[access], current = true, refresh
		mu.Unlock()
		writeJSON(w, http.StatusOK, sessionJSON(access, refresh, nil))
	})
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		if !authorized(r) {
			writeAPIError(w, syncpb.Code_CODE_TOKEN_EXPIRED, "access token expired", 0)
			return
		}
		writeJSON(w, http.StatusOK, map[string]any{"user": testUser, "device_id": "d1"})
	})
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		s := j.add(r)
		if !authorized(r) {
			writeAPIError(w, syncpb.Code_CODE_TOKEN_EXPIRED, "access token expired", 0)
			return
		}
		writeJSON(w, http.StatusCreated, ackJSON(t, s.Body))
	})
	return mux
}

func TestRefreshOnTokenExpired(t *testing.T) {
	tests := []struct {
		name, path string
		call       func(context.Context, *rest.Client) error
	}{
		{"get", "/v1/me", func(ctx context.Context, c *rest.Client) error {
			_, _, err := c.Me(ctx)
			return err
		}},
		{"post", "/v1/messages", func(ctx context.Context, c *rest.Client) error {
			_, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hi"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			c := newTestClient(t, expiringEdge(t, &j), rest.WithTokens("acc-1", "ref-1"))
			if err := tt.call(testCtx(t), c); err != nil {
				t.Fatalf("call: %v", err)
			}
			if a, r := c.Tokens(); a != "acc-2" || r != "ref-2" {
				t.Errorf("Tokens = %q, %q; want the refreshed acc-2, ref-2", a, r)
			}
			reqs := j.all()
			if len(reqs) != 3 {
				t.Fatalf("server saw %d requests, want call, refresh, call: %+v", len(reqs), reqs)
			}
			first, refresh, retry := reqs[0], reqs[1], reqs[2]
			if first.Path != tt.path || first.Auth != "Bearer acc-1" {
				t.Errorf("first request %s with %q; want %s with Bearer acc-1", first.Path, first.Auth, tt.path)
			}
			if refresh.Path != "/v1/sessions/refresh" || refresh.Auth != "" {
				t.Errorf("second request %s with %q; want the refresh without Authorization", refresh.Path, refresh.Auth)
			}
			if got := decodeBody(t, refresh.Body)["refresh_token"]; got != "ref-1" {
				t.Errorf("refresh_token sent = %v, want ref-1", got)
			}
			if retry.Path != tt.path || retry.Auth != "Bearer acc-2" {
				t.Errorf("retry %s with %q; want %s with Bearer acc-2", retry.Path, retry.Auth, tt.path)
			}
			// The retry is the same request: same body, so a send keeps its client_msg_id.
			if !bytes.Equal(first.Body, retry.Body) {
				t.Errorf("retry body %q differs from the first %q", retry.Body, first.Body)
			}
		})
	}
}

func TestRefreshRetriesOnlyOnce(t *testing.T) {
	tests := []struct {
		name, path string
		call       func(context.Context, *rest.Client) error
	}{
		{"me", "/v1/me", func(ctx context.Context, c *rest.Client) error {
			_, _, err := c.Me(ctx)
			return err
		}},
		{"send", "/v1/messages", func(ctx context.Context, c *rest.Client) error {
			_, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hi"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				writeJSON(w, http.StatusOK, sessionJSON("acc-2", "ref-2", nil))
			})
			// Even fresh tokens are rejected (say, the edge's clock is off).
			mux.HandleFunc(tt.path, func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				writeAPIError(w, syncpb.Code_CODE_TOKEN_EXPIRED, "access token expired", 0)
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			err := tt.call(testCtx(t), c)
			e := asAPIError(t, err)
			if e.Code != syncpb.Code_CODE_TOKEN_EXPIRED || e.Status != http.StatusUnauthorized || rest.Code(err) != syncpb.Code_CODE_TOKEN_EXPIRED {
				t.Errorf("err = %+v, want token_expired 401", e)
			}
			if n := j.count(tt.path); n != 2 {
				t.Errorf("%s called %d times, want 2 (the call and one retry)", tt.path, n)
			}
			if n := j.count("/v1/sessions/refresh"); n != 1 {
				t.Errorf("refreshed %d times, want 1", n)
			}
		})
	}
}

func TestNoRefresh(t *testing.T) {
	tests := []struct {
		name          string
		refreshToken  string
		meCode        syncpb.Code
		refreshFails  bool
		wantRefreshes int
	}{
		{name: "refresh rejected", refreshToken: "ref-1", meCode: syncpb.Code_CODE_TOKEN_EXPIRED, refreshFails: true, wantRefreshes: 1},
		{name: "no refresh token", refreshToken: "", meCode: syncpb.Code_CODE_TOKEN_EXPIRED, wantRefreshes: 0},
		{name: "unauthenticated is not expiry", refreshToken: "ref-1", meCode: syncpb.Code_CODE_UNAUTHENTICATED, wantRefreshes: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				if tt.refreshFails {
					writeAPIError(w, syncpb.Code_CODE_UNAUTHENTICATED, "device has been revoked", 0)
					return
				}
				writeJSON(w, http.StatusOK, sessionJSON("acc-2", "ref-2", nil))
			})
			mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				writeAPIError(w, tt.meCode, "nope", 0)
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", tt.refreshToken))

			_, _, err := c.Me(testCtx(t))
			// The caller sees the call's own error, not the refresh's.
			if e := asAPIError(t, err); e.Code != tt.meCode || e.Message != "nope" || e.Status != http.StatusUnauthorized {
				t.Errorf("err = %+v, want %s 401 nope", e, syncproto.CodeName(tt.meCode))
			}
			if n := j.count("/v1/me"); n != 1 {
				t.Errorf("/v1/me called %d times, want 1", n)
			}
			if n := j.count("/v1/sessions/refresh"); n != tt.wantRefreshes {
				t.Errorf("refreshed %d times, want %d", n, tt.wantRefreshes)
			}
			if a, r := c.Tokens(); a != "acc-1" || r != tt.refreshToken {
				t.Errorf("Tokens = %q, %q; want them unchanged", a, r)
			}
		})
	}
}

// TestConcurrentRefresh runs calls that all find the token expired at once:
// they make one refresh (a second with the same token would be reuse);
// run with -race it checks the token handling.
func TestConcurrentRefresh(t *testing.T) {
	var j journal
	c := newTestClient(t, expiringEdge(t, &j), rest.WithTokens("acc-1", "ref-1"))
	ctx := testCtx(t)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() {
			_, _, err := c.Me(ctx)
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("Me: %v", err)
		}
	}
	if a, _ := c.Tokens(); a == "acc-1" {
		t.Errorf("access token not refreshed")
	}
	if n := j.count("/v1/sessions/refresh"); n != 1 {
		t.Errorf("%d refreshes, want 1", n)
	}
}

// Each refresh presents the newest refresh token, and OnTokens sees every
// new pair in order.
func TestRefreshKeepsRotatedToken(t *testing.T) {
	var j journal
	var saved []string
	c := newTestClient(t, expiringEdge(t, &j), rest.WithTokens("acc-1", "ref-1"),
		rest.OnTokens(func(access, refresh string) { saved = append(saved, access+"/"+refresh) }))
	ctx := testCtx(t)
	for range 3 {
		if err := c.Refresh(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if a, r := c.Tokens(); a != "acc-4" || r != "ref-4" {
		t.Errorf("Tokens = %q, %q; want acc-4, ref-4", a, r)
	}
	if got := strings.Join(saved, " "); got != "acc-2/ref-2 acc-3/ref-3 acc-4/ref-4" {
		t.Errorf("OnTokens saw %s", got)
	}
	var sent []any
	for _, s := range j.all() {
		sent = append(sent, decodeBody(t, s.Body)["refresh_token"])
	}
	if fmt.Sprint(sent) != "[ref-1 ref-2 ref-3]" {
		t.Errorf("refresh tokens sent: %v", sent)
	}
}

// A refresh whose answer is lost is retried with the same token (the
// edge's grace answers it); a refused one is not retried.
func TestRefreshRetriesLostAnswer(t *testing.T) {
	var j journal
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
		s := j.add(r)
		switch tok := decodeBody(t, s.Body)["refresh_token"]; {
		case tok == "ref-bad":
			writeAPIError(w, syncpb.Code_CODE_REFRESH_TOKEN_REUSED, "refresh token was already used", 0)
		case j.count("/v1/sessions/refresh") == 1:
			dropConn(t, w)
		default:
			writeJSON(w, http.StatusOK, sessionJSON("acc-2", "ref-2", nil))
		}
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))
	if err := c.Refresh(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if _, r := c.Tokens(); r != "ref-2" {
		t.Errorf("refresh token %q, want ref-2", r)
	}
	for i, s := range j.all() {
		if tok := decodeBody(t, s.Body)["refresh_token"]; tok != "ref-1" {
			t.Errorf("attempt %d sent %v, want ref-1", i, tok)
		}
	}
	if n := len(j.all()); n != 2 {
		t.Errorf("%d attempts, want 2", n)
	}

	bad := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-bad"))
	err := bad.Refresh(testCtx(t))
	if rest.Code(err) != syncpb.Code_CODE_REFRESH_TOKEN_REUSED {
		t.Fatalf("refused refresh: %v", err)
	}
	if n := len(j.all()); n != 3 {
		t.Errorf("a refused refresh was retried (%d requests)", n)
	}
	if _, r := bad.Tokens(); r != "ref-bad" {
		t.Errorf("a refused refresh changed the token to %q", r)
	}
}

func TestSendAssignsClientMsgID(t *testing.T) {
	var j journal
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		s := j.add(r)
		writeJSON(w, http.StatusCreated, ackJSON(t, s.Body))
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))
	ctx := testCtx(t)

	var ids []string
	for range 2 {
		res, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hello"})
		if err != nil {
			t.Fatalf("Send: %v", err)
		}
		ids = append(ids, res.ClientMsgID)
	}
	res, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", ClientMsgID: "mine-1", Body: "hello", ContentType: "text/markdown"})
	if err != nil {
		t.Fatalf("Send: %v", err)
	}
	if res.ClientMsgID != "mine-1" || res.ConvID != "c1" || res.MsgID != "m-mine-1" || res.Seq != 7 || res.TS != 1700000000123 {
		t.Errorf("Send result = %+v", res)
	}

	reqs := j.all()
	for i, s := range reqs {
		b := decodeBody(t, s.Body)
		id, _ := b["client_msg_id"].(string)
		if !syncproto.ValidClientMsgID(id) {
			t.Errorf("request %d client_msg_id %q is not valid", i, id)
		}
		if b["conv_id"] != "c1" || b["body"] != "hello" || s.Auth != "Bearer acc-1" {
			t.Errorf("request %d = %+v, body %v", i, s, b)
		}
		if i < 2 && id != ids[i] {
			t.Errorf("request %d sent client_msg_id %q, result has %q", i, id, ids[i])
		}
	}
	if ids[0] == ids[1] {
		t.Errorf("two sends got the same client_msg_id %q", ids[0])
	}
	if got := decodeBody(t, reqs[2].Body); got["client_msg_id"] != "mine-1" || got["content_type"] != "text/markdown" {
		t.Errorf("explicit send body = %v", got)
	}
	if _, ok := decodeBody(t, reqs[0].Body)["content_type"]; ok {
		t.Errorf("an empty content_type must be omitted")
	}
}

func TestSendRetryKeepsClientMsgID(t *testing.T) {
	tests := []struct {
		name string
		fail func(t *testing.T, w http.ResponseWriter)
	}{
		{"unavailable", func(t *testing.T, w http.ResponseWriter) {
			writeAPIError(w, syncpb.Code_CODE_UNAVAILABLE, "shard has no leader", 0)
		}},
		{"timeout", func(t *testing.T, w http.ResponseWriter) {
			writeAPIError(w, syncpb.Code_CODE_TIMEOUT, "the request timed out", 0)
		}},
		{"rate limited", func(t *testing.T, w http.ResponseWriter) {
			writeAPIError(w, syncpb.Code_CODE_RATE_LIMITED, "too many requests", 5*time.Millisecond)
		}},
		{"connection closed", dropConn},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
				s := j.add(r)
				if j.count("/v1/messages") <= 2 {
					tt.fail(t, w)
					return
				}
				writeJSON(w, http.StatusCreated, ackJSON(t, s.Body))
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			res, err := c.Send(testCtx(t), rest.SendRequest{ConvID: "c1", Body: "hello"})
			if err != nil {
				t.Fatalf("Send: %v", err)
			}
			reqs := j.all()
			if len(reqs) != 3 {
				t.Fatalf("server saw %d sends, want 3", len(reqs))
			}
			id := decodeBody(t, reqs[0].Body)["client_msg_id"]
			if id == "" || id == nil {
				t.Fatalf("first send had no client_msg_id")
			}
			for i, s := range reqs {
				if got := decodeBody(t, s.Body)["client_msg_id"]; got != id {
					t.Errorf("send %d client_msg_id = %v, want the first's %v", i, got, id)
				}
				if !bytes.Equal(s.Body, reqs[0].Body) {
					t.Errorf("send %d body %q differs from the first %q", i, s.Body, reqs[0].Body)
				}
			}
			if res.ClientMsgID != id {
				t.Errorf("result client_msg_id = %q, want %v", res.ClientMsgID, id)
			}
		})
	}
}

func TestNonRetryableErrors(t *testing.T) {
	tests := []struct {
		code   syncpb.Code
		status int
		msg    string
	}{
		{syncpb.Code_CODE_NOT_MEMBER, http.StatusForbidden, "you are not a member of this conversation"},
		{syncpb.Code_CODE_FORBIDDEN, http.StatusForbidden, "device has been revoked"},
		{syncpb.Code_CODE_INVALID_ARGUMENT, http.StatusBadRequest, "a message needs a body or attachments"},
		{syncpb.Code_CODE_MALFORMED, http.StatusBadRequest, "invalid JSON at byte 3"},
		{syncpb.Code_CODE_UNAUTHENTICATED, http.StatusUnauthorized, "missing bearer token"},
		{syncpb.Code_CODE_NOT_FOUND, http.StatusNotFound, "no such conversation"},
		{syncpb.Code_CODE_CONFLICT, http.StatusConflict, "already exists"},
		{syncpb.Code_CODE_TOO_LARGE, http.StatusRequestEntityTooLarge, "message body exceeds 65536 bytes"},
		{syncpb.Code_CODE_INTERNAL, http.StatusInternalServerError, "internal error"},
	}
	for _, tt := range tests {
		t.Run(syncproto.CodeName(tt.code), func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				writeAPIError(w, tt.code, tt.msg, 0)
			})
			mux.HandleFunc("POST /v1/sessions/refresh", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				writeJSON(w, http.StatusOK, sessionJSON("acc-2", "ref-2", nil))
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			res, err := c.Send(testCtx(t), rest.SendRequest{ConvID: "c1", Body: "hello"})
			if res != nil {
				t.Errorf("Send result = %+v, want nil with the error", res)
			}
			e := asAPIError(t, err)
			if e.Code != tt.code || e.Status != tt.status || e.Message != tt.msg || e.RetryAfter != 0 {
				t.Errorf("err = %+v, want code %s status %d message %q", e, syncproto.CodeName(tt.code), tt.status, tt.msg)
			}
			if got := rest.Code(err); got != tt.code {
				t.Errorf("rest.Code = %v, want %v", got, tt.code)
			}
			if w := e.Wire(); w.Code != tt.code || w.Message != tt.msg || w.Retryable() {
				t.Errorf("Wire() = %+v", w)
			}
			if s := err.Error(); !strings.Contains(s, syncproto.CodeName(tt.code)) || !strings.Contains(s, strconv.Itoa(tt.status)) {
				t.Errorf("Error() = %q, want the code name and status", s)
			}
			if n := len(j.all()); n != 1 {
				t.Errorf("server saw %d requests, want 1 (no retry, no refresh)", n)
			}
		})
	}
}

func TestCode(t *testing.T) {
	apiErr := &rest.Error{Code: syncpb.Code_CODE_NOT_MEMBER, Status: http.StatusForbidden}
	tests := []struct {
		name string
		err  error
		want syncpb.Code
	}{
		{"nil", nil, syncpb.Code_CODE_OK},
		{"network", &url.Error{Op: "Post", URL: "http://x", Err: io.ErrUnexpectedEOF}, syncpb.Code_CODE_OK},
		{"api", apiErr, syncpb.Code_CODE_NOT_MEMBER},
		{"wrapped api", fmt.Errorf("send: %w", apiErr), syncpb.Code_CODE_NOT_MEMBER},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rest.Code(tt.err); got != tt.want {
				t.Errorf("Code(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestRateLimitedRetryAfter(t *testing.T) {
	var j journal
	header := make(chan string, 1)
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		j.add(r)
		writeAPIError(w, syncpb.Code_CODE_RATE_LIMITED, "too many requests", 1500*time.Millisecond)
		header <- w.Header().Get("Retry-After")
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

	_, _, err := c.Me(testCtx(t))
	e := asAPIError(t, err)
	if e.Code != syncpb.Code_CODE_RATE_LIMITED || e.Status != http.StatusTooManyRequests || e.RetryAfter != 1500*time.Millisecond {
		t.Errorf("err = %+v, want rate_limited 429 with RetryAfter 1.5s", e)
	}
	if h := recv(t, header, "Retry-After header"); h != "2" {
		t.Errorf("emulated edge sent Retry-After %q, want 2", h) // a check of the fake: the edge rounds up
	}
	if w := e.Wire(); w.RetryAfter != 1500*time.Millisecond || !w.Retryable() {
		t.Errorf("Wire() = %+v, want retryable with RetryAfter 1.5s", w)
	}
	if n := j.count("/v1/me"); n != 1 {
		t.Errorf("Me called %d times; only Send retries", n)
	}
}

// handlerTransport serves requests in process, so a test can run in a
// synctest bubble, where the network cannot go.
type handlerTransport struct{ h http.Handler }

func (ht handlerTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	if err := r.Context().Err(); err != nil {
		return nil, err
	}
	rec := httptest.NewRecorder()
	ht.h.ServeHTTP(rec, r)
	return rec.Result(), nil
}

// TestSendWaitsRetryAfter checks, on synctest's clock, that Send waits at
// least the server's retry hint before resending.
func TestSendWaitsRetryAfter(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		const hint = 1500 * time.Millisecond
		var at []time.Time // the handler runs on Send's goroutine
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at = append(at, time.Now())
			body, _ := io.ReadAll(r.Body)
			if len(at) == 1 {
				writeAPIError(w, syncpb.Code_CODE_RATE_LIMITED, "too many requests", hint)
				return
			}
			writeJSON(w, http.StatusCreated, ackJSON(t, body))
		})
		c := rest.New("http://edge.test", rest.WithHTTPClient(&http.Client{Transport: handlerTransport{h}}), rest.WithTokens("acc-1", "ref-1"))

		if _, err := c.Send(t.Context(), rest.SendRequest{ConvID: "c1", Body: "hello"}); err != nil {
			t.Fatalf("Send: %v", err)
		}
		if len(at) != 2 {
			t.Fatalf("%d sends, want 2", len(at))
		}
		if gap := at[1].Sub(at[0]); gap < hint {
			t.Errorf("resent after %v, before the server's Retry-After of %v", gap, hint)
		}
	})
}

func TestSendStopsWhenContextEnds(t *testing.T) {
	tests := []struct {
		name string
		// answer is the server's answer; it may block until r's context ends.
		answer func(w http.ResponseWriter, r *http.Request, release <-chan struct{})
		// cancelFirst cancels before the call.
		cancelFirst bool
		wantCalls   int
		wantCtxErr  bool
	}{
		{
			name: "waiting to retry",
			answer: func(w http.ResponseWriter, r *http.Request, _ <-chan struct{}) {
				writeAPIError(w, syncpb.Code_CODE_UNAVAILABLE, "shard has no leader", time.Minute)
			},
			wantCalls: 1,
		},
		{
			name: "request in flight",
			answer: func(w http.ResponseWriter, r *http.Request, release <-chan struct{}) {
				select {
				case <-r.Context().Done():
				case <-release:
				}
			},
			wantCalls:  1,
			wantCtxErr: true,
		},
		{
			name:        "cancelled before the call",
			cancelFirst: true,
			wantCalls:   0,
			wantCtxErr:  true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			arrived := make(chan struct{}, 1)
			release := make(chan struct{})
			mux := http.NewServeMux()
			mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				select {
				case arrived <- struct{}{}:
				default:
				}
				tt.answer(w, r, release)
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))
			t.Cleanup(func() { close(release) }) // runs before the server's Close

			ctx, cancel := context.WithCancel(testCtx(t))
			defer cancel()
			if tt.cancelFirst {
				cancel()
			}
			done := make(chan error, 1)
			go func() {
				_, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hello"})
				done <- err
			}()
			if !tt.cancelFirst {
				recv(t, arrived, "send at the server")
				cancel()
			}
			err := recv(t, done, "return from Send after cancel")
			if err == nil {
				t.Fatalf("Send succeeded after cancel")
			}
			if tt.wantCtxErr && !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want it to wrap context.Canceled", err)
			}
			if n := j.count("/v1/messages"); n != tt.wantCalls {
				t.Errorf("server saw %d sends, want %d", n, tt.wantCalls)
			}
		})
	}
}

func TestHistoryQuery(t *testing.T) {
	tests := []struct {
		name     string
		req      rest.HistoryRequest
		wantPath string
		want     url.Values
	}{
		{"forward from the start", rest.HistoryRequest{ConvID: "c1"},
			"/v1/conversations/c1/history", url.Values{"dir": {"forward"}}},
		{"backward from the end", rest.HistoryRequest{ConvID: "c1", Backward: true, Limit: 20},
			"/v1/conversations/c1/history", url.Values{"dir": {"backward"}, "limit": {"20"}}},
		{"forward after a cursor", rest.HistoryRequest{ConvID: "c1", Cursor: 42, Limit: 100},
			"/v1/conversations/c1/history", url.Values{"dir": {"forward"}, "cursor": {"42"}, "limit": {"100"}}},
		{"backward before a large cursor", rest.HistoryRequest{ConvID: "c1", Cursor: 1 << 40, Backward: true},
			"/v1/conversations/c1/history", url.Values{"dir": {"backward"}, "cursor": {"1099511627776"}}},
		{"negative limit is no limit", rest.HistoryRequest{ConvID: "c1", Limit: -5},
			"/v1/conversations/c1/history", url.Values{"dir": {"forward"}}},
		{"id is path-escaped", rest.HistoryRequest{ConvID: "c 1/x?y"},
			"/v1/conversations/c%201%2Fx%3Fy/history", url.Values{"dir": {"forward"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			pathID := make(chan string, 1)
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/conversations/{id}/history", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				id := r.PathValue("id")
				pathID <- id
				writeJSON(w, http.StatusOK, map[string]any{
					"conv_id": id,
					"messages": []map[string]any{
						{"conv_id": id, "seq": 43, "msg_id": "m43", "client_msg_id": "k43", "sender_user_id": "u1", "sender_device_id": "d1",
							"ts": 1700000000043, "body": "hello", "content_type": "text/plain; charset=utf-8", "attachments": []any{}, "kind": "user"},
						{"conv_id": id, "seq": 44, "msg_id": "m44", "client_msg_id": "", "sender_user_id": "u1", "sender_device_id": "",
							"ts": 1700000000044, "body": `{"type":"member_added"}`, "content_type": "application/json", "attachments": []any{}, "kind": "system"},
					},
					"next_cursor": 44,
					"last_seq":    90,
				})
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			h, err := c.History(testCtx(t), tt.req)
			if err != nil {
				t.Fatalf("History: %v", err)
			}
			reqs := j.all()
			if len(reqs) != 1 {
				t.Fatalf("server saw %d requests", len(reqs))
			}
			s := reqs[0]
			if s.Path != tt.wantPath || s.Method != http.MethodGet || s.Auth != "Bearer acc-1" {
				t.Errorf("request %s %s with %q; want GET %s with Bearer acc-1", s.Method, s.Path, s.Auth, tt.wantPath)
			}
			if id := recv(t, pathID, "conversation id"); id != tt.req.ConvID {
				t.Errorf("server read conversation id %q, want %q", id, tt.req.ConvID)
			}
			got, err := url.ParseQuery(s.Query)
			if err != nil {
				t.Fatalf("query %q: %v", s.Query, err)
			}
			if !equalValues(got, tt.want) {
				t.Errorf("query = %v, want %v", got, tt.want)
			}
			if h.ConvID != tt.req.ConvID || h.NextCursor != 44 || h.LastSeq != 90 || len(h.Messages) != 2 {
				t.Fatalf("History = %+v", h)
			}
			m := h.Messages[0]
			if m.Seq != 43 || m.MsgID != "m43" || m.ClientMsgID != "k43" || m.SenderUserID != "u1" || m.SenderDeviceID != "d1" ||
				m.TS != 1700000000043 || m.Body != "hello" || m.Kind != "user" {
				t.Errorf("message 0 = %+v", m)
			}
			if h.Messages[1].Kind != "system" || h.Messages[1].Body != `{"type":"member_added"}` {
				t.Errorf("message 1 = %+v", h.Messages[1])
			}
		})
	}
}

func equalValues(a, b url.Values) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if !slices.Equal(v, b[k]) {
			return false
		}
	}
	return true
}

func TestMalformedSuccessBody(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		status                   int
		call                     func(context.Context, *rest.Client) error
	}{
		{"login not json", "POST", "/v1/sessions", "<html>hello</html>", http.StatusOK, func(ctx context.Context, c *rest.Client) error {
			_, err := c.Login(ctx, rest.LoginRequest{Workspace: "acme", Username: "ann", Password: "pw"})
			return err
		}},
		{"register empty", "POST", "/v1/accounts", "", http.StatusCreated, func(ctx context.Context, c *rest.Client) error {
			_, err := c.Register(ctx, "acme", "ann", "pw")
			return err
		}},
		{"me wrong type", "GET", "/v1/me", `{"user":"ann"}`, http.StatusOK, func(ctx context.Context, c *rest.Client) error {
			_, _, err := c.Me(ctx)
			return err
		}},
		{"conversations array", "GET", "/v1/conversations", `[]`, http.StatusOK, func(ctx context.Context, c *rest.Client) error {
			_, err := c.Conversations(ctx)
			return err
		}},
		{"history truncated", "GET", "/v1/conversations/c1/history", `{"conv_id":"c1","messages":[{"seq":1`, http.StatusOK, func(ctx context.Context, c *rest.Client) error {
			_, err := c.History(ctx, rest.HistoryRequest{ConvID: "c1"})
			return err
		}},
		// The message landed; an answer the client cannot read must not
		// make it resend for ever.
		{"send ack wrong type", "POST", "/v1/messages", `{"conv_id":"c1","seq":"seven"}`, http.StatusCreated, func(ctx context.Context, c *rest.Client) error {
			_, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hi"})
			return err
		}},
		{"send ack not json", "POST", "/v1/messages", `ok`, http.StatusCreated, func(ctx context.Context, c *rest.Client) error {
			_, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hi"})
			return err
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc(tt.method+" "+tt.path, func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			err := tt.call(testCtx(t), c)
			if err == nil {
				t.Fatalf("no error for body %q", tt.body)
			}
			var syntaxErr *json.SyntaxError
			var typeErr *json.UnmarshalTypeError
			if !errors.As(err, &syntaxErr) && !errors.As(err, &typeErr) {
				t.Errorf("err = %v, want a JSON decode error in its chain", err)
			}
			if rest.Code(err) != syncpb.Code_CODE_OK {
				t.Errorf("err = %v is an API error; the server said %d", err, tt.status)
			}
			if n := j.count(tt.path); n != 1 {
				t.Errorf("server saw %d requests, want 1", n)
			}
			if a, r := c.Tokens(); a != "acc-1" || r != "ref-1" {
				t.Errorf("Tokens = %q, %q; want them unchanged", a, r)
			}
		})
	}
}

func TestMalformedErrorBody(t *testing.T) {
	long := strings.Repeat("x", 1000)
	tests := []struct {
		name, body  string
		status      int
		wantCode    syncpb.Code
		wantMessage string
	}{
		{"proxy html", "<html>502 Bad Gateway</html>", http.StatusBadGateway, syncpb.Code_CODE_UNAVAILABLE, "<html>502 Bad Gateway</html>"},
		{"plain text 503", "upstream connect error", http.StatusServiceUnavailable, syncpb.Code_CODE_UNAVAILABLE, "upstream connect error"},
		{"proxy timeout", "timeout", http.StatusGatewayTimeout, syncpb.Code_CODE_TIMEOUT, "timeout"},
		{"error without code", `{"error":{"message":"hm"}}`, http.StatusInternalServerError, syncpb.Code_CODE_INTERNAL, `{"error":{"message":"hm"}}`},
		{"error is a string", `{"error":"nope"}`, http.StatusNotFound, syncpb.Code_CODE_INTERNAL, `{"error":"nope"}`},
		{"empty", "", http.StatusForbidden, syncpb.Code_CODE_INTERNAL, ""},
		{"long body is cut", long, http.StatusBadRequest, syncpb.Code_CODE_INTERNAL, long[:200]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var j journal
			mux := http.NewServeMux()
			mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
				j.add(r)
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(tt.status)
				_, _ = io.WriteString(w, tt.body)
			})
			c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))

			_, _, err := c.Me(testCtx(t))
			e := asAPIError(t, err)
			if e.Code != tt.wantCode || e.Status != tt.status || e.Message != tt.wantMessage {
				t.Errorf("err = %+v, want %v, HTTP %d, message %q", e, tt.wantCode, tt.status, tt.wantMessage)
			}
			if n := j.count("/v1/me"); n != 1 {
				t.Errorf("server saw %d calls, want 1", n)
			}
		})
	}
}

// A gateway error in front of the edge leaves a send's outcome unknown:
// Send retries it with the same client_msg_id.
func TestSendRetriesGatewayErrors(t *testing.T) {
	var j journal
	var ids []string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/messages", func(w http.ResponseWriter, r *http.Request) {
		var req rest.SendRequest
		if err := json.Unmarshal(j.add(r).Body, &req); err != nil {
			t.Errorf("decode: %v", err)
		}
		ids = append(ids, req.ClientMsgID)
		if len(ids) == 1 {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = fmt.Fprintf(w, `{"conv_id":"c1","msg_id":"m1","seq":1,"ts":5,"client_msg_id":%q}`, req.ClientMsgID)
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))
	res, err := c.Send(testCtx(t), rest.SendRequest{ConvID: "c1", Body: "hi"})
	if err != nil || res.Seq != 1 {
		t.Fatalf("send: %+v %v", res, err)
	}
	if len(ids) != 2 || ids[0] != ids[1] || ids[0] == "" {
		t.Fatalf("client_msg_ids %q", ids)
	}
}

// An error body without numeric_code is mapped by its name; a Retry-After
// header counts when the body has no hint.
func TestErrorByNameAndRetryAfterHeader(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/me", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "3")
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusTooManyRequests)
		_, _ = io.WriteString(w, `{"error":{"code":"rate_limited","message":"slow down"}}`)
	})
	c := newTestClient(t, mux, rest.WithTokens("acc-1", "ref-1"))
	_, _, err := c.Me(testCtx(t))
	e := asAPIError(t, err)
	if e.Code != syncpb.Code_CODE_RATE_LIMITED || e.RetryAfter != 3*time.Second {
		t.Fatalf("err = %+v", e)
	}
}

// A base URL that cannot make a request fails at once, without retries.
func TestBadBaseURL(t *testing.T) {
	c := rest.New("http://bad host:x", rest.WithTokens("acc-1", "ref-1"))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := c.Send(ctx, rest.SendRequest{ConvID: "c1", Body: "hi"}); err == nil || ctx.Err() != nil {
		t.Fatalf("send to a bad URL: %v (ctx %v)", err, ctx.Err())
	}
}
