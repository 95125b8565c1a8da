// Package natstest starts an in-process NATS server for the edge's tests.
package natstest

import (
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
)

// Server starts a NATS server on a random loopback port, waits until it
// accepts connections, and shuts it down when the test ends.
func Server(t testing.TB) *server.Server {
	t.Helper()
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true})
	if err != nil {
		t.Fatalf("nats server: %v", err)
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		s.Shutdown()
		t.Fatal("nats server not ready within 10s")
	}
	t.Cleanup(func() {
		s.Shutdown()
		s.WaitForShutdown()
	})
	return s
}

// Conn connects to s with opts and closes the connection when the test
// ends.
func Conn(t testing.TB, s *server.Server, opts ...nats.Option) *nats.Conn {
	t.Helper()
	nc, err := nats.Connect(s.ClientURL(), append([]nats.Option{nats.Timeout(5 * time.Second)}, opts...)...)
	if err != nil {
		t.Fatalf("nats connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// Cluster starts one clustered NATS server per name (its server name) on
// loopback, routed to the first, and waits until every pair is routed.
func Cluster(t testing.TB, names ...string) []*server.Server {
	t.Helper()
	var out []*server.Server
	for i, name := range names {
		opts := &server.Options{ServerName: name, Host: "127.0.0.1", Port: -1, NoLog: true, NoSigs: true,
			// No route pooling: one route per pair, so NumRoutes counts peers.
			Cluster: server.ClusterOpts{Name: "natstest", Host: "127.0.0.1", Port: -1, PoolSize: -1}}
		if i > 0 {
			opts.Routes = []*url.URL{{Scheme: "nats", Host: out[0].ClusterAddr().String()}}
		}
		s, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("nats server %s: %v", name, err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			s.Shutdown()
			t.Fatalf("nats server %s not ready within 10s", name)
		}
		t.Cleanup(func() {
			s.Shutdown()
			s.WaitForShutdown()
		})
		out = append(out, s)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, s := range out {
		for s.NumRoutes() < len(out)-1 {
			if time.Now().After(deadline) {
				t.Fatalf("nats server %s: %d routes after 10s, want %d", s.Name(), s.NumRoutes(), len(out)-1)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	return out
}
