package core

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/push"
	"github.com/parley-chat/parley/core/receipts"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Push to offline devices (core/push, docs/push.md). Every node runs a
// pusher; the leader of a conversation's shard feeds it what it commits
// in its own term (the commit path, as the fanout), so a message is
// considered once in the region. Whether a device is offline is the
// node's presence table, which holds every edge's sessions. Targets are
// the directory's, levels the shard's, read positions the receipts'
// (merged on every node, so each node's pusher hears every read and
// clears what it pushed).

// PushConfig configures push. Config.Push nil turns it off: targets can
// still be registered, but nothing is sent.
type PushConfig struct {
	// VAPID is the application server's key pair (parley keygen
	// --vapid); empty: Web Push targets are refused.
	VAPID push.VAPID
	// Subscriber is the VAPID contact (mailto: or https URL).
	Subscriber string
	// Gateways are the operator's push gateways, by the name devices
	// register with.
	Gateways map[string]push.Gateway
	// Grace is how long after a commit a push waits (default 2 s).
	Grace time.Duration
	// MaxPending bounds the node's queue of pushes (default 10 000).
	MaxPending int
	// TTL is how long a push service keeps an undelivered push (1 day).
	TTL time.Duration
	// AllowLoopback lets Web Push endpoints be http and loopback (tests
	// only: the SSRF guard's switch).
	AllowLoopback bool
}

// Validate names the first bad field.
func (c *PushConfig) Validate() error {
	if (c.VAPID.Public == "") != (c.VAPID.Private == "") {
		return errors.New("core: Push.VAPID needs both keys")
	}
	if c.VAPID.Public != "" && c.Subscriber == "" {
		return errors.New("core: Push.Subscriber is required with VAPID keys")
	}
	if c.Grace < 0 || c.TTL < 0 || c.MaxPending < 0 {
		return errors.New("core: Push durations and limits must not be negative")
	}
	return nil
}

func (c *PushConfig) guard() push.Guard { return push.Guard{AllowLoopback: c.AllowLoopback} }

// startPush builds the node's pusher and runs it until the node stops.
func (n *Node) startPush(reg prometheus.Registerer) error {
	pc := n.cfg.Push
	if pc == nil {
		return nil
	}
	if err := pc.Validate(); err != nil {
		return err
	}
	cfg := push.Config{
		Directory: pushDirectory{n}, Presence: n.presence, Conversations: pushConversations{n},
		Gateways: pc.Gateways, Grace: pc.Grace, MaxPending: pc.MaxPending,
		NoContent: func(ws string) bool {
			off, _ := n.groups[route.DirGroup].dir.PushNoContent(ws)
			return off
		},
		Resolve: n.resolvePush, Mentioned: n.mentioned,
		Metrics: reg, Now: n.cfg.Now, Logger: n.log,
	}
	ttl := pc.TTL
	if ttl == 0 {
		ttl = 24 * time.Hour
	}
	if pc.VAPID.Private != "" {
		cfg.WebPush = &push.WebPush{Keys: pc.VAPID, Subscriber: pc.Subscriber, TTL: ttl,
			Client: push.NewHTTPClient(pc.guard(), push.DefaultTimeout)}
	}
	if len(pc.Gateways) > 0 {
		// The operator's own URLs: no SSRF guard (a gateway may well be
		// on a private network).
		cfg.Gateway = &push.GatewaySender{Gateways: pc.Gateways, Client: &http.Client{Timeout: push.DefaultTimeout}}
	}
	p, err := push.New(n.db, cfg)
	if err != nil {
		return fmt.Errorf("core: %w", err)
	}
	n.pusher = p
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = p.Run(n.stopCtx)
	}()
	return nil
}

// checkPushTarget is the directory's CheckPushTarget: the SSRF guard on
// Web Push endpoints, and gateways only by the operator's names.
func (n *Node) checkPushTarget(t *syncpb.PushTarget) error {
	pc := n.cfg.Push
	if pc == nil {
		return syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "push is off on this server")
	}
	pt := targetOf(t)
	if pt.Kind == push.KindWebPush && pc.VAPID.Private == "" {
		return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "web push is not configured on this server")
	}
	if err := pc.guard().CheckTarget(pt, pc.Gateways); err != nil {
		return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "%s", strings.TrimPrefix(err.Error(), "push: "))
	}
	return nil
}

// pushCommitted hands the messages a led shard committed to the pusher
// (from the apply goroutine: no I/O here, Resolve does it later).
func (n *Node) pushCommitted(cs []shard.Committed) {
	if n.pusher == nil {
		return
	}
	var msgs []push.Message
	for _, c := range cs {
		for _, m := range c.Messages {
			if m.Kind != syncpb.MessageKind_MESSAGE_KIND_USER {
				continue
			}
			ct := m.ContentType
			msgs = append(msgs, push.Message{Conv: m.ConvId, Seq: m.Seq, MsgID: m.MsgId, Sender: m.SenderUserId,
				Body: m.Body, ContentType: ct, Committed: time.UnixMilli(m.TsUnixMs),
				// Bodies that are not text are taken as end-to-end
				// encrypted: nothing about them is shown.
				E2EE: ct != "" && !strings.HasPrefix(ct, "text/")})
		}
	}
	if len(msgs) > 0 {
		n.pusher.Committed(msgs)
	}
}

// receiptsChanged is the receipts' OnChange: the fanout's, then the
// pusher's clears.
func (n *Node) receiptsChanged(cs []receipts.Change) {
	n.fanout.ReceiptsChanged(cs)
	if n.pusher == nil {
		return
	}
	for _, c := range cs {
		if c.After.Read.Value > c.Before.Read.Value {
			n.pusher.Read("", c.Conv, c.User, c.After.Read.Value)
		}
	}
}

// resolvePush fills in a message's conversation and sender.
func (n *Node) resolvePush(m *push.Message) error {
	sm := n.groups[n.ShardGroupOf(m.Conv)].shard
	ws, members, err := sm.MembersOf(m.Conv)
	if err != nil {
		return err
	}
	title, typ, _, err := sm.Title(m.Conv)
	if err != nil {
		return err
	}
	m.Workspace, m.Members = ws, members
	if typ == syncpb.ConversationType_CONVERSATION_TYPE_GROUP {
		m.Title = title
	}
	users, err := n.groups[route.DirGroup].dir.LookupUsers(ws, []string{m.Sender})
	if err != nil {
		return err
	}
	if len(users) == 1 {
		m.SenderName = users[0].DisplayName
		if m.SenderName == "" {
			m.SenderName = users[0].Username
		}
	}
	return nil
}

// mentioned: a text body naming @username.
func (n *Node) mentioned(m *push.Message, user string) bool {
	if m.E2EE {
		return false
	}
	users, err := n.groups[route.DirGroup].dir.LookupUsers(m.Workspace, []string{user})
	if err != nil || len(users) != 1 {
		return false
	}
	return strings.Contains(strings.ToLower(string(m.Body)), "@"+users[0].Username)
}

// pushDirectory is the pusher's view of the directory group.
type pushDirectory struct{ n *Node }

func (d pushDirectory) Targets(ws string, users []string) ([]push.DeviceTarget, error) {
	ts, err := d.n.groups[route.DirGroup].dir.PushTargets(ws, users)
	if err != nil {
		return nil, err
	}
	out := make([]push.DeviceTarget, 0, len(ts))
	for _, t := range ts {
		out = append(out, push.DeviceTarget{User: t.UserId, Device: t.DeviceId, Target: targetOf(t.Target)})
	}
	return out, nil
}

func (d pushDirectory) RemoveTarget(ctx context.Context, ws string, t push.DeviceTarget) error {
	resp := d.n.router.Execute(ctx, route.DirGroup, &syncpb.CoreRequest{
		Caller: &syncpb.Caller{WorkspaceId: ws, UserId: t.User},
		Op: &syncpb.CoreRequest_SetPushTarget{SetPushTarget: &syncpb.SetPushTargetRequest{
			DeviceId: t.Device, IfTarget: targetProto(t.Target)}},
	})
	return syncproto.FromProto(resp.GetError())
}

// pushConversations gives the pusher levels (the shard) and read
// positions (the receipts, joined with the user's own last message).
type pushConversations struct{ n *Node }

func (c pushConversations) Level(conv, user string) push.Level {
	l, _ := c.n.groups[c.n.ShardGroupOf(conv)].shard.NotifyLevel(conv, user)
	switch l {
	case syncpb.NotifyLevel_NOTIFY_LEVEL_MENTIONS:
		return push.LevelMentions
	case syncpb.NotifyLevel_NOTIFY_LEVEL_NONE:
		return push.LevelNone
	}
	return push.LevelAll
}

func (c pushConversations) ReadSeq(conv, user string) uint64 {
	var seq uint64
	if own, err := c.n.groups[c.n.ShardGroupOf(conv)].shard.SentBy(conv, user); err == nil {
		seq = own.Value
	}
	if c.n.receipts != nil {
		if m, err := c.n.receipts.User(conv, user); err == nil {
			seq = max(seq, m.Read.Value)
		}
	}
	return seq
}

func targetOf(t *syncpb.PushTarget) push.Target {
	if w := t.GetWebPush(); w != nil {
		return push.Target{Kind: push.KindWebPush, Endpoint: w.Endpoint, P256dh: w.P256Dh, Auth: w.Auth}
	}
	if g := t.GetGateway(); g != nil {
		return push.Target{Kind: push.KindGateway, Gateway: g.Gateway, PushKey: g.PushKey, AppID: g.AppId}
	}
	return push.Target{}
}

func targetProto(t push.Target) *syncpb.PushTarget {
	switch t.Kind {
	case push.KindWebPush:
		return &syncpb.PushTarget{Target: &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{
			Endpoint: t.Endpoint, P256Dh: t.P256dh, Auth: t.Auth}}}
	case push.KindGateway:
		return &syncpb.PushTarget{Target: &syncpb.PushTarget_Gateway{Gateway: &syncpb.GatewayTarget{
			Gateway: t.Gateway, PushKey: t.PushKey, AppId: t.AppID}}}
	}
	return nil
}
