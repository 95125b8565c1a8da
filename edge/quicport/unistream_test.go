package quicport

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A client's unidirectional streams are stopped at once, on raw QUIC and
// WebTransport alike, so their bytes do not stay in the edge's memory for
// the life of the session: a write of more than QUIC's flow-control window
// on each fails with the edge's STOP_SENDING (MALFORMED) instead of
// blocking, and the session carries on.
func TestUnidirectionalStreamsAreStopped(t *testing.T) {
	tp := newTestPort(t)
	const streams = 10 // the port allows 16 at once
	big := make([]byte, 2<<20)
	for _, tc := range []struct {
		name string
		// open starts a session and returns its control stream and a
		// way to open unidirectional streams on it.
		open func(ctx context.Context) (*streamframe.Conn, func(context.Context) (uniStream, error))
	}{
		{"raw QUIC", func(ctx context.Context) (*streamframe.Conn, func(context.Context) (uniStream, error)) {
			conn, err := tp.dial(t, streamframe.ALPN)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = conn.CloseWithError(0, "") })
			return tp.session(t, conn), func(ctx context.Context) (uniStream, error) { return conn.OpenUniStreamSync(ctx) }
		}},
		{"WebTransport", func(ctx context.Context) (*streamframe.Conn, func(context.Context) (uniStream, error)) {
			d := &webtransport.Transport{TLSClientConfig: clientTLS(http3.NextProtoH3),
				QUICConfig: &quic.Config{EnableDatagrams: true, EnableStreamResetPartialDelivery: true}}
			t.Cleanup(func() { _ = d.Close() })
			_, sess, err := d.Dial(ctx, "https://"+tp.p.Addr().String()+streamframe.WebTransportPath, nil)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = sess.CloseWithError(0, "") })
			str, err := sess.OpenStreamSync(ctx)
			if err != nil {
				t.Fatal(err)
			}
			c := streamframe.NewConn(str, syncproto.MaxFrameSize)
			hello(t, ctx, tp, c)
			return c, func(ctx context.Context) (uniStream, error) { return sess.OpenUniStreamSync(ctx) }
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
			defer cancel()
			control, openUni := tc.open(ctx)
			for i := range streams {
				s, err := openUni(ctx)
				if err != nil {
					t.Fatalf("stream %d: %v", i, err)
				}
				// The write blocks once the window is full, until the
				// edge stops the stream; the deadline only ends the
				// test sooner when the edge does not.
				_ = s.SetWriteDeadline(time.Now().Add(10 * time.Second))
				_, err = s.Write(big)
				if code, ok := stopCode(err); !ok || code != uint64(syncpb.Code_CODE_MALFORMED) {
					t.Fatalf("stream %d: write of %d bytes ended with %v, want the edge's STOP_SENDING (MALFORMED)", i, len(big), err)
				}
			}
			sendOne(t, control)
		})
	}
}

// uniStream is the client's end of a unidirectional stream, raw QUIC or
// WebTransport.
type uniStream interface {
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
}

// stopCode is the code of the STOP_SENDING that failed a write.
func stopCode(err error) (uint64, bool) {
	var qe *quic.StreamError
	if errors.As(err, &qe) && qe.Remote {
		return uint64(qe.ErrorCode), true
	}
	var we *webtransport.StreamError
	if errors.As(err, &we) && we.Remote {
		return uint64(we.ErrorCode), true
	}
	return 0, false
}

// hello says hello on c, a control stream, and reads the Welcome.
func hello(t *testing.T, ctx context.Context, tp *testPort, c *streamframe.Conn) {
	t.Helper()
	p, err := tp.auth.IssuePair(auth.Identity{WorkspaceID: "w_1", UserID: "u_1", DeviceID: "d_1"}, testFamily)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(p.Access, "d_1")}}); err != nil {
		t.Fatal(err)
	}
	f, err := c.ReadFrame(ctx)
	if err != nil || f.GetWelcome() == nil {
		t.Fatalf("hello: %v %v", f, err)
	}
}
