package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/quic-go/quic-go"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// leanIdle holds idle raw-QUIC device sessions as cheaply as the load
// generator can, so that it measures the edge and not itself: per session
// a QUIC connection and its control stream, no goroutine of the bench's
// own (quic-go keeps two per connection), a Hello read back as Welcome,
// then a Ping frame every keepalive interval from one shared goroutine.
// Nothing else is read: an idle user in no conversation gets no pushes.
type leanIdle struct {
	trs   []*quic.Transport
	raddr *net.UDPAddr
	tls   *tls.Config

	mu       sync.Mutex
	sessions []leanSession

	done chan struct{} // closed by close: stops the pinger
	wg   sync.WaitGroup
}

type leanSession struct {
	conn *quic.Conn
	str  *quic.Stream
}

func newLeanIdle(udp string, hashes [][32]byte, sockets int) (*leanIdle, error) {
	raddr, err := net.ResolveUDPAddr("udp", udp)
	if err != nil {
		return nil, fmt.Errorf("lean idle: %w", err)
	}
	t := client.PinnedTLS(hashes...).Clone()
	t.NextProtos = []string{streamframe.ALPN}
	l := &leanIdle{raddr: raddr, tls: t, done: make(chan struct{})}
	for range max(sockets, 1) {
		pc, err := net.ListenPacket("udp", ":0")
		if err != nil {
			l.close()
			return nil, fmt.Errorf("lean idle: %w", err)
		}
		l.trs = append(l.trs, &quic.Transport{Conn: pc})
	}
	return l, nil
}

// dial opens session i and waits for its Welcome.
func (l *leanIdle) dial(ctx context.Context, i int, token, device string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	// The pings keep the connection busy; QUIC PINGs are a fallback.
	conn, err := l.trs[i%len(l.trs)].Dial(ctx, l.raddr, l.tls, &quic.Config{KeepAlivePeriod: 50 * time.Second, MaxIdleTimeout: 5 * time.Minute})
	if err != nil {
		return err
	}
	fail := func(err error) error {
		_ = conn.CloseWithError(0, "")
		return err
	}
	str, err := conn.OpenStreamSync(ctx)
	if err != nil {
		return fail(err)
	}
	dl, _ := ctx.Deadline()
	_ = str.SetDeadline(dl)
	if err := syncproto.WriteFrame(str, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: syncproto.NewHello(token, device)}}); err != nil {
		return fail(err)
	}
	f, err := syncproto.NewFrameReader(str, syncproto.MaxFrameSize).ReadFrame()
	if err != nil {
		return fail(err)
	}
	if f.GetWelcome() == nil {
		return fail(fmt.Errorf("lean idle: expected a welcome, got %v", syncproto.FromProto(f.GetError())))
	}
	_ = str.SetDeadline(time.Time{})
	l.mu.Lock()
	l.sessions = append(l.sessions, leanSession{conn: conn, str: str})
	l.mu.Unlock()
	return nil
}

// startPing writes a Ping frame on every session each interval until
// close (the edge ends a session that sends nothing for three intervals).
func (l *leanIdle) startPing(every time.Duration) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		l.ping(every)
	}()
}

func (l *leanIdle) ping(every time.Duration) {
	b, _ := syncproto.AppendFrame(nil, &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		l.mu.Lock()
		ss := append([]leanSession(nil), l.sessions...)
		l.mu.Unlock()
		for _, s := range ss {
			if s.conn.Context().Err() != nil {
				continue
			}
			_ = s.str.SetWriteDeadline(time.Now().Add(5 * time.Second))
			_, _ = s.str.Write(b)
		}
	}
}

// alive counts the sessions whose connection is still up.
func (l *leanIdle) alive() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range l.sessions {
		if s.conn.Context().Err() == nil {
			n++
		}
	}
	return n
}

func (l *leanIdle) close() {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	ss := l.sessions
	l.sessions = nil
	l.mu.Unlock()
	for _, s := range ss {
		_ = s.conn.CloseWithError(0, "")
	}
	for _, t := range l.trs {
		_ = t.Close()
		_ = t.Conn.Close()
	}
}
