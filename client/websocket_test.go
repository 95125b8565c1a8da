package client_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/syncproto/wsframe"
)

// Migrate on a WebSocket connection drops it at once and resumes on a
// new one: it does not wait for a close handshake that an edge on a
// network the device left cannot answer. The test edge holds the first
// connection without reading (so it never answers a close) until the
// second connection's hello has arrived, and then finds that the client
// had not even asked to close: the connection was just cut.
func TestWebSocketMigrateReconnectsAtOnce(t *testing.T) {
	var (
		mu      sync.Mutex
		conns   int
		hellos  = make(chan int, 4) // the connection number of each hello
		release = make(chan struct{})
		first   = make(chan error, 1) // what the edge read on the first connection at last
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ws, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{wsframe.Subprotocol}})
		if err != nil {
			return
		}
		defer ws.CloseNow()
		mu.Lock()
		conns++
		n := conns
		mu.Unlock()
		fc := wsframe.NewConn(ws, syncproto.MaxFrameSize)
		ctx := r.Context()
		hello, err := fc.ReadFrame(ctx)
		if err != nil || hello.GetHello() == nil {
			return
		}
		if err := fc.WriteFrame(ctx, &syncpb.Frame{Id: hello.Id, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{
			Version: syncproto.ProtocolVersion, UserId: "u_a", DeviceId: "d_a", KeepaliveMs: 60_000}}}); err != nil {
			return
		}
		hellos <- n
		if n == 1 {
			select { // not reading: a close handshake gets no answer
			case <-release:
			case <-ctx.Done():
				return
			}
			rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			_, err := fc.ReadFrame(rctx)
			first <- err
			return
		}
		for { // later connections: a live edge
			f, err := fc.ReadFrame(ctx)
			if err != nil {
				return
			}
			if p := f.GetPing(); p != nil {
				_ = fc.WriteFrame(ctx, &syncpb.Frame{Id: f.Id, Body: &syncpb.Frame_Pong{Pong: &syncpb.Pong{Nonce: p.Nonce}}})
			}
		}
	}))
	defer srv.Close()
	defer close(release) // before srv.Close, which waits for the handlers

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, client.Config{
		Dial:       client.WebSocket("ws" + strings.TrimPrefix(srv.URL, "http") + wsframe.Path),
		Token:      func(context.Context) (string, error) { return "t", nil },
		MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if n := <-hellos; n != 1 {
		t.Fatalf("first hello on connection %d", n)
	}

	if err := c.Migrate(ctx); !errors.Is(err, client.ErrCannotMigrate) {
		t.Fatalf("Migrate over WebSocket = %v, want ErrCannotMigrate", err)
	}
	select {
	case n := <-hellos:
		if n != 2 {
			t.Fatalf("resumed on connection %d, want 2", n)
		}
	case <-ctx.Done():
		t.Fatal("no new connection after Migrate")
	}
	release <- struct{}{}
	err = <-first
	if code := websocket.CloseStatus(err); code != -1 {
		t.Fatalf("the first connection ended with a close handshake (status %d): the reconnect waited for it", code)
	}
	if err == nil {
		t.Fatal("the first connection is still open")
	}
	poll.Until(t, 10*time.Second, "the second session", func() bool { return c.Connections() == 2 && c.Connected() })
}
