package client_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const testConv = "c_move"

// quicEdge is a minimal raw-QUIC edge on 127.0.0.1 (quic-go's server, as
// the real edge): it welcomes each hello, acks each send once per
// client_msg_id, and delivers every message of one conversation, sent or
// pushed, to the connected session in seq order.
type quicEdge struct {
	t    *testing.T
	ln   *quic.Listener
	hash [32]byte

	mu       sync.Mutex
	sessions int
	conn     *quic.Conn        // the current session's connection
	ctl      *streamframe.Conn // and its control stream
	seq      uint64
	acked    map[string]uint64 // client_msg_id -> seq
}

func newQUICEdge(t *testing.T) *quicEdge {
	t.Helper()
	cert, hash := selfSigned(t)
	ln, err := quic.ListenAddr("127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert},
		NextProtos: []string{streamframe.ALPN}, MinVersion: tls.VersionTLS13},
		&quic.Config{EnableDatagrams: true, MaxIdleTimeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	e := &quicEdge{t: t, ln: ln, hash: hash, acked: map[string]uint64{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			conn, err := ln.Accept(ctx)
			if err != nil {
				return
			}
			wg.Go(func() { e.serve(ctx, conn) })
		}
	})
	t.Cleanup(func() {
		cancel()
		_ = ln.Close()
		wg.Wait()
	})
	return e
}

func (e *quicEdge) addr() string { return e.ln.Addr().String() }

func (e *quicEdge) serve(ctx context.Context, conn *quic.Conn) {
	defer func() { _ = conn.CloseWithError(0, "") }()
	str, err := conn.AcceptStream(ctx)
	if err != nil {
		return
	}
	ctl := streamframe.NewConn(str, syncproto.MaxFrameSize)
	hello, err := ctl.ReadFrame(ctx)
	if err != nil || hello.GetHello() == nil {
		return
	}
	e.mu.Lock()
	e.sessions++
	e.conn, e.ctl = conn, ctl
	err = ctl.WriteFrame(ctx, &syncpb.Frame{Id: hello.Id, Body: &syncpb.Frame_Welcome{Welcome: &syncpb.Welcome{
		Version: syncproto.ProtocolVersion, UserId: "u_a", DeviceId: "d_a", KeepaliveMs: 60_000}}})
	e.mu.Unlock()
	if err != nil {
		return
	}
	go func() { // pings on the control stream
		for {
			f, err := ctl.ReadFrame(ctx)
			if err != nil {
				return
			}
			if p := f.GetPing(); p != nil {
				e.mu.Lock()
				_ = ctl.WriteFrame(ctx, &syncpb.Frame{Id: f.Id, Body: &syncpb.Frame_Pong{Pong: &syncpb.Pong{Nonce: p.Nonce}}})
				e.mu.Unlock()
			}
		}
	}()
	for {
		str, err := conn.AcceptStream(ctx)
		if err != nil {
			return
		}
		go e.request(ctx, str)
	}
}

// request answers a send on its own stream, then ends the stream both
// ways (so that the client may open another).
func (e *quicEdge) request(ctx context.Context, str *quic.Stream) {
	defer func() {
		_ = str.Close()
		str.CancelRead(0)
	}()
	rc := streamframe.NewConn(str, syncproto.MaxFrameSize)
	f, err := rc.ReadFrame(ctx)
	if err != nil || f.GetSend() == nil {
		return
	}
	s := f.GetSend()
	seq := e.commit(ctx, s.ClientMsgId, s.Body)
	_ = rc.WriteFrame(ctx, &syncpb.Frame{Id: f.Id, Body: &syncpb.Frame_SendAck{SendAck: &syncpb.SendAck{
		ConvId: s.ConvId, Seq: seq, ClientMsgId: s.ClientMsgId}}})
}

// commit gives a message the next seq (a repeated client_msg_id keeps
// its first) and delivers it to the session.
func (e *quicEdge) commit(ctx context.Context, clientMsgID string, body []byte) uint64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	if seq, ok := e.acked[clientMsgID]; ok {
		return seq
	}
	e.seq++
	e.acked[clientMsgID] = e.seq
	m := &syncpb.Message{ConvId: testConv, Seq: e.seq, ClientMsgId: clientMsgID, Body: body}
	if e.ctl != nil {
		// A lost delivery would leave a gap the test sees as loss (this
		// edge serves no history): connections here are expected to hold.
		_ = e.ctl.WriteFrame(ctx, &syncpb.Frame{Body: &syncpb.Frame_Deliver{Deliver: &syncpb.Deliver{Messages: []*syncpb.Message{m}}}})
	}
	return e.seq
}

// sendDatagram sends b on the current session's connection.
func (e *quicEdge) sendDatagram(b []byte) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.conn == nil {
		return errors.New("no session")
	}
	return e.conn.SendDatagram(b)
}

func (e *quicEdge) stats() (sessions int, seq uint64) {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sessions, e.seq
}

// selfSigned makes an ECDSA certificate for 127.0.0.1 and its pin.
func selfSigned(t *testing.T) (tls.Certificate, [32]byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "edge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, sha256.Sum256(der)
}

// rebindingNAT relays a device's UDP to the edge, each device socket
// from an outside socket of its own (a new device socket gets a new
// outside port). rebind gives every device socket seen so far a new
// outside port: as when a device's host address changes and its old
// socket, bound to the wildcard address, goes on sending from the new
// one, the edge sees the old path's packets from a new address (and its
// packets to the old one are lost).
type rebindingNAT struct {
	in   *net.UDPConn
	edge *net.UDPAddr

	mu    sync.Mutex
	flows map[string]*natFlow // by device address
	wg    sync.WaitGroup
}

type natFlow struct {
	dev *net.UDPAddr
	out *net.UDPConn
}

func newRebindingNAT(t *testing.T, edge string) *rebindingNAT {
	t.Helper()
	ea, err := net.ResolveUDPAddr("udp", edge)
	if err != nil {
		t.Fatal(err)
	}
	in, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	n := &rebindingNAT{in: in, edge: ea, flows: map[string]*natFlow{}}
	n.wg.Go(n.inbound)
	t.Cleanup(func() {
		_ = in.Close()
		n.mu.Lock()
		for _, f := range n.flows {
			_ = f.out.Close()
		}
		n.mu.Unlock()
		n.wg.Wait()
	})
	return n
}

func (n *rebindingNAT) addr() string { return n.in.LocalAddr().String() }

// inbound forwards the device's packets to the edge.
func (n *rebindingNAT) inbound() {
	buf := make([]byte, 2048)
	for {
		k, from, err := n.in.ReadFromUDP(buf)
		if err != nil {
			return
		}
		n.mu.Lock()
		f, ok := n.flows[from.String()]
		if !ok {
			f = &natFlow{dev: from}
			if err := n.open(f); err != nil {
				n.mu.Unlock()
				return
			}
			n.flows[from.String()] = f
		}
		out := f.out
		n.mu.Unlock()
		_, _ = out.WriteToUDP(buf[:k], n.edge)
	}
}

// open gives f a new outside socket that relays the edge's packets back
// to the device (n.mu held).
func (n *rebindingNAT) open(f *natFlow) error {
	out, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return err
	}
	f.out = out
	dev := f.dev
	n.wg.Go(func() {
		buf := make([]byte, 2048)
		for {
			k, _, err := out.ReadFromUDP(buf)
			if err != nil {
				return
			}
			_, _ = n.in.WriteToUDP(buf[:k], dev)
		}
	})
	return nil
}

func (n *rebindingNAT) rebind(t *testing.T) {
	t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, f := range n.flows {
		_ = f.out.Close()
		if err := n.open(f); err != nil {
			t.Fatal(err)
		}
	}
}

// One raw-QUIC connection moves to a new UDP socket six times in a row
// while messages flow both ways (the device sends, the edge pushes): it
// never reconnects, and every message arrives once, in order. Through a
// NAT that also rebinds the device's old path before each move (what a
// host address change does to a socket bound to the wildcard address),
// the edge sees two new paths per move, each validated with a connection
// ID of its own: the SDK retires the old path's after each move, so the
// edge always has one to issue.
func TestQUICMigratesManyTimes(t *testing.T) {
	for _, tc := range []struct {
		name   string
		rebind bool
	}{{"moves", false}, {"rebinding then moves", true}} {
		t.Run(tc.name, func(t *testing.T) {
			edge := newQUICEdge(t)
			dialAddr := edge.addr()
			var nat *rebindingNAT
			if tc.rebind {
				nat = newRebindingNAT(t, edge.addr())
				dialAddr = nat.addr()
			}
			got := make(chan *syncpb.Message, 10_000)
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			c, err := client.Dial(ctx, client.Config{
				Dial: client.QUIC(dialAddr, client.QUICOptions{TLS: client.PinnedTLS(edge.hash),
					LocalAddr: "127.0.0.1:0"}),
				Token: func(context.Context) (string, error) { return "t", nil },
				OnMessage: func(m *syncpb.Message) {
					select {
					case got <- m:
					case <-ctx.Done(): // the test gave up
					}
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { c.Close() })

			// Traffic both ways until the moves are done (or the test
			// fails: the cleanup, run before the client's, stops it).
			stop := make(chan struct{})
			var wg sync.WaitGroup
			var stopOnce sync.Once
			stopTraffic := func() {
				stopOnce.Do(func() { close(stop) })
				wg.Wait()
			}
			t.Cleanup(func() {
				cancel()
				stopTraffic()
			})
			sendErr := make(chan error, 1)
			wg.Go(func() {
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					sctx, scancel := context.WithTimeout(ctx, 20*time.Second)
					_, err := c.Send(sctx, &syncpb.SendRequest{ConvId: testConv, Body: fmt.Appendf(nil, "up %d", i)})
					scancel()
					if err != nil {
						sendErr <- fmt.Errorf("send %d: %w", i, err)
						return
					}
				}
			})
			wg.Go(func() {
				tick := time.NewTicker(2 * time.Millisecond)
				defer tick.Stop()
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					case <-tick.C:
					}
					edge.commit(ctx, fmt.Sprintf("down-%d", i), fmt.Appendf(nil, "down %d", i))
				}
			})

			var next uint64 = 1 // the seq expected next
			receive := func(upTo uint64) {
				t.Helper()
				for next <= upTo {
					select {
					case m := <-got:
						if m.Seq != next {
							t.Fatalf("got seq %d, want %d (a loss, a repeat or out of order)", m.Seq, next)
						}
						next++
					case <-ctx.Done():
						t.Fatalf("waiting for seq %d of %d: %v", next, upTo, ctx.Err())
					}
				}
			}
			const moves = 6
			for i := range moves {
				_, seq := edge.stats()
				receive(seq + 20) // traffic on the current path first
				if nat != nil {
					nat.rebind(t)
					_, seq = edge.stats()
					receive(seq + 5) // the connection survives the rebinding
				}
				before := c.LocalAddr()
				mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
				err := c.Migrate(mctx)
				mcancel()
				if err != nil {
					t.Fatalf("move %d of %d: %v", i+1, moves, err)
				}
				if after := c.LocalAddr(); before == nil || after == nil || before.String() == after.String() {
					t.Fatalf("move %d: local address %v -> %v", i+1, before, after)
				}
			}
			_, seq := edge.stats()
			receive(seq + 20) // traffic on the last path
			stopTraffic()
			select {
			case err := <-sendErr:
				t.Fatal(err)
			default:
			}
			_, seq = edge.stats()
			receive(seq)
			select {
			case m := <-got:
				t.Fatalf("an extra message: seq %d", m.Seq)
			default:
			}
			if sessions, _ := edge.stats(); sessions != 1 || c.Connections() != 1 {
				t.Fatalf("%d sessions at the edge, %d connections at the client; want 1 (a move must not reconnect)", sessions, c.Connections())
			}
			if c.Pending() != 0 {
				t.Fatalf("%d sends not acked", c.Pending())
			}
		})
	}
}
