package client

import (
	"context"
	"io"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// pipeTransport is one end of an in-memory frame pipe.
type pipeTransport struct {
	in, out chan *syncpb.Frame
	done    chan struct{}
}

func (p *pipeTransport) ReadFrame(ctx context.Context) (*syncpb.Frame, error) {
	select {
	case f := <-p.in:
		return f, nil
	case <-p.done:
		return nil, io.EOF
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (p *pipeTransport) WriteFrame(ctx context.Context, f *syncpb.Frame) error {
	select {
	case p.out <- f:
		return nil
	case <-p.done:
		return io.EOF
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (p *pipeTransport) Close(error) error {
	select {
	case <-p.done:
	default:
		close(p.done)
	}
	return nil
}

// A server that answers a send with UNAVAILABLE (its core was briefly
// unreachable) on a connection that stays up: the client sends again and
// gets the ack. (syncproto errors match by code under errors.Is, so the
// client tells this answer from its own lost-connection error by identity;
// taken for a lost connection, it would wait for this one to end: forever.)
func TestUnavailableAnswerIsRetriedOnTheSameConnection(t *testing.T) {
	toClient, toServer := make(chan *syncpb.Frame, 16), make(chan *syncpb.Frame, 16)
	done := make(chan struct{})
	tr := &pipeTransport{in: toClient, out: toServer, done: done}
	var dials atomic.Int32
	c, dialErr := make(chan *Client, 1), make(chan error, 1)
	go func() {
		cl, err := Dial(context.Background(), Config{
			Dial:       func(context.Context) (Transport, error) { dials.Add(1); return tr, nil },
			Token:      func(context.Context) (string, error) { return "t", nil },
			MinBackoff: time.Millisecond, MaxBackoff: 10 * time.Millisecond,
		})
		dialErr <- err
		c <- cl
	}()
	deadline := time.After(10 * time.Second)
	next := func() *syncpb.Frame {
		t.Helper()
		for {
			select {
			case f := <-toServer:
				if f.GetPing() != nil {
					continue
				}
				return f
			case <-deadline:
				t.Fatal("timed out waiting for the client")
				return nil
			}
		}
	}
	hello := next()
	toClient <- &syncpb.Frame{Id: hello.Id, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{Version: syncproto.ProtocolVersion, UserId: "u_a", DeviceId: "d_a"}}}
	if err := <-dialErr; err != nil {
		t.Fatal(err)
	}
	cl := <-c
	defer cl.Close()
	acked := make(chan error, 1)
	go func() {
		_, err := cl.Send(context.Background(), &syncpb.SendRequest{ConvId: "c_1", Body: []byte("hi")})
		acked <- err
	}()
	first := next()
	if first.GetSend() == nil {
		t.Fatalf("expected a send, got %v", first)
	}
	unavailable := syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no core is answering")
	toClient <- &syncpb.Frame{Id: first.Id, Body: &syncpb.Frame_Error{Error: unavailable.Proto()}}
	again := next()
	if again.GetSend().GetClientMsgId() != first.GetSend().GetClientMsgId() {
		t.Fatalf("the retry %v is not the same send as %v", again, first)
	}
	toClient <- &syncpb.Frame{Id: again.Id, Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{ConvId: "c_1", Seq: 1, ClientMsgId: again.GetSend().GetClientMsgId()}}}
	select {
	case err := <-acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatal("the send was never acked")
	}
	if dials.Load() != 1 {
		t.Fatalf("dialed %d times; the connection should have stayed", dials.Load())
	}
}
