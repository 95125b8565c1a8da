package corerpc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/edge/internal/natstest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type handler func(subject string, req *syncpb.CoreRequest) *syncpb.CoreResponse

// respond answers requests on subject in the core queue group with h; a nil
// answer means no reply (a lost reply). It returns a request counter.
func respond(t testing.TB, nc *nats.Conn, subject string, h handler) *atomic.Int64 {
	t.Helper()
	n, _ := respondAs(t, nc, subject, "", h)
	return n
}

// respondAs is respond for a core node named node (the reply's
// syncproto.HeaderNode, when not empty); it also returns the subscription.
func respondAs(t testing.TB, nc *nats.Conn, subject, node string, h handler) (*atomic.Int64, *nats.Subscription) {
	t.Helper()
	var n atomic.Int64
	sub, err := nc.QueueSubscribe(subject, syncproto.CoreQueue, func(m *nats.Msg) {
		n.Add(1)
		req := &syncpb.CoreRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			t.Errorf("responder: bad request: %v", err)
			return
		}
		resp := h(m.Subject, req)
		if resp == nil {
			return
		}
		b, err := proto.Marshal(resp)
		if err != nil {
			t.Errorf("responder: %v", err)
			return
		}
		r := nats.NewMsg(m.Reply)
		if node != "" {
			r.Header.Set(syncproto.HeaderNode, node)
		}
		r.Data = b
		_ = m.RespondMsg(r)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return &n, sub
}

func errResp(code syncpb.Code, msg string) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: &syncpb.Error{Code: code, Message: msg}}
}

func okResp() *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Users{Users: &syncpb.UserList{}}}
}

// retryLog signals on its channel each time the client logs a retry, so a
// test can act after the first failed attempt without sleeping.
type retryLog struct{ ch chan struct{} }

func (retryLog) Enabled(context.Context, slog.Level) bool { return true }
func (h retryLog) Handle(_ context.Context, r slog.Record) error {
	if strings.Contains(r.Message, "retrying") {
		select {
		case h.ch <- struct{}{}:
		default:
		}
	}
	return nil
}
func (h retryLog) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h retryLog) WithGroup(string) slog.Handler      { return h }

type env struct {
	nc      *nats.Conn // the core side
	client  *Client
	retries chan struct{}
}

func newEnv(t *testing.T, cfg Config) *env {
	t.Helper()
	s := natstest.Server(t)
	e := &env{nc: natstest.Conn(t, s), retries: make(chan struct{}, 1)}
	cfg.Conn = natstest.Conn(t, s)
	if cfg.Logger == nil {
		cfg.Logger = slog.New(retryLog{e.retries})
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	e.client = c
	return e
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func wantCode(t *testing.T, err error, code syncpb.Code) {
	t.Helper()
	var se *syncproto.Error
	if !errors.As(err, &se) {
		t.Fatalf("error %v (%T) is not a *syncproto.Error", err, err)
	}
	if se.Code != code {
		t.Fatalf("error %v: code %v, want %v", err, se.Code, code)
	}
}

func TestRouting(t *testing.T) {
	const shards = 4
	e := newEnv(t, Config{ShardCount: shards, AttemptTimeout: time.Second})
	var mu sync.Mutex
	got := map[string]string{} // op -> subject
	var badDeadline atomic.Value
	respond(t, e.nc, "parley.local.>", func(subject string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		mu.Lock()
		got[opName(req)] = subject
		mu.Unlock()
		if d := time.UnixMilli(req.DeadlineUnixMs); time.Until(d) <= 0 || time.Until(d) > time.Second+time.Millisecond {
			badDeadline.Store(d)
		}
		if req.GetCaller().GetUserId() != "u_me" {
			badDeadline.Store("caller lost")
		}
		return okResp()
	})
	conv := syncproto.NewConversationID()
	shard := syncproto.ShardSubject(syncproto.DefaultRegion, syncproto.ShardOf(conv, shards))
	api := syncproto.APISubject(syncproto.DefaultRegion)
	for _, tc := range []struct {
		req  *syncpb.CoreRequest
		want string
	}{
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegionInfo{RegionInfo: &syncpb.RegionInfoRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterUser{RegisterUser: &syncpb.RegisterUserRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetDevice{GetDevice: &syncpb.GetDeviceRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RevokeDevice{RevokeDevice: &syncpb.RevokeDeviceRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_StartTokenFamily{StartTokenFamily: &syncpb.StartTokenFamilyRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RotateRefresh{RotateRefresh: &syncpb.RotateRefreshRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListConversations{ListConversations: &syncpb.ListConversationsRequest{}}}, api},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_CreateConversation{CreateConversation: &syncpb.CreateConversationRequest{ConvId: conv}}}, shard},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}}, shard},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_ChangeMembers{ChangeMembers: &syncpb.ChangeMembersRequest{ConvId: conv}}}, shard},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: conv}}}, shard},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_History{History: &syncpb.HistoryRequest{ConvId: conv}}}, shard},
		{&syncpb.CoreRequest{Op: &syncpb.CoreRequest_Receipt{Receipt: &syncpb.ReceiptReport{ConvId: conv}}}, shard},
	} {
		op := opName(tc.req)
		tc.req.Caller = &syncpb.Caller{UserId: "u_me"}
		if _, err := e.client.Call(ctxT(t, 5*time.Second), tc.req); err != nil {
			t.Fatalf("%s: %v", op, err)
		}
		if tc.req.DeadlineUnixMs != 0 {
			t.Fatalf("%s: Call modified the request", op)
		}
		mu.Lock()
		if got[op] != tc.want {
			t.Errorf("%s went to %q, want %q", op, got[op], tc.want)
		}
		mu.Unlock()
	}
	if v := badDeadline.Load(); v != nil {
		t.Fatalf("bad deadline_unix_ms or caller: %v", v)
	}
}

func TestLearnsShardCount(t *testing.T) {
	e := newEnv(t, Config{})
	conv := syncproto.NewConversationID()
	api := syncproto.APISubject(syncproto.DefaultRegion)
	sendSubject := syncproto.ShardSubject(syncproto.DefaultRegion, syncproto.ShardOf(conv, 8))
	sends := respond(t, e.nc, sendSubject, func(_ string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{ConvId: req.GetSend().GetConvId(), Seq: 1}}}
	})

	done := make(chan error, 1)
	go func() {
		_, err := e.client.Call(ctxT(t, 10*time.Second), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: conv}}})
		done <- err
	}()
	// No core answers region_info yet: the client retries until one does.
	select {
	case <-e.retries:
	case err := <-done:
		t.Fatalf("Call returned before any core answered region_info: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no retry logged")
	}
	respond(t, e.nc, api, func(_ string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{Region: "local", ShardCount: 8}}}
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := e.client.ShardCount(); got != 8 {
		t.Fatalf("ShardCount = %d, want 8", got)
	}
	if sends.Load() != 1 {
		t.Fatalf("send reached its shard %d times, want 1", sends.Load())
	}
}

func TestRegionInfoRejectsNonsense(t *testing.T) {
	e := newEnv(t, Config{})
	respond(t, e.nc, syncproto.APISubject("local"), func(string, *syncpb.CoreRequest) *syncpb.CoreResponse {
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: &syncpb.RegionInfo{ShardCount: 0}}}
	})
	_, err := e.client.RegionInfo(ctxT(t, 5*time.Second))
	wantCode(t, err, syncpb.Code_CODE_INTERNAL)
}

func TestRetries(t *testing.T) {
	regDevice := func() *syncpb.CoreRequest {
		return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: "x"}}}
	}
	lookup := func() *syncpb.CoreRequest {
		return &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{}}}
	}
	// fail answers the first n requests with code (CODE_OK: no reply), then OK.
	fail := func(n int64, code syncpb.Code) handler {
		var seen atomic.Int64
		return func(string, *syncpb.CoreRequest) *syncpb.CoreResponse {
			if seen.Add(1) <= n {
				if code == syncpb.Code_CODE_OK {
					return nil
				}
				return errResp(code, "test")
			}
			return okResp()
		}
	}
	for _, tc := range []struct {
		name     string
		req      func() *syncpb.CoreRequest
		h        handler
		wantErr  syncpb.Code // CODE_OK: success
		attempts int64
	}{
		{"unavailable is retried", lookup, fail(2, syncpb.Code_CODE_UNAVAILABLE), syncpb.Code_CODE_OK, 3},
		{"lost reply is retried", lookup, fail(1, syncpb.Code_CODE_OK), syncpb.Code_CODE_OK, 2},
		{"core error is final", lookup, fail(5, syncpb.Code_CODE_NOT_MEMBER), syncpb.Code_CODE_NOT_MEMBER, 1},
		{"rate limit is final", lookup, fail(5, syncpb.Code_CODE_RATE_LIMITED), syncpb.Code_CODE_RATE_LIMITED, 1},
		{"device not retried after lost reply", regDevice, fail(1, syncpb.Code_CODE_OK), syncpb.Code_CODE_UNAVAILABLE, 1},
		{"device not retried after unavailable", regDevice, fail(1, syncpb.Code_CODE_UNAVAILABLE), syncpb.Code_CODE_UNAVAILABLE, 1},
		{"device succeeds first time", regDevice, fail(0, syncpb.Code_CODE_OK), syncpb.Code_CODE_OK, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, Config{ShardCount: 1, AttemptTimeout: 100 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
			count := respond(t, e.nc, syncproto.APISubject("local"), tc.h)
			_, err := e.client.Call(ctxT(t, 5*time.Second), tc.req())
			if tc.wantErr == syncpb.Code_CODE_OK {
				if err != nil {
					t.Fatal(err)
				}
			} else {
				wantCode(t, err, tc.wantErr)
			}
			if got := count.Load(); got != tc.attempts {
				t.Fatalf("%d attempts, want %d", got, tc.attempts)
			}
		})
	}
}

func TestNoRespondersRetriedForEveryOp(t *testing.T) {
	// register_device is the op that is retried least; no responders means
	// the request reached no core, so even it is retried.
	e := newEnv(t, Config{ShardCount: 1, MaxBackoff: 20 * time.Millisecond})
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Call(ctxT(t, 10*time.Second),
			&syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{}}})
		done <- err
	}()
	select {
	case <-e.retries:
	case err := <-done:
		t.Fatalf("Call returned with no core: %v", err)
	}
	n := respond(t, e.nc, syncproto.APISubject("local"), func(string, *syncpb.CoreRequest) *syncpb.CoreResponse {
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: &syncpb.Device{Id: "d_1"}}}
	})
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if n.Load() != 1 {
		t.Fatalf("core saw %d registrations, want 1", n.Load())
	}
}

func TestRegisterUserRetriedAfterLostReply(t *testing.T) {
	// Like the core's directory: the same hash again is a retry and gets
	// the user; another hash for the name is CONFLICT.
	e := newEnv(t, Config{ShardCount: 1, AttemptTimeout: 100 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	var mu sync.Mutex
	stored := ""
	n := respond(t, e.nc, syncproto.APISubject("local"), func(_ string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
		mu.Lock()
		defer mu.Unlock()
		h := req.GetRegisterUser().GetPasswordHash()
		switch {
		case stored == "":
			stored = h
			return nil // committed, but the reply is lost
		case h == stored:
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_User{User: &syncpb.User{Id: "u_ana"}}}
		default:
			return errResp(syncpb.Code_CODE_CONFLICT, "username taken")
		}
	})
	reg := func(hash string) (*syncpb.CoreResponse, error) {
		return e.client.Call(ctxT(t, 5*time.Second), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_RegisterUser{RegisterUser: &syncpb.RegisterUserRequest{
			WorkspaceName: "acme", Username: "ana", PasswordHash: hash}}})
	}
	resp, err := reg("$argon2id$mine")
	if err != nil || resp.GetUser().GetId() != "u_ana" {
		t.Fatalf("register with a lost first reply: %v %v", resp, err)
	}
	if n.Load() != 2 {
		t.Fatalf("%d attempts, want 2", n.Load())
	}
	_, err = reg("$argon2id$someone-else")
	wantCode(t, err, syncpb.Code_CODE_CONFLICT)
	if n.Load() != 3 {
		t.Fatalf("CONFLICT was retried: %d attempts, want 3", n.Load())
	}
}

func TestDeadlines(t *testing.T) {
	e := newEnv(t, Config{ShardCount: 1, Timeout: 200 * time.Millisecond, AttemptTimeout: 50 * time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	respond(t, e.nc, syncproto.APISubject("local"), func(string, *syncpb.CoreRequest) *syncpb.CoreResponse { return nil })
	req := &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}}

	// No deadline on ctx: Config.Timeout still ends the call.
	start := time.Now()
	_, err := e.client.Call(context.Background(), req)
	wantCode(t, err, syncpb.Code_CODE_TIMEOUT)
	if el := time.Since(start); el < 200*time.Millisecond || el > 5*time.Second {
		t.Fatalf("call without a ctx deadline took %v, want about Config.Timeout", el)
	}

	// A cancelled caller gets UNAVAILABLE at once.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err = e.client.Call(ctx, req)
	wantCode(t, err, syncpb.Code_CODE_UNAVAILABLE)
}

func TestNoCoreAtAll(t *testing.T) {
	e := newEnv(t, Config{ShardCount: 1, MaxBackoff: 10 * time.Millisecond})
	_, err := e.client.Call(ctxT(t, 200*time.Millisecond), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}})
	wantCode(t, err, syncpb.Code_CODE_UNAVAILABLE)
}

func TestLocalRejections(t *testing.T) {
	e := newEnv(t, Config{ShardCount: 1})
	n := respond(t, e.nc, "parley.local.>", func(string, *syncpb.CoreRequest) *syncpb.CoreResponse { return okResp() })
	_, err := e.client.Call(ctxT(t, time.Second), &syncpb.CoreRequest{})
	wantCode(t, err, syncpb.Code_CODE_MALFORMED)
	_, err = e.client.Call(ctxT(t, time.Second), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: "Bad.Id"}}})
	wantCode(t, err, syncpb.Code_CODE_INVALID_ARGUMENT)
	if n.Load() != 0 {
		t.Fatal("an invalid request reached the core")
	}
}

func TestUnreadableResponse(t *testing.T) {
	e := newEnv(t, Config{ShardCount: 1})
	sub, err := e.nc.QueueSubscribe(syncproto.APISubject("local"), syncproto.CoreQueue, func(m *nats.Msg) { _ = m.Respond([]byte{0xff, 0xff, 0xff}) })
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if err := e.nc.Flush(); err != nil {
		t.Fatal(err)
	}
	_, err = e.client.Call(ctxT(t, 5*time.Second), &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListDevices{ListDevices: &syncpb.ListDevicesRequest{}}})
	wantCode(t, err, syncpb.Code_CODE_INTERNAL)
}

func TestConfigValidate(t *testing.T) {
	nc := &nats.Conn{}
	for _, tc := range []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"ok", Config{Conn: nc}, true},
		{"no conn", Config{}, false},
		{"bad region", Config{Conn: nc, Region: "Bad Region"}, false},
		{"too many shards", Config{Conn: nc, ShardCount: syncproto.MaxShardCount + 1}, false},
		{"negative timeout", Config{Conn: nc, Timeout: -1}, false},
		{"min above max backoff", Config{Conn: nc, MinBackoff: time.Second, MaxBackoff: time.Millisecond}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("%s: Validate() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

// BenchmarkCall is one send round trip through a real NATS server to an
// in-test responder.
func BenchmarkCall(b *testing.B) {
	s := natstest.Server(b)
	core := natstest.Conn(b, s)
	ack, _ := proto.Marshal(&syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{Seq: 1}}})
	sub, err := core.QueueSubscribe("parley.local.>", syncproto.CoreQueue, func(m *nats.Msg) { _ = m.Respond(ack) })
	if err != nil {
		b.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := core.Flush(); err != nil {
		b.Fatal(err)
	}
	c, err := New(Config{Conn: natstest.Conn(b, s), ShardCount: 16})
	if err != nil {
		b.Fatal(err)
	}
	req := &syncpb.CoreRequest{Caller: &syncpb.Caller{WorkspaceId: "w_1", UserId: "u_1", DeviceId: "d_1"},
		Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: syncproto.NewConversationID(), ClientMsgId: "m", Body: []byte("hello")}}}
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Call(context.Background(), req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCallLeaderHint is one send at a time from an edge connected to
// server a of a 3-server cluster to a responder (the leader) on server b:
// through the route between them, and straight to b with a leader hint.
// It reports the latency's p50 and p99.
func BenchmarkCallLeaderHint(b *testing.B) {
	servers := natstest.Cluster(b, "a", "b", "c")
	ack := &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: &syncpb.SendAck{Seq: 1}}}
	respondAs(b, natstest.Conn(b, servers[1]), "parley.local.>", "b",
		func(string, *syncpb.CoreRequest) *syncpb.CoreResponse { return ack })
	req := &syncpb.CoreRequest{Caller: &syncpb.Caller{WorkspaceId: "w_1", UserId: "u_1", DeviceId: "d_1"},
		Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: syncproto.NewConversationID(), ClientMsgId: "m", Body: []byte("hello")}}}
	for _, direct := range []bool{false, true} {
		name := "route"
		cfg := Config{Conn: natstest.Conn(b, servers[0]), ShardCount: 16}
		if direct {
			name = "direct"
			for _, s := range servers {
				cfg.Direct = append(cfg.Direct, natstest.Conn(b, s, nats.IgnoreDiscoveredServers()))
			}
		}
		b.Run(name, func(b *testing.B) {
			c, err := New(cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := c.Call(context.Background(), req); err != nil { // learns the hint
				b.Fatal(err)
			}
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				t0 := time.Now()
				if _, err := c.Call(context.Background(), req); err != nil {
					b.Fatal(err)
				}
				lat = append(lat, time.Since(t0))
			}
			b.StopTimer()
			slices.Sort(lat)
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// TestLeaderHints: with Direct connections, a shard's requests go to the
// server of the node that last answered for it, follow the leader when it
// moves, and fall back to Conn when that server's connection is down;
// API requests always go on Conn.
func TestLeaderHints(t *testing.T) {
	servers := natstest.Cluster(t, "a", "b", "c")
	main := natstest.Conn(t, servers[0])
	direct := map[string]*nats.Conn{} // the edge's
	cores := map[string]*nats.Conn{}  // the core nodes'
	var all []*nats.Conn
	for _, s := range servers {
		d := natstest.Conn(t, s, nats.IgnoreDiscoveredServers())
		direct[s.Name()] = d
		all = append(all, d)
		cores[s.Name()] = natstest.Conn(t, s)
	}
	c, err := New(Config{Conn: main, Direct: all, ShardCount: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	conv := syncproto.NewConversationID()
	shard := syncproto.ShardSubject(syncproto.DefaultRegion, 0)
	send := &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: conv}}}
	ok := func(string, *syncpb.CoreRequest) *syncpb.CoreResponse { return okResp() }
	outs := func() map[string]uint64 {
		m := map[string]uint64{"main": main.Stats().OutMsgs}
		for name, d := range direct {
			m[name] = d.Stats().OutMsgs
		}
		return m
	}
	// call makes one successful call and reports which connections sent
	// how many messages for it (retries while interest spreads included).
	call := func(req *syncpb.CoreRequest) map[string]uint64 {
		t.Helper()
		before := outs()
		if _, err := c.Call(ctxT(t, 10*time.Second), req); err != nil {
			t.Fatal(err)
		}
		d := map[string]uint64{}
		for k, v := range outs() {
			if v > before[k] {
				d[k] = v - before[k]
			}
		}
		return d
	}
	sole := func(got map[string]uint64, want string) {
		t.Helper()
		if len(got) != 1 || got[want] == 0 {
			t.Fatalf("sent on %v, want only on %s", got, want)
		}
	}

	_, subB := respondAs(t, cores["b"], shard, "b", ok)
	sole(call(send), "main") // no hint yet
	sole(call(send), "b")
	sole(call(send), "b")

	// The leader moves to c: the stale hint still reaches it through the
	// cluster, and its answer moves the hint.
	if err := subB.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	if err := cores["b"].Flush(); err != nil { // b's server has dropped it
		t.Fatal(err)
	}
	respondAs(t, cores["c"], shard, "c", ok)
	waitInterest(t, direct["b"], shard) // c's subscription known at b
	sole(call(send), "b")
	sole(call(send), "c")

	// c's connection down: back to Conn.
	direct["c"].Close()
	sole(call(send), "main")

	// Any node serves the API subject: no hint, whoever answered.
	respondAs(t, cores["b"], syncproto.APISubject(syncproto.DefaultRegion), "b", ok)
	users := &syncpb.CoreRequest{Op: &syncpb.CoreRequest_LookupUsers{LookupUsers: &syncpb.LookupUsersRequest{}}}
	sole(call(users), "main")
	sole(call(users), "main")
}

// waitInterest waits until a request on subject sent on nc finds a
// responder (subscriptions spread through a cluster asynchronously).
func waitInterest(t *testing.T, nc *nats.Conn, subject string) {
	t.Helper()
	poll.NoError(t, 10*time.Second, "a responder for "+subject, func() error {
		if _, err := nc.Request(subject, nil, time.Second); err != nil {
			return fmt.Errorf("through %s: %w", nc.ConnectedServerName(), err)
		}
		return nil
	})
}

// TestLeaderHintDroppedOnFailure: when the hinted server has nobody to
// answer (a node cut off from the cluster), the retry goes on Conn.
func TestLeaderHintDroppedOnFailure(t *testing.T) {
	servers := natstest.Cluster(t, "a", "b")
	// b's direct connection goes to a server outside the cluster, as a
	// partitioned node's would: requests there find no responders.
	lone := natstest.Server(t)
	main := natstest.Conn(t, servers[0])
	dB := natstest.Conn(t, lone, nats.IgnoreDiscoveredServers())
	core := natstest.Conn(t, servers[1])
	shard := syncproto.ShardSubject(syncproto.DefaultRegion, 0)
	// The lone server is unnamed; answer as the name it was given.
	n, _ := respondAs(t, core, shard, dB.ConnectedServerName(), func(string, *syncpb.CoreRequest) *syncpb.CoreResponse { return okResp() })
	c, err := New(Config{Conn: main, Direct: []*nats.Conn{dB}, ShardCount: 1, MinBackoff: time.Millisecond, MaxBackoff: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	send := &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Send{Send: &syncpb.SendRequest{ConvId: syncproto.NewConversationID()}}}
	for i := 0; i < 3; i++ {
		if _, err := c.Call(ctxT(t, 10*time.Second), send); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	if got := n.Load(); got != 3 {
		t.Fatalf("core answered %d requests, want 3", got)
	}
	if got := dB.Stats().OutMsgs; got != 2 {
		t.Fatalf("%d requests went to the cut-off server, want 2 (one per call after the first, then the retry on Conn)", got)
	}
}

// opName is the name of req's operation ("send", "history"...).
func opName(req *syncpb.CoreRequest) string {
	r, _, err := syncproto.RequestOf(req)
	if err != nil {
		return "none"
	}
	return string(r.Name())
}
