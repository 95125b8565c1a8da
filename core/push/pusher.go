// Package push wakes devices that have no live session: after a message
// commits, each member's device that is offline everywhere in the region,
// has not read past it and has not muted the conversation gets, after a
// grace delay, one push (Web Push, or an operator's Sygnal-shaped
// gateway) that covers every message of the burst; a read on another
// device sends a clear push to the devices that were pushed.
//
// The Pusher runs on every core node and is fed by the node from the
// commit path of the shards it leads (Committed) and from the receipts
// it merges (Read). Its queue is in the node's Badger DB: bounded, and a
// push written there survives a restart and is sent at least once, with
// a push id the client de-duplicates by. Sends are off the commit path,
// retried with backoff on 5xx and network errors, never on other 4xx; a
// 404/410 from a Web Push service (or a gateway's rejected push key)
// removes the device's target.
package push

import (
	"container/heap"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/parley-chat/parley/syncproto"
)

// Level is a user's notification level for a conversation.
type Level uint8

const (
	// LevelAll pushes every message (the default).
	LevelAll Level = iota
	// LevelMentions pushes only messages that mention the user.
	LevelMentions
	// LevelNone pushes nothing.
	LevelNone
)

// DeviceTarget is a device and its push target.
type DeviceTarget struct {
	User, Device string
	Target       Target
}

// Directory gives the pusher the devices' targets.
type Directory interface {
	// Targets are the targets of the devices of users in workspace that
	// have one, from this node's replica (it may be a little stale). It
	// must not block for long.
	Targets(workspace string, users []string) ([]DeviceTarget, error)
	// RemoveTarget removes the device's target if it is still t (its push
	// service said it is gone). It may block until ctx ends.
	RemoveTarget(ctx context.Context, workspace string, d DeviceTarget) error
}

// Presence tells whether a device has a live session anywhere in the
// region (the node's presence table, which every core holds).
type Presence interface {
	DeviceOnline(user, device string) bool
}

// Conversations gives users' levels and read positions.
type Conversations interface {
	// Level is user's notification level in conv.
	Level(conv, user string) Level
	// ReadSeq is user's read position in conv (the join over the user's
	// devices); 0 when unknown.
	ReadSeq(conv, user string) uint64
}

// Message is a committed message, as the pusher needs it.
type Message struct {
	Workspace, Conv string
	// Title is the conversation's title ("" for a direct conversation,
	// whose notification names the sender).
	Title   string
	Members []string
	// E2EE: the conversation is end-to-end encrypted (no content ever).
	E2EE bool
	// Mentions are the users the message mentions.
	Mentions   []string
	Seq        uint64
	MsgID      string
	Sender     string // user id
	SenderName string
	Body       []byte
	// ContentType of Body: only text is ever shown.
	ContentType string
	Committed   time.Time
}

// Defaults for Config's zero values.
const (
	DefaultGrace       = 2 * time.Second
	DefaultMaxPending  = 10000
	DefaultMaxSent     = 100000
	DefaultWorkers     = 4
	DefaultMaxAttempts = 8
	DefaultMinBackoff  = time.Second
	DefaultMaxBackoff  = 5 * time.Minute
	DefaultTimeout     = 10 * time.Second
	DefaultDeviceRate  = 0.5 // pushes a second
	DefaultDeviceBurst = 3
	DefaultGatewayRate = 100
	// PreviewLen is how many characters of a body a push shows.
	PreviewLen  = 100
	intakeQueue = 4096
)

// Config configures a Pusher. Zero values mean the defaults.
type Config struct {
	Directory     Directory
	Presence      Presence
	Conversations Conversations
	// WebPush sends Web Push; nil: Web Push targets are skipped.
	WebPush Sender
	// Gateway sends to the operator's gateways; nil: skipped.
	Gateway Sender
	// Gateways are the operator's gateways by name, for their rate limits.
	Gateways map[string]Gateway
	// NoContent reports whether a workspace is in "no content" mode (ids
	// and counts only); nil: none is.
	NoContent func(workspace string) bool
	// Resolve, when set, completes a committed message on the pusher's
	// own goroutine (off the commit path) before it is considered: its
	// workspace, title, members and sender's name. An error drops it.
	Resolve func(*Message) error
	// Mentioned reports whether m mentions user, for users whose level is
	// LevelMentions; nil: user is in m.Mentions.
	Mentioned func(m *Message, user string) bool
	// Grace is how long after a commit a push waits, so a device that
	// reconnects at once is not pushed (2 s).
	Grace time.Duration
	// MaxPending bounds the queue (10 000 pushes); MaxSent the
	// remembered pushes that a read may clear (100 000; beyond it one is
	// forgotten for each new one).
	MaxPending, MaxSent int
	// Workers is how many sends run at once (4).
	Workers int
	// MaxAttempts, MinBackoff and MaxBackoff shape retries (8, 1 s, 5 m).
	MaxAttempts            int
	MinBackoff, MaxBackoff time.Duration
	// Timeout bounds one send (10 s).
	Timeout time.Duration
	// DeviceRate and DeviceBurst limit pushes to one device (0.5/s, 3).
	DeviceRate  float64
	DeviceBurst int
	// Metrics, when set, gets the pusher's series.
	Metrics prometheus.Registerer
	Now     func() time.Time
	Logger  *slog.Logger
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Directory == nil:
		return errors.New("push: Config.Directory is required")
	case c.Presence == nil:
		return errors.New("push: Config.Presence is required")
	case c.Conversations == nil:
		return errors.New("push: Config.Conversations is required")
	case c.Grace < 0 || c.MinBackoff < 0 || c.MaxBackoff < 0 || c.Timeout < 0:
		return errors.New("push: durations must not be negative")
	case c.MaxPending < 0 || c.MaxSent < 0 || c.Workers < 0 || c.MaxAttempts < 0 || c.DeviceRate < 0 || c.DeviceBurst < 0:
		return errors.New("push: limits must not be negative")
	case c.MinBackoff > 0 && c.MaxBackoff > 0 && c.MinBackoff > c.MaxBackoff:
		return fmt.Errorf("push: MinBackoff %v exceeds MaxBackoff %v", c.MinBackoff, c.MaxBackoff)
	}
	for name, g := range c.Gateways {
		if !strings.HasPrefix(g.URL, "https://") && !strings.HasPrefix(g.URL, "http://") {
			return fmt.Errorf("push: gateway %q: URL must be http or https", name)
		}
	}
	return nil
}

func (c *Config) setDefaults() {
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	defInt := func(d *int, v int) {
		if *d == 0 {
			*d = v
		}
	}
	def(&c.Grace, DefaultGrace)
	def(&c.MinBackoff, DefaultMinBackoff)
	def(&c.MaxBackoff, DefaultMaxBackoff)
	def(&c.Timeout, DefaultTimeout)
	defInt(&c.MaxPending, DefaultMaxPending)
	defInt(&c.MaxSent, DefaultMaxSent)
	defInt(&c.Workers, DefaultWorkers)
	defInt(&c.MaxAttempts, DefaultMaxAttempts)
	defInt(&c.DeviceBurst, DefaultDeviceBurst)
	if c.DeviceRate == 0 {
		c.DeviceRate = DefaultDeviceRate
	}
	if c.NoContent == nil {
		c.NoContent = func(string) bool { return false }
	}
	if c.Mentioned == nil {
		c.Mentioned = func(m *Message, user string) bool { return slices.Contains(m.Mentions, user) }
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

type slot struct{ device, conv, typ string }

type sentSlot struct{ device, conv string }

// event is what the intake goroutine takes: a message or a read.
type event struct {
	msg     *Message
	read    *readEvent
	barrier chan struct{} // closed when reached (tests)
}

type readEvent struct {
	workspace, conv, user string
	seq                   uint64
}

// Pusher is the push queue and its senders. Committed and Read never
// block; Run owns the goroutines; Close stops them.
type Pusher struct {
	cfg   Config
	log   *slog.Logger
	st    store
	m     *metrics
	unreg func()

	intake chan event
	wake   chan struct{}
	sem    chan struct{}

	mu       sync.Mutex
	byID     map[string]*entry
	pending  map[slot]*entry // coalescing: entries not yet in flight
	due      dueHeap
	sent     map[sentSlot]sent
	devLim   map[string]*rate.Limiter
	gwLim    map[string]*rate.Limiter
	inflight sync.WaitGroup
}

// New loads the queue from db and returns a Pusher; Run starts it.
func New(db *badger.DB, cfg Config) (*Pusher, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	p := &Pusher{cfg: cfg, log: cfg.Logger.With("part", "push"), st: store{db: db}, m: newMetrics(),
		intake: make(chan event, intakeQueue), wake: make(chan struct{}, 1), sem: make(chan struct{}, cfg.Workers),
		byID: map[string]*entry{}, pending: map[slot]*entry{}, sent: map[sentSlot]sent{},
		devLim: map[string]*rate.Limiter{}, gwLim: map[string]*rate.Limiter{}}
	err := p.st.load(queuePrefix, func(_, v []byte) error {
		e := &entry{}
		if err := json.Unmarshal(v, e); err != nil {
			return fmt.Errorf("push: stored push: %w", err)
		}
		p.add(e)
		return nil
	})
	if err == nil {
		err = p.st.load(sentPrefix, func(k, v []byte) error {
			var s sent
			if err := json.Unmarshal(v, &s); err != nil {
				return fmt.Errorf("push: stored push record: %w", err)
			}
			dev, conv, _ := strings.Cut(string(k[len(sentPrefix):]), "/")
			p.sent[sentSlot{dev, conv}] = s
			return nil
		})
	}
	if err != nil {
		return nil, err
	}
	if p.unreg, err = p.m.register(cfg.Metrics, p); err != nil {
		return nil, fmt.Errorf("push: metrics: %w", err)
	}
	return p, nil
}

// Committed takes messages a shard this node leads committed (its own
// term, apply order). It never blocks: when the intake is full the
// messages are not pushed (and counted as failed, queue_full).
func (p *Pusher) Committed(msgs []Message) {
	for i := range msgs {
		select {
		case p.intake <- event{msg: &msgs[i]}:
		default:
			p.m.failed.WithLabelValues("queue_full").Inc()
		}
	}
}

// Read tells the pusher that user has read conv up to seq (a user-level
// position moved): pending pushes it covers are dropped and devices that
// were pushed get a clear push. It never blocks.
func (p *Pusher) Read(workspace, conv, user string, seq uint64) {
	select {
	case p.intake <- event{read: &readEvent{workspace: workspace, conv: conv, user: user, seq: seq}}:
	default:
		p.m.failed.WithLabelValues("queue_full").Inc()
	}
}

// Pending is the number of pushes queued or in flight.
func (p *Pusher) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.byID)
}

// Run schedules and sends pushes until ctx ends, then waits for sends in
// flight. Call it once.
func (p *Pusher) Run(ctx context.Context) error {
	defer p.unreg()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-p.intake:
				switch {
				case ev.msg != nil:
					p.onMessage(ev.msg)
				case ev.read != nil:
					p.onRead(ev.read)
				default:
					close(ev.barrier)
				}
			}
		}
	}()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		wait := p.dispatch(ctx)
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			wg.Wait()
			p.inflight.Wait()
			return nil
		case <-p.wake:
		case <-timer.C:
		}
	}
}

func (p *Pusher) poke() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

func (p *Pusher) now() int64 { return p.cfg.Now().UnixMilli() }

// onMessage queues, or coalesces into a queued push, a push for each
// device that should get one.
func (p *Pusher) onMessage(m *Message) {
	if p.cfg.Resolve != nil {
		if err := p.cfg.Resolve(m); err != nil {
			p.log.Warn("push: resolve message", "conv", m.Conv, "err", err)
			p.m.failed.WithLabelValues("directory").Inc()
			return
		}
	}
	// A message moves its sender's read position: their other devices'
	// notifications are stale.
	p.onRead(&readEvent{workspace: m.Workspace, conv: m.Conv, user: m.Sender, seq: m.Seq})
	var users []string
	for _, u := range m.Members {
		if u == m.Sender {
			continue
		}
		switch p.cfg.Conversations.Level(m.Conv, u) {
		case LevelNone:
			continue
		case LevelMentions:
			if !p.cfg.Mentioned(m, u) {
				continue
			}
		}
		if p.cfg.Conversations.ReadSeq(m.Conv, u) >= m.Seq {
			continue
		}
		users = append(users, u)
	}
	if len(users) == 0 {
		return
	}
	targets, err := p.cfg.Directory.Targets(m.Workspace, users)
	if err != nil {
		p.log.Warn("push targets", "conv", m.Conv, "err", err)
		p.m.failed.WithLabelValues("directory").Inc()
		return
	}
	content := !m.E2EE && !p.cfg.NoContent(m.Workspace)
	now := p.now()
	for _, t := range targets {
		if p.cfg.Presence.DeviceOnline(t.User, t.Device) {
			continue
		}
		p.enqueue(m, t, content, now)
	}
	p.poke()
}

func (p *Pusher) enqueue(m *Message, t DeviceTarget, content bool, now int64) {
	p.mu.Lock()
	defer p.mu.Unlock()
	s := slot{t.Device, m.Conv, TypeMessage}
	e := p.pending[s]
	if e == nil {
		if len(p.byID) >= p.cfg.MaxPending {
			p.m.failed.WithLabelValues("queue_full").Inc()
			return
		}
		e = &entry{ID: newPushID(), Type: TypeMessage, Workspace: m.Workspace, User: t.User, Device: t.Device,
			Conv: m.Conv, FirstSeq: m.Seq, DueMs: now + p.cfg.Grace.Milliseconds(), CommitMs: m.Committed.UnixMilli()}
	}
	if m.Seq <= e.LastSeq {
		return // a repeat
	}
	e.LastSeq, e.MsgID, e.Target = m.Seq, m.MsgID, t.Target
	e.Count++
	e.Title, e.Sender, e.Body = "", "", ""
	if content {
		e.Title, e.Sender, e.Body = m.Title, m.SenderName, preview(m.Body, m.ContentType)
	}
	// The first write of a push is synced; coalescing into it need not
	// be: after a crash it is sent with the count it had.
	_, known := p.byID[e.ID]
	if err := p.st.write(queueKey(e.ID), e, !known); err != nil {
		p.log.Warn("push queue write", "device", t.Device, "err", err)
		p.m.failed.WithLabelValues("store").Inc()
		return
	}
	if !known {
		p.add(e)
	}
}

// add indexes e (p.mu held, or before Run).
func (p *Pusher) add(e *entry) {
	p.byID[e.ID] = e
	if !e.inflight {
		s := slot{e.Device, e.Conv, e.Type}
		if old := p.pending[s]; old == nil || old.DueMs < e.DueMs {
			p.pending[s] = e
		}
	}
	heap.Push(&p.due, e)
}

// drop forgets e (p.mu held) and deletes it from the store.
func (p *Pusher) drop(e *entry) {
	delete(p.byID, e.ID)
	if s := (slot{e.Device, e.Conv, e.Type}); p.pending[s] == e {
		delete(p.pending, s)
	}
	if e.heapIdx >= 0 && e.heapIdx < len(p.due) && p.due[e.heapIdx] == e {
		heap.Remove(&p.due, e.heapIdx)
	}
	if err := p.st.del(queueKey(e.ID)); err != nil {
		p.log.Warn("push queue delete", "err", err)
	}
}

// onRead drops the pending pushes a read covers and queues a clear to
// each device that was pushed a message it covers.
func (p *Pusher) onRead(r *readEvent) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, e := range p.byID {
		if e.Type == TypeMessage && !e.inflight && e.Conv == r.conv && e.User == r.user && e.LastSeq <= r.seq {
			p.drop(e)
		}
	}
	now := p.now()
	for k, s := range p.sent {
		if k.conv != r.conv || s.User != r.user || s.Seq > r.seq {
			continue
		}
		delete(p.sent, k)
		if err := p.st.del(sentKey(k.device, k.conv)); err != nil {
			p.log.Warn("push record delete", "err", err)
		}
		if old := p.pending[slot{k.device, k.conv, TypeClear}]; old != nil {
			old.LastSeq = max(old.LastSeq, r.seq)
			continue
		}
		if len(p.byID) >= p.cfg.MaxPending {
			p.m.failed.WithLabelValues("queue_full").Inc()
			continue
		}
		e := &entry{ID: newPushID(), Type: TypeClear, Workspace: s.Workspace, User: r.user, Device: k.device,
			Conv: k.conv, LastSeq: r.seq, Target: s.Target, DueMs: now, CommitMs: now}
		if err := p.st.put(queueKey(e.ID), e); err != nil {
			p.m.failed.WithLabelValues("store").Inc()
			continue
		}
		p.add(e)
	}
	p.poke()
}

// dispatch starts the sends that are due and returns how long until the
// next one is.
func (p *Pusher) dispatch(ctx context.Context) time.Duration {
	for {
		p.mu.Lock()
		if len(p.due) == 0 {
			p.mu.Unlock()
			return time.Hour
		}
		e := p.due[0]
		now := p.now()
		if wait := e.DueMs - now; wait > 0 {
			p.mu.Unlock()
			return time.Duration(wait) * time.Millisecond
		}
		if e.Type == TypeMessage && (p.cfg.Presence.DeviceOnline(e.User, e.Device) ||
			p.cfg.Conversations.ReadSeq(e.Conv, e.User) >= e.LastSeq) {
			// Back online, or read elsewhere, within the grace: it syncs.
			p.drop(e)
			p.mu.Unlock()
			continue
		}
		if d := p.limit(e); d > 0 {
			heap.Pop(&p.due)
			e.DueMs = now + max(d.Milliseconds(), 1)
			heap.Push(&p.due, e)
			p.mu.Unlock()
			continue
		}
		select {
		case p.sem <- struct{}{}:
		default:
			p.mu.Unlock()
			return 10 * time.Millisecond // all workers busy
		}
		heap.Pop(&p.due)
		e.inflight = true
		if s := (slot{e.Device, e.Conv, e.Type}); p.pending[s] == e {
			delete(p.pending, s)
		}
		p.mu.Unlock()
		p.inflight.Add(1)
		go func() {
			defer p.inflight.Done()
			defer func() { <-p.sem }()
			p.send(ctx, e)
		}()
	}
}

// limit takes a token from the device's and the gateway's limiters, or
// says how long to wait for them (p.mu held).
func (p *Pusher) limit(e *entry) time.Duration {
	now := p.cfg.Now()
	dl := p.devLim[e.Device]
	if dl == nil {
		if len(p.devLim) > 2*p.cfg.MaxPending {
			clear(p.devLim) // forget idle devices' buckets
		}
		dl = rate.NewLimiter(rate.Limit(p.cfg.DeviceRate), p.cfg.DeviceBurst)
		p.devLim[e.Device] = dl
	}
	var gl *rate.Limiter
	if e.Target.Kind == KindGateway {
		gw := p.cfg.Gateways[e.Target.Gateway]
		if gl = p.gwLim[e.Target.Gateway]; gl == nil {
			r, b := gw.Rate, gw.Burst
			if r == 0 {
				r = DefaultGatewayRate
			}
			if b == 0 {
				b = int(2 * r)
			}
			gl = rate.NewLimiter(rate.Limit(r), b)
			p.gwLim[e.Target.Gateway] = gl
		}
	}
	rd := dl.ReserveN(now, 1)
	wait := rd.DelayFrom(now)
	if gl != nil {
		rg := gl.ReserveN(now, 1)
		if d := rg.DelayFrom(now); d > 0 {
			rg.CancelAt(now)
			wait = max(wait, d)
		} else if wait > 0 {
			rg.CancelAt(now)
		}
	}
	if wait > 0 {
		rd.CancelAt(now)
	}
	return wait
}

func (p *Pusher) send(ctx context.Context, e *entry) {
	var s Sender
	switch e.Target.Kind {
	case KindWebPush:
		s = p.cfg.WebPush
	case KindGateway:
		s = p.cfg.Gateway
	}
	if s == nil {
		p.m.failed.WithLabelValues("no_sender").Inc()
		p.finish(e, "no_sender")
		return
	}
	n := &Notification{ID: e.ID, Type: e.Type, Workspace: e.Workspace, Conv: e.Conv, Seq: e.LastSeq,
		Tag: "parley:" + e.Conv, Title: e.Title, Sender: e.Sender, Body: e.Body}
	if e.Type == TypeMessage {
		n.Count, n.MsgID = e.Count, e.MsgID
	}
	sctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
	p.m.latency.WithLabelValues(e.Type).Observe(time.Since(time.UnixMilli(e.CommitMs)).Seconds())
	err := s.Send(sctx, e.Target, n)
	cancel()
	if err == nil {
		p.m.sent.WithLabelValues(e.Target.Kind.String(), e.Type).Inc()
		p.finish(e, "")
		return
	}
	var se *SendError
	switch {
	case errors.As(err, &se) && se.Gone:
		p.m.failed.WithLabelValues("gone").Inc()
		rctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
		if err := p.cfg.Directory.RemoveTarget(rctx, e.Workspace, DeviceTarget{User: e.User, Device: e.Device, Target: e.Target}); err != nil {
			p.log.Warn("remove push target", "device", e.Device, "err", err)
		} else {
			p.m.removed.WithLabelValues(e.Target.Kind.String()).Inc()
		}
		cancel()
		p.finish(e, "gone")
	case errors.As(err, &se) && !se.Retry:
		p.m.failed.WithLabelValues(fmt.Sprintf("%dxx", se.Status/100)).Inc()
		p.log.Info("push refused", "device", e.Device, "status", se.Status, "err", err)
		p.finish(e, "refused")
	case ctx.Err() != nil:
		// Stopping: the push stays stored and is sent after the restart.
	default:
		reason := "network"
		if se != nil {
			reason = fmt.Sprintf("%dxx", se.Status/100)
		}
		p.m.failed.WithLabelValues(reason).Inc()
		p.log.Debug("push failed; retrying", "device", e.Device, "attempt", e.Attempts+1, "err", err)
		p.retry(e, err)
	}
}

// retry schedules e again after a backoff, or gives up.
func (p *Pusher) retry(e *entry, err error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e.Attempts++
	if e.Attempts >= p.cfg.MaxAttempts {
		p.m.failed.WithLabelValues("gave_up").Inc()
		p.log.Warn("push given up", "device", e.Device, "attempts", e.Attempts, "err", err)
		e.inflight = false
		p.drop(e)
		return
	}
	backoff := p.cfg.MinBackoff << (e.Attempts - 1)
	if backoff > p.cfg.MaxBackoff || backoff <= 0 {
		backoff = p.cfg.MaxBackoff
	}
	e.DueMs = p.now() + backoff.Milliseconds()
	if err := p.st.put(queueKey(e.ID), e); err != nil {
		p.log.Warn("push queue write", "err", err)
	}
	heap.Push(&p.due, e) // still in flight for coalescing: newer messages get a push of their own
	p.poke()
}

// finish forgets a push that is done (sent, or failed for good) and, for
// a sent message push, remembers it for the clear.
func (p *Pusher) finish(e *entry, failure string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.byID, e.ID)
	if err := p.st.del(queueKey(e.ID)); err != nil {
		p.log.Warn("push queue delete", "err", err)
	}
	if failure != "" || e.Type != TypeMessage {
		return
	}
	k := sentSlot{e.Device, e.Conv}
	if _, ok := p.sent[k]; !ok && len(p.sent) >= p.cfg.MaxSent {
		// Full: forget some other record (that device's notification
		// then waits for the app to clear it).
		for old := range p.sent {
			delete(p.sent, old)
			if err := p.st.del(sentKey(old.device, old.conv)); err != nil {
				p.log.Warn("push record delete", "err", err)
			}
			break
		}
	}
	s := sent{Workspace: e.Workspace, User: e.User, Seq: e.LastSeq, Target: e.Target}
	if err := p.st.put(sentKey(e.Device, e.Conv), s); err != nil {
		p.log.Warn("push record write", "err", err)
		return
	}
	p.sent[k] = s
}

// preview is the first PreviewLen characters of a text body; other
// content types show nothing.
func preview(body []byte, contentType string) string {
	if contentType != "" && !strings.HasPrefix(contentType, "text/") {
		return ""
	}
	if !utf8.Valid(body) {
		return ""
	}
	s := string(body)
	if utf8.RuneCountInString(s) <= PreviewLen {
		return s
	}
	i, n := 0, 0
	for i = range s {
		if n == PreviewLen {
			break
		}
		n++
	}
	return s[:i]
}

// newPushID is "p_" and 26 base32 characters of 128 random bits.
func newPushID() string { return syncproto.NewID("p_") }

// dueHeap orders entries by DueMs.
type dueHeap []*entry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].DueMs < h[j].DueMs }
func (h dueHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].heapIdx, h[j].heapIdx = i, j
}
func (h *dueHeap) Push(x any) {
	e := x.(*entry)
	e.heapIdx = len(*h)
	*h = append(*h, e)
}
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.heapIdx = -1
	*h = old[:len(old)-1]
	return e
}

// NewHTTPClient is the client for Web Push sends: the guard's dialer
// (SSRF), no redirects followed, and timeout.
func NewHTTPClient(g Guard, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = g.DialContext
	tr.Proxy = nil
	return &http.Client{Transport: tr, Timeout: timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}
