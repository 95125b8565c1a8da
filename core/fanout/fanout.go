// Package fanout tells a conversation's members what happened in it: live
// messages, typing indicators, receipt updates and the presence notices
// of a membership change. It runs on the node that leads the
// conversation's shard. Every kind goes by one member cache (Forget
// drops a conversation's list when its membership changes) and one
// large-group rule (LargeGroup): a small conversation is told on each
// member's user subject, a large one once on its conversation subject,
// which each edge with a member connected listens on (one NATS message
// per edge, not per member).
package fanout

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/parley-chat/parley/crdt"
	"github.com/parley-chat/parley/syncproto"
)

// LargeGroup is the rule every notice kind follows: a conversation with
// more than this many members is large. 0: none is.
type LargeGroup int

// Is reports whether a conversation of members members is large.
func (l LargeGroup) Is(members int) bool { return l > 0 && members > int(l) }

// Positions gives the position in conv of each of users: what its devices
// reported joined with what it sent (core/receipts' Service.Positions).
type Positions func(conv string, users []string, sent map[string]crdt.Register) (map[string]crdt.Marks, error)

// Config of a Fanout. Zero values mean the defaults.
type Config struct {
	Region string
	// LargeGroup is the member count above which a conversation is told
	// once on its conversation subject (0: never); the node's
	// Config.LargeGroup.
	LargeGroup LargeGroup
	// Publish sends one message (the node's nats.Conn.PublishMsg).
	Publish func(*nats.Msg) error
	// Shard returns the state machine of conv's shard when this node
	// leads it, else nil: receipt updates are told by the leader only.
	Shard func(conv string) ReceiptSource
	// Positions are the users' receipt positions; nil when receipts are
	// off (no receipt updates are told).
	Positions Positions
	// Presence gives the states that membership notices carry; nil: no
	// notices.
	Presence PresenceView
	// MemberTTL is how long a conversation's member list is kept, in case
	// a Forget was missed (a snapshot restore changes membership without
	// one); default DefaultMemberTTL.
	MemberTTL time.Duration
	// ReceiptAggregate is how often large groups' aggregate receipt
	// counts are published (default 1 s).
	ReceiptAggregate time.Duration
	Now              func() time.Time
	Logger           *slog.Logger
}

func (c *Config) setDefaults() {
	if c.Region == "" {
		c.Region = syncproto.DefaultRegion
	}
	if c.MemberTTL <= 0 {
		c.MemberTTL = DefaultMemberTTL
	}
	if c.ReceiptAggregate <= 0 {
		c.ReceiptAggregate = time.Second
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate names the first bad field.
func (c *Config) Validate() error {
	switch {
	case !syncproto.ValidID(c.Region):
		return fmt.Errorf("fanout: Config.Region %q must be of [a-z0-9_-]", c.Region)
	case c.LargeGroup < 0:
		return errors.New("fanout: Config.LargeGroup must not be negative (0: no group is large)")
	case c.Publish == nil:
		return errors.New("fanout: Config.Publish is required")
	case c.Positions != nil && c.Shard == nil:
		return errors.New("fanout: Config.Shard is required with Config.Positions")
	}
	return nil
}

// Fanout tells members of what their conversations commit. Its methods
// never block on the network: each kind has a bounded queue that Run
// drains.
type Fanout struct {
	cfg     Config
	log     *slog.Logger
	members *memberCache

	deliver  deliverer
	typing   typer
	receipts receiptNotices
	notices  chan memberNotice
}

// New returns a Fanout; Run publishes what it is given.
func New(cfg Config) (*Fanout, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	f := &Fanout{cfg: cfg, log: cfg.Logger, members: newMemberCache(cfg.Now, cfg.MemberTTL),
		notices: make(chan memberNotice, memberNoticeQueue)}
	f.deliver.init()
	f.typing.init()
	f.receipts.init()
	return f, nil
}

// Run publishes what the queues hold until ctx ends.
func (f *Fanout) Run(ctx context.Context) error {
	loops := []func(context.Context){f.deliverLoop, f.typingLoop}
	if f.cfg.Presence != nil {
		loops = append(loops, f.noticeLoop)
	}
	if f.cfg.Positions != nil {
		loops = append(loops, f.aggregateLoop)
	}
	var wg sync.WaitGroup
	for _, loop := range loops {
		wg.Go(func() { loop(ctx) })
	}
	wg.Wait()
	return ctx.Err()
}

// Forget drops conv's cached member list. The node calls it for every
// committed membership change, on every node (any may lead next).
func (f *Fanout) Forget(conv string) { f.members.forget(conv) }

// subjects are where a conversation of users is told: its conversation
// subject when it is large, else each member's user subject.
func (f *Fanout) subjects(conv string, users []string) []string {
	if f.cfg.LargeGroup.Is(len(users)) {
		return []string{syncproto.ConvSubject(f.cfg.Region, conv)}
	}
	return f.userSubjects(users)
}

func (f *Fanout) userSubjects(users []string) []string {
	out := make([]string, len(users))
	for i, u := range users {
		out[i] = syncproto.UserSubject(f.cfg.Region, u)
	}
	return out
}

// send publishes b on each subject, with header key: value when key is
// set, and returns how many publishes succeeded. what names the kind in
// the debug log of a failure.
func (f *Fanout) send(what string, b []byte, key, value string, subjects ...string) int {
	sent := 0
	for _, subject := range subjects {
		m := &nats.Msg{Subject: subject, Data: b}
		if key != "" {
			m.Header = nats.Header{key: []string{value}}
		}
		if err := f.cfg.Publish(m); err != nil {
			f.log.Debug("publish "+what, "subject", subject, "err", err)
			continue
		}
		sent++
	}
	return sent
}
