package client

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
	"github.com/quic-go/webtransport-go"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
)

// DefaultKeepAlive is how often QUIC and WebTransport connections ping an
// idle edge: well inside the edge's idle timeout (60 s by default) and
// common NAT binding lifetimes.
const DefaultKeepAlive = 15 * time.Second

// QUICOptions tune the QUIC and WebTransport dialers.
type QUICOptions struct {
	// TLS verifies the edge; nil uses the system roots. For an edge's
	// self-signed dev certificate use PinnedTLS with its hashes.
	TLS *tls.Config
	// KeepAlive (default DefaultKeepAlive) and IdleTimeout (default 60 s).
	KeepAlive, IdleTimeout time.Duration
	// LocalAddr is the UDP address to dial from ("" picks one).
	LocalAddr string
	// Transport, when set, is a UDP socket shared by many connections
	// (load generators holding thousands); the caller closes it. Such a
	// connection can still Migrate to a socket of its own, but only about
	// twice: a shared socket needs connection IDs to tell its connections
	// apart, and an edge on quic-go v0.64 keeps one of the few this client
	// gives it for good on every path it moves to (Migrate, or a NAT
	// rebinding), after which it can validate no new path; Migrate then
	// fails and the Client resumes on a new connection. A connection on a
	// socket of its own (Transport nil) uses zero-length connection IDs
	// and can move any number of times.
	Transport *quic.Transport
}

func (o QUICOptions) quicConfig() *quic.Config {
	c := &quic.Config{KeepAlivePeriod: o.KeepAlive, MaxIdleTimeout: o.IdleTimeout,
		EnableDatagrams: true, EnableStreamResetPartialDelivery: true}
	if c.KeepAlivePeriod == 0 {
		c.KeepAlivePeriod = DefaultKeepAlive
	}
	if c.MaxIdleTimeout == 0 {
		c.MaxIdleTimeout = 60 * time.Second
	}
	return c
}

func (o QUICOptions) tlsConfig(alpn string) *tls.Config {
	var c *tls.Config
	if o.TLS != nil {
		c = o.TLS.Clone()
	} else {
		c = &tls.Config{}
	}
	c.NextProtos = []string{alpn}
	c.MinVersion = tls.VersionTLS13
	return c
}

// PinnedTLS trusts exactly the certificates whose SHA-256 (of the DER
// leaf) is among hashes, as browsers do with serverCertificateHashes: for
// an edge's self-signed dev certificate (see its
// /.well-known/parley/cert-hashes).
func PinnedTLS(hashes ...[32]byte) *tls.Config {
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the pin check below
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return errors.New("client: the edge sent no certificate")
			}
			sum := sha256.Sum256(raw[0])
			for _, h := range hashes {
				if subtle.ConstantTimeCompare(sum[:], h[:]) == 1 {
					return nil
				}
			}
			return errors.New("client: the edge's certificate matches no pinned hash")
		},
	}
}

// QUIC dials an edge's UDP port over raw QUIC (ALPN parley/1): addr is
// host:port. The connection can move to a new UDP socket (Client.Migrate).
func QUIC(addr string, o QUICOptions) Dialer {
	return func(ctx context.Context) (Transport, error) {
		raddr, err := net.ResolveUDPAddr("udp", addr)
		if err != nil {
			return nil, fmt.Errorf("client: resolve %s: %w", addr, err)
		}
		t, own := o.Transport, o.Transport == nil
		if own {
			if t, err = newUDPTransport(o.LocalAddr, noConnIDs{}, 0); err != nil {
				return nil, err
			}
		}
		release := func() {
			if own {
				_ = t.Close()
				_ = t.Conn.Close()
			}
		}
		conn, err := t.Dial(ctx, raddr, o.tlsConfig(streamframe.ALPN), o.quicConfig())
		if err != nil {
			release()
			return nil, err
		}
		str, err := conn.OpenStreamSync(ctx)
		if err != nil {
			_ = conn.CloseWithError(0, "")
			release()
			return nil, err
		}
		q := &quicTransport{Conn: streamframe.NewConn(str, syncproto.MaxFrameSize), conn: conn,
			local: o.LocalAddr, cidGen: t.ConnectionIDGenerator, cidLen: t.ConnectionIDLength, addr: t.Conn.LocalAddr()}
		if own {
			q.trs = []*quic.Transport{t}
		}
		q.Conn.OnClose = q.close
		return q, nil
	}
}

// newUDPTransport opens a UDP socket on local for QUIC, with the given
// connection ID generator and length (quic.Transport's fields: a socket
// that a connection moves to must read the connection IDs it was dialed
// with).
func newUDPTransport(local string, gen quic.ConnectionIDGenerator, cidLen int) (*quic.Transport, error) {
	if local == "" {
		local = ":0"
	}
	pc, err := net.ListenPacket("udp", local)
	if err != nil {
		return nil, fmt.Errorf("client: udp socket: %w", err)
	}
	return &quic.Transport{Conn: pc, ConnectionIDGenerator: gen, ConnectionIDLength: cidLen}, nil
}

// noConnIDs gives the connection of a socket that carries only one
// zero-length connection IDs (RFC 9000 sec. 5.1; quic.Dial does the
// same). The edge then needs no connection ID from this client to
// validate a path the connection moves to. With IDs it runs out:
// quic-go v0.64.1's server validates each new client address with a
// fresh ID of this client's and never retires the one of the path it
// switches to (pathManager.SwitchToPath retires only the others';
// connIDManager keeps it in pathProbing for good), while it holds only
// three (active_connection_id_limit 4, less the handshake's, which gets
// no replacement): one in use and two to spare. After two switches (two
// moves, or one network change whose NAT rebinding it follows first) it
// skips the next path's validation ("no connection ID is available")
// and the move fails.
type noConnIDs struct{}

func (noConnIDs) GenerateConnectionID() (quic.ConnectionID, error) {
	return quic.ConnectionIDFromBytes(nil), nil
}
func (noConnIDs) ConnectionIDLen() int { return 0 }

// quicTransport is a raw QUIC connection's control stream.
type quicTransport struct {
	*streamframe.Conn
	conn  *quic.Conn
	local string
	// The connection ID settings of the socket it was dialed on, for the
	// sockets it moves to.
	cidGen quic.ConnectionIDGenerator
	cidLen int

	mu   sync.Mutex
	trs  []*quic.Transport // every socket the connection has used
	addr net.Addr          // the socket it sends from
	path *quic.Path        // the path it switched to last, if any
}

// probeTimeout bounds a migration's path validation when the caller's ctx
// has no deadline.
const probeTimeout = 5 * time.Second

// migrate moves the connection to a new UDP socket: probe the new path,
// then switch. The old sockets stay open until the connection ends
// (closing one would kill the connection).
func (q *quicTransport) migrate(ctx context.Context) error {
	t, err := newUDPTransport(q.local, q.cidGen, q.cidLen)
	if err != nil {
		return err
	}
	q.mu.Lock()
	q.trs = append(q.trs, t)
	q.mu.Unlock()
	path, err := q.conn.AddPath(t)
	if err != nil {
		return fmt.Errorf("client: migrate: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, probeTimeout)
		defer cancel()
	}
	if err := path.Probe(ctx); err != nil {
		_ = path.Close()
		return fmt.Errorf("client: migrate: probe: %w", err)
	}
	if err := path.Switch(); err != nil {
		_ = path.Close()
		return fmt.Errorf("client: migrate: switch: %w", err)
	}
	q.mu.Lock()
	old := q.path
	q.addr, q.path = t.Conn.LocalAddr(), path
	q.mu.Unlock()
	if old != nil {
		// Abandoning the previous path retires its connection ID, so the
		// edge can issue one for the next move.
		_ = old.Close()
	}
	return nil
}

// openRequest opens a stream for one request (requestOpener).
func (q *quicTransport) openRequest(ctx context.Context) (Transport, error) {
	str, err := q.conn.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return requestConn(str, func() { str.CancelRead(0) }), nil
}

// requestConn frames a request stream; closing it finishes the send side
// and abandons the receive side.
func requestConn(s streamframe.Stream, cancelRead func()) *streamframe.Conn {
	c := streamframe.NewConn(s, syncproto.MaxFrameSize)
	c.OnClose = func(error) error {
		err := s.Close()
		cancelRead()
		return err
	}
	return c
}

// localAddr is the UDP socket address the connection sends from. (Not
// quic.Conn.LocalAddr, which races with a path switch in quic-go v0.64.)
func (q *quicTransport) localAddr() net.Addr {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.addr
}

func (q *quicTransport) close(error) error {
	err := q.conn.CloseWithError(0, "")
	q.mu.Lock()
	defer q.mu.Unlock()
	for _, t := range q.trs {
		_ = t.Close()
		_ = t.Conn.Close()
	}
	return err
}

// WebTransport dials an edge's WebTransport endpoint over HTTP/3: url is
// https://host:port/v1/wt.
func WebTransport(url string, o QUICOptions) Dialer {
	return func(ctx context.Context) (Transport, error) {
		d := &webtransport.Transport{TLSClientConfig: o.tlsConfig(http3.NextProtoH3), QUICConfig: o.quicConfig()}
		_, sess, err := d.Dial(ctx, url, nil)
		if err != nil {
			return nil, fmt.Errorf("client: webtransport %s: %w", url, err)
		}
		str, err := sess.OpenStreamSync(ctx)
		if err != nil {
			_ = sess.CloseWithError(0, "")
			return nil, err
		}
		c := streamframe.NewConn(str, syncproto.MaxFrameSize)
		c.OnClose = func(error) error { return sess.CloseWithError(0, "") }
		return &wtTransport{Conn: c, sess: sess}, nil
	}
}

// wtTransport is a WebTransport session's control stream.
type wtTransport struct {
	*streamframe.Conn
	sess *webtransport.Session
}

// openRequest opens a stream for one request (requestOpener).
func (w *wtTransport) openRequest(ctx context.Context) (Transport, error) {
	str, err := w.sess.OpenStreamSync(ctx)
	if err != nil {
		return nil, err
	}
	return requestConn(str, func() { str.CancelRead(0) }), nil
}
