package edge

// The harness of the hostile-connection tests (hostile_*_test.go): a real
// Edge on loopback with short connection timeouts, a core double on NATS,
// and the accounting that tells the edge's goroutines from the attacker's
// (both run in the test's process) and checks that the edge's goroutines
// and heap return to where they were once it has cut the connections.

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"golang.org/x/time/rate"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/auth"
	"github.com/parley-chat/parley/edge/httpapi"
	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/edge/quicport"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type hostileEdge struct {
	*Edge
	cfg  Config
	pub  *nats.Conn // the test's, for deliveries
	auth *auth.Auth
}

// newHostileEdge runs an Edge with a UDP port and the connection timeouts
// that mod sets, against a core double that answers every request.
func newHostileEdge(t *testing.T, mod func(*Config)) *hostileEdge {
	t.Helper()
	ns := natstest.Server(t)
	nc := natstest.Conn(t, ns)
	answerEverything(t, nc)
	cfg := Config{HTTPAddr: "127.0.0.1:0", QUIC: quicport.Config{Addr: "127.0.0.1:0"}, NATS: nc,
		Auth: auth.Config{Keys: []auth.Key{testKey}, Argon2: auth.Argon2Params{Memory: 64, Time: 1}},
		HTTP: httpapi.Config{UserRate: rate.Inf}, RequestTimeout: 2 * time.Second, ShutdownTimeout: time.Second}
	if mod != nil {
		mod(&cfg)
	}
	e, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runEdge(t, e)
	a, err := auth.New(cfg.Auth)
	if err != nil {
		t.Fatal(err)
	}
	return &hostileEdge{Edge: e, cfg: cfg, pub: natstest.Conn(t, ns), auth: a}
}

// token is an access token of user's device.
func (he *hostileEdge) token(t *testing.T, user, device string) string {
	t.Helper()
	tok, _, err := he.auth.Issue(auth.Access, auth.Identity{WorkspaceID: "w_1", UserID: user, DeviceID: device})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// deliver publishes n Deliver frames of about 900 KiB each to user's
// sessions: enough, after a few, to fill the buffers of a device that
// does not read.
func (he *hostileEdge) deliver(t *testing.T, user string, n int) {
	t.Helper()
	d := &syncpb.Deliver{}
	for i := range 14 {
		d.Messages = append(d.Messages, &syncpb.Message{ConvId: "c_flood", Seq: uint64(i + 1), MsgId: fmt.Sprintf("m_%d", i),
			SenderUserId: "u_0", Body: bytes.Repeat([]byte{'x'}, syncproto.MaxBodySize-1024)})
	}
	b, err := proto.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := he.pub.Publish(syncproto.UserSubject(he.rpc.Region(), user), b); err != nil {
			t.Fatal(err)
		}
	}
	if err := he.pub.Flush(); err != nil {
		t.Fatal(err)
	}
}

// answerEverything is a core double: a sync is answered with nothing new,
// a history request with an empty page, and every other request with an
// empty response.
func answerEverything(t *testing.T, nc *nats.Conn) {
	t.Helper()
	serveCore(t, nc, func(req *syncpb.CoreRequest) *syncpb.CoreResponse {
		resp := &syncpb.CoreResponse{}
		switch req.Op.(type) {
		case *syncpb.CoreRequest_RegionInfo:
			resp.Result = &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{Region: "local", ShardCount: 2}}
		case *syncpb.CoreRequest_Sync:
			resp.Result = &syncpb.CoreResponse_Sync{Sync: &syncpb.SyncResponse{}}
		case *syncpb.CoreRequest_History:
			resp.Result = &syncpb.CoreResponse_History{History: &syncpb.HistoryResponse{}}
		}
		return resp
	})
}

// hostile runs f with the pprof label side=hostile, which every goroutine
// f starts inherits (and theirs in turn): the client's goroutines, which
// edgeGoroutines leaves out.
func hostile(f func()) {
	pprof.Do(context.Background(), pprof.Labels("side", "hostile"), func(context.Context) { f() })
}

// edgeGoroutines counts the goroutines not labelled by hostile: the
// edge's, NATS's and the test's own.
func edgeGoroutines() int {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	sc := bufio.NewScanner(&b)
	n, group := 0, 0
	for sc.Scan() {
		line := sc.Text()
		if count, _, ok := strings.Cut(line, " @ "); ok {
			c, err := strconv.Atoi(count)
			if err == nil {
				n += c
				group = c
			}
			continue
		}
		if strings.HasPrefix(line, "# labels: ") && strings.Contains(line, `"side":"hostile"`) {
			n -= group
			group = 0
		}
	}
	return n
}

// heapBytes is the live heap after two collections (the second one
// empties the pools the first left to it).
func heapBytes() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// Slack over the baseline that still counts as returned: goroutines of
// timers and NATS's housekeeping that come and go, and heap that the
// runtime and the libraries keep after a burst (maps that do not shrink,
// such as quic-go's of connection IDs, and caches: 1 to 2 MiB after
// 1,000 connections). An edge that kept 4 KiB per connection fails.
const (
	goroutineSlack = 10
	heapSlack      = 4 << 20
)

// peakGoroutines bounds the goroutines of a test, the attacker's
// included.
const peakGoroutines = 20000

// leakCheck follows the edge's goroutines and heap through a test:
// baseline before the hostile connections, peak while they are held,
// and the wait for both to come back.
type leakCheck struct {
	t                  *testing.T
	open               int // connections held at the peak
	baseG, peakG, endG int
	baseH, peakH, endH uint64
}

// newLeakCheck waits for the edge's goroutines to settle and takes the
// baseline.
func newLeakCheck(t *testing.T) *leakCheck {
	t.Helper()
	l := &leakCheck{t: t}
	// The runtime keeps the record of every goroutine it has made, for
	// reuse (some 400 bytes each): make as many as the test will have at
	// once, so that their records are in the baseline.
	release := make(chan struct{})
	var started sync.WaitGroup
	for range peakGoroutines {
		started.Add(1)
		go func() {
			started.Done()
			<-release
		}()
	}
	started.Wait()
	close(release)
	l.baseG, l.baseH = settled(edgeGoroutines, 5), heapBytes()
	return l
}

// settled samples count every 20 ms until it returns the same number
// samples times in a row, or 10 s pass, and returns the last sample. It
// does not fail: a count that never settles gives the last one.
func settled(count func() int, samples int) int {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	give := time.After(10 * time.Second)
	last, stable := -1, 0
	for stable < samples {
		n := count()
		if n == last {
			stable++
		} else {
			last, stable = n, 0
		}
		select {
		case <-tick.C:
		case <-give:
			return last
		}
	}
	return last
}

// held records the edge's goroutines and heap while open of the
// connections (as the client sees them) are still held, and checks that
// the edge shows them: each costs it a goroutine at least. (How many are
// still held once all are open depends on how fast the machine opened
// them against the timeouts.)
func (l *leakCheck) held(open int) {
	l.t.Helper()
	l.open = open
	l.peakG, l.peakH = edgeGoroutines(), heapBytes()
	if l.peakG < l.baseG+open/2 {
		l.t.Errorf("%d hostile connections held: edge goroutines %d, baseline %d: the test does not hold what it says", open, l.peakG, l.baseG)
	}
}

// waitGoroutines waits until the edge's goroutines are back at the
// baseline (while the client still holds its ends).
func (l *leakCheck) waitGoroutines(d time.Duration) {
	l.t.Helper()
	if !backWithin(d, func() bool { l.endG = edgeGoroutines(); return l.endG <= l.baseG+goroutineSlack }) {
		l.t.Fatalf("edge goroutines %d after %v, baseline %d (peak %d)\n%s", l.endG, d, l.baseG, l.peakG, edgeStacks())
	}
}

// waitHeap waits until the heap is back at the baseline.
func (l *leakCheck) waitHeap(d time.Duration) {
	l.t.Helper()
	if !backWithin(d, func() bool { l.endH = heapBytes(); return l.endH <= l.baseH+heapSlack }) {
		l.t.Fatalf("heap %d KiB after %v, baseline %d KiB (peak %d KiB)", l.endH>>10, d, l.baseH>>10, l.peakH>>10)
	}
}

// backWithin polls back (poll.Wait) until it is true, for up to d, and
// reports whether it was: the leak checks fail with their own message.
func backWithin(d time.Duration, back func() bool) bool {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	return poll.Wait(ctx, func(context.Context) error {
		if !back() {
			return errNotBack
		}
		return nil
	}) == nil
}

var errNotBack = errors.New("not back at the baseline")

func (l *leakCheck) report(what string) {
	l.t.Logf("%s (%d held at once): edge goroutines %d before, %d held, %d after; heap %.1f MiB before, %.1f MiB held, %.1f MiB after",
		what, l.open, l.baseG, l.peakG, l.endG, mib(l.baseH), mib(l.peakH), mib(l.endH))
}

func mib(b uint64) float64 { return float64(b) / (1 << 20) }

// edgeStacks lists the stacks of the edge's goroutines, for a failure.
func edgeStacks() string {
	var b bytes.Buffer
	_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
	var out strings.Builder
	for _, group := range strings.Split(b.String(), "\n\n") {
		if !strings.Contains(group, `"side":"hostile"`) {
			out.WriteString(group)
			out.WriteString("\n\n")
		}
	}
	return out.String()
}

// openHostile opens n connections of one kind with open, at most par at
// once and each within 10 s, from the attacker's side (hostile). It
// passes keep every connection open returned, also one whose open failed
// after dialing (so that the test closes it), and then fails t, naming
// the kind, if any open failed.
func openHostile[C comparable](t *testing.T, kind string, n, par int, open func(ctx context.Context, i int) (C, error), keep func(C)) {
	t.Helper()
	cs := make([]C, n)
	var err error
	hostile(func() {
		err = parallel(n, par, func(i int) error {
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			c, err := open(ctx, i)
			cs[i] = c
			return err
		})
	})
	var none C
	for _, c := range cs {
		if c != none {
			keep(c)
		}
	}
	if err != nil {
		t.Fatalf("%s: %v", kind, err)
	}
}

// count is how many of xs f is true of.
func count[T any](xs []T, f func(T) bool) int {
	n := 0
	for _, x := range xs {
		if f(x) {
			n++
		}
	}
	return n
}

// openWriting opens a stream with open and writes b on it: the first
// byte or bytes of something, so that the edge sees the stream and waits
// for the rest.
func openWriting[S io.Writer](ctx context.Context, open func(context.Context) (S, error), b []byte) (S, error) {
	s, err := open(ctx)
	if err != nil {
		return s, err
	}
	_, err = s.Write(b)
	return s, err
}

// parallel runs f(0..n-1) on a few goroutines and returns the first error.
func parallel(n, workers int, f func(i int) error) error {
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		first error
		next  int
	)
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				mu.Lock()
				i := next
				next++
				stop := first != nil
				mu.Unlock()
				if i >= n || stop {
					return
				}
				if err := f(i); err != nil {
					mu.Lock()
					if first == nil {
						first = fmt.Errorf("connection %d: %w", i, err)
					}
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	return first
}

// trickler writes to many connections from one goroutine (labelled
// hostile): every tick, the next chunk of each one's script, until the
// script ends or a write fails because the edge closed the connection.
type trickler struct {
	mu    sync.Mutex
	conns []*trickle
	stop  chan struct{}
	done  chan struct{}
}

type trickle struct {
	w    deadlineWriter
	next func() []byte // nil when the script is over
}

type deadlineWriter interface {
	Write(b []byte) (int, error)
	SetWriteDeadline(t time.Time) error
}

const trickleTick = 100 * time.Millisecond

func newTrickler(t *testing.T) *trickler {
	tr := &trickler{stop: make(chan struct{}), done: make(chan struct{})}
	hostile(func() { go tr.run() })
	t.Cleanup(tr.close)
	return tr
}

// add trickles next's chunks to w.
func (tr *trickler) add(w deadlineWriter, next func() []byte) {
	tr.mu.Lock()
	tr.conns = append(tr.conns, &trickle{w: w, next: next})
	tr.mu.Unlock()
}

func (tr *trickler) run() {
	defer close(tr.done)
	tk := time.NewTicker(trickleTick)
	defer tk.Stop()
	for {
		select {
		case <-tr.stop:
			return
		case <-tk.C:
		}
		tr.mu.Lock()
		conns := tr.conns
		tr.mu.Unlock()
		for _, c := range conns {
			if c.next == nil {
				continue
			}
			b := c.next()
			if b == nil {
				c.next = nil
				continue
			}
			_ = c.w.SetWriteDeadline(time.Now().Add(trickleTick / 2))
			if _, err := c.w.Write(b); err != nil {
				c.next = nil
			}
		}
	}
}

// active is the number of connections still being written to.
func (tr *trickler) active() int {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	n := 0
	for _, c := range tr.conns {
		if c.next != nil {
			n++
		}
	}
	return n
}

// close stops the trickler and lets go of its connections.
func (tr *trickler) close() {
	select {
	case <-tr.stop:
	default:
		close(tr.stop)
	}
	<-tr.done
	tr.mu.Lock()
	tr.conns = nil
	tr.mu.Unlock()
}

// oneByte is a script that sends b one byte per tick.
func oneByte(b []byte) func() []byte {
	i := 0
	return func() []byte {
		if i >= len(b) {
			return nil
		}
		i++
		return b[i-1 : i]
	}
}

// forever is a script that sends b every tick.
func forever(b []byte) func() []byte { return func() []byte { return b } }

// tcpOpen reports whether the edge has not closed c yet: no end of stream
// waits to be read (data may, which it leaves).
func tcpOpen(c net.Conn) bool {
	sc, err := c.(syscall.Conn).SyscallConn()
	if err != nil {
		return false
	}
	open := false
	_ = sc.Read(func(fd uintptr) bool {
		var b [1]byte
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		open = n > 0 || err == syscall.EAGAIN
		return true
	})
	return open
}
