// Package httpapi is the edge's HTTP /v1 API for scripts and integrations:
// JSON over HTTP, bearer access tokens, every operation forwarded to the
// core as a syncpb.CoreRequest whose caller is the verified token's
// identity.
//
// The routes are declared once, in the routes table, which registers the
// mux and is checked against the OpenAPI document (openapi.json, served at
// /v1/openapi.json) by a test.
package httpapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/edge/attach"
	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/internal/edgemetrics"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Core is what the API needs of the core; *corerpc.Client implements it.
type Core interface {
	// Call sends req and returns the core's answer or a *syncproto.Error.
	// It is safe for concurrent use and honours ctx's deadline.
	Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)
	// RegionInfo asks the core to describe the region; /readyz uses it.
	RegionInfo(ctx context.Context) (*syncpb.RegionInfo, error)
}

// Defaults for Config's zero values.
const (
	DefaultMaxBodyBytes   = 256 << 10
	DefaultRequestTimeout = 10 * time.Second
	DefaultUserRate       = rate.Limit(20)
	DefaultUserBurst      = 40
	DefaultIPRate         = rate.Limit(5)
	DefaultIPBurst        = 20
	DefaultMaxLimiters    = 100_000
	DefaultReadyTTL       = 2 * time.Second
	DefaultReadyTimeout   = time.Second
	// Failed and throttled log-ins are logged at most this often (burst
	// loginLogBurst); the next line logged counts those held back.
	loginLogRate  = rate.Limit(10)
	loginLogBurst = 50
)

// Config configures an API. Zero values mean the defaults.
type Config struct {
	// Core and Auth are required.
	Core Core
	Auth *auth.Auth
	// Revoked, when set, is given the revocation of each request that
	// revoked tokens (a device revoked, a password changed) before the
	// answer goes out; the edge applies it to its revocation set and live
	// sessions. It must not block.
	Revoked func(*syncpb.Revocation)
	// MaxBodyBytes bounds request bodies (default 256 KiB); larger ones
	// are answered 413.
	MaxBodyBytes int64
	// RequestTimeout bounds each request's work, core calls included
	// (default 10 s).
	RequestTimeout time.Duration
	// UserRate and UserBurst limit each user's authenticated calls
	// (default 20/s, burst 40). rate.Inf disables the limit.
	UserRate  rate.Limit
	UserBurst int
	// IPRate and IPBurst limit unauthenticated calls (register, login,
	// refresh) per client IP (default 5/s, burst 20). rate.Inf disables.
	IPRate  rate.Limit
	IPBurst int
	// MaxLimiters bounds each limiter map (default 100,000 keys).
	MaxLimiters int
	// CORS lets pages of other origins call /v1 (default: none).
	CORS CORSConfig
	// LoginThrottle delays log-ins to an account after failed ones, from
	// any IP (see auth.Throttle; its clock defaults to Now).
	LoginThrottle auth.ThrottleConfig
	// ReadyTTL is how long a successful core check keeps /readyz ready
	// (default 2 s); ReadyTimeout bounds one check (default 1 s).
	ReadyTTL, ReadyTimeout time.Duration
	// Metrics are the series the edge's transports share (sends, rate
	// limits); nil: not measured.
	Metrics *edgemetrics.Shared
	// Attach, when set, serves uploads (/v1/uploads, tus) and attachment
	// downloads, and resolves a send's attachments by upload id; without
	// it those routes answer 404. Its owner closes it.
	Attach *attach.Service
	// Logger gets the access log (debug) and internal errors (default:
	// discard).
	Logger *slog.Logger
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Core == nil:
		return errors.New("httpapi: Core is required")
	case c.Auth == nil:
		return errors.New("httpapi: Auth is required")
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("httpapi: MaxBodyBytes %d is negative", c.MaxBodyBytes)
	case c.RequestTimeout < 0:
		return fmt.Errorf("httpapi: RequestTimeout %v is negative", c.RequestTimeout)
	case c.UserRate < 0 || c.UserBurst < 0:
		return errors.New("httpapi: UserRate and UserBurst must not be negative")
	case c.IPRate < 0 || c.IPBurst < 0:
		return errors.New("httpapi: IPRate and IPBurst must not be negative")
	case c.MaxLimiters < 0:
		return fmt.Errorf("httpapi: MaxLimiters %d is negative", c.MaxLimiters)
	case c.ReadyTTL < 0 || c.ReadyTimeout < 0:
		return errors.New("httpapi: ReadyTTL and ReadyTimeout must not be negative")
	}
	if err := c.CORS.Validate(); err != nil {
		return err
	}
	if err := c.LoginThrottle.Validate(); err != nil {
		return fmt.Errorf("httpapi: LoginThrottle: %w", err)
	}
	return nil
}

// API serves the /v1 API. It is an http.Handler, safe for concurrent use.
type API struct {
	core     Core
	auth     *auth.Auth
	revoked  func(*syncpb.Revocation)
	maxBody  int64
	timeout  time.Duration
	log      *slog.Logger
	now      func() time.Time
	users    *limiters
	ips      *limiters
	logins   *auth.Throttle // log-ins, by workspace and username
	reauths  *auth.Throttle // current-password checks, by workspace and user id
	loginLog *logBudget
	cors     *cors
	mux      *http.ServeMux
	readyTTL time.Duration
	readyTO  time.Duration
	metrics  *edgemetrics.Shared
	attach   *attach.Service

	readyMu   sync.Mutex
	readyAt   time.Time
	readyInfo *syncpb.RegionInfo
}

// New returns an API for cfg.
func New(cfg Config) (*API, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	a := &API{
		core: cfg.Core, auth: cfg.Auth, revoked: cfg.Revoked, maxBody: cfg.MaxBodyBytes, timeout: cfg.RequestTimeout,
		log: cfg.Logger, now: cfg.Now, readyTTL: cfg.ReadyTTL, readyTO: cfg.ReadyTimeout, metrics: cfg.Metrics,
		attach: cfg.Attach,
	}
	if a.maxBody == 0 {
		a.maxBody = DefaultMaxBodyBytes
	}
	if a.timeout == 0 {
		a.timeout = DefaultRequestTimeout
	}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	if a.now == nil {
		a.now = time.Now
	}
	if a.readyTTL == 0 {
		a.readyTTL = DefaultReadyTTL
	}
	if a.readyTO == 0 {
		a.readyTO = DefaultReadyTimeout
	}
	maxLim := cfg.MaxLimiters
	if maxLim == 0 {
		maxLim = DefaultMaxLimiters
	}
	a.users = newLimiters(orDefault(cfg.UserRate, DefaultUserRate), orDefault(cfg.UserBurst, DefaultUserBurst), maxLim, a.now)
	a.ips = newLimiters(orDefault(cfg.IPRate, DefaultIPRate), orDefault(cfg.IPBurst, DefaultIPBurst), maxLim, a.now)
	tc := cfg.LoginThrottle
	if tc.Now == nil {
		tc.Now = a.now
	}
	var err error
	if a.logins, err = auth.NewThrottle(tc); err != nil {
		return nil, fmt.Errorf("httpapi: LoginThrottle: %w", err)
	}
	if a.reauths, err = auth.NewThrottle(tc); err != nil {
		return nil, fmt.Errorf("httpapi: LoginThrottle: %w", err)
	}
	a.loginLog = newLogBudget(loginLogRate, loginLogBurst)
	a.cors = newCORS(cfg.CORS)
	a.mux = http.NewServeMux()
	for _, rt := range routes {
		a.mux.Handle(rt.method+" "+rt.pattern, a.wrap(rt))
	}
	return a, nil
}

func orDefault[T comparable](v, d T) T {
	var zero T
	if v == zero {
		return d
	}
	return v
}

// route is one endpoint. The table below registers the mux and is
// compared with openapi.json by TestOpenAPIMatchesRoutes.
type route struct {
	method, pattern string
	// auth: needs a bearer access token; limited per user. Routes
	// without auth that do real work are limited per IP (ipLimit).
	auth, ipLimit bool
	// core: the route calls the core (and so can answer 503 and 504).
	core bool
	h    func(*API, *call) error
}

var routes = []route{
	{"GET", "/healthz", false, false, false, (*API).healthz},
	{"GET", "/livez", false, false, false, (*API).healthz},
	{"GET", "/readyz", false, false, true, (*API).readyz},
	{"GET", "/v1/openapi.json", false, false, false, (*API).openapi},

	{"POST", "/v1/accounts", false, true, true, (*API).register},
	{"POST", "/v1/sessions", false, true, true, (*API).login},
	{"POST", "/v1/sessions/refresh", false, true, true, (*API).refresh},
	{"GET", "/v1/me", true, false, true, (*API).me},
	{"POST", "/v1/devices", true, false, true, (*API).createDevice},
	{"GET", "/v1/devices", true, false, true, (*API).listDevices},
	{"GET", "/v1/workspace", true, false, true, (*API).getWorkspace},
	{"PATCH", "/v1/workspace", true, false, true, (*API).updateWorkspace},
	{"DELETE", "/v1/workspace/users/{user_id}", true, false, true, (*API).removeUser},
	{"DELETE", "/v1/devices/{id}", true, false, true, (*API).revokeDevice},
	{"PUT", "/v1/devices/{id}/push", true, false, true, (*API).setPushTarget},
	{"DELETE", "/v1/devices/{id}/push", true, false, true, (*API).removePushTarget},
	{"PUT", "/v1/conversations/{id}/notify", true, false, true, (*API).setNotifyLevel},
	{"GET", syncproto.VAPIDKeyPath, false, false, true, (*API).vapidKey},

	{"POST", "/v1/conversations", true, false, true, (*API).createConversation},
	{"GET", "/v1/conversations", true, false, true, (*API).listConversations},
	{"GET", "/v1/conversations/{id}", true, false, true, (*API).getConversation},
	{"POST", "/v1/conversations/{id}/members", true, false, true, (*API).addMembers},
	{"DELETE", "/v1/conversations/{id}/members/{user_id}", true, false, true, (*API).removeMember},
	{"PATCH", "/v1/conversations/{id}/members/{user_id}", true, false, true, (*API).setRole},
	{"GET", "/v1/conversations/{id}/history", true, false, true, (*API).history},

	{"POST", "/v1/messages", true, false, true, (*API).send},
	{"POST", "/v1/receipts", true, false, true, (*API).receipt},
	{"GET", "/v1/conversations/{id}/receipts", true, false, true, (*API).receipts},
	{"GET", "/v1/unread", true, false, true, (*API).unread},
	{"GET", "/v1/users", true, false, true, (*API).lookupUsers},
	{"GET", "/v1/search", true, false, true, (*API).search},
	{"POST", "/v1/me/password", true, false, true, (*API).changePassword},

	{"POST", "/v1/uploads", true, false, false, (*API).createUpload},
	{"PATCH", "/v1/uploads/{id}", true, false, false, (*API).resumeUpload},
	{"GET", "/v1/uploads/{id}", true, false, false, (*API).getUpload},
	{"GET", "/v1/attachments/{id}", true, false, true, (*API).download},
	{"GET", "/v1/attachments/{id}/thumb", true, false, true, (*API).downloadThumb},
	{"GET", "/v1/blobs/{kind}/{id}", false, false, false, (*API).serveBlob},
}

// call is one request on its way through a handler.
type call struct {
	w      http.ResponseWriter
	r      *http.Request
	ctx    context.Context // r's context with the request deadline
	claims *auth.Claims    // nil on routes without auth
	info   *reqInfo
	body   io.ReadCloser // r's body before the size bound, for uploads
}

// caller is the identity passed to the core: always the verified token's.
func (c *call) caller() *syncpb.Caller {
	if c.claims == nil {
		return nil
	}
	return &syncpb.Caller{WorkspaceId: c.claims.WorkspaceID, UserId: c.claims.UserID, DeviceId: c.claims.DeviceID}
}

// reqInfo collects access-log fields as a request is served.
type reqInfo struct {
	route, user, device, conv string
}

type infoKey struct{}

// ServeHTTP serves one request: CORS (see CORSConfig), routing (JSON
// 404/405 for unknown routes), panic recovery, and the access log.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	info := &reqInfo{}
	rw := &statusWriter{ResponseWriter: w}
	r = r.WithContext(context.WithValue(r.Context(), infoKey{}, info))
	defer func() {
		if p := recover(); p != nil {
			if p == http.ErrAbortHandler {
				panic(p)
			}
			a.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
			if !rw.wrote {
				a.writeError(rw, r, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "internal error"))
			}
		}
		a.log.Debug("http", "method", r.Method, "route", info.route, "status", rw.status, "dur", time.Since(start),
			"user", info.user, "device", info.device, "conv", info.conv, "ip", clientIP(r))
	}()
	if a.serveCORS(rw, r) {
		return
	}
	if _, pattern := a.mux.Handler(r); pattern == "" {
		a.unrouted(rw, r)
		return
	}
	a.mux.ServeHTTP(rw, r)
}

// unrouted answers a request no route matches: the mux's own 404 or 405
// (with its Allow header) as a JSON error, or its redirect to a cleaned
// path as is.
func (a *API) unrouted(w http.ResponseWriter, r *http.Request) {
	h, _ := a.mux.Handler(r)
	rec := &recorder{header: http.Header{}}
	h.ServeHTTP(rec, r)
	switch rec.status {
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", rec.header.Get("Allow"))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "method %s not allowed here", r.Method)))
	case http.StatusNotFound, 0:
		a.writeError(w, r, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such endpoint"))
	default:
		for k, v := range rec.header {
			w.Header()[k] = v
		}
		w.WriteHeader(rec.status)
	}
}

// wrap turns a route into a handler: limits, auth, body bound, deadline.
func (a *API) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info, _ := r.Context().Value(infoKey{}).(*reqInfo)
		if info == nil {
			info = &reqInfo{}
		}
		info.route = rt.pattern
		c := &call{w: w, r: r, info: info, body: r.Body}
		if err := a.admit(rt, c); err != nil {
			a.writeError(w, r, err)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, a.maxBody)
		ctx, cancel := context.WithTimeout(r.Context(), a.timeout)
		defer cancel()
		c.ctx = ctx
		if err := rt.h(a, c); err != nil {
			a.writeError(w, r, err)
		}
	})
}

// admit applies a route's rate limits and authentication.
func (a *API) admit(rt route, c *call) error {
	if rt.ipLimit {
		if ok, wait := a.ips.allow(clientIP(c.r)); !ok {
			a.metrics.RateLimited("ip")
			return &syncproto.Error{Code: syncpb.Code_CODE_RATE_LIMITED, Message: "too many requests from this address", RetryAfter: wait}
		}
	}
	if !rt.auth {
		return nil
	}
	tok, ok := bearer(c.r)
	if !ok {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="parley"`)
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "missing bearer token")
	}
	claims, err := a.auth.Verify(tok, auth.Access)
	if err != nil {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="parley", error="invalid_token"`)
		return err
	}
	c.claims = claims
	c.info.user, c.info.device = claims.UserID, claims.DeviceID
	if ok, wait := a.users.allow(claims.WorkspaceID + "/" + claims.UserID); !ok {
		a.metrics.RateLimited("user")
		return &syncproto.Error{Code: syncpb.Code_CODE_RATE_LIMITED, Message: "too many requests", RetryAfter: wait}
	}
	return nil
}

// bearer extracts the token of an "Authorization: Bearer <token>" header.
func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

// clientIP is the peer address of r. Forwarding headers are not trusted.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// statusWriter records the status for the access log and whether the
// response has started.
type statusWriter struct {
	http.ResponseWriter
	status int
	wrote  bool
}

func (w *statusWriter) WriteHeader(code int) {
	if !w.wrote {
		w.status, w.wrote = code, true
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if !w.wrote {
		w.status, w.wrote = http.StatusOK, true
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the connection.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// recorder captures the mux's own small 404/405/redirect answers.
type recorder struct {
	header http.Header
	status int
}

func (r *recorder) Header() http.Header { return r.header }
func (r *recorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
}
func (r *recorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return len(b), nil
}
