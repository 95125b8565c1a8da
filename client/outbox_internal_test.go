package client

import (
	"context"
	"errors"
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A send answered CONFLICT (its client_msg_id was used for other content)
// fails at once: it leaves the outbox and its file, is never sent again,
// and the messages queued after it go on.
func TestConflictFailsTheSendAndLeavesTheOutbox(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	cl, s := dialPipe(t, Config{OutboxPath: path})

	sent := make(chan error, 2)
	go func() {
		_, err := cl.Send(context.Background(), &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: "reused", Body: []byte("other content")})
		sent <- err
	}()
	first := s.next()
	if first.GetSend().GetClientMsgId() != "reused" {
		t.Fatalf("expected the send of reused, got %v", first)
	}
	conflict := syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "client_msg_id already used for a different message")
	s.toClient <- &syncpb.Frame{Id: first.Id, Body: &syncpb.Frame_Error{Error: conflict.Proto()}}
	select {
	case err := <-sent:
		if !errors.Is(err, syncproto.ErrConflict) {
			t.Fatalf("Send returned %v, want CONFLICT", err)
		}
	case <-s.deadline:
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
	again := s.next()
	if again.GetSend().GetClientMsgId() != "fresh" {
		t.Fatalf("after the conflict the client sent %v, want the next message", again)
	}
	s.toClient <- &syncpb.Frame{Id: again.Id, Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{ConvId: "c_1", Seq: 1, ClientMsgId: "fresh"}}}
	select {
	case err := <-sent:
		if err != nil {
			t.Fatal(err)
		}
	case <-s.deadline:
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
