package edge

import (
	"context"

	"github.com/parley-chat/parley/edge/presence"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// presenceAdapter lets sessions use the presence service.
type presenceAdapter struct{ s *presence.Service }

var _ session.Presence = presenceAdapter{}

func (a presenceAdapter) Join(c *syncpb.Caller, deliver func(*syncpb.PresenceUpdate)) session.PresenceSession {
	return a.s.Join(c, deliver)
}

// runPresence starts reporting and delivering presence; stop sends the
// closing batch (after the sessions have ended) and waits.
func (e *Edge) runPresence() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := e.pres.Run(ctx); err != nil {
			e.log.Error("presence stopped", "err", err)
		}
	}()
	return func() { cancel(); <-done }
}

// Presence is the edge's presence service (for stats and tests).
func (e *Edge) Presence() *presence.Service { return e.pres }
