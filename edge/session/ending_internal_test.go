package session

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type countingCore struct{ calls atomic.Int32 }

func (c *countingCore) Call(context.Context, *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	c.calls.Add(1)
	return &syncpb.CoreResponse{}, nil
}

// A session told to end (here revoked) serves nothing more, even while its
// last frame is still being written and its transport is open: a request
// read after the end gets the end's error and never reaches the core.
func TestEndedSessionServesNothing(t *testing.T) {
	core := &countingCore{}
	s := &session{cfg: Config{Core: core}, caller: &syncpb.Caller{WorkspaceId: "w_1", UserId: "u_a", DeviceId: "d_1"}}
	send := syncproto.Requests.ByOp("send")
	body := &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "after-the-end", Body: []byte("x")}
	s.ending.Store(1)
	s.endErr = auth.ErrRevoked
	if _, err := s.call(t.Context(), 7, send, body); !errors.Is(err, syncproto.ErrRevoked) {
		t.Fatalf("a send on an ended session: %v, want REVOKED", err)
	}
	if n := core.calls.Load(); n != 0 {
		t.Fatalf("the core was called %d times after the end", n)
	}
}
