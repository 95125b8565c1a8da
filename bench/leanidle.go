package bench

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
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
// Like real devices, sessions that fail or drop are dialed again (keep).
type leanIdle struct {
	trs   []*quic.Transport
	raddr *net.UDPAddr
	tls   *tls.Config

	mu    sync.Mutex
	slots []*leanSession // by session index; nil: not connected

	redials atomic.Int64 // dials of a slot after its first (keep)

	done chan struct{} // closed by close: stops the pinger
	wg   sync.WaitGroup
}

type leanSession struct {
	conn *quic.Conn
	str  *quic.Stream
}

func newLeanIdle(udp string, hashes [][32]byte, sockets, n int) (*leanIdle, error) {
	raddr, err := net.ResolveUDPAddr("udp", udp)
	if err != nil {
		return nil, fmt.Errorf("lean idle: %w", err)
	}
	t := client.PinnedTLS(hashes...).Clone()
	t.NextProtos = []string{streamframe.ALPN}
	l := &leanIdle{raddr: raddr, tls: t, slots: make([]*leanSession, n), done: make(chan struct{})}
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
	defer l.mu.Unlock()
	if l.slots == nil { // closed
		return fail(net.ErrClosed)
	}
	l.slots[i] = &leanSession{conn: conn, str: str}
	return nil
}

// down lists the slots not connected now.
func (l *leanIdle) down() []int {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []int
	for i, s := range l.slots {
		if s == nil || s.conn.Context().Err() != nil {
			out = append(out, i)
		}
	}
	return out
}

// redial dials every slot that is down, 16 at a time, and returns how
// many are still down.
func (l *leanIdle) redial(ctx context.Context, dial func(ctx context.Context, i int) error) int {
	down := l.down()
	var failed atomic.Int64
	_ = parallel(ctx, len(down), 16, func(ctx context.Context, k int) error {
		l.redials.Add(1)
		if dial(ctx, down[k]) != nil {
			failed.Add(1)
		}
		return nil
	})
	return int(failed.Load())
}

// keep redials dropped sessions every interval until close.
func (l *leanIdle) keep(ctx context.Context, every time.Duration, dial func(ctx context.Context, i int) error) {
	l.wg.Add(1)
	go func() {
		defer l.wg.Done()
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-l.done:
				return
			case <-ctx.Done():
				return
			case <-t.C:
			}
			l.redial(ctx, dial)
		}
	}()
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

// ping spreads the pings over the interval (a slice of the sessions
// every interval/pingSlices), as a population of devices would, rather
// than sending them all at once.
func (l *leanIdle) ping(every time.Duration) {
	const pingSlices = 100
	b, _ := syncproto.AppendFrame(nil, &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{}}})
	t := time.NewTicker(every / pingSlices)
	defer t.Stop()
	for slice := 0; ; slice = (slice + 1) % pingSlices {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		l.mu.Lock()
		var ss []*leanSession
		for i := slice; i < len(l.slots); i += pingSlices {
			if s := l.slots[i]; s != nil {
				ss = append(ss, s)
			}
		}
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
	for _, s := range l.slots {
		if s != nil && s.conn.Context().Err() == nil {
			n++
		}
	}
	return n
}

func (l *leanIdle) close() {
	close(l.done)
	l.wg.Wait()
	l.mu.Lock()
	ss := l.slots
	l.slots = nil
	l.mu.Unlock()
	for _, s := range ss {
		if s != nil {
			_ = s.conn.CloseWithError(0, "")
		}
	}
	for _, t := range l.trs {
		_ = t.Close()
		_ = t.Conn.Close()
	}
}
