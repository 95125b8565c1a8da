package client

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A send answered CONFLICT (its client_msg_id was used for other content)
// fails at once: it leaves the outbox and its file, is never sent again,
// and the messages queued after it go on.
func TestConflictFailsTheSendAndLeavesTheOutbox(t *testing.T) {
	toClient, toServer := make(chan *syncpb.Frame, 16), make(chan *syncpb.Frame, 16)
	tr := &pipeTransport{in: toClient, out: toServer, done: make(chan struct{})}
	path := filepath.Join(t.TempDir(), "outbox")
	c, dialErr := make(chan *Client, 1), make(chan error, 1)
	go func() {
		cl, err := Dial(context.Background(), Config{
			Dial:       func(context.Context) (Transport, error) { return tr, nil },
			Token:      func(context.Context) (string, error) { return "t", nil },
			OutboxPath: path,
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

	sent := make(chan error, 2)
	go func() {
		_, err := cl.Send(context.Background(), &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "reused", Body: []byte("other content")})
		sent <- err
	}()
	first := next()
	if first.GetSend().GetClientMsgId() != "reused" {
		t.Fatalf("expected the send of reused, got %v", first)
	}
	conflict := syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "client_msg_id already used for a different message")
	toClient <- &syncpb.Frame{Id: first.Id, Body: &syncpb.Frame_Error{Error: conflict.Proto()}}
	select {
	case err := <-sent:
		if !errors.Is(err, syncproto.ErrConflict) {
			t.Fatalf("Send returned %v, want CONFLICT", err)
		}
	case <-deadline:
		t.Fatal("the conflicting send never failed")
	}
	if n := cl.Pending(); n != 0 {
		t.Fatalf("%d messages pending after the conflict", n)
	}

	// The next message is what goes out next, not the failed one again.
	go func() {
		_, err := cl.Send(context.Background(), &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "fresh", Body: []byte("hi")})
		sent <- err
	}()
	again := next()
	if again.GetSend().GetClientMsgId() != "fresh" {
		t.Fatalf("after the conflict the client sent %v, want the next message", again)
	}
	toClient <- &syncpb.Frame{Id: again.Id, Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{ConvId: "c_1", Seq: 1, ClientMsgId: "fresh"}}}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-deadline:
		t.Fatal("the next send was never acked")
	}
	cl.Close()
	o, pending, err := openOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if len(pending) != 0 {
		t.Fatalf("the outbox file still holds %v", ids(pending))
	}
}
