package main

import (
	"bytes"
	"encoding/base64"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
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

	var c core.Config
	fs := flag.NewFlagSet("t", flag.ContinueOnError)
	pushFlags(fs, &c, "")
	if err := fs.Parse([]string{"-push-vapid", path, "-push-subscriber", "mailto:ops@example.com", "-push-grace", "500ms",
		"-push-gateways", "fcm=https://gw.example/_matrix/push/v1/notify"}); err != nil {
		t.Fatal(err)
	}
	pc := c.Push
	if pc == nil || pc.VAPID != v || pc.Grace != 500*time.Millisecond || pc.Gateways["fcm"].URL == "" || pc.Validate() != nil {
		t.Fatalf("push config %+v", pc)
	}
	var none core.Config
	pushFlags(flag.NewFlagSet("t", flag.ContinueOnError), &none, "")
	if none.Push != nil {
		t.Fatal("push flags not given made a push config")
	}
	bad := &core.PushConfig{VAPID: v}
	if bad.Validate() == nil {
		t.Fatal("VAPID keys without a subscriber accepted")
	}
	gw := flag.NewFlagSet("t", flag.ContinueOnError)
	pushFlags(gw, &core.Config{}, "")
	if err := gw.Parse([]string{"-push-gateways", "nourl"}); err == nil {
		t.Fatal("a gateway without a URL accepted")
	}
}
