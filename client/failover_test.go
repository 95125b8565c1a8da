package client_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Through Failover a raw-QUIC connection keeps what it can do: LocalAddr
// reports its UDP socket (not nil), Migrate moves it, and the
// edge's typing datagrams reach OnTyping.
func TestFailoverKeepsQUICCapabilities(t *testing.T) {
	edge := newQUICEdge(t)
	typing := make(chan *syncpb.Typing, 1)
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	opts := client.QUICOptions{TLS: client.PinnedTLS(edge.hash), LocalAddr: "127.0.0.1:0"}
	c, err := client.Dial(ctx, client.Config{
		Dial:  client.Failover(client.QUIC(edge.addr(), opts)),
		Token: func(context.Context) (string, error) { return "t", nil },
		OnTyping: func(tt *syncpb.Typing) {
			select {
			case typing <- tt:
			default:
			}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	before, ok := c.LocalAddr().(*net.UDPAddr)
	if !ok || before.Port == 0 || !before.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Fatalf("LocalAddr through Failover = %v, want the connection's UDP socket", c.LocalAddr())
	}
	if err := c.Migrate(ctx); err != nil {
		t.Fatalf("migrate through Failover: %v", err)
	}
	if after := c.LocalAddr(); after == nil || after.String() == before.String() {
		t.Fatalf("LocalAddr after the move = %v, was %v", after, before)
	}
	if c.Connections() != 1 {
		t.Fatalf("%d connections; the move should keep the first", c.Connections())
	}

	b, err := syncproto.AppendDatagram(nil, &syncpb.Typing{ConvId: testConv, UserId: "u_b", Typing: true, TtlMs: 5000})
	if err != nil {
		t.Fatal(err)
	}
	resend := time.NewTicker(100 * time.Millisecond) // datagrams may be lost
	defer resend.Stop()
	for {
		if err := edge.sendDatagram(b); err != nil {
			t.Fatal(err)
		}
		select {
		case tt := <-typing:
			if tt.UserId != "u_b" || !tt.Typing {
				t.Fatalf("OnTyping got %v", tt)
			}
			return
		case <-resend.C:
		case <-ctx.Done():
			t.Fatal("the edge's typing datagrams never reached OnTyping")
		}
	}
}
