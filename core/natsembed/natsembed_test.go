package natsembed

import (
	"errors"
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/core/internal/testaddr"
	"github.com/parley-chat/parley/internal/poll"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Name: "a"}, true},
		{"no name", Config{}, false},
		{"js without dir", Config{Name: "a", JetStream: true}, false},
		{"routes without cluster", Config{Name: "a", Routes: []string{"127.0.0.1:1"}}, false},
		{"bad route", Config{Name: "a", ClusterAddr: "127.0.0.1:0", Routes: []string{"nope"}}, false},
		{"cluster without client listener", Config{Name: "a", ClientAddr: "-", ClusterAddr: "127.0.0.1:0", Routes: []string{"127.0.0.1:1"}}, false},
		{"clustered js without routes", Config{Name: "a", ClusterAddr: "127.0.0.1:0", JetStream: true, StoreDir: "d"}, false},
		{"clustered js", Config{Name: "a", ClusterAddr: "127.0.0.1:0", Routes: []string{"127.0.0.1:1"}, JetStream: true, StoreDir: "d"}, true},
		{"advertise without cluster", Config{Name: "a", ClusterAdvertise: "127.0.0.1:1"}, false},
		{"bad advertise", Config{Name: "a", ClusterAddr: "127.0.0.1:0", ClusterAdvertise: "nope"}, false},
		{"advertise", Config{Name: "a", ClusterAddr: "127.0.0.1:0", ClusterAdvertise: "127.0.0.1:1"}, true},
		{"in-process only", Config{Name: "a", ClientAddr: "-", JetStream: true, StoreDir: "d"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// A taken port fails Start at once with ErrListen, not after ReadyTimeout.
func TestStartFailsFastOnTakenPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()
	for _, cfg := range []Config{
		{Name: "client", ClientAddr: taken},
		{Name: "cluster", ClusterAddr: taken, Routes: []string{testaddr.Free(t)}},
	} {
		cfg.ReadyTimeout = time.Hour
		s, err := Start(cfg)
		if err == nil {
			s.Close()
			t.Fatalf("%s: Start on a taken port succeeded", cfg.Name)
		}
		if !errors.Is(err, ErrListen) {
			t.Fatalf("%s: Start = %v, want ErrListen", cfg.Name, err)
		}
	}
}

func TestClusterRoutesCarryRequests(t *testing.T) {
	addrs := []string{testaddr.Free(t), testaddr.Free(t), testaddr.Free(t)}
	var servers []*Server
	for i := range addrs {
		var routes []string
		for j, a := range addrs {
			if j != i {
				routes = append(routes, a)
			}
		}
		s, err := Start(Config{
			Name: fmt.Sprintf("n%d", i), ClusterAddr: addrs[i], Routes: routes,
			JetStream: true, StoreDir: t.TempDir(),
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		servers = append(servers, s)
	}
	poll.NoError(t, 20*time.Second, "", func() error {
		for i, s := range servers {
			if n := s.NumRoutes(); n < 2 {
				return fmt.Errorf("server %d has %d routes", i, n)
			}
		}
		return nil
	})
	// A responder on server 0 answers a requester on server 2 over TCP.
	resp, err := servers[0].Connect("responder")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Close()
	if _, err := resp.QueueSubscribe("echo", "q", func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		t.Fatal(err)
	}
	resp.Flush()
	req, err := nats.Connect(servers[2].ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer req.Close()
	poll.NoError(t, 10*time.Second, "", func() error {
		m, err := req.Request("echo", []byte("hi"), time.Second)
		if err != nil {
			return err
		}
		if string(m.Data) != "hi" {
			return fmt.Errorf("got %q", m.Data)
		}
		return nil
	})
}
