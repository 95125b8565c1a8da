package coretest_test

import (
	"fmt"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/coretest"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Partition cuts a node's Raft traffic (the others elect a leader without
// it) and its NATS routes (nothing it publishes reaches the others); Heal
// restores both; Kill and Restart bring a node back on its data.
func TestRegionFaults(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	r := coretest.New(t, 3, coretest.Options{})
	users := r.Users("ana", "bo")
	conv := r.CreateGroup(users[0], users)

	victim := r.LeaderOf(route.DirGroup)
	other := (victim + 1) % 3
	sub, err := r.Node(other).ConnectNATS("sub")
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	pub, err := r.Node(victim).ConnectNATS("pub")
	if err != nil {
		t.Fatal(err)
	}
	defer pub.Close()
	var heard atomic.Int64
	if _, err := sub.Subscribe("coretest.probe", func(*nats.Msg) { heard.Add(1) }); err != nil {
		t.Fatal(err)
	}
	if err := sub.Flush(); err != nil {
		t.Fatal(err)
	}
	probe := func() { _ = pub.Publish("coretest.probe", nil) }
	poll.Until(t, 10*time.Second, "a route carries the victim's publish", func() bool {
		probe()
		return heard.Load() > 0
	})

	r.Partition(victim)
	poll.Until(t, 20*time.Second, "the others elect a new directory leader", func() bool {
		for i := range 3 {
			if i != victim && r.Node(i).Group(route.DirGroup).IsLeader() {
				return !r.Node(victim).Group(route.DirGroup).IsLeader()
			}
		}
		return false
	})
	// The routes are cut: once the subscriber's server has dropped its
	// routes to the victim (proxies closed them), no publish of the
	// victim's reaches it. Wait until a few probes in a row go unheard.
	quiet := 0
	poll.Until(t, 20*time.Second, "the victim's publishes stop arriving", func() bool {
		before := heard.Load()
		probe()
		_ = pub.Flush()
		if err := sub.Flush(); err != nil {
			t.Fatal(err)
		}
		if heard.Load() == before {
			quiet++
		} else {
			quiet = 0
		}
		return quiet >= 20
	})
	// The majority still serves (to a client on its side: r.Conn may be
	// on the victim's server, which is cut off with it).
	req, err := proto.Marshal(syncproto.NewRequest(users[0], &syncpb.SendRequest{
		ConvId: conv, ClientMsgId: syncproto.NewClientMsgID(), Body: []byte("during")}))
	if err != nil {
		t.Fatal(err)
	}
	poll.NoError(t, 30*time.Second, "the majority serves a send", func() error {
		m, err := sub.Request(r.ShardSubject(conv), req, 3*time.Second)
		if err != nil {
			return err
		}
		resp := &syncpb.CoreResponse{}
		if err := proto.Unmarshal(m.Data, resp); err != nil {
			return err
		}
		if e := syncproto.FromProto(resp.Error); e != nil {
			return e
		}
		return nil
	})

	r.Heal(victim)
	poll.Until(t, 30*time.Second, "the healed victim's publishes arrive again", func() bool {
		before := heard.Load()
		probe()
		_ = pub.Flush()
		_ = sub.Flush()
		return heard.Load() > before
	})
	r.WaitReady()

	r.Kill(victim)
	if r.Node(victim) != nil || len(r.Live()) != 2 {
		t.Fatalf("after Kill: node %v, %d live", r.Node(victim), len(r.Live()))
	}
	r.MustCall(r.ShardSubject(conv), syncproto.NewRequest(users[0], &syncpb.SendRequest{
		ConvId: conv, ClientMsgId: syncproto.NewClientMsgID(), Body: []byte("while dead")}))
	r.Restart(victim)
	if got, want := r.Node(victim).RaftAddr(), r.Config(victim).RaftAddr; got != want {
		t.Errorf("restarted on Raft address %s, want %s", got, want)
	}
	r.WaitReady()
	r.Stop(other)
	r.Restart(other)
	r.WaitReady()
}

// A Proxy carries bytes until Cut, closes what it carries then, refuses
// connections while cut, and carries them again after Restore.
func TestProxyCutAndRestore(t *testing.T) {
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
			go func() {
				defer c.Close()
				buf := make([]byte, 1)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := c.Write(buf); err != nil {
						return
					}
				}
			}()
		}
	}()
	p := coretest.NewProxy(t, ln.Addr().String())
	echo := func(c net.Conn) error {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Write([]byte{7}); err != nil {
			return err
		}
		b := make([]byte, 1)
		if _, err := c.Read(b); err != nil {
			return err
		}
		if b[0] != 7 {
			return fmt.Errorf("echoed %d", b[0])
		}
		return nil
	}
	dial := func() net.Conn {
		t.Helper()
		c, err := net.Dial("tcp", p.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	c := dial()
	if err := echo(c); err != nil {
		t.Fatalf("before Cut: %v", err)
	}
	p.Cut()
	if err := echo(c); err == nil {
		t.Fatal("a connection through a cut proxy still echoes")
	}
	if err := echo(dial()); err == nil {
		t.Fatal("a new connection through a cut proxy echoes")
	}
	p.Restore()
	if err := echo(dial()); err != nil {
		t.Fatalf("after Restore: %v", err)
	}
}
