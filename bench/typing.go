package bench

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"sync/atomic"
	"time"

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

// TypingResult is the typing part of an SDKResult.
type TypingResult struct {
	PerClientRate float64 `json:"per_client_rate"`
	Sent          int64   `json:"sent"`     // Typing calls that went out
	Failed        int64   `json:"failed"`   // Typing calls that failed (not connected)
	Expected      int64   `json:"expected"` // sent × other members
	Delivered     int64   `json:"delivered"`
	// The edge's and core's counters (with -self only).
	Edge *EdgeTypingStats `json:"edge,omitempty"`
	Core *CoreTypingStats `json:"core,omitempty"`
}

// EdgeTypingStats are an edge's typing counters (edge/session's
// TypingStats, field for field, so that a System converts them).
type EdgeTypingStats struct {
	// From devices.
	Received    uint64 // indicators read (datagrams and frames)
	Datagrams   uint64 // of Received, those that came as datagrams
	Malformed   uint64 // datagrams that did not decode (dropped)
	Invalid     uint64 // bad conv id (dropped)
	RateLimited uint64 // over the device's typing rate (dropped)
	Overloaded  uint64 // dropped: the edge was overloaded
	Published   uint64 // sent on to the core
	Unpublished uint64 // publishing failed (dropped)
	// To devices.
	Pushed      uint64 // queued for a device
	SentAsDgram uint64 // of those written, written as datagrams
	ShedQueue   uint64 // dropped: the device's send queue was half full
	ShedBacklog uint64 // dropped: the edge's NATS backlog for the user was high
	ShedLoad    uint64 // dropped: the edge was overloaded
}

// CoreTypingStats are a core node's typing counters (core's
// TypingStats, field for field).
type CoreTypingStats struct {
	Received  uint64 // indicators from edges on shard subjects
	Fanned    uint64 // passed the membership check and published
	Strangers uint64 // from a non-member (or a conversation that does not exist): dropped
	Dropped   uint64 // not checked: malformed, not this node's shard, queue full, store error
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

// typingReport gathers the typing counts once the run is over.
func (b *sdkBench) typingReport(senders []*benchDevice) *TypingResult {
	r := &TypingResult{PerClientRate: b.cfg.Typing, Sent: b.typing.sent.Load(), Failed: b.typing.failed.Load(),
		Delivered: b.typing.delivered.Load()}
	// Each client is its conversations' only device of its user: an
	// indicator is owed to the other members of the conversation it went
	// to. Conversations have GroupSize members (planConvs).
	r.Expected = r.Sent * int64(b.cfg.GroupSize-1)
	if b.sys != nil {
		es, cs := b.sys.TypingStats()
		r.Edge, r.Core = &es, &cs
	}
	return r
}

func printTyping(w io.Writer, r *TypingResult) {
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
