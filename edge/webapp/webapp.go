// Package webapp serves a browser app's static files from an fs.FS on the
// edge's HTTP port, in front of the /v1 API.
//
// The files are content addressed as a whole: New hashes every file but
// index.html into a build id and serves them under /assets/<id>/, cached
// for a year as immutable; index.html (no-cache) is the only entry point,
// and every "%ASSETS%" in it becomes /assets/<id>. Any change to any file
// gives a new id, so a browser never mixes an old module with a new one,
// and no build step has to rename files. The one exception is the
// service worker, sw.js, served at /sw.js when Files has it: a
// registration names its script by a URL that must not change.
//
// Requests for paths no file has and that look like app routes (GET or
// HEAD, no dot in the last segment) get index.html, so a reload of
// /c/<conversation> works. The API's own paths (/v1, /.well-known, /metrics,
// /healthz, /livez, /readyz, /debug) are never shadowed: they, and every
// other request, go to Next, which answers its JSON 404 for what it does
// not know.
package webapp

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// Config is what New needs.
type Config struct {
	// Files holds index.html and the assets it names (required).
	Files fs.FS
	// Next serves every request that is not the app's (required).
	Next http.Handler
	// UDPPort returns the port of the edge's WebTransport listener (0:
	// none); it names the port in the page's connect-src and in
	// /config.json. Nil: none.
	UDPPort func() int
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Files == nil:
		return errors.New("webapp: Files is required")
	case c.Next == nil:
		return errors.New("webapp: Next is required")
	}
	return nil
}

// assetPrefix is where the hashed assets live; AssetPlaceholder in
// index.html becomes assetPrefix + id.
const (
	assetPrefix      = "/assets/"
	AssetPlaceholder = "%ASSETS%"
	// ConfigPath answers the page's transports as JSON (see config).
	ConfigPath = "/config.json"
	// ServiceWorkerPath serves Files' sw.js, when it has one, at a fixed
	// URL (a registration names its script by URL, so it cannot be a
	// hashed one), no-cache so a browser checks it for updates; its scope
	// is the whole app, the default for a script at the root.
	ServiceWorkerPath = "/sw.js"
)

// reserved paths belong to the API, whatever files the app has.
var reserved = []string{"/v1", "/.well-known", "/metrics", "/healthz", "/livez", "/readyz", "/debug"}

// Handler serves the app; see the package doc.
type Handler struct {
	cfg   Config
	id    string
	index []byte
	mod   time.Time
}

// New reads index.html and hashes the assets.
func New(cfg Config) (*Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	index, err := fs.ReadFile(cfg.Files, "index.html")
	if err != nil {
		return nil, fmt.Errorf("webapp: %w", err)
	}
	sum := sha256.New()
	err = fs.WalkDir(cfg.Files, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || p == "index.html" {
			return err
		}
		b, err := fs.ReadFile(cfg.Files, p)
		if err != nil {
			return err
		}
		fmt.Fprintf(sum, "%s\x00%d\x00", p, len(b))
		sum.Write(b)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("webapp: %w", err)
	}
	h := &Handler{cfg: cfg, id: hex.EncodeToString(sum.Sum(nil))[:16], mod: time.Now()}
	h.index = bytes.ReplaceAll(index, []byte(AssetPlaceholder), []byte(assetPrefix+h.id))
	return h, nil
}

// AssetBase is the path prefix of the assets, /assets/<id>.
func (h *Handler) AssetBase() string { return assetPrefix + h.id }

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := r.URL.Path
	if (r.Method != http.MethodGet && r.Method != http.MethodHead) || isReserved(p) {
		h.cfg.Next.ServeHTTP(w, r)
		return
	}
	switch {
	case p == ConfigPath:
		h.config(w, r)
	case p == ServiceWorkerPath:
		h.serviceWorker(w, r)
	case strings.HasPrefix(p, assetPrefix):
		h.asset(w, r, strings.TrimPrefix(p, assetPrefix))
	case p == "/" || p == "/index.html" || !strings.Contains(path.Base(p), "."):
		h.page(w, r)
	default:
		h.cfg.Next.ServeHTTP(w, r)
	}
}

func isReserved(p string) bool {
	for _, r := range reserved {
		if p == r || strings.HasPrefix(p, r+"/") {
			return true
		}
	}
	return false
}

// page serves index.html under the app's policy.
func (h *Handler) page(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.policy(r))
	hd.Set("Cache-Control", "no-cache")
	hd.Set("Content-Type", "text/html; charset=utf-8")
	http.ServeContent(w, r, "index.html", h.mod, bytes.NewReader(h.index))
}

// policy is the page's Content-Security-Policy: scripts, styles, images
// and fonts from the edge alone (no inline script or style, no eval), and
// connections to the edge's HTTP port (fetch, WebSocket) and its
// WebTransport port.
func (h *Handler) policy(r *http.Request) string {
	connect := "'self'"
	if host := hostOf(r); host != "" {
		connect += " ws://" + r.Host + " wss://" + r.Host
		if port := h.udpPort(); port > 0 {
			connect += " https://" + net.JoinHostPort(host, strconv.Itoa(port))
		}
	}
	return "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; font-src 'self'; " +
		"connect-src " + connect + "; manifest-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
}

// hostOf is the request's host name, or "" when Host is not a plain host
// (or host:port) that is safe to repeat in a header.
func hostOf(r *http.Request) string {
	if r.Host == "" || strings.IndexFunc(r.Host, func(c rune) bool {
		return !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune(".-:[]", c))
	}) >= 0 {
		return ""
	}
	host, _, err := net.SplitHostPort(r.Host)
	if err != nil {
		host = r.Host
	}
	if strings.HasPrefix(host, "[") {
		host = strings.Trim(host, "[]")
	}
	return host
}

func (h *Handler) udpPort() int {
	if h.cfg.UDPPort == nil {
		return 0
	}
	return h.cfg.UDPPort()
}

// config answers {"webtransport": "https://host:port/v1/wt" or "",
// "websocket": "/v1/ws", "cert_hashes": "/.well-known/parley/cert-hashes"}:
// where the page's session goes, on the host the page was loaded from.
func (h *Handler) config(w http.ResponseWriter, r *http.Request) {
	wt := ""
	if host, port := hostOf(r), h.udpPort(); host != "" && port > 0 {
		wt = "https://" + net.JoinHostPort(host, strconv.Itoa(port)) + "/v1/wt"
	}
	body := fmt.Sprintf(`{"webtransport":%q,"websocket":"/v1/ws","cert_hashes":"/.well-known/parley/cert-hashes"}`+"\n", wt)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	http.ServeContent(w, r, "config.json", time.Time{}, strings.NewReader(body))
}

// serviceWorker serves sw.js at ServiceWorkerPath (the API's 404 when
// Files has none), under a policy of its own: a worker's policy is its
// script's response header, not the page's.
func (h *Handler) serviceWorker(w http.ResponseWriter, r *http.Request) {
	b, err := fs.ReadFile(h.cfg.Files, "sw.js")
	if err != nil {
		h.cfg.Next.ServeHTTP(w, r)
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", types[".js"])
	hd.Set("Cache-Control", "no-cache")
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Content-Security-Policy", "default-src 'none'; connect-src 'self'")
	http.ServeContent(w, r, "sw.js", h.mod, bytes.NewReader(b))
}

// asset serves id/name from Files when id is the current build's.
func (h *Handler) asset(w http.ResponseWriter, r *http.Request, rest string) {
	id, name, ok := strings.Cut(rest, "/")
	if !ok || id != h.id || name == "" || name == "index.html" || !fs.ValidPath(name) {
		h.cfg.Next.ServeHTTP(w, r) // the API's JSON 404
		return
	}
	b, err := fs.ReadFile(h.cfg.Files, name)
	if err != nil {
		h.cfg.Next.ServeHTTP(w, r)
		return
	}
	ct := contentType(name)
	if ct == "" {
		h.cfg.Next.ServeHTTP(w, r) // nothing the app serves
		return
	}
	hd := w.Header()
	hd.Set("Content-Type", ct)
	hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	hd.Set("X-Content-Type-Options", "nosniff")
	http.ServeContent(w, r, name, h.mod, bytes.NewReader(b))
}

// types are the content types of what an app ships, by extension: not
// the system's mime.types, which differ between machines.
var types = map[string]string{
	".js":    "text/javascript; charset=utf-8",
	".mjs":   "text/javascript; charset=utf-8",
	".css":   "text/css; charset=utf-8",
	".svg":   "image/svg+xml",
	".png":   "image/png",
	".ico":   "image/x-icon",
	".json":  "application/json",
	".woff2": "font/woff2",
	".txt":   "text/plain; charset=utf-8",
}

func contentType(name string) string {
	return types[path.Ext(name)]
}
