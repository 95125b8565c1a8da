package core

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/fanout"
	"github.com/parley-chat/parley/core/presence"
	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Presence: every node subscribes to the edges' batches and keeps the
// whole table (core/presence), so any node answers lookups. A change of
// user u is published once, by the node leading shard ShardOf(u), on u's
// presence subject, where edges with a watcher of u listen. Around a
// leadership change a change may be published twice (harmless: updates
// carry the state, not a delta), or by nobody when the nodes disagree
// about who leads at that moment (the former leader has stepped down, the
// new one does not know it leads yet). So a node that finds it has become
// a shard's leader publishes again the state of that shard's users who
// changed within RepairWindow: a change is never lost to a leadership
// change, only late by up to a Tick.

// PresenceConfig configures a node's presence.
type PresenceConfig struct {
	// Off lists workspace ids whose users' presence is not shown: no
	// changes are published for them and their lookups are refused (an
	// operator setting; see docs/presence.md).
	Off []string
	// MaxWatch bounds the users one lookup returns (default and at most
	// syncproto.MaxPresenceUsers).
	MaxWatch int
	// Tick is how often leases are checked (default 100 ms); it adds to
	// the time watchers take to see a dead edge's users go offline. It is
	// also how often a node looks for shards it has come to lead.
	Tick time.Duration
	// RepairWindow is how far back a new shard leader publishes changes
	// again (default 30 s): longer than a leadership change takes.
	RepairWindow time.Duration
}

func (c *PresenceConfig) setDefaults() {
	if c.MaxWatch == 0 || c.MaxWatch > syncproto.MaxPresenceUsers {
		c.MaxWatch = syncproto.MaxPresenceUsers
	}
	if c.Tick == 0 {
		c.Tick = 100 * time.Millisecond
	}
	if c.RepairWindow == 0 {
		c.RepairWindow = 30 * time.Second
	}
}

// Validate names the first bad field.
func (c *PresenceConfig) Validate() error {
	for _, ws := range c.Off {
		if !syncproto.ValidID(ws) {
			return fmt.Errorf("core: Config.Presence.Off: bad workspace id %q", ws)
		}
	}
	if c.MaxWatch < 0 || c.Tick < 0 || c.RepairWindow < 0 {
		return errors.New("core: Config.Presence: MaxWatch, Tick and RepairWindow must not be negative")
	}
	return nil
}

type presenceService struct {
	n   *Node
	cfg PresenceConfig
	off map[string]bool

	mu    sync.Mutex
	table *presence.Table

	seen *lastSeen // nil when JetStream is off

	// leads says whether this node leads shard i (self), and whether any
	// node is known to (known); send publishes. Both are the node's
	// (leadsShard, nc.Publish) but for tests.
	leads func(shard int) (self, known bool)
	send  func(subject string, data []byte) error
	// led is, per shard, whether this node led it at the last tick (the
	// expire loop's only).
	led []bool
}

// newPresence builds the presence service; startPresence runs it. The
// shards' commit hooks may call committed in between.
func (n *Node) newPresence() error {
	cfg := n.cfg.Presence
	cfg.setDefaults()
	table, err := presence.New(presence.Config{Now: n.cfg.Now})
	if err != nil {
		return fmt.Errorf("core: %w", err)
	}
	p := &presenceService{n: n, cfg: cfg, off: map[string]bool{}, table: table,
		leads: n.leadsShard, send: n.nc.Publish, led: make([]bool, n.cfg.ShardCount)}
	for _, ws := range cfg.Off {
		p.off[ws] = true
	}
	n.presence = p
	return nil
}

// startPresence subscribes to the edges' batches and starts the lease
// checks; Close stops them (n.subs, n.stop).
func (n *Node) startPresence() error {
	p := n.presence
	s, err := n.nc.Subscribe(syncproto.PresenceSubject(n.cfg.Region), p.onBatch)
	if err != nil {
		return fmt.Errorf("core: subscribe presence: %w", err)
	}
	if err := s.SetPendingLimits(65536, 64<<20); err != nil {
		return fmt.Errorf("core: pending limits presence: %w", err)
	}
	n.subs = append(n.subs, s)
	n.wg.Add(1)
	go p.expireLoop()
	if !n.cfg.NATS.NoJetStream {
		js, err := jetstream.New(n.nc)
		if err != nil {
			return fmt.Errorf("core: last-seen: %w", err)
		}
		p.seen = newLastSeen(n)
		var ctx context.Context
		ctx, n.lcancel = context.WithCancel(context.Background())
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			p.seen.run(ctx, js)
		}()
	}
	return nil
}

var _ fanout.PresenceView = (*presenceService)(nil)

// Off reports whether the operator turned presence off in workspace ws
// (PresenceConfig.Off): the fanout's membership notices skip it.
func (p *presenceService) Off(ws string) bool { return p.off[ws] }

// States are the users' presence in this node's table.
func (p *presenceService) States(users []string) map[string]*syncpb.PresenceUpdate {
	states := make(map[string]*syncpb.PresenceUpdate, len(users))
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, u := range users {
		states[u] = p.table.State(u)
	}
	return states
}

func (p *presenceService) onBatch(m *nats.Msg) {
	b := &syncpb.PresenceBatch{}
	if err := proto.Unmarshal(m.Data, b); err != nil || !syncproto.ValidID(b.EdgeId) {
		p.n.log.Warn("bad presence batch", "err", err)
		return
	}
	b.Connected = validDevices(b.Connected)
	b.Disconnected = validDevices(b.Disconnected)
	p.mu.Lock()
	changes, ask := p.table.Apply(b)
	p.mu.Unlock()
	if ask {
		p.n.log.Debug("asking an edge for a presence snapshot", "edge", b.EdgeId)
		if err := p.n.nc.Publish(syncproto.PresenceSnapshotSubject(p.n.cfg.Region, b.EdgeId), nil); err != nil {
			p.n.log.Debug("snapshot request", "edge", b.EdgeId, "err", err)
		}
	}
	p.publish(changes)
}

// isOff reports whether presence is off in a workspace: by the operator
// (PresenceConfig.Off) or by the workspace's owner (a directory setting,
// read from this node's copy).
func (p *presenceService) isOff(ws string) bool {
	if p.off[ws] {
		return true
	}
	m := p.n.groups[route.DirGroup]
	if m == nil || m.dir == nil || ws == "" {
		return false
	}
	d := m.dir
	off, err := d.PresenceOff(ws)
	return err == nil && off
}

// validDevices drops devices whose ids could not name a subject.
func validDevices(ds []*syncpb.PresenceDevice) []*syncpb.PresenceDevice {
	return slices.DeleteFunc(ds, func(d *syncpb.PresenceDevice) bool {
		return !syncproto.ValidID(d.GetUserId()) || !syncproto.ValidID(d.GetDeviceId())
	})
}

func (p *presenceService) expireLoop() {
	defer p.n.wg.Done()
	t := time.NewTicker(p.cfg.Tick)
	defer t.Stop()
	for {
		select {
		case <-p.n.stop:
			return
		case <-t.C:
		}
		p.tick()
	}
}

// tick drops expired leases and publishes what changed, then repairs the
// shards this node has come to lead since the last tick.
func (p *presenceService) tick() {
	p.mu.Lock()
	changes := p.table.Expire()
	p.mu.Unlock()
	p.publish(changes)
	p.repair()
}

// repair publishes again, for each shard this node leads now but did not
// at the last tick, the state of the shard's users that changed within
// RepairWindow: while leadership moved, nobody may have published them.
func (p *presenceService) repair() {
	var gained map[int]bool
	for i := range p.led {
		self, _ := p.leads(i)
		if self && !p.led[i] {
			if gained == nil {
				gained = map[int]bool{}
			}
			gained[i] = true
		}
		p.led[i] = self
	}
	if gained == nil {
		return
	}
	p.mu.Lock()
	recent := p.table.Recent(p.n.cfg.Now().Add(-p.cfg.RepairWindow))
	p.mu.Unlock()
	var again []presence.Change
	for _, c := range recent {
		if gained[p.shardOf(c.UserID)] {
			again = append(again, c)
		}
	}
	if len(again) > 0 {
		p.n.log.Debug("presence repeated by a new shard leader", "users", len(again))
	}
	p.publish(again)
}

func (p *presenceService) shardOf(user string) int {
	return int(syncproto.ShardOf(user, uint32(p.n.cfg.ShardCount)))
}

// leadsShard reports whether this node leads shard i, and whether any
// node is known to.
func (n *Node) leadsShard(i int) (self, known bool) {
	g := n.groups[route.ShardGroup(i)].g
	if g.IsLeader() {
		return true, true
	}
	leader, _ := g.Leader()
	return false, leader != ""
}

// publish sends the changes of the users whose shard this node leads.
func (p *presenceService) publish(changes []presence.Change) {
	for _, c := range changes {
		if p.isOff(c.WorkspaceID) {
			continue
		}
		// The shard's leader publishes; while the shard has none (an
		// election, a leadership transfer) every node that sees none does,
		// so a change is repeated rather than lost.
		if self, known := p.leads(p.shardOf(c.UserID)); !self && known {
			continue
		}
		b, err := proto.Marshal(&syncpb.Deliver{Presence: []*syncpb.PresenceUpdate{c.Update()}})
		if err != nil {
			p.n.log.Error("marshal presence", "err", err)
			continue
		}
		if err := p.send(syncproto.PresenceUserSubject(p.n.cfg.Region, c.UserID), b); err != nil {
			p.n.log.Debug("publish presence", "user", c.UserID, "err", err)
		}
		if !c.Online && p.seen != nil {
			p.seen.put(c.UserID, c.LastSeen)
		}
	}
}

// getPresence answers a lookup: the state of every user sharing a
// conversation with the caller (empty user_ids: all of them up to
// MaxWatch, large groups skipped), or of those of user_ids who do (the
// rest are left out). Membership is read on every shard's leader (as a
// sync is), so a conversation acknowledged before the lookup is in it: a
// follower's copy may lag its leader by up to two CommitTimeouts.
func (n *Node) getPresence(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if resp := n.checkPresenceLookup(req); resp != nil {
		return resp
	}
	resps, err := n.router.EveryShard(ctx, req)
	if err != nil {
		return &syncpb.CoreResponse{Error: err}
	}
	seen := map[string]bool{}
	var list []*syncpb.PresenceUpdate
	for _, r := range resps {
		for _, u := range r.GetPresence().GetUsers() {
			if !seen[u.UserId] && len(list) < n.presence.cfg.MaxWatch {
				seen[u.UserId] = true
				list = append(list, u)
			}
		}
	}
	slices.SortFunc(list, func(a, b *syncpb.PresenceUpdate) int { return strings.Compare(a.UserId, b.UserId) })
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Presence{Presence: &syncpb.PresenceList{Users: list}}}
}

// checkPresenceLookup returns the error response for a lookup that may
// not be made, or nil.
func (n *Node) checkPresenceLookup(req *syncpb.CoreRequest) *syncpb.CoreResponse {
	caller := req.GetCaller()
	if !syncproto.ValidID(caller.GetUserId()) || !syncproto.ValidID(caller.GetWorkspaceId()) {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "presence lookup needs a caller"))
	}
	if n.presence.isOff(caller.GetWorkspaceId()) {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "presence is turned off in this workspace"))
	}
	if err := syncproto.ValidatePresenceSubscribe(&syncpb.PresenceSubscribe{UserIds: req.GetGetPresence().GetUserIds()}); err != nil {
		return route.Error(err)
	}
	return nil
}

// shardPresence is one shard's part of a lookup, on its leader after a
// read barrier: the caller's contacts in that shard, with their state.
func (n *Node) shardPresence(mem *member, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if resp := n.checkPresenceLookup(req); resp != nil {
		return resp
	}
	var only map[string]bool
	if ids := req.GetGetPresence().GetUserIds(); len(ids) > 0 {
		only = make(map[string]bool, len(ids))
		for _, id := range ids {
			only[id] = true
		}
	}
	found := map[string]bool{}
	if mem.shard != nil {
		if err := mem.shard.Contacts(req.GetCaller(), only, n.presence.cfg.MaxWatch, found); err != nil {
			return n.router.Fail(mem.g.Name(), req, fmt.Errorf("core: presence contacts: %w", err))
		}
	}
	list := make([]*syncpb.PresenceUpdate, 0, len(found))
	n.presence.mu.Lock()
	for u := range found {
		list = append(list, n.presence.table.State(u))
	}
	n.presence.mu.Unlock()
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Presence{Presence: &syncpb.PresenceList{Users: list}}}
}

// PresenceOnline is how many users this node's table holds online, and
// how many edges hold a live lease (for tests and stats).
func (n *Node) PresenceOnline() (users, edges int) {
	n.presence.mu.Lock()
	defer n.presence.mu.Unlock()
	return n.presence.table.Online(), n.presence.table.Edges()
}

// PresenceOf is this node's view of a user's presence (for tests and stats).
func (n *Node) PresenceOf(userID string) *syncpb.PresenceUpdate {
	n.presence.mu.Lock()
	defer n.presence.mu.Unlock()
	return n.presence.table.State(userID)
}

// DeviceOnline reports whether this node's table has a live session of
// the device on any edge of the region (every node holds the whole
// table): the pusher's Presence.
func (p *presenceService) DeviceOnline(userID, deviceID string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.table.DeviceOnline(userID, deviceID)
}
