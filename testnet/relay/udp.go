package relay

import (
	"context"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// maxInFlight bounds the packets a flow holds per direction; more are
// dropped, as a full router queue would.
const maxInFlight = 4096

// udpRelay forwards datagrams from clients to one target: each client
// address gets a socket of its own toward the target (so the target sees
// one peer per client, and a client that changes address is a new peer to
// it, as through a NAT). Each packet is delayed on its own: jitter can
// reorder them, as on a real path. (quic-go's test proxy does the same but
// binds its target-side sockets to 127.0.0.1, so it cannot sit between
// namespaces.)
type udpRelay struct {
	r      *Relay
	conn   *net.UDPConn
	target *net.UDPAddr

	mu    sync.Mutex
	flows map[string]*udpFlow
	wg    sync.WaitGroup // flow readers and delayed sends
}

type udpFlow struct {
	client   *net.UDPAddr
	up       *net.UDPConn // toward the target
	inFlight [2]atomic.Int32
}

func (u *udpRelay) run(ctx context.Context) {
	defer u.close()
	buf := make([]byte, 65536)
	for {
		n, from, err := u.conn.ReadFromUDP(buf)
		if err != nil {
			return
		}
		f, err := u.flow(from)
		if err != nil {
			u.r.cfg.Logger.Debug("relay: udp flow", "err", err)
			continue
		}
		u.forward(f, Up, append([]byte(nil), buf[:n]...), func(b []byte) { _, _ = f.up.Write(b) })
	}
}

func (u *udpRelay) flow(from *net.UDPAddr) (*udpFlow, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if f := u.flows[from.String()]; f != nil {
		return f, nil
	}
	up, err := net.DialUDP("udp", nil, u.target)
	if err != nil {
		return nil, err
	}
	f := &udpFlow{client: from, up: up}
	u.flows[from.String()] = f
	u.wg.Add(1)
	go func() { // ends when close closes f.up
		defer u.wg.Done()
		buf := make([]byte, 65536)
		for {
			n, err := up.Read(buf)
			if err != nil {
				return
			}
			u.forward(f, Down, append([]byte(nil), buf[:n]...), func(b []byte) { _, _ = u.conn.WriteToUDP(b, f.client) })
		}
	}()
	return f, nil
}

// forward sends b now, or after the direction's delay.
func (u *udpRelay) forward(f *udpFlow, dir int, b []byte, send func([]byte)) {
	d := u.r.pick(dir)
	if d <= 0 {
		send(b)
		return
	}
	if f.inFlight[dir].Add(1) > maxInFlight {
		f.inFlight[dir].Add(-1)
		return
	}
	u.wg.Add(1)
	time.AfterFunc(d, func() {
		defer u.wg.Done()
		f.inFlight[dir].Add(-1)
		send(b)
	})
}

func (u *udpRelay) close() {
	_ = u.conn.Close()
	u.mu.Lock()
	for _, f := range u.flows {
		_ = f.up.Close()
	}
	u.mu.Unlock()
	u.wg.Wait()
}
