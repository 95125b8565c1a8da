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

// pipeServer is the server's end of a client's pipeTransport: a test
// reads what the client sends with next and answers on toClient. All it
// waits for is due before deadline, 10 s after dialPipe.
type pipeServer struct {
	t        *testing.T
	toClient chan<- *syncpb.Frame
	toServer <-chan *syncpb.Frame
	deadline <-chan time.Time
	dials    atomic.Int32 // the client's calls of Config.Dial
}

// dialPipe dials a Client with cfg over a pipeTransport (cfg's Dial,
// Token and backoffs are set here), welcomes its hello as u_a's device
// d_a, and returns both ends. The client is closed when the test ends.
func dialPipe(t *testing.T, cfg Config) (*Client, *pipeServer) {
	t.Helper()
	toClient, toServer := make(chan *syncpb.Frame, 16), make(chan *syncpb.Frame, 16)
	tr := &pipeTransport{in: toClient, out: toServer, done: make(chan struct{})}
	s := &pipeServer{t: t, toClient: toClient, toServer: toServer, deadline: time.After(10 * time.Second)}
	cfg.Dial = func(context.Context) (Transport, error) { s.dials.Add(1); return tr, nil }
	cfg.Token = func(context.Context) (string, error) { return "t", nil }
	cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 10*time.Millisecond
	c, dialErr := make(chan *Client, 1), make(chan error, 1)
	go func() {
		cl, err := Dial(context.Background(), cfg)
		dialErr <- err
		c <- cl
	}()
	hello := s.next()
	toClient <- &syncpb.Frame{Id: hello.Id, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{Version: syncproto.ProtocolVersion, UserId: "u_a", DeviceId: "d_a"}}}
	if err := <-dialErr; err != nil {
		t.Fatal(err)
	}
	cl := <-c
	t.Cleanup(func() { cl.Close() })
	return cl, s
}

// next is the next frame the client sends, pings skipped; it fails the
// test at the deadline.
func (s *pipeServer) next() *syncpb.Frame {
	s.t.Helper()
	for {
		select {
		case f := <-s.toServer:
			if f.GetPing() != nil {
				continue
			}
			return f
		case <-s.deadline:
			s.t.Fatal("timed out waiting for the client")
			return nil
		}
	}
}

// A server that answers a send with UNAVAILABLE (its core was briefly
// unreachable) on a connection that stays up: the client sends again and
// gets the ack. (syncproto errors match by code under errors.Is, so the
// client tells this answer from its own lost-connection error by identity;
// taken for a lost connection, it would wait for this one to end: forever.)
func TestUnavailableAnswerIsRetriedOnTheSameConnection(t *testing.T) {
	cl, s := dialPipe(t, Config{})
	acked := make(chan error, 1)
	go func() {
		_, err := cl.Send(context.Background(), &syncpb.SendRequest{ConvId: "c_1", Body: []byte("hi")})
		acked <- err
	}()
	first := s.next()
	if first.GetSend() == nil {
		t.Fatalf("expected a send, got %v", first)
	}
	unavailable := syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no core is answering")
	s.toClient <- &syncpb.Frame{Id: first.Id, Body: &syncpb.Frame_Error{Error: unavailable.Proto()}}
	again := s.next()
	if again.GetSend().GetClientMsgId() != first.GetSend().GetClientMsgId() {
		t.Fatalf("the retry %v is not the same send as %v", again, first)
	}
	s.toClient <- &syncpb.Frame{Id: again.Id, Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{ConvId: "c_1", Seq: 1, ClientMsgId: again.GetSend().GetClientMsgId()}}}
	select {
	case err := <-acked:
		if err != nil {
			t.Fatal(err)
		}
	case <-s.deadline:
		t.Fatal("the send was never acked")
	}
	if n := s.dials.Load(); n != 1 {
		t.Fatalf("dialed %d times; the connection should have stayed", n)
	}
}
