// Package revoke keeps an edge's revocation set (auth.Revocations) in step
// with the directory: it applies the revocations the cores publish on
// syncproto.RevocationSubject as they come, and reads the ones it may have
// missed (list_revocations) when it starts and whenever its NATS
// connection comes back. Until that read succeeds the set is not ready
// (tokens get UNAVAILABLE), so an edge never accepts a token revoked while
// it was not listening. Each revocation that changes the set is handed to
// Config.OnRevoke, which ends the live sessions it names.
package revoke

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Core is what the follower needs of the core; *corerpc.Client implements
// it. Call is safe for concurrent use and honours ctx's deadline.
type Core interface {
	Call(ctx context.Context, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error)
}

// Defaults for Config's zero values.
const (
	DefaultPoll     = 100 * time.Millisecond
	DefaultMinRetry = 100 * time.Millisecond
	DefaultMaxRetry = time.Second
	// catchUpSkew widens the catch-up window for clocks that disagree.
	catchUpSkew = 5 * time.Minute
)

// Config configures a Follower. Conn, Core and Set are required.
type Config struct {
	Conn   *nats.Conn
	Core   Core
	Region string
	Set    *auth.Revocations
	// OnRevoke, when set, is called with every revocation that changed
	// the set, from the goroutine that applied it. It must not block.
	OnRevoke func(*syncpb.Revocation)
	// TTL is the access token lifetime: the catch-up reads the
	// revocations of that long ago and later (default auth.DefaultAccessTTL).
	TTL time.Duration
	// Poll is how often the connection's state is looked at, to notice an
	// outage and a reconnect on a connection whose handlers the edge does
	// not own (default 100 ms).
	Poll time.Duration
	// MinRetry and MaxRetry bound the wait between failed catch-ups
	// (defaults 100 ms, 1 s).
	MinRetry, MaxRetry time.Duration
	Logger             *slog.Logger
	Now                func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Conn == nil || c.Core == nil || c.Set == nil:
		return errors.New("revoke: Conn, Core and Set are required")
	case c.Region == "":
		return errors.New("revoke: Region is required")
	case c.TTL < 0 || c.Poll < 0 || c.MinRetry < 0 || c.MaxRetry < 0:
		return errors.New("revoke: durations must not be negative")
	case c.MaxRetry != 0 && c.MinRetry > c.MaxRetry:
		return fmt.Errorf("revoke: MinRetry %v is above MaxRetry %v", c.MinRetry, c.MaxRetry)
	}
	return nil
}

// Follower follows the directory's revocations. New, then Run.
type Follower struct {
	cfg   Config
	log   *slog.Logger
	kick  chan struct{} // a catch-up is owed
	ready chan struct{} // closed at the first successful catch-up
	once  sync.Once
}

// New returns a Follower for cfg.
func New(cfg Config) (*Follower, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TTL == 0 {
		cfg.TTL = auth.DefaultAccessTTL
	}
	if cfg.Poll == 0 {
		cfg.Poll = DefaultPoll
	}
	if cfg.MinRetry == 0 {
		cfg.MinRetry = DefaultMinRetry
	}
	if cfg.MaxRetry == 0 {
		cfg.MaxRetry = max(DefaultMaxRetry, cfg.MinRetry)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Follower{cfg: cfg, log: cfg.Logger, kick: make(chan struct{}, 1), ready: make(chan struct{})}, nil
}

// Apply adds rv to the set and, if that changed it, hands it to OnRevoke.
// The edge calls it with the revocation of a request it made itself, so
// that it holds before NATS brings it.
func (f *Follower) Apply(rv *syncpb.Revocation) {
	if err := syncproto.ValidateRevocation(rv); err != nil {
		f.log.Warn("invalid revocation ignored", "err", err)
		return
	}
	if f.cfg.Set.Add(rv) && f.cfg.OnRevoke != nil {
		f.cfg.OnRevoke(rv)
	}
}

// Disconnected says the NATS connection is down: revocations may be
// missed from now on, so the set is not ready until the next catch-up.
func (f *Follower) Disconnected() {
	f.cfg.Set.SetReady(false)
	f.owe()
}

// Reconnected says the NATS connection is back: a catch-up is due.
func (f *Follower) Reconnected() {
	f.cfg.Set.SetReady(false)
	f.owe()
}

func (f *Follower) owe() {
	select {
	case f.kick <- struct{}{}:
	default:
	}
}

// WaitReady waits until the first catch-up has succeeded, or ctx ends.
func (f *Follower) WaitReady(ctx context.Context) error {
	select {
	case <-f.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Run subscribes to the revocation subject and catches up, and again
// after every outage of the connection, until ctx ends; it returns nil
// then, or an error if it cannot subscribe.
func (f *Follower) Run(ctx context.Context) error {
	sub, err := f.cfg.Conn.Subscribe(syncproto.RevocationSubject(f.cfg.Region), func(m *nats.Msg) {
		rv, err := syncproto.DecodeRevocation(m.Data)
		if err != nil {
			f.log.Warn("undecodable revocation ignored", "err", err)
			return
		}
		f.Apply(rv)
	})
	if err != nil {
		return fmt.Errorf("revoke: subscribe: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	t := time.NewTicker(f.cfg.Poll)
	defer t.Stop()
	reconnects := f.cfg.Conn.Stats().Reconnects
	owed := true
	for attempt := 0; ; {
		if owed {
			before := f.cfg.Conn.Stats().Reconnects
			err := f.catchUp(ctx)
			if err == nil && (f.cfg.Conn.Stats().Reconnects != before || f.cfg.Conn.Status() != nats.CONNECTED) {
				// Revocations published during this blip may be lost.
				err = errors.New("revoke: NATS reconnected during the catch-up")
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				attempt++
				f.log.Debug("revocation catch-up failed; retrying", "attempt", attempt, "err", err)
				if !f.sleep(ctx, attempt) {
					return nil
				}
				continue
			}
			attempt, owed = 0, false
			reconnects = f.cfg.Conn.Stats().Reconnects
			f.cfg.Set.SetReady(true)
			f.once.Do(func() { close(f.ready) })
		}
		select {
		case <-ctx.Done():
			return nil
		case <-f.kick:
			owed = true
		case <-t.C:
			// Notice an outage and a reconnect on a connection whose
			// handlers are someone else's.
			if st := f.cfg.Conn.Status(); st != nats.CONNECTED {
				f.cfg.Set.SetReady(false)
				owed = true
			}
			if n := f.cfg.Conn.Stats().Reconnects; n != reconnects {
				reconnects = n
				f.cfg.Set.SetReady(false)
				owed = true
			}
		}
	}
}

// catchUp makes sure the subscription is live, then reads and applies the
// revocations that can still matter.
func (f *Follower) catchUp(ctx context.Context) error {
	if f.cfg.Conn.Status() != nats.CONNECTED {
		return errors.New("revoke: NATS is not connected")
	}
	fctx, cancel := context.WithTimeout(ctx, f.cfg.MaxRetry)
	err := f.cfg.Conn.FlushWithContext(fctx)
	cancel()
	if err != nil {
		return fmt.Errorf("revoke: flush: %w", err)
	}
	since := f.cfg.Now().Add(-f.cfg.TTL - catchUpSkew).UnixMilli()
	req := &syncpb.ListRevocationsRequest{SinceUnixMs: since, Limit: syncproto.MaxRevocationPage}
	n := 0
	for {
		resp, err := f.cfg.Core.Call(ctx, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListRevocations{ListRevocations: req}})
		if err != nil {
			return fmt.Errorf("revoke: list revocations: %w", err)
		}
		page := resp.GetRevocations()
		for _, rv := range page.GetRevocations() {
			f.Apply(rv)
			n++
		}
		if page.GetNext() == "" {
			break
		}
		req.After = page.GetNext()
	}
	f.log.Debug("revocations caught up", "read", n, "held", f.cfg.Set.Len())
	return nil
}

// sleep waits a backoff for attempt, or less when a catch-up is owed
// anew (the connection came back); false when ctx ended.
func (f *Follower) sleep(ctx context.Context, attempt int) bool {
	d := min(f.cfg.MinRetry<<min(attempt-1, 16), f.cfg.MaxRetry)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-f.kick:
	case <-ctx.Done():
		return false
	}
	return true
}
