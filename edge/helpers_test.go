package edge

// Helpers that the edge's tests share: a core double, tokens, and an Edge
// running until the test ends.

import (
	"context"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// serveCore is a core double on nc: it answers each request of the
// region "local" (in the cores' queue) that waits for a reply with
// answer's response. A request that does not decode is not answered.
func serveCore(t *testing.T, nc *nats.Conn, answer func(*syncpb.CoreRequest) *syncpb.CoreResponse) {
	t.Helper()
	sub, err := nc.QueueSubscribe("parley.local.>", syncproto.CoreQueue, func(m *nats.Msg) {
		if m.Reply == "" {
			return
		}
		req := &syncpb.CoreRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			return
		}
		b, _ := proto.Marshal(answer(req))
		_ = m.Respond(b)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
}

// testToken is an access token, signed with testKey, of device of user
// u_1 in workspace w_1.
func testToken(t *testing.T, device string) string {
	t.Helper()
	a, err := auth.New(auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}})
	if err != nil {
		t.Fatal(err)
	}
	tok, _, err := a.Issue(auth.Access, auth.Identity{WorkspaceID: "w_1", UserID: "u_1", DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// runEdge runs e until the test ends (then Close, and Run must return
// nil) and waits until it answers /healthz.
func runEdge(t *testing.T, e *Edge) {
	t.Helper()
	ran := make(chan error, 1)
	go func() { ran <- e.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = e.Close()
		if err := <-ran; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	poll.Until(t, 10*time.Second, "healthz", func() bool {
		code, err := get(t, "http://"+e.Addr().String()+"/healthz", "")
		return err == nil && code == 200
	})
}
