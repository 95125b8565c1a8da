package core_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/core"
	"github.com/parley-chat/parley/core/push"
	"github.com/parley-chat/parley/core/push/pushtest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// gatewayLog is an operator's push gateway on loopback: it records the
// Sygnal-shaped notifications it is sent.
type gatewayLog struct {
	mu  sync.Mutex
	got []map[string]any
}

func (g *gatewayLog) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Notification map[string]any `json:"notification"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	g.mu.Lock()
	g.got = append(g.got, body.Notification)
	g.mu.Unlock()
	_ = json.NewEncoder(w).Encode(map[string][]string{"rejected": {}})
}

func (g *gatewayLog) pushes() []map[string]any {
	g.mu.Lock()
	defer g.mu.Unlock()
	return append([]map[string]any(nil), g.got...)
}

func pushType(n map[string]any) string {
	devs, _ := n["devices"].([]any)
	if len(devs) != 1 {
		return ""
	}
	d, _ := devs[0].(map[string]any)
	data, _ := d["data"].(map[string]any)
	s, _ := data["type"].(string)
	return s
}

// In a 3-node region: a device with a live session on an edge is not
// pushed, whichever node leads the conversation's shard (every node holds
// the presence table); once it is gone it gets exactly one push (from the
// leader alone); a read on another device of its user sends it a clear;
// a muted conversation pushes nothing.
func TestRegionPush(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node region; skipped with -short")
	}
	gw := &gatewayLog{}
	srv := httptest.NewServer(gw)
	defer srv.Close()
	const grace = 300 * time.Millisecond
	vapid, err := push.GenerateVAPID()
	if err != nil {
		t.Fatal(err)
	}
	wp := pushtest.New(t, vapid.Public)
	r := newTestRegionWith(t, 3, testTiming, func(c *core.Config) {
		c.Push = &core.PushConfig{Gateways: map[string]push.Gateway{"gw": {URL: srv.URL}}, Grace: grace,
			VAPID: vapid, Subscriber: "mailto:ops@parley.test", AllowLoopback: true}
	})
	us := r.Users("ana", "bo", "cy")
	ana, bo, cy := us[0], us[1], us[2]
	conv := r.CreateGroup(ana, us)
	api := syncproto.APISubject(syncproto.DefaultRegion)
	laptop := &syncpb.Caller{WorkspaceId: bo.WorkspaceId, UserId: bo.UserId}
	laptop.DeviceId = r.MustCall(api, &syncpb.CoreRequest{Caller: &syncpb.Caller{WorkspaceId: bo.WorkspaceId, UserId: bo.UserId},
		Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: "laptop"}}}).GetDevice().GetId()

	// bo's phone registers a gateway target; an unknown gateway and a
	// private Web Push endpoint are refused.
	target := func(t *syncpb.PushTarget) *syncpb.CoreRequest {
		return &syncpb.CoreRequest{Caller: bo, Op: &syncpb.CoreRequest_SetPushTarget{SetPushTarget: &syncpb.SetPushTargetRequest{DeviceId: bo.DeviceId, Target: t}}}
	}
	gwTarget := func(name string) *syncpb.PushTarget {
		return &syncpb.PushTarget{Target: &syncpb.PushTarget_Gateway{Gateway: &syncpb.GatewayTarget{Gateway: name, PushKey: "bo-phone-key", AppId: "chat.parley"}}}
	}
	r.MustCall(api, target(gwTarget("gw")))
	// cy's phone (offline throughout) subscribes to Web Push.
	sub := wp.Subscribe("cy")
	r.MustCall(api, &syncpb.CoreRequest{Caller: cy, Op: &syncpb.CoreRequest_SetPushTarget{SetPushTarget: &syncpb.SetPushTargetRequest{
		DeviceId: cy.DeviceId, Target: &syncpb.PushTarget{Target: &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{
			Endpoint: sub.Endpoint, P256Dh: sub.P256dh, Auth: sub.Auth}}}}}})
	for _, bad := range []*syncpb.PushTarget{gwTarget("evil"), {Target: &syncpb.PushTarget_WebPush{WebPush: &syncpb.WebPushSubscription{
		Endpoint: "https://10.0.0.1/push", P256Dh: "k", Auth: "a"}}}} {
		resp, _ := r.Call(t.Context(), api, target(bad))
		if resp.GetError().GetCode() != syncpb.Code_CODE_INVALID_ARGUMENT {
			t.Fatalf("bad target %v: %v", bad, resp.GetError())
		}
	}

	// A shard leader reads targets from its own directory replica: wait
	// until every replica has applied the registrations (one committed on
	// a quorum may reach the third node a moment later).
	applied := r.Node(r.LeaderOf("dir")).Group("dir").Raft().AppliedIndex()
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "registrations on every replica", func() bool { return n.Group("dir").Raft().AppliedIndex() >= applied })
	}

	// An edge reports bo's phone connected; every node must hold it.
	pd := &syncpb.PresenceDevice{WorkspaceId: bo.WorkspaceId, UserId: bo.UserId, DeviceId: bo.DeviceId}
	seq := uint64(0)
	snapshot := func(devs ...*syncpb.PresenceDevice) {
		seq++
		r.publishBatch(&syncpb.PresenceBatch{EdgeId: "edge-a", Epoch: 1, Seq: seq, Reset_: true, Snapshot: true, SnapshotDone: true,
			LeaseMs: 60_000, Connected: devs})
	}
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "every node sees bo's phone", func() bool {
			if u, _ := n.PresenceOnline(); u == 1 {
				return true
			}
			snapshot(pd)
			return false
		})
	}
	leader := r.LeaderOf(r.Live()[0].ShardGroupOf(conv))
	t.Logf("shard %s led by %s", r.Live()[0].ShardGroupOf(conv), r.Config(leader).NodeID)

	r.send(ana, conv, "while bo is online")
	time.Sleep(3 * grace) // past the grace: a push now would be a bug
	if got := gw.pushes(); len(got) != 0 {
		t.Fatalf("online device pushed: %v", got)
	}
	// cy's phone got it by Web Push (VAPID checked, payload decrypted).
	poll.Until(t, 20*time.Second, "cy's phone pushed", func() bool { return len(wp.Received()) >= 1 })
	var n push.Notification
	if got := wp.Received(); len(got) != 1 {
		t.Fatalf("web pushes %d", len(got))
	} else if err := json.Unmarshal(got[0].Payload, &n); err != nil || n.Body != "while bo is online" || n.Title != "t" || n.Sender != "ana" || n.Count != 1 {
		t.Fatalf("web push %s: %v", got[0].Payload, err)
	}
	// Its push service now says the subscription is gone: it is removed.
	wp.Answer("cy", http.StatusGone)

	// The phone goes away: the next message is pushed once.
	for _, n := range r.Live() {
		poll.Until(t, 20*time.Second, "every node sees bo offline", func() bool {
			if u, _ := n.PresenceOnline(); u == 0 {
				return true
			}
			snapshot()
			return false
		})
	}
	ack := r.send(ana, conv, "bo is away")
	poll.Until(t, 20*time.Second, "bo's phone pushed", func() bool { return len(gw.pushes()) >= 1 })
	time.Sleep(3 * grace)
	got := gw.pushes()
	if len(got) != 1 || pushType(got[0]) != push.TypeMessage || got[0]["room_id"] != conv || got[0]["event_id"] != ack.MsgId {
		t.Fatalf("pushes %v", got)
	}
	if c, _ := got[0]["content"].(map[string]any); c["body"] != "bo is away" {
		t.Fatalf("push content %v", got[0])
	}

	// bo reads on the laptop: the phone gets a clear.
	r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: laptop, Op: &syncpb.CoreRequest_Receipt{Receipt: &syncpb.ReceiptReport{
		ConvId: conv, Seq: ack.Seq, Type: syncpb.ReceiptType_RECEIPT_TYPE_READ}}})
	poll.Until(t, 20*time.Second, "bo's phone cleared", func() bool { return len(gw.pushes()) >= 2 })
	if got := gw.pushes(); pushType(got[1]) != push.TypeClear {
		t.Fatalf("pushes %v", got)
	}

	// bo mutes the conversation: nothing more is pushed.
	r.MustCall(r.ShardSubject(conv), &syncpb.CoreRequest{Caller: bo, Op: &syncpb.CoreRequest_SetNotifyLevel{SetNotifyLevel: &syncpb.SetNotifyLevelRequest{
		ConvId: conv, Level: syncpb.NotifyLevel_NOTIFY_LEVEL_NONE}}})
	r.send(ana, conv, "muted")
	time.Sleep(3 * grace)
	if got := gw.pushes(); len(got) != 2 {
		t.Fatalf("muted conversation pushed: %v", got)
	}
	// cy's subscription answered 410 once and was removed: no more pushes.
	if got := wp.Received(); len(got) != 1 {
		t.Fatalf("web pushes after 410: %d", len(got))
	}
}
