// Package presence is a core node's presence table: which devices each
// edge reports connected, held as leases that the edge's batches renew.
// A user is online while any of their devices is connected on an edge
// whose lease is live. The table is pure logic, with the clock in Config;
// the caller feeds it batches, calls Expire periodically, publishes the
// changes it returns and asks edges for the snapshots it wants.
//
// Batches of one edge carry an epoch (new when the edge restarts) and a
// seq. A batch from an unknown edge or epoch, or after a gap in seq, leaves
// the table unsure of that edge's devices: Apply still applies its deltas
// and reports that a snapshot is wanted. A snapshot is a run of batches
// (reset on the first, snapshot on all, snapshot_done on the last) that
// replaces the edge's devices.
//
// Last-seen times live in memory only: a node that restarts forgets them.
package presence

import (
	"errors"
	"fmt"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Defaults for Config's zero values.
const (
	DefaultLease       = 1500 * time.Millisecond
	DefaultMinLease    = 100 * time.Millisecond
	DefaultMaxLease    = time.Minute
	DefaultAskInterval = time.Second
)

// Config configures a Table. Zero values mean the defaults.
type Config struct {
	// Lease applies to batches that carry no lease_ms (default 1.5 s);
	// MinLease and MaxLease clamp the ones that do (100 ms, 1 min).
	Lease, MinLease, MaxLease time.Duration
	// AskInterval is the least time between two snapshot requests to one
	// edge (default 1 s).
	AskInterval time.Duration
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Validate names the first bad field.
func (c Config) Validate() error {
	switch {
	case c.Lease < 0 || c.MinLease < 0 || c.MaxLease < 0 || c.AskInterval < 0:
		return errors.New("presence: durations must not be negative")
	case c.MinLease > 0 && c.MaxLease > 0 && c.MinLease > c.MaxLease:
		return fmt.Errorf("presence: MinLease %v exceeds MaxLease %v", c.MinLease, c.MaxLease)
	}
	return nil
}

func (c Config) withDefaults() Config {
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.MinLease == 0 {
		c.MinLease = DefaultMinLease
	}
	if c.MaxLease == 0 {
		c.MaxLease = max(DefaultMaxLease, c.MinLease)
	}
	if c.AskInterval == 0 {
		c.AskInterval = DefaultAskInterval
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Change is a user going online or offline.
type Change struct {
	UserID      string
	WorkspaceID string
	Online      bool
	// LastSeen is when the user went offline (or, going online, now).
	LastSeen time.Time
}

// Update is the change as sent to watchers.
func (c Change) Update() *syncpb.PresenceUpdate {
	return &syncpb.PresenceUpdate{UserId: c.UserID, Online: c.Online, LastSeenUnixMs: c.LastSeen.UnixMilli()}
}

type devKey struct{ user, device string }

type edgeState struct {
	epoch   uint64
	seq     uint64
	expires time.Time
	synced  bool              // devices are known (a snapshot was applied)
	devices map[devKey]string // -> workspace
	staging map[devKey]string // a snapshot being received, else nil
	askedAt time.Time         // last snapshot request
}

type userState struct {
	workspace string
	devices   int       // (edge, device) pairs connected
	lastSeen  time.Time // when the user last went offline, or came online
}

// Table is the presence table. It is not safe for concurrent use.
type Table struct {
	cfg   Config
	edges map[string]*edgeState
	users map[string]*userState
	// touched collects, during one call, each user's online state before it.
	touched map[string]bool
}

// New returns an empty Table.
func New(cfg Config) (*Table, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Table{cfg: cfg.withDefaults(), edges: map[string]*edgeState{}, users: map[string]*userState{}, touched: map[string]bool{}}, nil
}

// Apply takes one batch from an edge. It returns the users whose state
// changed, and whether the caller should ask the edge for a snapshot
// (rate-limited to one per AskInterval per edge).
func (t *Table) Apply(b *syncpb.PresenceBatch) (changes []Change, askSnapshot bool) {
	now := t.cfg.Now()
	id := b.GetEdgeId()
	if id == "" {
		return nil, false
	}
	e := t.edges[id]
	fresh := e == nil || e.epoch != b.GetEpoch()
	if fresh {
		if e != nil { // the edge restarted: its former devices are gone
			t.removeAll(e)
		}
		e = &edgeState{epoch: b.GetEpoch(), seq: b.GetSeq(), devices: map[devKey]string{}}
		t.edges[id] = e
	}
	e.expires = now.Add(t.lease(b.GetLeaseMs()))
	if b.GetClosing() {
		t.removeAll(e)
		delete(t.edges, id)
		return t.changes(now), false
	}
	if !fresh {
		if b.GetSeq() <= e.seq {
			return nil, false // a repeat: it renewed the lease, nothing more
		}
		if b.GetSeq() != e.seq+1 {
			e.synced, e.staging = false, nil // a batch was lost
		}
		e.seq = b.GetSeq()
	}
	switch {
	case b.GetReset_():
		e.staging = map[devKey]string{}
		fallthrough
	case b.GetSnapshot() && e.staging != nil:
		for _, d := range b.GetConnected() {
			e.staging[key(d)] = d.GetWorkspaceId()
		}
		if b.GetSnapshotDone() {
			t.replace(e, e.staging)
			e.staging, e.synced = nil, true
		}
	case b.GetSnapshot():
		// A part whose start we missed: wait for the next snapshot.
	default:
		if e.staging != nil { // a delta inside a snapshot: start over
			e.staging, e.synced = nil, false
		}
		for _, d := range b.GetConnected() {
			t.add(e, key(d), d.GetWorkspaceId())
		}
		for _, d := range b.GetDisconnected() {
			t.remove(e, key(d))
		}
	}
	if !e.synced && e.staging == nil && (e.askedAt.IsZero() || now.Sub(e.askedAt) >= t.cfg.AskInterval) {
		e.askedAt = now
		askSnapshot = true
	}
	return t.changes(now), askSnapshot
}

// Expire drops every edge whose lease has run out, with its devices, and
// returns the users that went offline. Call it often (every 100 ms or so):
// its granularity adds to the convergence time after an edge dies.
func (t *Table) Expire() []Change {
	now := t.cfg.Now()
	for id, e := range t.edges {
		if now.After(e.expires) {
			t.removeAll(e)
			delete(t.edges, id)
		}
	}
	return t.changes(now)
}

// State is a user's presence as the table knows it; unknown users are
// offline with no last-seen time.
func (t *Table) State(userID string) *syncpb.PresenceUpdate {
	u := t.users[userID]
	if u == nil {
		return &syncpb.PresenceUpdate{UserId: userID}
	}
	p := &syncpb.PresenceUpdate{UserId: userID, Online: u.devices > 0}
	if !u.lastSeen.IsZero() {
		p.LastSeenUnixMs = u.lastSeen.UnixMilli()
	}
	return p
}

// DeviceOnline reports whether a device has a live session: an edge
// whose lease has not run out reports it connected (a push is not needed).
func (t *Table) DeviceOnline(userID, deviceID string) bool {
	if u := t.users[userID]; u == nil || u.devices == 0 {
		return false
	}
	now, k := t.cfg.Now(), devKey{userID, deviceID}
	for _, e := range t.edges {
		if _, ok := e.devices[k]; ok && !now.After(e.expires) {
			return true
		}
	}
	return false
}

// Recent is the current state of every user whose state last changed at
// or after since (a user never seen changing is left out), for a node
// that must tell watchers again what may not have reached them.
func (t *Table) Recent(since time.Time) []Change {
	var out []Change
	for id, u := range t.users {
		if u.lastSeen.IsZero() || u.lastSeen.Before(since) {
			continue
		}
		out = append(out, Change{UserID: id, WorkspaceID: u.workspace, Online: u.devices > 0, LastSeen: u.lastSeen})
	}
	return out
}

// SeedLastSeen raises a user's last-seen time to at (a time stored
// elsewhere, e.g. before this table existed); a later time already known
// wins.
func (t *Table) SeedLastSeen(userID string, at time.Time) {
	u := t.users[userID]
	if u == nil {
		u = &userState{}
		t.users[userID] = u
	}
	if at.After(u.lastSeen) {
		u.lastSeen = at
	}
}

// Edges is how many edges hold a live lease.
func (t *Table) Edges() int { return len(t.edges) }

// Online is how many users are online.
func (t *Table) Online() int {
	n := 0
	for _, u := range t.users {
		if u.devices > 0 {
			n++
		}
	}
	return n
}

func (t *Table) lease(ms uint32) time.Duration {
	if ms == 0 {
		return t.cfg.Lease
	}
	return min(max(time.Duration(ms)*time.Millisecond, t.cfg.MinLease), t.cfg.MaxLease)
}

func key(d *syncpb.PresenceDevice) devKey {
	return devKey{user: d.GetUserId(), device: d.GetDeviceId()}
}

func (t *Table) touch(user string) *userState {
	u := t.users[user]
	if _, ok := t.touched[user]; !ok {
		t.touched[user] = u != nil && u.devices > 0
	}
	if u == nil {
		u = &userState{}
		t.users[user] = u
	}
	return u
}

func (t *Table) add(e *edgeState, k devKey, ws string) {
	if k.user == "" {
		return
	}
	if _, ok := e.devices[k]; ok {
		return
	}
	e.devices[k] = ws
	u := t.touch(k.user)
	u.devices++
	u.workspace = ws
}

func (t *Table) remove(e *edgeState, k devKey) {
	if _, ok := e.devices[k]; !ok {
		return
	}
	delete(e.devices, k)
	t.touch(k.user).devices--
}

func (t *Table) removeAll(e *edgeState) {
	for k := range e.devices {
		t.remove(e, k)
	}
}

// replace makes want the edge's devices.
func (t *Table) replace(e *edgeState, want map[devKey]string) {
	for k := range e.devices {
		if _, ok := want[k]; !ok {
			t.remove(e, k)
		}
	}
	for k, ws := range want {
		t.add(e, k, ws)
	}
}

// changes turns the users touched since the last call into changes.
func (t *Table) changes(now time.Time) []Change {
	var out []Change
	for user, was := range t.touched {
		u := t.users[user]
		if online := u.devices > 0; online != was {
			u.lastSeen = now
			out = append(out, Change{UserID: user, WorkspaceID: u.workspace, Online: online, LastSeen: now})
		}
	}
	clear(t.touched)
	return out
}
