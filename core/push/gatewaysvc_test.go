package push

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"
)

// fakeGateway is an operator's push gateway on loopback: it takes
// Sygnal's notify JSON, and answers each push key's queued statuses (a
// status of 0 means "rejected": 200 with the key in rejected).
type fakeGateway struct {
	t   *testing.T
	srv *httptest.Server

	mu     sync.Mutex
	got    []Notification
	status map[string][]int
	errs   []error
}

func newFakeGateway(t *testing.T) *fakeGateway {
	t.Helper()
	g := &fakeGateway{t: t, status: map[string][]int{}}
	g.srv = httptest.NewServer(http.HandlerFunc(g.serve))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *fakeGateway) subscribe(id string) Target {
	return Target{Kind: KindGateway, Gateway: "gw", PushKey: "key-" + id, AppID: "chat.parley.test"}
}

func (g *fakeGateway) answer(id string, statuses ...int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.status["key-"+id] = append(g.status["key-"+id], statuses...)
}

func (g *fakeGateway) received() []Notification {
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.errs) > 0 {
		g.t.Fatalf("gateway: %v", g.errs)
	}
	return append([]Notification(nil), g.got...)
}

func (g *fakeGateway) serve(w http.ResponseWriter, r *http.Request) {
	var req sygnal
	err := json.NewDecoder(r.Body).Decode(&req)
	g.mu.Lock()
	defer g.mu.Unlock()
	n := req.Notification
	if err == nil && (r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || len(n.Devices) != 1) {
		err = fmt.Errorf("bad request %s %q, %d devices", r.Method, r.Header.Get("Content-Type"), len(n.Devices))
	}
	if err != nil {
		g.errs = append(g.errs, err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	d := n.Devices[0]
	if st := g.status[d.PushKey]; len(st) > 0 {
		g.status[d.PushKey] = st[1:]
		switch st[0] {
		case 0:
			_ = json.NewEncoder(w).Encode(map[string][]string{"rejected": {d.PushKey}})
			return
		case http.StatusOK:
		default:
			w.WriteHeader(st[0])
			return
		}
	}
	seq, _ := strconv.ParseUint(d.Data["seq"], 10, 64)
	body, _ := n.Content["body"].(string)
	typ := d.Data["type"]
	if (typ == TypeClear) != (n.EventID == "" && n.Prio == "low") {
		g.errs = append(g.errs, fmt.Errorf("type %s with event_id %q prio %s", typ, n.EventID, n.Prio))
	}
	g.got = append(g.got, Notification{ID: d.Data["push_id"], Type: typ, Workspace: d.Data["workspace_id"],
		Conv: n.RoomID, Seq: seq, MsgID: n.EventID, Count: n.Counts.Unread, Tag: d.Data["tag"],
		Title: n.RoomName, Sender: n.SenderDisplayName, Body: body})
	_ = json.NewEncoder(w).Encode(map[string][]string{"rejected": {}})
}
