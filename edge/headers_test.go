package edge

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/nats-io/nats.go"
	"github.com/quic-go/quic-go/http3"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/devcert"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/edge/wsconn"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// wantHeaders are the security headers every response must carry, as a
// security review of a JSON API expects them.
var wantHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
	"X-Content-Type-Options":       "nosniff",
	"X-Frame-Options":              "DENY",
	"Referrer-Policy":              "no-referrer",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cache-Control":                "no-store",
}

// notFoundCore answers region_info and refuses everything else with
// NOT_FOUND: enough for every handler to answer.
func notFoundCore(t *testing.T, nc *nats.Conn) {
	t.Helper()
	serveCore(t, nc, func(req *syncpb.CoreRequest) *syncpb.CoreResponse {
		if _, ok := req.Op.(*syncpb.CoreRequest_RegionInfo); ok {
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{Region: "local", ShardCount: 2}}}
		}
		return &syncpb.CoreResponse{Error: &syncpb.Error{Code: syncpb.Code_CODE_NOT_FOUND, Message: "not here"}}
	})
}

// newHeadersEdge runs an Edge with a UDP port (so the certificate hashes
// and HTTP/3 are served) and returns it with an access token.
func newHeadersEdge(t *testing.T) (*Edge, string) {
	t.Helper()
	ns := natstest.Server(t)
	notFoundCore(t, natstest.Conn(t, ns))
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", QUIC: quicport.Config{Addr: "127.0.0.1:0"},
		Cert: devcert.Config{Dir: t.TempDir()}, NATSURL: ns.ClientURL(),
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
		_ = e.Close()
	})
	poll.Until(t, 10*time.Second, "healthz", func() bool {
		code, err := get(t, "http://"+e.Addr().String()+"/healthz", "")
		return err == nil && code == 200
	})
	tok := testToken(t, "d_1")
	return e, tok
}

// checkHeaders fails unless h has every security header; cacheControl
// is the Cache-Control the route sets ("" for the default, no-store).
func checkHeaders(t *testing.T, what string, h http.Header, cacheControl string) {
	t.Helper()
	for name, want := range wantHeaders {
		if name == "Cache-Control" && cacheControl != "" {
			want = cacheControl
		}
		if got := h.Values(name); len(got) != 1 || got[0] != want {
			t.Errorf("%s: %s %q, want %q", what, name, got, want)
		}
	}
}

type probe struct {
	method, path string
	body         string
	header       map[string]string
	cacheControl string
}

func send(t *testing.T, c *http.Client, base string, p probe, token string) *http.Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var body io.Reader
	if p.body != "" {
		body = strings.NewReader(p.body)
	}
	req, err := http.NewRequestWithContext(ctx, p.method, base+p.path, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for k, v := range p.header {
		req.Header.Set(k, v)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", p.method, p.path, err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

// apiProbes are the operations of openapi.json, each with its path's
// wildcards filled in, so a new route is covered without a new row.
func apiProbes(t *testing.T) []probe {
	t.Helper()
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatal(err)
	}
	wild := regexp.MustCompile(`\{[a-z_]+\}`)
	var out []probe
	for path, item := range doc.Paths {
		for method := range item {
			m := strings.ToUpper(method)
			if !slices.Contains([]string{"GET", "POST", "PUT", "PATCH", "DELETE"}, m) {
				continue
			}
			p := probe{method: m, path: wild.ReplaceAllString(path, "x_1")}
			if m != "GET" && m != "DELETE" {
				p.body = "{}"
			}
			if path == "/v1/openapi.json" {
				p.cacheControl = "public, max-age=300"
			}
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].path+out[i].method < out[j].path+out[j].method })
	if len(out) < 20 {
		t.Fatalf("only %d operations in openapi.json", len(out))
	}
	return out
}

// otherProbes are the answers outside the route table: the WebSocket path
// without an upgrade, the certificate hashes, the mux's 404 and 405, and
// CORS preflights.
var otherProbes = []probe{
	{method: "GET", path: wsconn.Path},
	{method: "GET", path: syncproto.CertHashPath},
	{method: "HEAD", path: syncproto.CertHashPath},
	{method: "OPTIONS", path: syncproto.CertHashPath},
	{method: "POST", path: syncproto.CertHashPath},
	{method: "HEAD", path: "/healthz"},
	{method: "GET", path: "/nope"},
	{method: "GET", path: "/v1/nope"},
	{method: "DELETE", path: "/v1/me"},
	{method: "OPTIONS", path: "/v1/me", header: map[string]string{"Origin": "https://app.example.com", "Access-Control-Request-Method": "GET"}},
}

// TestSecurityHeadersOnEveryResponse: every operation of openapi.json,
// with a token and without, and every other answer of the HTTP port
// (WebSocket upgrades included) carries the security headers; so do the
// API's answers over HTTP/3 on the UDP port.
func TestSecurityHeadersOnEveryResponse(t *testing.T) {
	e, tok := newHeadersEdge(t)
	base := "http://" + e.Addr().String()
	probes := append(apiProbes(t), otherProbes...)
	for _, p := range probes {
		for _, token := range []string{tok, ""} {
			resp := send(t, http.DefaultClient, base, p, token)
			checkHeaders(t, p.method+" "+p.path+" ("+resp.Status+")", resp.Header, p.cacheControl)
		}
	}

	// The certificate hashes keep their own CORS, for pages of any origin.
	if resp := send(t, http.DefaultClient, base, probe{method: "GET", path: syncproto.CertHashPath}, ""); resp.Header.Get("Access-Control-Allow-Origin") != "*" {
		t.Errorf("cert hashes: Access-Control-Allow-Origin %q", resp.Header.Get("Access-Control-Allow-Origin"))
	}

	// A WebSocket upgrade.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, "ws://"+e.Addr().String()+wsconn.Path, &websocket.DialOptions{Subprotocols: []string{wsframe.Subprotocol}})
	if err != nil {
		t.Fatalf("websocket: %v", err)
	}
	_ = c.CloseNow()
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("websocket: %s", resp.Status)
	}
	checkHeaders(t, "websocket upgrade", resp.Header, "")

	// HTTP/3 on the UDP port, pinned to the edge's certificate.
	pins := e.CertHashes()
	h3 := &http3.Transport{TLSClientConfig: &tls.Config{
		InsecureSkipVerify: true, // the pin below is the check
		VerifyConnection: func(cs tls.ConnectionState) error {
			if len(cs.PeerCertificates) > 0 && slices.Contains(pins, sha256.Sum256(cs.PeerCertificates[0].Raw)) {
				return nil
			}
			return errors.New("certificate not pinned")
		},
	}}
	defer h3.Close()
	h3c := &http.Client{Transport: h3}
	for _, p := range []probe{{method: "GET", path: "/healthz"}, {method: "GET", path: "/v1/me"}, {method: "GET", path: "/v1/nope"}} {
		resp := send(t, h3c, "https://"+e.UDPAddr().String(), p, "")
		if resp.ProtoMajor != 3 {
			t.Fatalf("over the UDP port: %s", resp.Proto)
		}
		checkHeaders(t, "HTTP/3 "+p.method+" "+p.path+" ("+resp.Status+")", resp.Header, "")
	}
}
