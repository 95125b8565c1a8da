// Package gate lets an engine's calls run until it is closed, and its
// Close wait for the calls in flight.
package gate

import (
	"sync"

	"github.com/parley-chat/parley/core/search"
)

// Gate is open until Close. The zero Gate is open.
type Gate struct {
	mu     sync.RWMutex
	closed bool
}

// Enter starts a call; it returns search.ErrClosed after Close. A call
// that entered must Leave.
func (g *Gate) Enter() error {
	g.mu.RLock()
	if g.closed {
		g.mu.RUnlock()
		return search.ErrClosed
	}
	return nil
}

// Leave ends a call.
func (g *Gate) Leave() { g.mu.RUnlock() }

// Close waits for the calls in flight and shuts the gate; it reports
// whether this call shut it (false: it was shut already).
func (g *Gate) Close() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	first := !g.closed
	g.closed = true
	return first
}
