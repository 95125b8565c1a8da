package raftmux

import (
	"context"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

var _ raft.StreamLayer = (*Layer)(nil)

// Layer is one group's raft.StreamLayer on a Mux. Accept, Dial, Close and
// Addr are safe for concurrent use.
type Layer struct {
	m     *Mux
	group string
	queue chan net.Conn // accepted connections, bounded
	done  chan struct{} // closed by Close
	once  sync.Once
}

// Accept returns the next incoming connection for the group, or ErrClosed
// once the Layer or its Mux is closed.
func (l *Layer) Accept() (net.Conn, error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	select {
	case c := <-l.queue:
		return c, nil
	case <-l.done:
		return nil, ErrClosed
	}
}

// Close stops Accept and closes the group's connections, both accepted and
// dialed. It leaves the shared listener open and frees the group name.
// Idempotent.
func (l *Layer) Close() error {
	l.once.Do(func() {
		m := l.m
		m.mu.Lock()
		close(l.done)
		if m.layers[l.group] == l {
			delete(m.layers, l.group)
		}
		var victims []*conn
		for c := range m.conns {
			if c.layer == l {
				victims = append(victims, c)
			}
		}
		m.mu.Unlock()
		for _, c := range victims {
			c.Close()
		}
	})
	return nil
}

// Addr is the Mux's advertise address.
func (l *Layer) Addr() net.Addr { return l.m.advertise }

// Dial connects to the Mux listening at address and names this group and
// this node's advertise address in the header. timeout bounds the TCP
// connect and the header write; zero means the Mux's HeaderTimeout. It
// fails at once with ErrPartitioned for a partitioned peer and ErrClosed
// after Close.
func (l *Layer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	m := l.m
	if err := l.check(string(address)); err != nil {
		return nil, err
	}
	if timeout <= 0 {
		timeout = m.cfg.HeaderTimeout
	}
	ctx, cancel := context.WithTimeout(m.ctx, timeout)
	defer cancel()
	var d net.Dialer
	raw, err := d.DialContext(ctx, "tcp", string(address))
	if err != nil {
		if m.ctx.Err() != nil {
			return nil, ErrClosed
		}
		return nil, fmt.Errorf("raftmux: dial %s for %s: %w", address, l.group, err)
	}
	c := m.track(raw, string(address), l)
	if c == nil {
		return nil, ErrClosed
	}
	// Close (of the Layer, or the Mux) may have swept the connections just
	// before c was tracked; check again now that it is.
	if err := l.check(string(address)); err != nil {
		c.Close()
		return nil, err
	}
	dl, _ := ctx.Deadline()
	_ = raw.SetWriteDeadline(dl)
	hdr := header{group: l.group, from: m.advertise.String()}.appendTo(make([]byte, 0, maxHeaderLen))
	if _, err := raw.Write(hdr); err != nil {
		c.Close()
		return nil, fmt.Errorf("raftmux: dial %s for %s: write header: %w", address, l.group, err)
	}
	_ = raw.SetWriteDeadline(time.Time{})
	return c, nil
}

// check fails when the Layer or Mux is closed or address is partitioned.
func (l *Layer) check(address string) error {
	select {
	case <-l.done:
		return ErrClosed
	default:
	}
	m := l.m
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	if m.partitioned[address] {
		return fmt.Errorf("%w: %s", ErrPartitioned, address)
	}
	return nil
}
