package edge

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/edge/wsconn"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

var testKey = auth.Key{ID: "t", Secret: bytes.Repeat([]byte{7}, 32)}

// coreDouble answers region_info, and list_devices after release is closed
// (so a test can hold a request in flight).
func coreDouble(t *testing.T, nc *nats.Conn, release <-chan struct{}, arrived chan<- struct{}) {
	t.Helper()
	serveCore(t, nc, func(req *syncpb.CoreRequest) *syncpb.CoreResponse {
		resp := &syncpb.CoreResponse{}
		switch req.Op.(type) {
		case *syncpb.CoreRequest_RegionInfo:
			resp.Result = &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{Region: "local", ShardCount: 2,
				ShardLeaders: []string{"fake", "fake"}, DirectoryLeader: "fake"}}
		case *syncpb.CoreRequest_ListDevices:
			arrived <- struct{}{}
			<-release
			resp.Result = &syncpb.CoreResponse_Devices{Devices: &syncpb.DeviceList{}}
		}
		return resp
	})
}

func get(t *testing.T, url, token string) (int, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode, nil
}

func TestRunServesAndShutsDownGracefully(t *testing.T) {
	ns := natstest.Server(t)
	release, arrived := make(chan struct{}), make(chan struct{}, 1)
	coreDouble(t, natstest.Conn(t, ns), release, arrived)
	releaseOnce := sync.OnceFunc(func() { close(release) })
	t.Cleanup(releaseOnce) // runs first: never leave the responder blocked

	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	base := "http://" + e.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(ctx) }()

	poll.Until(t, 10*time.Second, "readyz", func() bool {
		code, err := get(t, base+"/readyz", "")
		return err == nil && code == 200
	})
	if code, err := get(t, base+"/healthz", ""); err != nil || code != 200 {
		t.Fatalf("healthz: %d %v", code, err)
	}

	// A request in flight when shutdown starts still completes.
	tok := testToken(t, "d_1")
	inflight := make(chan int, 1)
	go func() {
		code, err := get(t, base+"/v1/devices", tok)
		if err != nil {
			t.Error(err)
		}
		inflight <- code
	}()
	select {
	case <-arrived:
	case <-time.After(10 * time.Second):
		t.Fatal("request did not reach the core")
	}
	cancel()
	// New connections are refused once shutdown has begun.
	poll.Until(t, 10*time.Second, "listener to close", func() bool {
		c, err := net.DialTimeout("tcp", e.Addr().String(), time.Second)
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	releaseOnce()
	if code := <-inflight; code != 200 {
		t.Fatalf("in-flight request during shutdown: %d", code)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctx ended")
	}
	if err := e.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Run: %v", err)
	}
}

func TestCloseWithoutRunReleasesPortAndKeepsCallersConn(t *testing.T) {
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATS: nc,
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	addr := e.Addr().String()
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("port not released: %v", err)
	}
	ln.Close()
	if nc.IsClosed() {
		t.Fatal("Close closed a NATS connection the edge does not own")
	}
	if err := e.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close: %v", err)
	}
}

func TestCloseStopsRun(t *testing.T) {
	ns := natstest.Server(t)
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATSURL: ns.ClientURL(),
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	ran := make(chan error, 1)
	go func() { ran <- e.Run(context.Background()) }()
	poll.Until(t, 10*time.Second, "healthz", func() bool {
		code, err := get(t, "http://"+e.Addr().String()+"/healthz", "")
		return err == nil && code == 200
	})
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after Close")
	}
}

func TestNATSDownAtStart(t *testing.T) {
	// The edge starts while NATS is unreachable: it serves healthz, is not
	// ready, and answers API calls 503 rather than failing to start.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	e, err := New(Config{HTTPAddr: "127.0.0.1:0", NATSURL: "nats://" + dead,
		Auth:           auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}},
		RequestTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = e.Close() })
	go func() { _ = e.Run(context.Background()) }()
	base := "http://" + e.Addr().String()
	poll.Until(t, 10*time.Second, "healthz", func() bool {
		code, err := get(t, base+"/healthz", "")
		return err == nil && code == 200
	})
	if code, err := get(t, base+"/readyz", ""); err != nil || code != 503 {
		t.Fatalf("readyz without NATS: %d %v", code, err)
	}
}

func TestConfigValidate(t *testing.T) {
	nc := &nats.Conn{}
	keys := []auth.Key{testKey}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok with url", Config{NATSURL: "nats://127.0.0.1:4222", Auth: auth.Config{Keys: keys}}, true},
		{"ok with conn", Config{NATS: nc, Auth: auth.Config{Keys: keys}}, true},
		{"no nats", Config{Auth: auth.Config{Keys: keys}}, false},
		{"both nats", Config{NATS: nc, NATSURL: "nats://x", Auth: auth.Config{Keys: keys}}, false},
		{"no keys", Config{NATS: nc}, false},
		{"short key", Config{NATS: nc, Auth: auth.Config{Keys: []auth.Key{{ID: "k", Secret: []byte("short")}}}}, false},
		{"bad region", Config{NATS: nc, Auth: auth.Config{Keys: keys}, Region: "EU West"}, false},
		{"negative shutdown", Config{NATS: nc, Auth: auth.Config{Keys: keys}, ShutdownTimeout: -1}, false},
		{"negative close timeout", Config{NATS: nc, Auth: auth.Config{Keys: keys}, WebSocket: wsconn.Config{CloseTimeout: -1}}, false},
		{"negative hello timeout", Config{NATS: nc, Auth: auth.Config{Keys: keys}, Session: session.Config{HelloTimeout: -1}}, false},
		{"negative HTTP idle timeout", Config{NATS: nc, Auth: auth.Config{Keys: keys}, HTTPIdleTimeout: -1}, false},
		{"headers longer than the request", Config{NATS: nc, Auth: auth.Config{Keys: keys},
			HTTPReadHeaderTimeout: 2 * time.Second, HTTPReadTimeout: time.Second}, false},
		{"short connection timeouts", Config{NATS: nc, Auth: auth.Config{Keys: keys}, HTTPReadHeaderTimeout: time.Second,
			HTTPReadTimeout: time.Second,
			Session:         session.Config{HelloTimeout: time.Second, WriteTimeout: time.Second, RequestStreamTimeout: time.Second},
			QUIC:            quicport.Config{StreamTimeout: time.Second}, WebSocket: wsconn.Config{CloseTimeout: time.Second}}, true},
		{"bad argon2", Config{NATS: nc, Auth: auth.Config{Keys: keys, Argon2: auth.Argon2Params{SaltLen: 1}}}, false},
		{"bad login throttle", Config{NATS: nc, Auth: auth.Config{Keys: keys},
			HTTP: httpapi.Config{LoginThrottle: auth.ThrottleConfig{BaseDelay: time.Hour}}}, false},
		{"bad CORS origin", Config{NATS: nc, Auth: auth.Config{Keys: keys},
			HTTP: httpapi.Config{CORS: httpapi.CORSConfig{AllowedOrigins: []string{"https://app.example.com/"}}}}, false},
		{"CORS origins", Config{NATS: nc, Auth: auth.Config{Keys: keys},
			HTTP: httpapi.Config{CORS: httpapi.CORSConfig{AllowedOrigins: []string{"https://app.example.com"}}}}, true},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
