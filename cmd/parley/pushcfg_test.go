package main

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// parley keygen --vapid writes a key pair a core reads back; it never
// overwrites one.
func TestKeygenVAPID(t *testing.T) {
	path := filepath.Join(t.TempDir(), "keys", "vapid")
	var out, errOut bytes.Buffer
	if code := run([]string{"keygen", "--vapid", path}, &out, &errOut); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	v, err := readVAPIDFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := base64.RawURLEncoding.DecodeString(v.Public)
	if err != nil || len(pub) != 65 || pub[0] != 4 {
		t.Fatalf("public key %q: %v", v.Public, err)
	}
	if priv, err := base64.RawURLEncoding.DecodeString(v.Private); err != nil || len(priv) != 32 {
		t.Fatalf("private key: %d bytes, %v", len(priv), err)
	}
	if !strings.Contains(out.String(), v.Public) {
		t.Fatalf("output %q does not show the public key", out.String())
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode(), err)
	}
	if code := run([]string{"keygen", "--vapid", path}, &out, &errOut); code == 0 {
		t.Fatal("overwrote an existing key file")
	}

	f := &pushFile{VAPIDFile: path, Subscriber: "mailto:ops@example.com", GraceMs: 500}
	f.Gateways = map[string]struct {
		URL   string  `json:"url"`
		Rate  float64 `json:"rate"`
		Burst int     `json:"burst"`
	}{"fcm": {URL: "https://gw.example/_matrix/push/v1/notify"}}
	pc, err := f.config()
	if err != nil {
		t.Fatal(err)
	}
	if pc.VAPID != v || pc.Grace != 500*time.Millisecond || pc.Gateways["fcm"].URL == "" {
		t.Fatalf("push config %+v", pc)
	}
	if pc, err := (*pushFile)(nil).config(); pc != nil || err != nil {
		t.Fatalf("no push object: %v %v", pc, err)
	}
	if _, err := (&pushFile{VAPIDFile: path}).config(); err == nil {
		t.Fatal("VAPID keys without a subscriber accepted")
	}
}
