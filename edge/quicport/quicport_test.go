package quicport

// Tests over real QUIC sockets on loopback with a real NATS server and
// real tokens. The core is a TEST DOUBLE (it acks every send): these
// tests are about the UDP port; end-to-end tests against the real core
// live in cmd/parley.

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/devcert"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// testFamily places the refresh tokens of pairs issued in tests; no
// directory knows it.
var testFamily = auth.Family{ID: "0123456789abcdef", Generation: 1}

type coreFunc func(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)

func (f coreFunc) Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	return f(ctx, req)
}

type testPort struct {
	srv  *session.Server
	p    *Port
	auth *auth.Auth
}

func newTestPort(t *testing.T) *testPort {
	t.Helper()
	nc := natstest.Conn(t, natstest.Server(t))
	key, err := auth.GenerateKey("k1")
	if err != nil {
		t.Fatal(err)
	}
	au, err := auth.New(auth.Config{Keys: []auth.Key{key}})
	if err != nil {
		t.Fatal(err)
	}
	hub, err := session.NewHub(session.HubConfig{Conn: nc, Region: "local"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(hub.Close)
	core := coreFunc(func(_ context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
		switch op := req.Op.(type) {
		case *syncpb.CoreRequest_Send:
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{
				ConvId: op.Send.ConvId, Seq: 1, MsgId: "m_1", ClientMsgId: op.Send.ClientMsgId}}}, nil
		case *syncpb.CoreRequest_Sync:
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Sync{Sync: &syncpb.SyncResponse{}}}, nil
		}
		return nil, syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no")
	})
	srv, err := session.New(session.Config{Core: core, Auth: au, Hub: hub})
	if err != nil {
		t.Fatal(err)
	}
	certs, err := devcert.New(devcert.Config{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = certs.Close() })
	p, err := New(Config{Addr: "127.0.0.1:0", TLS: certs.TLSConfig(), Sessions: srv, StreamTimeout: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.Run(context.Background()) }()
	t.Cleanup(func() {
		_ = p.Close()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	return &testPort{p: p, auth: au, srv: srv}
}

func clientTLS(alpn string) *tls.Config {
	return &tls.Config{InsecureSkipVerify: true, NextProtos: []string{alpn}} // the dev cert; pinning is tested in client
}

func (tp *testPort) dial(t *testing.T, alpn string) (*quic.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	return quic.DialAddr(ctx, tp.p.Addr().String(), clientTLS(alpn), &quic.Config{})
}

// session opens a control stream and says hello.
func (tp *testPort) session(t *testing.T, conn *quic.Conn) *streamframe.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	c := streamframe.NewConn(str, syncproto.MaxFrameSize)
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
	return c
}

func sendOne(t *testing.T, c *streamframe.Conn) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if err := c.WriteFrame(ctx, &syncpb.Frame{Id: 2, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{
		ConvId: "c_1", ClientMsgId: syncproto.NewClientMsgID(), Body: []byte("hi")}}}); err != nil {
		t.Fatal(err)
	}
	for {
		f, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if f.Id == 2 {
			if f.GetSendAck() == nil {
				t.Fatalf("send answered with %v", f)
			}
			return
		}
	}
}

// closeCodeOf waits for conn to close and returns its application code.
func closeCodeOf(t *testing.T, conn *quic.Conn) quic.ApplicationErrorCode {
	t.Helper()
	select {
	case <-conn.Context().Done():
	case <-time.After(10 * time.Second):
		t.Fatal("the edge did not close the connection")
	}
	var ae *quic.ApplicationError
	if !errors.As(context.Cause(conn.Context()), &ae) {
		t.Fatalf("connection ended with %v, want an application close", context.Cause(conn.Context()))
	}
	return ae.ErrorCode
}

func TestRawQUICSession(t *testing.T) {
	tp := newTestPort(t)
	conn, err := tp.dial(t, streamframe.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	sendOne(t, tp.session(t, conn))
}

// Bad input gets a coded error and a closed connection; the port keeps
// serving everyone else.
func TestRawQUICBadInput(t *testing.T) {
	tp := newTestPort(t)
	good, err := tp.dial(t, streamframe.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer good.CloseWithError(0, "")
	gc := tp.session(t, good)

	for _, tc := range []struct {
		name  string
		bytes []byte
		want  syncpb.Code
	}{
		{"malformed protobuf", append(binary.AppendUvarint(nil, 4), 0xff, 0xff, 0xff, 0xff), syncpb.Code_CODE_MALFORMED},
		{"oversized frame", binary.AppendUvarint(nil, syncproto.MaxFrameSize+1), syncpb.Code_CODE_TOO_LARGE},
		{"not a hello first", mustFrame(t, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{ConvId: "c_1"}}}), syncpb.Code_CODE_MALFORMED},
		{"wrong version", mustFrame(t, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: &syncpb.Hello{MinVersion: 99, MaxVersion: 99, AccessToken: "x"}}}), syncpb.Code_CODE_UNSUPPORTED_VERSION},
		{"bad token", mustFrame(t, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello("not-a-token", "d_1")}}), syncpb.Code_CODE_UNAUTHENTICATED},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn, err := tp.dial(t, streamframe.ALPN)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.CloseWithError(0, "")
			str, err := conn.OpenStreamSync(t.Context())
			if err != nil {
				t.Fatal(err)
			}
			if _, err := str.Write(tc.bytes); err != nil {
				t.Fatal(err)
			}
			c := streamframe.NewConn(str, syncproto.MaxFrameSize)
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			f, err := c.ReadFrame(ctx)
			if err != nil {
				t.Fatalf("no error frame: %v", err)
			}
			if got := f.GetError().GetCode(); got != tc.want {
				t.Fatalf("error code %v, want %v (%v)", got, tc.want, f)
			}
			if _, err := c.ReadFrame(ctx); !errors.Is(err, io.EOF) {
				t.Fatalf("after the error frame: %v, want the stream's end", err)
			}
			if code := closeCodeOf(t, conn); code != quic.ApplicationErrorCode(tc.want) {
				t.Fatalf("connection closed with code %d, want %d", code, tc.want)
			}
		})
	}

	t.Run("wrong ALPN", func(t *testing.T) {
		if conn, err := tp.dial(t, "nope/1"); err == nil {
			conn.CloseWithError(0, "")
			t.Fatal("a connection with an unknown ALPN was accepted")
		}
	})
	t.Run("no control stream", func(t *testing.T) {
		conn, err := tp.dial(t, streamframe.ALPN)
		if err != nil {
			t.Fatal(err)
		}
		if code := closeCodeOf(t, conn); code != quic.ApplicationErrorCode(syncpb.Code_CODE_TIMEOUT) {
			t.Fatalf("closed with code %d, want TIMEOUT", code)
		}
	})
	// The first session is unaffected.
	sendOne(t, gc)
}

func mustFrame(t *testing.T, f *syncpb.Frame) []byte {
	t.Helper()
	b, err := syncproto.AppendFrame(nil, f)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// A request on a stream of its own is answered on that stream; a bad one
// gets an error there and the session carries on.
func TestRawQUICRequestStreams(t *testing.T) {
	tp := newTestPort(t)
	conn, err := tp.dial(t, streamframe.ALPN)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	control := tp.session(t, conn)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	ask := func(f *syncpb.Frame) *syncpb.Frame {
		t.Helper()
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		c := streamframe.NewConn(str, syncproto.MaxFrameSize)
		if err := c.WriteFrame(ctx, f); err != nil {
			t.Fatal(err)
		}
		_ = str.Close()
		r, err := c.ReadFrame(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.ReadFrame(ctx); !errors.Is(err, io.EOF) {
			t.Fatalf("after the response: %v, want the stream's end", err)
		}
		return r
	}
	for i := range 3 {
		r := ask(&syncpb.Frame{Id: uint64(10 + i), Body: &syncpb.Frame_Send{Send: &syncpb.SendRequest{
			ConvId: "c_1", ClientMsgId: syncproto.NewClientMsgID(), Body: []byte("hi")}}})
		if r.Id != uint64(10+i) || r.GetSendAck() == nil {
			t.Fatalf("request stream %d answered %v", i, r)
		}
	}
	if r := ask(&syncpb.Frame{Id: 20, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello("x", "d_1")}}); r.GetError().GetCode() != syncpb.Code_CODE_MALFORMED {
		t.Fatalf("a hello on a request stream: %v, want MALFORMED", r)
	}
	sendOne(t, control) // the control stream still works
}

// Datagrams on a raw QUIC session: typing is taken, bad datagrams are
// dropped and counted, and the session carries on.
func TestRawQUICDatagrams(t *testing.T) {
	tp := newTestPort(t)
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := quic.DialAddr(ctx, tp.p.Addr().String(), clientTLS(streamframe.ALPN), &quic.Config{EnableDatagrams: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	c := tp.session(t, conn)
	good, err := syncproto.AppendDatagram(nil, &syncpb.Typing{ConvId: "c_1", Typing: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range [][]byte{{0x00}, []byte("garbage"), good[:3], good} {
		if err := conn.SendDatagram(b); err != nil {
			t.Fatal(err)
		}
	}
	// (Datagrams may be lost; not on an idle loopback.)
	// The test core cannot publish: the valid one is counted unpublished.
	poll.NoError(t, 10*time.Second, "typing stats", func() error {
		if st := tp.srv.TypingStats(); st.Datagrams != 4 || st.Malformed != 3 || st.Unpublished != 1 {
			return fmt.Errorf("stats %+v", st)
		}
		return nil
	})
	sendOne(t, c)
}
