package push

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"testing"
)

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(b []byte) (int, error) { w.t.Log(string(b)); return len(b), nil }

func TestGuard(t *testing.T) {
	gws := map[string]Gateway{"fcm": {URL: "https://gw.example/_matrix/push/v1/notify"}}
	wp := func(ep string) Target { return Target{Kind: KindWebPush, Endpoint: ep, P256dh: "k", Auth: "a"} }
	for _, tc := range []struct {
		name     string
		t        Target
		loopback bool
		ok       bool
	}{
		{"public https", wp("https://fcm.googleapis.com/fcm/send/abc"), false, true},
		{"public ip", wp("https://8.8.8.8/x"), false, true},
		{"http", wp("http://push.example/x"), false, false},
		{"loopback", wp("https://127.0.0.1/x"), false, false},
		{"localhost", wp("https://localhost:8443/x"), false, false},
		{"private 10", wp("https://10.1.2.3/x"), false, false},
		{"private 192.168", wp("https://192.168.1.1/x"), false, false},
		{"link-local metadata", wp("https://169.254.169.254/latest"), false, false},
		{"cgnat", wp("https://100.64.0.1/x"), false, false},
		{"ipv6 loopback", wp("https://[::1]/x"), false, false},
		{"ipv6 ula", wp("https://[fd00::1]/x"), false, false},
		{"mapped v4 loopback", wp("https://[::ffff:127.0.0.1]/x"), false, false},
		{"unspecified", wp("https://0.0.0.0/x"), false, false},
		{"user info", wp("https://u:p@push.example/x"), false, false},
		{"not a url", wp("::"), false, false},
		{"no keys", Target{Kind: KindWebPush, Endpoint: "https://push.example/x"}, false, false},
		{"test switch: loopback http", wp("http://127.0.0.1:9/x"), true, true},
		{"test switch: still no private", wp("http://10.0.0.1/x"), true, false},
		{"gateway by name", Target{Kind: KindGateway, Gateway: "fcm", PushKey: "k"}, false, true},
		{"gateway unknown", Target{Kind: KindGateway, Gateway: "evil", PushKey: "k"}, false, false},
		{"gateway without key", Target{Kind: KindGateway, Gateway: "fcm"}, false, false},
		{"no kind", Target{}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Guard{AllowLoopback: tc.loopback}.CheckTarget(tc.t, gws)
			if (err == nil) != tc.ok {
				t.Fatalf("CheckTarget = %v, want ok %v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrBadTarget) {
				t.Fatalf("error %v is not ErrBadTarget", err)
			}
		})
	}
}

// The dialer refuses a private address even when the name looked public
// (DNS rebinding), and admits loopback only with the test switch.
func TestGuardDial(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	if _, err := (Guard{}).DialContext(context.Background(), "tcp", ln.Addr().String()); !errors.Is(err, ErrBadTarget) {
		t.Fatalf("production dial to loopback: %v", err)
	}
	c, err := (Guard{AllowLoopback: true}).DialContext(context.Background(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatalf("test dial to loopback: %v", err)
	}
	c.Close()
}
