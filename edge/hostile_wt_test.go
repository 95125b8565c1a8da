package edge

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// wtClient opens WebTransport sessions on connections of a quicClient.
type wtClient struct {
	*quicClient
	wt  *webtransport.Transport
	url string
}

// connect makes an HTTP/3 connection able to carry WebTransport sessions.
func (c *wtClient) connect(ctx context.Context, gone bool) (*quic.Conn, *webtransport.ClientConn, error) {
	conn, err := c.dial(ctx, http3.NextProtoH3, gone)
	if err != nil {
		return nil, nil, err
	}
	cc, err := c.wt.NewClientConn(conn)
	return conn, cc, err
}

// session opens a WebTransport session on a new connection.
func (c *wtClient) session(ctx context.Context, gone bool) (*quic.Conn, *webtransport.Session, error) {
	conn, cc, err := c.connect(ctx, gone)
	if err != nil {
		return conn, nil, err
	}
	_, sess, err := cc.Dial(ctx, c.url, nil)
	return conn, sess, err
}

// 1,000 hostile WebTransport (HTTP/3) connections, held open by the
// client whatever the edge does, are all cut within bounds set by the
// edge's Config, and the edge's goroutines and heap return to their
// baseline.
func TestHostileWebTransport(t *testing.T) {
	he := newHostileEdge(t, quicTimeouts)
	wc := &wtClient{quicClient: newQUICClient(t, he.UDPAddr()), wt: &webtransport.Transport{},
		url: "https://" + he.UDPAddr().String() + streamframe.WebTransportPath}
	t.Cleanup(func() { _ = wc.wt.Close() })
	tr := newTrickler(t)
	warmUpWT(t, he, wc)
	l := newLeakCheck(t)

	// hello opens a session and its control stream and says hello.
	hello := func(ctx context.Context, user string, i int, gone bool) (*quic.Conn, *webtransport.Session, *webtransport.Stream, error) {
		conn, sess, err := wc.session(ctx, gone)
		if err != nil {
			return conn, nil, nil, err
		}
		var str *webtransport.Stream
		_, _, err = helloOn(ctx, he, t, func(ctx context.Context) (streamframe.Stream, error) {
			s, err := sess.OpenStreamSync(ctx)
			str = s
			return s, err
		}, user, fmt.Sprintf("d_%d", i))
		return conn, sess, str, err
	}
	helloBytes := func(i int) []byte {
		b, err := syncproto.AppendFrame(nil, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(he.token(t, "u_1", fmt.Sprintf("d_t%d", i)), "")}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	tok := he.token(t, "u_1", "d_1")
	// Requests to /v1 whose bodies never end, each on a goroutine of
	// the client's (RoundTrip waits for the answer).
	bodies := make([]*io.PipeWriter, 50)
	var asking sync.WaitGroup
	release := func() {
		for _, w := range bodies {
			if w != nil {
				w.Close()
			}
		}
		asking.Wait()
		_ = wc.wt.Close()
	}
	t.Cleanup(release)

	// Those that take longest to open first, those cut soonest last, so
	// that as many as the machine's speed allows are held at once.
	var later atOpen
	kinds := []hostileQUICKind{
		// Cut by QUIC's handshake timeouts (StreamTimeout, twice that in
		// all) while the client still sends; the client does not see it,
		// the edge's goroutines do.
		{name: "a handshake that never finishes", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			wc.halfOpen(http3.NextProtoH3, 12*time.Second)
			return nil, nil
		}},
		// Deliveries fill the stream's flow-control window of a client
		// that does not read, and the edge's writes block.
		{name: "not reading, deliveries", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, _, err := hello(ctx, "u_flood", 6000+i, false)
			return conn, err
		}},
		// Request streams that never bring their request: the edge
		// closes each after StreamTimeout, and the session for silence.
		// (QUIC allows 16 streams; the CONNECT stream and the control
		// stream are two.)
		{name: "13 streams opened and left unused after the hello", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, sess, _, err := hello(ctx, "u_1", 4000+i, false)
			if err != nil {
				return conn, err
			}
			for range 13 {
				// The first byte of a length, never finished.
				if _, err := openWriting(ctx, sess.OpenStreamSync, []byte{0x80}); err != nil {
					return conn, err
				}
			}
			return conn, nil
		}},
		{name: "a frame one byte at a time after the hello", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, str, err := hello(ctx, "u_1", 5000+i, false)
			if err == nil {
				tr.add(str, oneByte(append(binary.AppendUvarint(nil, 100<<10), make([]byte, 100)...)))
			}
			return conn, err
		}},
		{name: "silent after the hello", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, _, err := hello(ctx, "u_1", 2000+i, false)
			return conn, err
		}},
		{name: "gone after the hello", n: 100, gone: true, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, _, err := hello(ctx, "u_1", 3000+i, true)
			return conn, err
		}},
		// The edge ends these sessions at once (and their connections
		// HTTPIdleTimeout later): they announce their frame once all
		// are open.
		{name: "a 2 GiB frame announced after the hello", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, str, err := hello(ctx, "u_1", 1000+i, false)
			if err == nil {
				later.add(func() { _, _ = str.Write(bigFrameHeader()) })
			}
			return conn, err
		}},
		{name: "a /v1 request body that never ends", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, cc, err := wc.connect(ctx, false)
			if err != nil {
				return conn, err
			}
			pr, pw := io.Pipe()
			bodies[i] = pw
			req, err := http.NewRequest("POST", "https://"+he.UDPAddr().String()+"/v1/messages", pr)
			if err != nil {
				return conn, err
			}
			req.Header.Set("Authorization", "Bearer "+tok)
			asking.Go(func() {
				resp, err := cc.RoundTrip(req)
				if err == nil {
					resp.Body.Close()
				}
			})
			go func() { _, _ = pw.Write([]byte(`{"conv_id":`)) }() // and nothing more
			return conn, nil
		}},
		{name: "a 2 GiB frame announced first", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, sess, err := wc.session(ctx, false)
			if err != nil {
				return conn, err
			}
			// The first byte of the length, so that the edge sees the
			// stream; the rest once all are open.
			h := bigFrameHeader()
			str, err := openWriting(ctx, sess.OpenStreamSync, h[:1])
			if err != nil {
				return conn, err
			}
			later.add(func() { _, _ = str.Write(h[1:]) })
			return conn, nil
		}},
		{name: "a hello one byte at a time", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, sess, err := wc.session(ctx, false)
			if err != nil {
				return conn, err
			}
			b := helloBytes(i)
			str, err := openWriting(ctx, sess.OpenStreamSync, b[:1])
			if err != nil {
				return conn, err
			}
			tr.add(str, oneByte(b[1:]))
			return conn, nil
		}},
		{name: "a session without a control stream", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, err := wc.session(ctx, false)
			return conn, err
		}},
		// The request's HEADERS frame announces 100 bytes and gets them
		// one per tick: the handler never runs.
		{name: "request headers one byte at a time", n: 100, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, err := wc.dial(ctx, http3.NextProtoH3, false)
			if err != nil {
				return nil, err
			}
			str, err := openWriting(ctx, conn.OpenStreamSync, []byte{0x01, 0x40, 100})
			if err != nil {
				return conn, err
			}
			tr.add(str, oneByte([]byte(strings.Repeat("h", 100))))
			return conn, nil
		}},
		{name: "no request at all", n: 50, open: func(ctx context.Context, i int) (*quic.Conn, error) {
			conn, _, err := wc.connect(ctx, false)
			return conn, err
		}},
	}
	holdQUIC(t, he, wc.quicClient, tr, l, "WebTransport", kinds, func() {
		later.run()
		he.deliver(t, "u_flood", 2)
	}, release)
}

// warmUpWT runs one WebTransport session through a delivery and its end,
// and one /v1 request over HTTP/3, so that what the edge and the
// libraries allocate once is in the baseline.
func warmUpWT(t *testing.T, he *hostileEdge, wc *wtClient) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var (
		conn *quic.Conn
		sess *webtransport.Session
		cc   *webtransport.ClientConn
		err  error
	)
	hostile(func() { conn, sess, err = wc.session(ctx, false) })
	if err != nil {
		t.Fatal(err)
	}
	defer conn.CloseWithError(0, "")
	warmUp(ctx, t, he, func(ctx context.Context) (streamframe.Stream, error) { return sess.OpenStreamSync(ctx) })
	_ = conn.CloseWithError(0, "")
	var c2 *quic.Conn
	hostile(func() { c2, cc, err = wc.connect(ctx, false) })
	if err != nil {
		t.Fatal(err)
	}
	defer c2.CloseWithError(0, "")
	req, err := http.NewRequestWithContext(ctx, "GET", "https://"+he.UDPAddr().String()+"/healthz", nil)
	if err != nil {
		t.Fatal(err)
	}
	var resp *http.Response
	hostile(func() { resp, err = cc.RoundTrip(req) })
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz over HTTP/3: %s", resp.Status)
	}
	_ = c2.CloseWithError(0, "")
	poll.Until(t, 10*time.Second, "the warm-up session to end", func() bool { return he.Sessions() == 0 })
}
