// Package agent is one client device in the testnet: it logs in over the
// HTTP API, keeps a session over raw QUIC, WebTransport or WebSocket with
// the Go SDK (failing over across edges), sends at a steady pace, reports
// read receipts, and records everything it sent, had acknowledged and
// received, and every presence state it was shown, as checker events. The harness runs it as a process inside a
// client host's namespace and drives it with one-line commands.
package agent

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/streamframe"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/testnet/checker"
)

// Config configures a device.
type Config struct {
	Name                      string // device name in the record
	Workspace, User, Password string
	HTTP                      []string // edges' HTTP base URLs, in failover order
	UDP                       []string // edges' UDP host:port (quic, wt), same order
	Transport                 string   // quic, wt or ws
	Convs                     []string
	SendEvery                 time.Duration // 0: this device only receives
	ReadEvery                 time.Duration // report read receipts this often (0: never during the run)
	Events                    io.Writer
	Logger                    *slog.Logger
}

// Validate checks the config.
func (c *Config) Validate() error {
	switch {
	case c.Name == "" || c.Workspace == "" || c.User == "" || c.Password == "":
		return errors.New("agent: Config needs Name, Workspace, User and Password")
	case len(c.HTTP) == 0:
		return errors.New("agent: Config.HTTP is empty")
	case c.Transport != "ws" && len(c.UDP) != len(c.HTTP):
		return fmt.Errorf("agent: Config.UDP has %d edges, HTTP %d", len(c.UDP), len(c.HTTP))
	case c.Transport != "quic" && c.Transport != "wt" && c.Transport != "ws":
		return fmt.Errorf("agent: Config.Transport %q: want quic, wt or ws", c.Transport)
	case c.Events == nil:
		return errors.New("agent: Config.Events is nil")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Agent is a running device.
type Agent struct {
	cfg  Config
	log  *slog.Logger
	rc   *rest.Client
	c    *client.Client
	user string

	emu sync.Mutex
	ew  *checker.Writer

	smu     sync.Mutex
	sending bool
	acked   map[string]uint64 // conv -> highest seq of this device's acks
}

// Run logs in, connects, and obeys commands until "quit" or ctx ends:
//
//	send on|off        start or stop sending
//	migrate            move a raw QUIC connection to a new UDP socket
//	drain              stop sending and wait for answers; says "drained conv=seq,..."
//	finish conv=seq,.. wait until every conv is delivered up to seq, read it,
//	                   and wait for every member's read position to get there
//	quit               end
//
// status gets one line per state change ("ready user=<id> t=<unix ns of
// the start of the session's dial>", "migrated ...",
// "drained ...", "finished").
func Run(ctx context.Context, cfg Config, cmds <-chan string, status func(string)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	a := &Agent{cfg: cfg, log: cfg.Logger, ew: checker.NewWriter(cfg.Events), acked: map[string]uint64{}}
	defer a.flush()
	if err := a.login(ctx); err != nil {
		return err
	}
	dial, err := a.dialer(ctx)
	if err != nil {
		return err
	}
	// The edge shows the user online when it accepts the session, before
	// Dial returns (after the Welcome and the catch-up): a watcher may see
	// it from the moment the dial starts.
	dialed := time.Now()
	a.c, err = client.Dial(ctx, client.Config{
		Dial: dial,
		Token: func(ctx context.Context) (string, error) {
			acc, _ := a.rc.Tokens()
			return acc, nil
		},
		ClientName:      "testnet",
		OnMessage:       a.onMessage,
		ReportDelivered: true,
		OnAck: func(req *syncpb.SendRequest, ack *syncpb.SendAck, err error) {
			if err == nil && ack != nil {
				a.record(checker.Event{Kind: checker.KindAck, Conv: req.ConvId, ID: req.ClientMsgId, Seq: ack.Seq})
				a.noteAck(req.ConvId, ack.Seq)
			}
		},
		OnPresence: func(u *syncpb.PresenceUpdate) {
			a.record(checker.Event{Kind: checker.KindPresence, User: u.UserId, Up: u.Online, LastSeen: u.LastSeenUnixMs})
		},
		MinBackoff: 100 * time.Millisecond, MaxBackoff: 2 * time.Second,
		Logger: a.log,
	})
	if err != nil {
		return fmt.Errorf("agent %s: dial: %w", cfg.Name, err)
	}
	defer a.c.Close()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	wg.Add(1)
	go func() { defer wg.Done(); a.watchConn(ctx) }()
	sendCtx, stopSend := context.WithCancel(ctx)
	var swg sync.WaitGroup
	startSenders := func() {
		sendCtx, stopSend = context.WithCancel(ctx)
		for _, conv := range cfg.Convs {
			swg.Add(1)
			go func() { defer swg.Done(); a.sendLoop(sendCtx, conv) }()
		}
	}
	if cfg.ReadEvery > 0 {
		wg.Add(1)
		go func() { defer wg.Done(); a.readLoop(ctx) }()
	}
	// The session is up; a watcher may have seen this device's user
	// online from the start of the dial.
	status(fmt.Sprintf("ready user=%s t=%d", a.user, dialed.UnixNano()))
	for {
		var cmd string
		select {
		case <-ctx.Done():
			stopSend()
			swg.Wait()
			return ctx.Err()
		case c, ok := <-cmds:
			if !ok {
				c = "quit"
			}
			cmd = c
		}
		verb, arg, _ := strings.Cut(strings.TrimSpace(cmd), " ")
		switch verb {
		case "send":
			if arg == "on" && cfg.SendEvery > 0 {
				a.smu.Lock()
				on := a.sending
				a.sending = true
				a.smu.Unlock()
				if !on {
					startSenders()
				}
			} else if arg == "off" {
				a.stopSending(stopSend, &swg)
			}
		case "migrate":
			start := time.Now()
			mctx, mcancel := context.WithTimeout(ctx, 10*time.Second)
			err := a.c.Migrate(mctx)
			mcancel()
			status(fmt.Sprintf("migrated err=%v took=%s local=%v", err, time.Since(start).Round(time.Millisecond), a.c.LocalAddr()))
		case "drain":
			a.stopSending(stopSend, &swg)
			a.smu.Lock()
			marks := maps.Clone(a.acked)
			a.smu.Unlock()
			status("drained " + formatMarks(marks))
		case "finish":
			marks, err := parseMarks(arg)
			if err != nil {
				status("error " + err.Error())
				continue
			}
			a.finish(ctx, marks)
			a.flush()
			status("finished")
		case "quit":
			a.stopSending(stopSend, &swg)
			return nil
		default:
			status("error unknown command " + verb)
		}
	}
}

func (a *Agent) stopSending(stop context.CancelFunc, wg *sync.WaitGroup) {
	a.smu.Lock()
	a.sending = false
	a.smu.Unlock()
	// Senders finish the message in hand (its retries included) first;
	// after a minute it is left to the outbox and counted as unacked.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		stop()
		<-done
	}
	stop()
}

func (a *Agent) record(e checker.Event) {
	e.Device = a.cfg.Name
	if e.T == 0 {
		e.T = time.Now().UnixNano()
	}
	a.emu.Lock()
	defer a.emu.Unlock()
	if err := a.ew.Write(e); err != nil {
		a.log.Error("agent: record", "err", err)
	}
}

func (a *Agent) flush() {
	a.emu.Lock()
	defer a.emu.Unlock()
	_ = a.ew.Flush()
}

func (a *Agent) noteAck(conv string, seq uint64) {
	a.smu.Lock()
	a.acked[conv] = max(a.acked[conv], seq)
	a.smu.Unlock()
}

func (a *Agent) onMessage(m *syncpb.Message) {
	a.record(checker.Event{Kind: checker.KindRecv, Conv: m.ConvId, Seq: m.Seq, ID: m.ClientMsgId,
		System: m.Kind == syncpb.MessageKind_MESSAGE_KIND_SYSTEM})
}

// login tries each edge in turn until one answers or ctx ends.
func (a *Agent) login(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		for _, base := range a.cfg.HTTP {
			rc := rest.New(base)
			lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			s, err := rc.Login(lctx, rest.LoginRequest{Workspace: a.cfg.Workspace, Username: a.cfg.User,
				Password: a.cfg.Password, DeviceName: a.cfg.Name})
			cancel()
			if err == nil {
				a.rc, a.user = rc, s.User.ID
				return nil
			}
			a.log.Warn("agent: login", "edge", base, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("agent %s: login: %w", a.cfg.Name, ctx.Err())
		case <-time.After(time.Duration(min(attempt+1, 10)) * 200 * time.Millisecond):
		}
	}
}

// dialer builds the failover dialer over every edge, pinning each edge's
// dev certificate.
func (a *Agent) dialer(ctx context.Context) (client.Dialer, error) {
	var ds []client.Dialer
	var pins [][32]byte
	if a.cfg.Transport != "ws" {
		for _, base := range a.cfg.HTTP {
			hs, err := certHashes(ctx, base)
			if err != nil {
				return nil, err
			}
			pins = append(pins, hs...)
		}
	}
	opts := client.QUICOptions{TLS: client.PinnedTLS(pins...), KeepAlive: 2 * time.Second, IdleTimeout: 15 * time.Second}
	for i, base := range a.cfg.HTTP {
		switch a.cfg.Transport {
		case "ws":
			ds = append(ds, client.WebSocket("ws"+strings.TrimPrefix(base, "http")+"/v1/ws"))
		case "quic":
			ds = append(ds, client.QUIC(a.cfg.UDP[i], opts))
		case "wt":
			ds = append(ds, client.WebTransport("https://"+a.cfg.UDP[i]+streamframe.WebTransportPath, opts))
		}
	}
	return client.Failover(ds...), nil
}

func certHashes(ctx context.Context, base string) ([][32]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+syncproto.CertHashPath, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("agent: cert hashes of %s: %w", base, err)
	}
	defer resp.Body.Close()
	var list struct {
		Hashes []struct{ Value string } `json:"hashes"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&list); err != nil {
		return nil, fmt.Errorf("agent: cert hashes of %s: %w", base, err)
	}
	var out [][32]byte
	for _, h := range list.Hashes {
		b, err := base64.StdEncoding.DecodeString(h.Value)
		if err != nil || len(b) != 32 {
			return nil, fmt.Errorf("agent: cert hash %q of %s", h.Value, base)
		}
		out = append(out, [32]byte(b))
	}
	return out, nil
}

// watchConn records each time the session goes up or down.
func (a *Agent) watchConn(ctx context.Context) {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	up, conns := a.c.Connected(), a.c.Connections()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		nowUp, nowConns := a.c.Connected(), a.c.Connections()
		if nowConns != conns && nowUp && up { // dropped and back between two looks
			a.record(checker.Event{Kind: checker.KindConn, Up: false})
			a.record(checker.Event{Kind: checker.KindConn, Up: true})
		} else if nowUp != up {
			a.record(checker.Event{Kind: checker.KindConn, Up: nowUp})
		}
		up, conns = nowUp, nowConns
	}
}

// sendLoop sends to conv every SendEvery, one message at a time (the next
// waits for the previous ack, as a person waits to see a message go).
func (a *Agent) sendLoop(ctx context.Context, conv string) {
	t := time.NewTicker(a.cfg.SendEvery)
	defer t.Stop()
	for n := 0; ; n++ {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.smu.Lock()
		on := a.sending
		a.smu.Unlock()
		if !on {
			return
		}
		id := client.NewClientMsgID()
		a.record(checker.Event{Kind: checker.KindSend, Conv: conv, ID: id})
		ack, err := a.c.Send(ctx, &syncpb.SendRequest{ConvId: conv, ClientMsgId: id,
			Body: []byte(fmt.Sprintf("%s #%d", a.cfg.Name, n))})
		if err != nil {
			a.record(checker.Event{Kind: checker.KindFail, Conv: conv, ID: id, Err: err.Error()})
			continue // an abandoned send may still be acked later (OnAck)
		}
		a.record(checker.Event{Kind: checker.KindAck, Conv: conv, ID: id, Seq: ack.Seq})
		a.noteAck(conv, ack.Seq)
	}
}

// readLoop reports this device has read what it holds, now and then.
func (a *Agent) readLoop(ctx context.Context) {
	t := time.NewTicker(a.cfg.ReadEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for conv, seq := range a.c.Watermarks() {
			if seq == 0 || seq <= a.c.ReadSeq(conv) {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			if err := a.c.Receipt(rctx, conv, seq, syncpb.ReceiptType_RECEIPT_TYPE_READ); err != nil {
				a.log.Debug("agent: read receipt", "conv", conv, "err", err)
			}
			cancel()
		}
	}
}

// finish waits until every conversation is held up to its mark, reports it
// read, and waits (up to a deadline) until the HTTP API shows every member
// at the mark; it records what it saw as final events.
func (a *Agent) finish(ctx context.Context, marks map[string]uint64) {
	deadline := time.Now().Add(90 * time.Second)
	for _, conv := range sortedConvs(marks) {
		for a.c.Watermarks()[conv] < marks[conv] && time.Now().Before(deadline) {
			select {
			case <-ctx.Done():
				return
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	for _, conv := range sortedConvs(marks) {
		start := time.Now()
		for attempt := 0; time.Now().Before(deadline); attempt++ {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			err := a.c.Receipt(rctx, conv, marks[conv], syncpb.ReceiptType_RECEIPT_TYPE_READ)
			cancel()
			if err == nil {
				break
			}
			a.log.Warn("agent: final read receipt", "conv", conv, "err", err)
			select { // a retry pace
			case <-ctx.Done():
			case <-time.After(200 * time.Millisecond):
			}
		}
		// Every member reports the same mark: wait until they all show.
		reads := map[string]uint64{}
		took := int64(-1)
		for time.Now().Before(deadline) && ctx.Err() == nil {
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			l, err := a.rc.Receipts(rctx, conv)
			cancel()
			if err == nil {
				all := true
				for _, m := range l.Members {
					reads[m.UserID] = m.ReadSeq
					all = all && m.ReadSeq >= marks[conv]
				}
				if all {
					took = int64(time.Since(start))
					break
				}
			}
			select {
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
		a.record(checker.Event{Kind: checker.KindFinal, Conv: conv, Reads: reads, ReadTook: took})
	}
}

func sortedConvs(m map[string]uint64) []string {
	out := slices.Collect(maps.Keys(m))
	sort.Strings(out)
	return out
}

func formatMarks(m map[string]uint64) string {
	var parts []string
	for _, c := range sortedConvs(m) {
		parts = append(parts, c+"="+strconv.FormatUint(m[c], 10))
	}
	return strings.Join(parts, ",")
}

func parseMarks(s string) (map[string]uint64, error) {
	out := map[string]uint64{}
	for _, p := range strings.Split(s, ",") {
		if p == "" {
			continue
		}
		c, n, ok := strings.Cut(p, "=")
		v, err := strconv.ParseUint(n, 10, 64)
		if !ok || err != nil {
			return nil, fmt.Errorf("agent: mark %q", p)
		}
		out[c] = v
	}
	return out, nil
}
