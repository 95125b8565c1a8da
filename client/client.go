// Package client is parley's Go SDK for device sessions. It dials an edge
// over raw QUIC (QUIC), WebTransport (WebTransport) or WebSocket
// (WebSocket), or several edges in turn (Failover); keeps the session up
// with exponential backoff and jitter; resumes from its watermarks without
// loss; hands every message to the app once and in seq order per
// conversation (filling gaps from history); moves a QUIC connection to a
// new network path (Migrate); and sends through an outbox that retries
// each message with the same client_msg_id until the server answers,
// optionally kept on disk across app restarts (Config.OutboxPath).
// Typing indicators go as datagrams where the connection has them and
// expire by themselves (Typing, Config.OnTyping). A session outlives its
// access token by sending the edge a fresh one before it expires (Reauth,
// Config.Refresh); when the device's access is revoked, the Client stops
// for good and Err says why (REVOKED).
//
// Scripts that only need request/response can use client/rest instead.
package client

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values.
const (
	DefaultMinBackoff = 100 * time.Millisecond
	DefaultMaxBackoff = 10 * time.Second
	historyPage       = 200
)

// ErrClosed is returned by calls on a closed Client.
var ErrClosed = errors.New("client: closed")

// reauthRetry bounds the wait between failed Reauth attempts.
const reauthRetry = time.Second

// Config configures a Client. Dial and Token are required.
type Config struct {
	Dial Dialer
	// Token returns a valid access token; it is called for every
	// connection, so it should refresh an expired one (client/rest does).
	Token func(ctx context.Context) (string, error)
	// Refresh, when set, returns a new access token for the same device
	// (client/rest's RefreshAccess). The client calls it before the
	// session's token expires and hands the new one to the edge (Reauth),
	// so the session is not cut; and before reconnecting when the edge
	// said the token expired. Without it Token is called then, and the
	// session ends at expiry unless Token returns a fresher token.
	Refresh func(ctx context.Context) (string, error)
	// DeviceID is the device the token was issued for ("" takes the
	// token's).
	DeviceID   string
	ClientName string
	// Watermarks is where the device is (conv id -> highest seq it holds
	// with no gap below), e.g. as saved from Watermarks() last run.
	Watermarks map[string]uint64
	// OnMessage gets every message once, in seq order per conversation,
	// from one goroutine. It should not block for long.
	OnMessage func(*syncpb.Message)
	// ReportDelivered makes the client report "delivered" receipts by
	// itself for what it hands to OnMessage (coalesced: at most one report
	// per conversation every DeliveredEvery, default 250 ms).
	ReportDelivered bool
	DeliveredEvery  time.Duration
	// OnReceipt gets receipt updates: another member's delivered/read
	// position, this user's read position moved by another of its devices
	// (UserId is the device's own user), or, for large groups, aggregate
	// counts (UserId empty). A message tells its sender's position itself:
	// a sender has received and read what it sent, and no update says so
	// again. Called from the connection's reader: it must not block.
	OnReceipt func(*syncpb.ReceiptUpdate)
	// OnPresence gets presence changes of the users this one may watch
	// (and their state at each connect). It must not block.
	OnPresence func(*syncpb.PresenceUpdate)
	// OnTyping gets typing indicators of the user's conversations (from
	// other members, and from this user's other devices: UserId is then
	// the user's own). Indicators expire by themselves: when one's TtlMs
	// lapses without a renewal, OnTyping gets the same ConvId and UserId
	// with Typing false, so an app that shows what OnTyping said last is
	// never stuck on a lost "stopped" (at most 1,024 typers are tracked
	// at once). Best effort: indicators may be lost or dropped under load.
	// Calls are serialized; it must not block.
	OnTyping func(*syncpb.Typing)
	// TypingTTL is how long this device's indicators last unless renewed
	// (default 0: the edge's, 5 s; at most 10 s). See Typing.
	TypingTTL time.Duration
	// OutboxPath, when set, keeps the outbox in this file: a Send is on
	// disk (fsync'd) before it is sent, and sends not yet answered when
	// the app stopped are sent again by the next Dial with the same path.
	OutboxPath string
	// OnAck gets the answer of each send nobody waits for any more: those
	// restored from OutboxPath, and those whose Send returned because its
	// ctx ended. err is nil with an ack, else why the server refused it.
	OnAck func(req *syncpb.SendRequest, ack *syncpb.SendAck, err error)
	// MinBackoff and MaxBackoff bound reconnect waits (defaults 100 ms,
	// 10 s); each wait is drawn with full jitter.
	MinBackoff, MaxBackoff time.Duration
	Logger                 *slog.Logger
}

// Client is a device session that reconnects by itself. Safe for
// concurrent use.
type Client struct {
	cfg    Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu       sync.Mutex
	cur      *link
	up       chan struct{} // closed while cur is set; replaced when it drops
	user     string        // this device's user, from the last Welcome
	marks    map[string]uint64
	last     map[string]uint64 // highest seq known to exist per conversation
	reads    map[string]uint64 // this user's read position per conversation
	pending  map[string]map[uint64]*syncpb.Message
	filling  map[string]bool
	ready    []*syncpb.Message // in order, for the deliverer
	readyC   chan struct{}
	outbox   []*outItem
	box      *outboxFile // nil without Config.OutboxPath
	outC     chan struct{}
	welcomed chan error        // the first connection's outcome, for Dial
	toReport map[string]uint64 // delivered positions not yet reported
	reportC  chan struct{}
	watch    []string // the Presence choice; nil: the default
	conns    int
	typers   *typers
	endErr   error // why the Client stopped (REVOKED, or ErrClosed)
	stale    bool  // the edge said the token expired: refresh before the next hello
}

type outItem struct {
	req       *syncpb.SendRequest
	done      chan struct{}
	ack       *syncpb.SendAck
	err       error
	abandoned bool // nobody waits in Send: tell OnAck (guarded by Client.mu)
}

// Dial starts a Client and returns once its first session is welcomed (or
// fails: a bad token or version is returned at once; an unreachable edge
// is retried until ctx ends). The Client then stays connected until Close.
func Dial(ctx context.Context, cfg Config) (*Client, error) {
	if cfg.Dial == nil || cfg.Token == nil {
		return nil, errors.New("client: Config.Dial and Config.Token are required")
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff < cfg.MinBackoff {
		cfg.MaxBackoff = max(DefaultMaxBackoff, cfg.MinBackoff)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	cfg.TypingTTL = min(max(cfg.TypingTTL, 0), syncproto.MaxTypingTTL)
	c := &Client{cfg: cfg, log: cfg.Logger, up: make(chan struct{}), marks: maps.Clone(cfg.Watermarks),
		last: map[string]uint64{}, reads: map[string]uint64{}, pending: map[string]map[uint64]*syncpb.Message{}, filling: map[string]bool{},
		readyC: make(chan struct{}, 1), outC: make(chan struct{}, 1), welcomed: make(chan error, 1),
		toReport: map[string]uint64{}, reportC: make(chan struct{}, 1), typers: newTypers(cfg.OnTyping)}
	if cfg.DeliveredEvery <= 0 {
		c.cfg.DeliveredEvery = 250 * time.Millisecond
	}
	if c.marks == nil {
		c.marks = map[string]uint64{}
	}
	if cfg.OutboxPath != "" {
		box, pending, err := openOutbox(cfg.OutboxPath)
		if err != nil {
			return nil, err
		}
		c.box = box
		for _, req := range pending {
			c.outbox = append(c.outbox, &outItem{req: req, done: make(chan struct{}), abandoned: true})
		}
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.wg.Add(3)
	go c.run()
	go c.deliverer()
	go c.sender()
	if cfg.ReportDelivered {
		c.wg.Add(1)
		go c.reporter()
	}
	select {
	case err := <-c.welcomed:
		if err != nil {
			c.Close()
			return nil, err
		}
		return c, nil
	case <-ctx.Done():
		c.Close()
		return nil, ctx.Err()
	}
}

// Close ends the session; Sends still waiting fail with ErrClosed (or
// with the error that stopped the Client, see Err).
func (c *Client) Close() error {
	c.finish(ErrClosed)
	c.mu.Lock()
	if c.cur != nil {
		c.cur.fail(ErrClosed)
	}
	c.mu.Unlock()
	c.wg.Wait()
	c.typers.close()
	c.mu.Lock()
	for _, it := range c.outbox {
		it.err = c.endErr
		close(it.done)
	}
	c.outbox = nil
	if c.box != nil {
		_ = c.box.close() // what was waiting stays on disk for the next Dial
		c.box = nil
	}
	c.mu.Unlock()
	return nil
}

// finish stops the Client for good with err (the first reason sticks).
func (c *Client) finish(err error) {
	c.mu.Lock()
	if c.endErr == nil {
		c.endErr = err
	}
	c.mu.Unlock()
	c.cancel()
}

// Done is closed when the Client stops: after Close, or when the edge
// revoked the device's access (then it does not reconnect; log in again
// and Dial a new Client).
func (c *Client) Done() <-chan struct{} { return c.ctx.Done() }

// Err is nil while the Client runs; then ErrClosed after Close, or the
// *syncproto.Error that stopped it: errors.Is(err, syncproto.ErrRevoked)
// when the device's access was revoked (the device was revoked, or the
// password changed on another device).
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.endErr == nil && c.ctx.Err() != nil {
		return ErrClosed
	}
	return c.endErr
}

// errOrClosed is Err for a Client known to have stopped.
func (c *Client) errOrClosed() error {
	if err := c.Err(); err != nil {
		return err
	}
	return ErrClosed
}

// Watermarks returns the device's position: per conversation, the highest
// seq handed to OnMessage with no gap below. Save it to resume later.
func (c *Client) Watermarks() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.marks)
}

// Connected reports whether a session is up now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.cur != nil
}

// Connections is how many sessions have been welcomed so far.
func (c *Client) Connections() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conns
}

// run keeps a session up until Close.
func (c *Client) run() {
	defer c.wg.Done()
	first := true
	attempt := 0
	for c.ctx.Err() == nil {
		l, err := c.connect()
		if err != nil {
			if first && fatal(err) {
				c.welcomed <- err
				return
			}
			if revoked(err) {
				c.log.Info("access revoked; not reconnecting", "err", err)
				c.finish(err)
				return
			}
			c.noteExpired(err)
			attempt++
			c.log.Debug("connect failed", "attempt", attempt, "err", err)
			c.sleep(attempt)
			continue
		}
		attempt = 0
		c.mu.Lock()
		c.cur = l
		c.user = l.welcome.GetUserId()
		c.conns++
		close(c.up)
		c.mu.Unlock()
		if first {
			c.welcomed <- nil
			first = false
		}
		c.wake(c.outC)
		c.wg.Add(2)
		go c.keepalive(l)
		go c.reauth(l)
		if dg, ok := inner(l.t).(datagrammer); ok {
			c.wg.Add(1)
			go c.readDatagrams(l, dg)
		}
		if c.watching() {
			c.wg.Add(1)
			go c.rewatch(l)
		}
		err = c.read(l)
		l.fail(err)
		c.mu.Lock()
		c.cur = nil
		c.up = make(chan struct{})
		c.mu.Unlock()
		c.log.Debug("session ended", "err", err)
		if revoked(err) {
			c.log.Info("access revoked; not reconnecting", "err", err)
			c.finish(err)
			return
		}
		c.noteExpired(err)
		if c.ctx.Err() == nil {
			attempt++
			c.sleep(attempt)
		}
	}
}

// defaultKeepAlive is the ping interval when the edge announces none.
const defaultKeepAlive = 25 * time.Second

// keepalive pings the edge at the interval its Welcome asks for, so an
// idle session stays up, and fails the link when a ping goes unanswered
// for that long: a dead network path is noticed even while nothing is
// sent (the client then reconnects and resumes).
func (c *Client) keepalive(l *link) {
	defer c.wg.Done()
	every := time.Duration(l.welcome.GetKeepaliveMs()) * time.Millisecond
	if every <= 0 {
		every = defaultKeepAlive
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for nonce := uint64(1); ; nonce++ {
		select {
		case <-t.C:
		case <-l.done:
			return
		case <-c.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, every)
		_, err := l.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_Ping{Ping: &syncpb.Ping{Nonce: nonce}}})
		cancel()
		// Only silence means a dead path; a refusal (rate limit) does not.
		if errors.Is(err, context.DeadlineExceeded) && c.ctx.Err() == nil {
			c.log.Debug("keepalive failed; reconnecting", "err", err)
			l.drop(syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "keepalive: %v", err))
			return
		}
	}
}

// fatal errors are not fixed by retrying the same hello.
func fatal(err error) bool {
	switch wireCode(err) {
	case syncpb.Code_CODE_UNAUTHENTICATED, syncpb.Code_CODE_FORBIDDEN, syncpb.Code_CODE_UNSUPPORTED_VERSION,
		syncpb.Code_CODE_INVALID_ARGUMENT, syncpb.Code_CODE_MALFORMED, syncpb.Code_CODE_REVOKED:
		return true
	}
	return false
}

// revoked reports whether err says the device's access was revoked: by
// the edge, or by the HTTP API behind Config.Token or Config.Refresh.
func revoked(err error) bool { return wireCode(err) == syncpb.Code_CODE_REVOKED }

// wireCode is the wire code of err: of a *syncproto.Error in its chain,
// or of an error that carries one (client/rest's Error).
func wireCode(err error) syncpb.Code {
	var w interface{ Wire() *syncproto.Error }
	if errors.As(err, &w) {
		return w.Wire().Code
	}
	var e *syncproto.Error
	if errors.As(err, &e) {
		return e.Code
	}
	return syncpb.Code_CODE_OK
}

// noteExpired remembers that the edge refused or ended a session for an
// expired token: the next connection refreshes first.
func (c *Client) noteExpired(err error) {
	if wireCode(err) == syncpb.Code_CODE_TOKEN_EXPIRED {
		c.mu.Lock()
		c.stale = true
		c.mu.Unlock()
	}
}

// retryWait waits before retrying after err: the server's Retry-After
// when it gave one, else a jittered backoff for attempt.
func (c *Client) retryWait(err error, attempt int) {
	if d := syncproto.AsError(err).RetryAfter; d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-c.ctx.Done():
		}
		return
	}
	c.sleep(attempt)
}

// sleep waits a jittered exponential backoff for attempt (from 1).
func (c *Client) sleep(attempt int) {
	d := c.cfg.MinBackoff << min(attempt-1, 16)
	d = min(d, c.cfg.MaxBackoff)
	d = time.Duration(rand.Int64N(int64(d)) + 1)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ctx.Done():
	}
}

// connect dials, says hello with the watermarks, and waits for Welcome.
func (c *Client) connect() (*link, error) {
	ctx, cancel := context.WithTimeout(c.ctx, 15*time.Second)
	defer cancel()
	c.mu.Lock()
	stale := c.stale && c.cfg.Refresh != nil
	c.stale = false
	c.mu.Unlock()
	get := c.cfg.Token
	if stale {
		get = c.cfg.Refresh
	}
	tok, err := get(ctx)
	if err != nil {
		return nil, fmt.Errorf("client: token: %w", err)
	}
	t, err := c.cfg.Dial(ctx)
	if err != nil {
		return nil, err
	}
	h := syncproto.NewHello(tok, c.cfg.DeviceID)
	h.ClientName = c.cfg.ClientName
	h.Position = c.position()
	if err := t.WriteFrame(ctx, &syncpb.Frame{Id: 1, Body: &syncpb.Frame_Hello{Hello: h}}); err != nil {
		_ = t.Close(err)
		return nil, err
	}
	f, err := t.ReadFrame(ctx)
	if err != nil {
		_ = t.Close(err)
		return nil, err
	}
	if e := syncproto.FromProto(f.GetError()); e != nil {
		_ = t.Close(e)
		return nil, e
	}
	if f.GetWelcome() == nil {
		err := syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "expected welcome")
		_ = t.Close(err)
		return nil, err
	}
	l := newLink(t)
	l.welcome = f.GetWelcome()
	l.token = tok
	l.nextID.Store(1)
	return l, nil
}

func (c *Client) position() *syncpb.SyncPosition {
	c.mu.Lock()
	defer c.mu.Unlock()
	p := &syncpb.SyncPosition{}
	for conv, seq := range c.marks {
		p.Watermarks = append(p.Watermarks, &syncpb.Watermark{ConvId: conv, Seq: seq})
	}
	return p
}

// read handles the server's frames until the link fails.
func (c *Client) read(l *link) error {
	for {
		f, err := l.t.ReadFrame(c.ctx)
		if err != nil {
			return err
		}
		if f.Id != 0 && l.answer(f) {
			continue
		}
		switch b := f.Body.(type) {
		case *syncpb.Frame_Deliver:
			for _, m := range b.Deliver.Messages {
				c.accept(m)
			}
		case *syncpb.Frame_SyncResponse: // the catch-up after Welcome
			c.applySync(b.SyncResponse)
		case *syncpb.Frame_ReceiptUpdate:
			c.applyReceipt(l, b.ReceiptUpdate)
		case *syncpb.Frame_Presence:
			if c.cfg.OnPresence != nil {
				c.cfg.OnPresence(b.Presence)
			}
		case *syncpb.Frame_Typing:
			c.typers.seen(b.Typing)
		case *syncpb.Frame_Resync:
			c.wg.Add(1)
			go c.resync(l)
		case *syncpb.Frame_GoAway:
			c.log.Debug("edge asked us to move", "reason", b.GoAway.Reason)
			return errors.New("client: go away: " + b.GoAway.Reason)
		case *syncpb.Frame_Error:
			if f.Id == 0 {
				return syncproto.FromProto(b.Error)
			}
		}
	}
}

// applyReceipt keeps this user's read positions (moved by any of its
// devices) and passes the update on.
func (c *Client) applyReceipt(l *link, r *syncpb.ReceiptUpdate) {
	if r.UserId != "" && r.UserId == l.welcome.GetUserId() && r.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		c.mu.Lock()
		c.reads[r.ConvId] = max(c.reads[r.ConvId], r.Seq)
		c.mu.Unlock()
	}
	if c.cfg.OnReceipt != nil {
		c.cfg.OnReceipt(r)
	}
}

// ReadSeq is this user's read position in conv, as far as this device
// knows (from sync, from its other devices' reads, and from the messages
// this user sent).
func (c *Client) ReadSeq(conv string) uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reads[conv]
}

// Unread is, per conversation with any, how many messages this device
// knows of beyond the user's read position.
func (c *Client) Unread() map[string]uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]uint64{}
	for conv, last := range c.last {
		if r := c.reads[conv]; last > r {
			out[conv] = last - r
		}
	}
	return out
}

// resync asks for everything changed since the watermarks.
func (c *Client) resync(l *link) {
	defer c.wg.Done()
	r, err := l.request(c.ctx, &syncpb.Frame{Body: &syncpb.Frame_SyncRequest{SyncRequest: &syncpb.SyncRequest{Position: c.position()}}})
	if err != nil {
		c.log.Debug("resync failed; the next connection syncs", "err", err)
		l.fail(err)
		return
	}
	c.applySync(r.GetSyncResponse())
}

func (c *Client) applySync(s *syncpb.SyncResponse) {
	c.presence(s)
	for _, d := range s.GetChanged() {
		c.mu.Lock()
		c.last[d.ConvId] = max(c.last[d.ConvId], d.LastSeq)
		c.reads[d.ConvId] = max(c.reads[d.ConvId], d.ReadSeq)
		c.mu.Unlock()
		for _, m := range d.Messages {
			c.accept(m)
		}
		c.checkGap(d.ConvId)
	}
}

// accept takes a message from any source: duplicates are dropped, the
// next in order go to the app, later ones wait for the gap to fill. A
// message of this user's (from any of its devices) is read: a sender has
// read what it sent, as the server counts it.
func (c *Client) accept(m *syncpb.Message) {
	c.mu.Lock()
	conv := m.ConvId
	c.last[conv] = max(c.last[conv], m.Seq)
	if m.SenderUserId != "" && m.SenderUserId == c.user {
		c.reads[conv] = max(c.reads[conv], m.Seq)
	}
	if m.Seq <= c.marks[conv] {
		c.mu.Unlock()
		return
	}
	p := c.pending[conv]
	if p == nil {
		p = map[uint64]*syncpb.Message{}
		c.pending[conv] = p
	}
	p[m.Seq] = m
	moved := false
	for {
		next, ok := p[c.marks[conv]+1]
		if !ok {
			break
		}
		delete(p, next.Seq)
		c.marks[conv] = next.Seq
		c.ready = append(c.ready, next)
		moved = true
	}
	c.mu.Unlock()
	if moved {
		c.wake(c.readyC)
	}
	c.checkGap(conv)
}

// checkGap starts filling conv from history when it knows of messages
// beyond its watermark that it does not hold.
func (c *Client) checkGap(conv string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.last[conv] <= c.marks[conv] || c.filling[conv] {
		return
	}
	c.filling[conv] = true
	c.wg.Add(1)
	go c.fill(conv)
}

// fill reads history after the watermark until conv is caught up.
func (c *Client) fill(conv string) {
	defer c.wg.Done()
	for attempt := 1; ; {
		c.mu.Lock()
		from, to := c.marks[conv], c.last[conv]
		if from >= to || c.ctx.Err() != nil {
			c.filling[conv] = false
			c.mu.Unlock()
			return
		}
		c.mu.Unlock()
		r, err := c.request(c.ctx, &syncpb.Frame{Body: &syncpb.Frame_HistoryRequest{HistoryRequest: &syncpb.HistoryRequest{
			ConvId: conv, Cursor: from, Limit: historyPage, Direction: syncpb.Direction_DIRECTION_FORWARD}}})
		if err != nil {
			if !syncproto.AsError(err).Retryable() {
				c.log.Warn("cannot fill a gap", "conv", conv, "err", err)
				c.mu.Lock()
				c.filling[conv] = false
				c.mu.Unlock()
				return
			}
			c.retryWait(err, attempt) // busy or rate-limited: back off
			attempt = min(attempt+1, 8)
			continue
		}
		attempt = 1
		h := r.GetHistoryResponse()
		for _, m := range h.GetMessages() {
			c.accept(m)
		}
		c.mu.Lock()
		c.last[conv] = max(c.last[conv], h.GetLastSeq())
		stuck := len(h.GetMessages()) == 0 && c.marks[conv] == from
		if stuck {
			// The server has nothing after the watermark (e.g. retention
			// removed it): stop rather than spin.
			c.last[conv] = c.marks[conv]
		}
		c.mu.Unlock()
	}
}

func (c *Client) wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// deliverer hands ready messages to OnMessage, in order.
func (c *Client) deliverer() {
	defer c.wg.Done()
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.readyC:
		}
		for {
			c.mu.Lock()
			batch := c.ready
			c.ready = nil
			c.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			for _, m := range batch {
				if c.cfg.OnMessage != nil {
					c.cfg.OnMessage(m)
				}
			}
			if c.cfg.ReportDelivered {
				c.mu.Lock()
				for _, m := range batch {
					c.toReport[m.ConvId] = max(c.toReport[m.ConvId], m.Seq)
				}
				c.mu.Unlock()
				c.wake(c.reportC)
			}
		}
	}
}

// reporter sends the coalesced delivered receipts (Config.ReportDelivered).
func (c *Client) reporter() {
	defer c.wg.Done()
	t := time.NewTimer(0)
	<-t.C
	for {
		select {
		case <-c.ctx.Done():
			return
		case <-c.reportC:
		}
		t.Reset(c.cfg.DeliveredEvery)
		select {
		case <-c.ctx.Done():
			return
		case <-t.C:
		}
		c.mu.Lock()
		due := c.toReport
		c.toReport = map[string]uint64{}
		c.mu.Unlock()
		for conv, seq := range due {
			if err := c.Receipt(c.ctx, conv, seq, syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED); err != nil && c.ctx.Err() == nil {
				c.log.Debug("delivered receipt", "conv", conv, "seq", seq, "err", err)
			}
		}
	}
}

// request waits for a connection and sends f on it; a connection that
// drops before the answer makes it wait for the next one and send again
// (callers make their requests safe to repeat).
func (c *Client) request(ctx context.Context, f *syncpb.Frame) (*syncpb.Frame, error) {
	for {
		c.mu.Lock()
		l, up := c.cur, c.up
		c.mu.Unlock()
		if l == nil {
			select {
			case <-up:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-c.ctx.Done():
				return nil, c.errOrClosed()
			}
		}
		r, err := l.request(ctx, proto.Clone(f).(*syncpb.Frame))
		// Identity, not errors.Is: syncproto errors match by code, and a
		// server's UNAVAILABLE answer is not a lost connection (waiting for
		// this link to end would wait forever).
		if err == errLinkDown { //nolint:errorlint // the sentinel itself
			select {
			case <-l.done:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			continue
		}
		return r, err
	}
}

// History reads one page of a conversation.
func (c *Client) History(ctx context.Context, req *syncpb.HistoryRequest) (*syncpb.HistoryResponse, error) {
	r, err := c.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_HistoryRequest{HistoryRequest: req}})
	if err != nil {
		return nil, err
	}
	return r.GetHistoryResponse(), nil
}

// Search searches the messages of the caller's conversations (see
// syncproto's search_request): one page of hits, and a cursor for the
// next. A bad query is an INVALID_ARGUMENT *syncproto.Error.
func (c *Client) Search(ctx context.Context, req *syncpb.SearchRequest) (*syncpb.SearchResponse, error) {
	r, err := c.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_SearchRequest{SearchRequest: req}})
	if err != nil {
		return nil, err
	}
	return r.GetSearchResponse(), nil
}

// Receipt reports that this device delivered or read conv up to seq.
func (c *Client) Receipt(ctx context.Context, conv string, seq uint64, typ syncpb.ReceiptType) error {
	r, err := c.request(ctx, &syncpb.Frame{Body: &syncpb.Frame_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: conv, Seq: seq, Type: typ}}})
	if err != nil {
		return err
	}
	if a := r.GetReceiptAck(); a != nil && typ == syncpb.ReceiptType_RECEIPT_TYPE_READ {
		c.mu.Lock()
		c.reads[conv] = max(c.reads[conv], a.Seq)
		c.mu.Unlock()
	}
	return nil
}

// ErrCannotMigrate is returned by Migrate when the current connection
// cannot move to a new network path (not raw QUIC, or no connection).
var ErrCannotMigrate = errors.New("client: this connection cannot migrate")

// migrator is a Transport that can move to a new UDP socket.
type migrator interface {
	migrate(ctx context.Context) error
}

// Migrate moves the connection to a new local UDP socket, as after a
// network change (Wi-Fi to cellular): over raw QUIC the connection and
// its session survive. Where that is not possible (another transport, or
// the new path fails), Migrate drops the connection at once (the old
// network is presumed gone: no goodbye is waited for) and the Client
// reconnects and resumes by its watermarks; it returns the migration's
// error then. Either way no message is lost or repeated.
func (c *Client) Migrate(ctx context.Context) error {
	c.mu.Lock()
	l := c.cur
	c.mu.Unlock()
	if l == nil {
		return ErrCannotMigrate
	}
	m, ok := inner(l.t).(migrator)
	if !ok {
		l.drop(ErrCannotMigrate)
		return ErrCannotMigrate
	}
	if err := m.migrate(ctx); err != nil {
		l.drop(err)
		return err
	}
	return nil
}

// LocalAddr is the local address of the current connection when the
// transport reports one (raw QUIC, also through Failover), else nil.
func (c *Client) LocalAddr() net.Addr {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cur == nil {
		return nil
	}
	if q, ok := inner(c.cur.t).(interface{ localAddr() net.Addr }); ok {
		return q.localAddr()
	}
	return nil
}
