package streamframe

import (
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func pipe(t *testing.T) (*Conn, *Conn) {
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	return NewConn(a, syncproto.DefaultMaxFrameSize), NewConn(b, syncproto.DefaultMaxFrameSize)
}

func TestFramesBothWays(t *testing.T) {
	a, b := pipe(t)
	ctx := context.Background()
	go func() {
		for i := range 3 {
			_ = a.WriteFrame(ctx, &syncpb.Frame{Id: uint64(i + 1), Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: uint64(i)}}})
		}
		_ = a.Close(nil)
	}()
	for i := range 3 {
		f, err := b.ReadFrame(ctx)
		if err != nil || f.Id != uint64(i+1) || f.GetPing().GetNonce() != uint64(i) {
			t.Fatalf("frame %d: %v %v", i, f, err)
		}
	}
	if _, err := b.ReadFrame(ctx); !errors.Is(err, io.EOF) {
		t.Fatalf("after close: %v", err)
	}
}

// A cancelled or expired ctx ends a blocked read with ctx's error. (A read
// cut short is final: the framing of the stream can no longer be trusted.)
func TestContextEndsBlockedIO(t *testing.T) {
	_, b := pipe(t)
	ctx, cancel := context.WithCancel(context.Background())
	errc := make(chan error, 1)
	go func() { _, err := b.ReadFrame(ctx); errc <- err }()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("cancelled read: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("cancel did not end the read")
	}
	_, d := pipe(t)
	dctx, dcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer dcancel()
	if _, err := d.ReadFrame(dctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("read past its deadline: %v", err)
	}
	// Writes time out too when nobody reads.
	w, _ := pipe(t)
	wctx, wcancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer wcancel()
	if err := w.WriteFrame(wctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("write past its deadline: %v", err)
	}
}

func TestOnClose(t *testing.T) {
	a, _ := pipe(t)
	calls := 0
	a.OnClose = func(error) error { calls++; return nil }
	_ = a.Close(nil)
	_ = a.Close(nil)
	if calls != 1 {
		t.Fatalf("OnClose called %d times", calls)
	}
}
