package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/edge/session"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Typing load for `parley bench -transport ...  -typing R`: every sending
// client also says "typing" R times a second in its conversations, so the
// edge carries typing beside messages. The result shows where typing went
// (delivered, rate-limited, shed under load) next to the message check,
// which must show nothing missing: typing is dropped first, messages are
// not.

// typingBench counts typing at the clients.
type typingBench struct {
	sent, failed, delivered atomic.Int64
}

// typingResult is the typing part of an sdkResult.
type typingResult struct {
	PerClientRate float64 `json:"per_client_rate"`
	Sent          int64   `json:"sent"`     // Typing calls that went out
	Failed        int64   `json:"failed"`   // Typing calls that failed (not connected)
	Expected      int64   `json:"expected"` // sent × other members
	Delivered     int64   `json:"delivered"`
	// The edge's and core's counters (with -self only).
	Edge *session.TypingStats `json:"edge,omitempty"`
	Core *core.TypingStats    `json:"core,omitempty"`
}

// onTyping counts indicators from others (the SDK's own lapse reports,
// Typing false, are not deliveries).
func (tb *typingBench) onTyping(t *syncpb.Typing) {
	if t.Typing {
		tb.delivered.Add(1)
	}
}

// generateTyping says "typing" from d at rate per second, in its
// conversations in turn, until the window ends.
func (b *sdkBench) generateTyping(ctx context.Context, d *benchDevice, rate float64) {
	end := b.epoch.Add(b.to)
	interval := time.Duration(float64(time.Second) / rate)
	t := time.NewTimer(rand.N(interval)) // spread the clients' phases
	defer t.Stop()
	for k := 0; ; k++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if !time.Now().Before(end) {
			return
		}
		if err := d.c.Typing(ctx, b.convIDs[d.convs[k%len(d.convs)]], true); err != nil {
			b.typing.failed.Add(1)
		} else {
			b.typing.sent.Add(1)
		}
		t.Reset(interval)
	}
}

// typingResult gathers the typing counts once the run is over.
func (b *sdkBench) typingResult(senders []*benchDevice) *typingResult {
	r := &typingResult{PerClientRate: b.cfg.Typing, Sent: b.typing.sent.Load(), Failed: b.typing.failed.Load(),
		Delivered: b.typing.delivered.Load()}
	// Each client is its conversations' only device of its user: an
	// indicator is owed to the other members of the conversation it went
	// to. Conversations have GroupSize members (planConvs).
	r.Expected = r.Sent * int64(b.cfg.GroupSize-1)
	if b.sys != nil {
		es, cs := b.sys.edge.TypingStats(), b.sys.node.TypingStats()
		r.Edge, r.Core = &es, &cs
	}
	return r
}

func printTyping(w io.Writer, r *typingResult) {
	pct := func(n, of int64) float64 {
		if of == 0 {
			return 0
		}
		return 100 * float64(n) / float64(of)
	}
	fmt.Fprintf(w, "typing: %g/s per client: %d sent (%d failed), %d deliveries expected, %d delivered (%.1f%%)\n",
		r.PerClientRate, r.Sent, r.Failed, r.Expected, r.Delivered, pct(r.Delivered, r.Expected))
	if e := r.Edge; e != nil {
		fmt.Fprintf(w, "typing at the edge, in: %d (%d datagrams), rate-limited %d, malformed %d, shed (edge overloaded) %d, published %d\n",
			e.Received, e.Datagrams, e.RateLimited, e.Malformed, e.Overloaded, e.Published)
		shed := e.ShedQueue + e.ShedBacklog + e.ShedLoad
		fmt.Fprintf(w, "typing at the edge, out: pushed %d (%d as datagrams); shed %d (%.1f%%): %d edge overloaded, %d NATS backlog, %d full device queues\n",
			e.Pushed, e.SentAsDgram, shed, pct(int64(shed), int64(e.Pushed+shed)), e.ShedLoad, e.ShedBacklog, e.ShedQueue)
	}
	if c := r.Core; c != nil {
		fmt.Fprintf(w, "typing at the core: received %d, fanned out %d, strangers %d, dropped %d\n", c.Received, c.Fanned, c.Strangers, c.Dropped)
	}
}
