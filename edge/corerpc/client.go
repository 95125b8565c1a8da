// Package corerpc is the edge's client of the regional core: protobuf
// CoreRequest / CoreResponse over NATS request/reply, routed to the shard
// subject of the conversation or to the region's API subject, with
// deadlines and retries.
//
// # Retries
//
// Call retries with capped exponential backoff and jitter while the core
// is unreachable (NATS "no responders", a lost or late reply, a dropped
// connection) or answers UNAVAILABLE, until the call's deadline. That is
// safe because every operation is a read, idempotent, or deduplicated by
// the core: sends by (conv_id, sender, client_msg_id), receipts are
// max-registers, creating a conversation the caller already created
// returns it, and so on.
//
// Operations whose row in syncproto.Requests is NotIdempotent are
// special. register_device creates a new device id on every execution, so
// it is retried only when the request certainly never
// reached a core (no responders). After a timeout, a lost reply or an
// UNAVAILABLE answer, Call returns UNAVAILABLE and the client decides: at
// worst it leaves an unused device that can be listed and revoked.
//
// # Leader hints
//
// Every core reply names the node that answered (syncproto.HeaderNode),
// and core nodes name their NATS servers after themselves. Given
// Config.Direct, connections each to one of those servers, the Client
// sends a shard's requests on the connection to the server of the node
// that last answered for that shard (its leader), so they skip the hop
// between NATS servers both ways. A stale hint costs nothing but that
// hop: NATS still routes the request to the leader through the cluster,
// and the answer corrects the hint. A failed attempt (no answer, no
// responders) drops the hint, so the retry goes on Conn, as does every
// request without a hint naming a connected server.
//
// register_user is retried like the rest: the core treats a repeated
// registration carrying the same password hash as a retry and returns the
// user (the hash has a random salt, so only this request carries it);
// another hash for a taken username is CONFLICT.
package corerpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultAttemptTimeout = 4 * time.Second
	DefaultMinBackoff     = 10 * time.Millisecond
	DefaultMaxBackoff     = 500 * time.Millisecond
)

// Config configures a Client. Zero values mean the defaults.
type Config struct {
	// Conn is the NATS connection (required). The Client does not close it.
	Conn *nats.Conn
	// Direct are optional connections pinned each to one NATS server of
	// the region (see Leader hints). The Client does not close them.
	Direct []*nats.Conn
	// Region names the subjects (default syncproto.DefaultRegion).
	Region string
	// ShardCount is the region's shard count; 0 means learn it from the
	// core (region_info) before the first shard-bound call.
	ShardCount uint32
	// Timeout bounds every Call, whatever the ctx says (default 10 s).
	Timeout time.Duration
	// AttemptTimeout bounds one request, so a reply lost with a dying core
	// node costs a retry rather than the whole deadline (default 4 s).
	AttemptTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait between attempts
	// (defaults 10 ms and 500 ms).
	MinBackoff, MaxBackoff time.Duration
	// Metrics receives the Client's series (see metrics.go); nil: none
	// are registered.
	Metrics prometheus.Registerer
	// Logger receives retry diagnostics at debug (default: discard).
	Logger *slog.Logger
	// Now is the clock for deadline_unix_ms (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Conn == nil:
		return errors.New("corerpc: Conn is required")
	case slices.Contains(c.Direct, nil):
		return errors.New("corerpc: a Direct connection is nil")
	case c.Region != "" && !syncproto.ValidID(c.Region):
		return fmt.Errorf("corerpc: Region %q: want 1..%d characters of [a-z0-9_-]", c.Region, syncproto.MaxIDLen)
	case c.ShardCount > syncproto.MaxShardCount:
		return fmt.Errorf("corerpc: ShardCount %d: at most %d", c.ShardCount, syncproto.MaxShardCount)
	case c.Timeout < 0, c.AttemptTimeout < 0, c.MinBackoff < 0, c.MaxBackoff < 0:
		return errors.New("corerpc: Timeout, AttemptTimeout, MinBackoff and MaxBackoff must not be negative")
	case c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("corerpc: MinBackoff %v exceeds MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	}
	return nil
}

// Client calls the core. It is safe for concurrent use.
type Client struct {
	nc             *nats.Conn
	direct         []*nats.Conn
	leaders        sync.Map // shard subject -> node id (string) that last answered
	region         string
	api            string // the API subject, which any node serves
	shards         atomic.Uint32
	timeout        time.Duration
	attemptTimeout time.Duration
	minBackoff     time.Duration
	maxBackoff     time.Duration
	log            *slog.Logger
	now            func() time.Time
	m              *metrics
}

// New returns a Client for cfg.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Client{
		nc: cfg.Conn, direct: slices.Clone(cfg.Direct), region: cfg.Region, timeout: cfg.Timeout, attemptTimeout: cfg.AttemptTimeout,
		minBackoff: cfg.MinBackoff, maxBackoff: cfg.MaxBackoff, log: cfg.Logger, now: cfg.Now,
	}
	if c.region == "" {
		c.region = syncproto.DefaultRegion
	}
	c.api = syncproto.APISubject(c.region)
	if c.timeout == 0 {
		c.timeout = DefaultTimeout
	}
	if c.attemptTimeout == 0 {
		c.attemptTimeout = DefaultAttemptTimeout
	}
	if c.minBackoff == 0 {
		c.minBackoff = DefaultMinBackoff
	}
	if c.maxBackoff == 0 {
		c.maxBackoff = max(DefaultMaxBackoff, c.minBackoff)
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	if c.now == nil {
		c.now = time.Now
	}
	c.shards.Store(cfg.ShardCount)
	var err error
	if c.m, err = newMetrics(cfg.Metrics); err != nil {
		return nil, fmt.Errorf("corerpc: metrics: %w", err)
	}
	return c, nil
}

// Region is the region the client talks to.
func (c *Client) Region() string { return c.region }

// ShardCount is the region's shard count, or 0 while it is unknown.
func (c *Client) ShardCount() uint32 { return c.shards.Load() }

// RegionInfo asks the core for the region's description and remembers its
// shard count. It retries until the core answers or ctx ends (each Call
// is bounded by Config.Timeout; RegionInfo keeps calling). Errors are
// *syncproto.Error.
func (c *Client) RegionInfo(ctx context.Context) (*syncpb.RegionInfo, error) {
	req := &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegionInfo{RegionInfo: &syncpb.RegionInfoRequest{}}}
	for {
		resp, err := c.Call(ctx, req)
		if err == nil {
			info := resp.GetRegionInfo()
			if info == nil || info.ShardCount == 0 || info.ShardCount > syncproto.MaxShardCount {
				return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "core sent an invalid region description")
			}
			if old := c.shards.Swap(info.ShardCount); old != 0 && old != info.ShardCount {
				c.log.Warn("core changed the shard count", "region", c.region, "was", old, "now", info.ShardCount)
			}
			return info, nil
		}
		if ctx.Err() != nil || !syncproto.AsError(err).Retryable() {
			return nil, err
		}
		t := time.NewTimer(c.maxBackoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, err
		case <-t.C:
		}
	}
}

// Call sends req to the core and returns its answer. It sets the request's
// deadline_unix_ms (on the wire, leaving req unchanged); the caller sets
// req.Caller. A failure is returned as a *syncproto.Error: the core's own
// error, UNAVAILABLE when no core answers, TIMEOUT when the deadline
// passes. See the package doc for what is retried.
func (c *Client) Call(ctx context.Context, req *syncpb.CoreRequest) (resp *syncpb.CoreResponse, err error) {
	op := "unknown" // the metrics' label of a request no row names
	defer func(start time.Time) { c.m.done(op, start, err) }(time.Now())
	r, body, err := syncproto.RequestOf(req)
	if err != nil {
		return nil, err
	}
	op = string(r.Name())
	return c.call(ctx, op, r, body, req)
}

func (c *Client) call(ctx context.Context, op string, r *syncproto.Request, body proto.Message, req *syncpb.CoreRequest) (*syncpb.CoreResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	subject, err := c.subject(ctx, r, body)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(req)
	if err != nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "request cannot be encoded")
	}
	isDevice := r.NotIdempotent
	backoff := c.minBackoff
	var last error // the latest failure not caused by ctx ending
	for attempt := 1; ; attempt++ {
		resp, err := c.attempt(ctx, subject, data)
		var wait time.Duration
		switch {
		case err == nil:
			cerr := syncproto.FromProto(resp.GetError())
			if cerr == nil {
				return resp, nil
			}
			if cerr.Code != syncpb.Code_CODE_UNAVAILABLE || isDevice {
				return nil, cerr
			}
			wait = cerr.RetryAfter
			err = cerr
		case errors.Is(err, nats.ErrNoResponders):
			// Certainly not delivered: safe to retry for every op.
		case errors.Is(err, nats.ErrConnectionClosed):
			return nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the edge's connection to the core is closed")
		case errors.Is(err, nats.ErrMaxPayload):
			return nil, syncproto.Errorf(syncpb.Code_CODE_TOO_LARGE, "request too large")
		case errors.Is(err, errBadResponse):
			return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "core sent an unreadable response")
		default:
			// Timeout, lost reply, disconnect: the core may have run it.
			if isDevice {
				c.log.Debug("core call failed, not retried", "op", op, "attempt", attempt, "err", err)
				return nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the core did not confirm the device registration; list devices before retrying")
			}
		}
		if ctx.Err() != nil {
			// An attempt cut short by the call's own end says less than
			// the failure before it (e.g. no responders).
			if last == nil || !errors.Is(err, ctx.Err()) {
				last = err
			}
			return nil, finalError(ctx, last)
		}
		last = err
		c.m.retries.WithLabelValues(op).Inc()
		// Equal jitter: half the backoff fixed, half random.
		sleep := backoff/2 + rand.N(backoff/2+1)
		sleep = max(sleep, min(wait, c.maxBackoff))
		backoff = min(2*backoff, c.maxBackoff)
		c.log.Debug("core call failed, retrying", "op", op, "subject", subject, "attempt", attempt, "wait", sleep, "err", err)
		t := time.NewTimer(sleep)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, finalError(ctx, last)
		case <-t.C:
		}
	}
}

var errBadResponse = errors.New("corerpc: unreadable response")

// attempt makes one request, bounded by AttemptTimeout.
func (c *Client) attempt(ctx context.Context, subject string, data []byte) (*syncpb.CoreResponse, error) {
	actx, cancel := context.WithTimeout(ctx, c.attemptTimeout)
	defer cancel()
	deadline, _ := actx.Deadline()
	// Appending a scalar field overrides any earlier value of it (protobuf
	// "last one wins"), so the marshalled request is reused as is.
	msg := make([]byte, len(data), len(data)+12)
	copy(msg, data)
	msg = protowire.AppendTag(msg, 2, protowire.VarintType) // deadline_unix_ms
	msg = protowire.AppendVarint(msg, uint64(c.now().Add(time.Until(deadline)).UnixMilli()))
	m, err := c.conn(subject).RequestWithContext(actx, subject, msg)
	if err != nil {
		// That server may be cut off: the retry goes on Conn.
		c.leaders.Delete(subject)
		return nil, err
	}
	if node := m.Header.Get(syncproto.HeaderNode); node != "" && len(c.direct) > 0 && subject != c.api {
		if old, ok := c.leaders.Load(subject); !ok || old.(string) != node {
			c.leaders.Store(subject, node)
		}
	}
	resp := &syncpb.CoreResponse{}
	if err := proto.Unmarshal(m.Data, resp); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadResponse, err)
	}
	return resp, nil
}

// finalError is the error of a call whose ctx ended while retrying.
func finalError(ctx context.Context, last error) error {
	var cerr *syncproto.Error
	switch {
	case errors.As(last, &cerr):
		return cerr
	case errors.Is(ctx.Err(), context.Canceled):
		return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the request was cancelled")
	case errors.Is(last, nats.ErrNoResponders):
		return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "no core is answering")
	default:
		return syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "the core did not answer in time")
	}
}

// Publish sends req once, without a reply subject, where Call would send
// it: for typing, which the shard leader handles without answering. It
// waits only to learn the shard count (once). nil means NATS took it, not
// that a core got it.
func (c *Client) Publish(ctx context.Context, req *syncpb.CoreRequest) error {
	r, body, err := syncproto.RequestOf(req)
	if err != nil {
		return err
	}
	subject, err := c.subject(ctx, r, body)
	if err != nil {
		return err
	}
	b, err := proto.Marshal(req)
	if err != nil {
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "request cannot be encoded")
	}
	if err := c.conn(subject).Publish(subject, b); err != nil {
		return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "cannot reach the core: %v", err)
	}
	return nil
}

// conn is the connection to send a request on subject with: the one to
// the server of the node that last answered for it, when connected.
func (c *Client) conn(subject string) *nats.Conn {
	if len(c.direct) == 0 {
		return c.nc
	}
	node, ok := c.leaders.Load(subject)
	if !ok {
		return c.nc
	}
	for _, d := range c.direct {
		if d.IsConnected() && d.ConnectedServerName() == node.(string) {
			return d
		}
	}
	return c.nc
}

// subject routes req by its row in syncproto.Requests: conversation
// requests to their shard's subject, everything else to the API subject.
func (c *Client) subject(ctx context.Context, r *syncproto.Request, body proto.Message) (string, error) {
	if r.Route != syncproto.RouteConversation {
		return c.api, nil
	}
	n := c.shards.Load()
	if n == 0 {
		if _, err := c.RegionInfo(ctx); err != nil {
			return "", err
		}
		n = c.shards.Load()
	}
	return syncproto.ShardSubject(c.region, syncproto.ShardOf(r.Conv(body), n)), nil
}
