package devcert

import (
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
)

func serveHashes(t *testing.T, m *Manager, method string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, syncproto.CertHashPath, nil)
	req.Header.Set("Origin", "https://app.example")
	rec := httptest.NewRecorder()
	m.HashHandler().ServeHTTP(rec, req)
	return rec
}

// TestHashHandler checks the JSON shape that a browser maps onto
// serverCertificateHashes, and the headers that let any origin fetch it
// fresh, before and after a rotation.
func TestHashHandler(t *testing.T) {
	clock := newTestClock()
	m := newTestManager(t, Config{Now: clock.Now})

	check := func(want [][32]byte) {
		t.Helper()
		rec := serveHashes(t, m, http.MethodGet)
		if rec.Code != http.StatusOK {
			t.Fatalf("status %d", rec.Code)
		}
		for k, v := range map[string]string{
			"Content-Type":                "application/json",
			"Cache-Control":               "no-store",
			"Access-Control-Allow-Origin": "*",
		} {
			if got := rec.Header().Get(k); got != v {
				t.Errorf("%s: %q, want %q", k, got, v)
			}
		}
		// The exact shape: {"hashes":[{"algorithm","value"}...],"not_after"}.
		var raw map[string]json.RawMessage
		if err := json.Unmarshal(rec.Body.Bytes(), &raw); err != nil {
			t.Fatalf("body %s: %v", rec.Body, err)
		}
		if len(raw) != 2 || raw["hashes"] == nil || raw["not_after"] == nil {
			t.Fatalf("body %s: want exactly hashes and not_after", rec.Body)
		}
		var entries []map[string]string
		if err := json.Unmarshal(raw["hashes"], &entries); err != nil {
			t.Fatalf("hashes %s: %v", raw["hashes"], err)
		}
		var got [][32]byte
		for _, e := range entries {
			if len(e) != 2 || e["algorithm"] != "sha-256" {
				t.Fatalf("entry %v: want {algorithm: sha-256, value}", e)
			}
			b, err := base64.StdEncoding.DecodeString(e["value"])
			if err != nil || len(b) != 32 {
				t.Fatalf("value %q: %d bytes, %v; want 32 bytes of standard base64", e["value"], len(b), err)
			}
			got = append(got, [32]byte(b))
		}
		if !slices.Equal(got, want) {
			t.Fatalf("hashes %s, want %s", fmtHashes(got), fmtHashes(want))
		}
		var notAfter string
		if err := json.Unmarshal(raw["not_after"], &notAfter); err != nil {
			t.Fatal(err)
		}
		if at, err := time.Parse(time.RFC3339, notAfter); err != nil || !at.Equal(leafOf(t, m).NotAfter) {
			t.Errorf("not_after %q (%v), want the served certificate's %v", notAfter, err, leafOf(t, m).NotAfter)
		}
	}
	first := hashOf(t, m)
	check([][32]byte{first})

	clock.Advance(DefaultLifetime - DefaultLifetime/3)
	if err := m.Reload(); err != nil {
		t.Fatal(err)
	}
	check([][32]byte{hashOf(t, m), first})
}

func TestHashHandlerMethods(t *testing.T) {
	m := newTestManager(t, Config{})

	rec := serveHashes(t, m, http.MethodOptions)
	if rec.Code != http.StatusNoContent || rec.Header().Get("Access-Control-Allow-Origin") != "*" ||
		rec.Header().Get("Access-Control-Allow-Methods") != "GET, HEAD, OPTIONS" {
		t.Errorf("preflight: %d %v", rec.Code, rec.Header())
	}

	rec = serveHashes(t, m, http.MethodHead)
	if rec.Code != http.StatusOK || rec.Body.Len() != 0 || rec.Header().Get("Cache-Control") != "no-store" {
		t.Errorf("HEAD: %d, %d bytes, %v", rec.Code, rec.Body.Len(), rec.Header())
	}

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		rec = serveHashes(t, m, method)
		if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") != "GET, HEAD, OPTIONS" {
			t.Errorf("%s: %d, Allow %q", method, rec.Code, rec.Header().Get("Allow"))
		}
	}
}

// TestHashHandlerEmpty: with nothing pinnable the list is [], not null.
func TestHashHandlerEmpty(t *testing.T) {
	clock := newTestClock()
	dir := t.TempDir()
	long := selfSigned(t, mustKey(t, elliptic.P256()), clock.Now(), clock.Now().Add(90*24*time.Hour))
	certFile, keyFile := writePair(t, dir, long, clock.Now())
	m := newTestManager(t, Config{CertFile: certFile, KeyFile: keyFile, Now: clock.Now})
	var list syncproto.CertHashList
	rec := serveHashes(t, m, http.MethodGet)
	if err := json.Unmarshal(rec.Body.Bytes(), &list); err != nil {
		t.Fatal(err)
	}
	if list.Hashes == nil || len(list.Hashes) != 0 {
		t.Errorf("body %s: want \"hashes\":[]", rec.Body)
	}
}
