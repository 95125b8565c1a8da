package presence

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// watch holds one NATS subscription per user watched by anyone connected
// here (reference-counted by watchers), all feeding one bounded channel
// read by one goroutine: no goroutine per subscription. When the channel
// is full NATS drops updates (a slow consumer, reported on the
// connection's error handler); watchers then show a stale state until
// the user's next change or their reconnect.
type watch struct {
	nc     *nats.Conn
	region string
	log    *slog.Logger
	ch     chan *nats.Msg

	mu     sync.Mutex
	users  map[string]*watched
	closed bool
}

type watched struct {
	sub      *nats.Subscription
	watchers map[*watcher]struct{}
	state    *syncpb.PresenceUpdate // the newest known, nil until one is
}

// newer reports whether p is at least as recent as the known state cur:
// the cores stamp each change with its time (last_seen_unix_ms).
func newer(cur, p *syncpb.PresenceUpdate) bool {
	return cur == nil || p.GetLastSeenUnixMs() >= cur.GetLastSeenUnixMs()
}

// changes reports whether p is newer than cur and says something else
// (a repeat, as around a core leadership change, is not passed on).
func changes(cur, p *syncpb.PresenceUpdate) bool {
	return newer(cur, p) && (cur == nil || cur.Online != p.Online || cur.LastSeenUnixMs != p.LastSeenUnixMs)
}

// watcher is one session's watched set.
type watcher struct {
	deliver func(*syncpb.PresenceUpdate)
	users   map[string]struct{} // guarded by watch.mu
	gone    bool                // dropped: set does nothing; guarded by watch.mu
}

// flushTimeout bounds the round trip that confirms new subscriptions.
const flushTimeout = 5 * time.Second

func newWatch(nc *nats.Conn, region string, queue int, log *slog.Logger) *watch {
	return &watch{nc: nc, region: region, log: log, ch: make(chan *nats.Msg, queue), users: map[string]*watched{}}
}

// set makes wr watch exactly the users of states (their state as the
// core answered), and returns once the NATS server has any new
// subscription. It returns the newest state known of each user (the
// core's answer, or a newer one this edge already had from another
// watcher's subscription), and the users whose subscription is new here:
// a change the core published between reading its answer and the server
// having the subscription reached nobody, so the caller looks those up
// again (Service.recheck).
func (w *watch) set(ctx context.Context, wr *watcher, states []*syncpb.PresenceUpdate) ([]*syncpb.PresenceUpdate, []string, error) {
	want := make(map[string]*syncpb.PresenceUpdate, len(states))
	for _, p := range states {
		want[p.UserId] = p
	}
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "the edge is shutting down")
	}
	if wr.gone {
		w.mu.Unlock()
		return states, nil, nil
	}
	for u := range wr.users {
		if _, ok := want[u]; !ok {
			w.unlinkLocked(wr, u)
		}
	}
	var fresh []string
	var err error
	for u, p := range want {
		if ws := w.users[u]; ws != nil && newer(ws.state, p) {
			ws.state = p
		}
		if _, ok := wr.users[u]; ok {
			continue
		}
		ws := w.users[u]
		if ws == nil {
			var sub *nats.Subscription
			sub, err = w.nc.ChanSubscribe(syncproto.PresenceUserSubject(w.region, u), w.ch)
			if err != nil {
				break
			}
			ws = &watched{sub: sub, watchers: map[*watcher]struct{}{}, state: p}
			w.users[u] = ws
			fresh = append(fresh, u)
		}
		ws.watchers[wr] = struct{}{}
		wr.users[u] = struct{}{}
	}
	out := make([]*syncpb.PresenceUpdate, 0, len(states))
	for _, p := range states {
		if ws := w.users[p.UserId]; ws != nil && ws.state != nil && newer(p, ws.state) {
			p = ws.state
		}
		out = append(out, p)
	}
	w.mu.Unlock()
	if err != nil {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "presence is unavailable, retry")
	}
	if len(fresh) > 0 {
		fctx, cancel := context.WithTimeout(ctx, flushTimeout)
		defer cancel()
		if err := w.nc.FlushWithContext(fctx); err != nil {
			return nil, nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "presence is unavailable, retry")
		}
	}
	return out, fresh, nil
}

// add makes wr also watch the users of states. It does not wait for the
// server to have new subscriptions (so it may run on a NATS callback).
func (w *watch) add(wr *watcher, states []*syncpb.PresenceUpdate) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed || wr.gone {
		return
	}
	for _, p := range states {
		ws := w.users[p.UserId]
		if ws == nil {
			sub, err := w.nc.ChanSubscribe(syncproto.PresenceUserSubject(w.region, p.UserId), w.ch)
			if err != nil {
				w.log.Debug("watch new member", "user", p.UserId, "err", err)
				continue
			}
			ws = &watched{sub: sub, watchers: map[*watcher]struct{}{}}
			w.users[p.UserId] = ws
		}
		if newer(ws.state, p) {
			ws.state = p
		}
		ws.watchers[wr] = struct{}{}
		wr.users[p.UserId] = struct{}{}
	}
}

// drop stops wr watching anyone.
func (w *watch) drop(wr *watcher) {
	w.mu.Lock()
	defer w.mu.Unlock()
	wr.gone = true
	for u := range wr.users {
		w.unlinkLocked(wr, u)
	}
}

func (w *watch) unlinkLocked(wr *watcher, u string) {
	delete(wr.users, u)
	ws := w.users[u]
	if ws == nil {
		return
	}
	delete(ws.watchers, wr)
	if len(ws.watchers) == 0 {
		_ = ws.sub.Unsubscribe()
		delete(w.users, u)
	}
}

// run hands each update to the watchers of its user until ctx ends.
func (w *watch) run(ctx context.Context) {
	var fns []func(*syncpb.PresenceUpdate)
	for {
		var m *nats.Msg
		select {
		case <-ctx.Done():
			return
		case m = <-w.ch:
		}
		d := &syncpb.Deliver{}
		if err := proto.Unmarshal(m.Data, d); err != nil {
			w.log.Warn("undecodable presence update", "subject", m.Subject, "err", err)
			continue
		}
		for _, p := range d.Presence {
			fns = w.update(p, fns[:0])
		}
	}
}

// update hands p to the watchers of its user if it changes what they were
// told: an update older than the known state (say, from a lookup) or a
// repeat is dropped. fns is scratch space, returned for reuse.
func (w *watch) update(p *syncpb.PresenceUpdate, fns []func(*syncpb.PresenceUpdate)) []func(*syncpb.PresenceUpdate) {
	w.mu.Lock()
	if ws := w.users[p.UserId]; ws != nil && changes(ws.state, p) {
		ws.state = p
		for wr := range ws.watchers {
			fns = append(fns, wr.deliver)
		}
	}
	w.mu.Unlock()
	for _, f := range fns {
		f(p)
	}
	return fns
}

// close unsubscribes everything; later sets fail.
func (w *watch) close() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = true
	for u, ws := range w.users {
		_ = ws.sub.Unsubscribe()
		delete(w.users, u)
	}
}

// states is the newest known state of each user wr watches.
func (w *watch) states(wr *watcher) []*syncpb.PresenceUpdate {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := make([]*syncpb.PresenceUpdate, 0, len(wr.users))
	for u := range wr.users {
		if ws := w.users[u]; ws != nil && ws.state != nil {
			out = append(out, ws.state)
		}
	}
	return out
}

// count is how many users are watched here.
func (w *watch) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.users)
}
