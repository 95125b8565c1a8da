package e2e_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/client"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

// receiptLog collects a device's receipt updates.
type receiptLog struct {
	mu  sync.Mutex
	ups []*syncpb.ReceiptUpdate
}

func (l *receiptLog) add(u *syncpb.ReceiptUpdate) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ups = append(l.ups, u)
}

// has reports whether an update says user reached seq (of typ) in conv.
func (l *receiptLog) has(conv, user string, typ syncpb.ReceiptType, seq uint64) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, u := range l.ups {
		if u.ConvId == conv && u.UserId == user && u.Type == typ && u.Seq >= seq {
			return true
		}
	}
	return false
}

func (s *testSystem) receiptDevice(t testing.TB, transport string, rc *rest.Client, sess *rest.Session, log *receiptLog, mods ...func(*client.Config)) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cfg := client.Config{
		Dial:       s.Dialer(transport),
		Token:      func(context.Context) (string, error) { a, _ := rc.Tokens(); return a, nil },
		DeviceID:   sess.Device.ID,
		OnReceipt:  log.add,
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 200 * time.Millisecond,
	}
	for _, m := range mods {
		m(&cfg)
	}
	c, err := client.Dial(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// Bo reads on the laptop: bo's phone and browser learn the new read
// position, ana (the sender) sees bo's read tick, bo's unread count drops
// everywhere, and a fourth device of bo added later starts with the right
// unread count, needing no other device online.
func TestReceiptsAcrossDevices(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	anaRC, anaS := s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	anaLog := &receiptLog{}
	ana := s.receiptDevice(t, "ws", anaRC, anaS, anaLog)
	logs := map[string]*receiptLog{"laptop": {}, "phone": {}, "browser": {}}
	bo := map[string]*client.Client{"laptop": s.receiptDevice(t, "ws", boRC, boS, logs["laptop"])}
	phoneRC, phoneS := s.Login(t, "acme", "bo", "bo-phone")
	bo["phone"] = s.receiptDevice(t, "quic", phoneRC, phoneS, logs["phone"], func(c *client.Config) { c.ReportDelivered = true })
	webRC, webS := s.Login(t, "acme", "bo", "bo-browser")
	bo["browser"] = s.receiptDevice(t, "wt", webRC, webS, logs["browser"])

	g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "reads", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 10; i++ {
		if _, err := ana.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	for name, c := range bo {
		poll.Until(t, 20*time.Second, name+" sees 10 unread", func() bool { return c.Unread()[g.ID] == 10 })
	}
	read := syncpb.ReceiptType_RECEIPT_TYPE_READ
	if err := bo["laptop"].Receipt(ctx, g.ID, 7, read); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"phone", "browser"} {
		c, log := bo[name], logs[name]
		poll.Until(t, 20*time.Second, name+" hears of the laptop's read", func() bool { return log.has(g.ID, boS.User.ID, read, 7) })
		if got := c.ReadSeq(g.ID); got != 7 {
			t.Fatalf("%s read position %d, want 7", name, got)
		}
		if got := c.Unread()[g.ID]; got != 3 {
			t.Fatalf("%s unread %d, want 3", name, got)
		}
	}
	poll.Until(t, 20*time.Second, "ana sees bo's read tick", func() bool { return anaLog.has(g.ID, boS.User.ID, read, 7) })
	// The phone reports delivery by itself (ReportDelivered).
	poll.Until(t, 20*time.Second, "ana sees bo's delivered tick", func() bool {
		return anaLog.has(g.ID, boS.User.ID, syncpb.ReceiptType_RECEIPT_TYPE_DELIVERED, 10)
	})
	// A stale report from the phone changes nothing.
	if err := bo["phone"].Receipt(ctx, g.ID, 5, read); err != nil {
		t.Fatal(err)
	}
	if got := bo["phone"].ReadSeq(g.ID); got != 7 {
		t.Fatalf("a stale report moved the phone's read position to %d", got)
	}

	// A fourth device, added later, starts from the server's state.
	tabRC, tabS := s.Login(t, "acme", "bo", "bo-tablet")
	tab := s.receiptDevice(t, "ws", tabRC, tabS, &receiptLog{})
	poll.Until(t, 20*time.Second, "the tablet's unread count", func() bool { return tab.Unread()[g.ID] == 3 })
	if got := tab.ReadSeq(g.ID); got != 7 {
		t.Fatalf("tablet read position %d, want 7", got)
	}
	unread, err := tabRC.Unread(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if unread.Total != 3 || len(unread.Conversations) != 1 || unread.Conversations[0].Unread != 3 {
		t.Fatalf("GET /v1/unread: %+v", unread)
	}
	// The sender's own messages are read: ana has nothing unread.
	if u, err := anaRC.Unread(ctx); err != nil || u.Total != 0 {
		t.Fatalf("ana's unread: %+v, %v", u, err)
	}
	list, err := anaRC.Receipts(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	var boRead uint64
	for _, m := range list.Members {
		if m.UserID == boS.User.ID {
			boRead = m.ReadSeq
		}
	}
	if boRead != 7 || list.LastSeq != 10 {
		t.Fatalf("GET receipts: %+v", list)
	}
}

// Above the large-group size, a read reaches the reader's own devices as
// a position and the other members only as aggregate counts.
func TestReceiptsLargeGroupAggregates(t *testing.T) {
	s := startTestSystem(t, "", func(c *system.Config) { c.Core.LargeGroup = 2 })
	ctx := t.Context()
	names := []string{"ana", "bo", "cy", "dee"}
	var ids []string
	var rcs []*rest.Client
	logs := make([]*receiptLog, len(names))
	devs := make([]*client.Client, len(names))
	for i, n := range names {
		rc, sess := s.User(t, "acme", n)
		logs[i] = &receiptLog{}
		devs[i] = s.receiptDevice(t, "ws", rc, sess, logs[i])
		ids = append(ids, sess.User.ID)
		rcs = append(rcs, rc)
	}
	g, err := rcs[0].CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "big", MemberIDs: ids[1:]})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3; i++ {
		if _, err := devs[0].Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: []byte("hi")}); err != nil {
			t.Fatal(err)
		}
	}
	read := syncpb.ReceiptType_RECEIPT_TYPE_READ
	for _, i := range []int{1, 2} {
		if err := devs[i].Receipt(ctx, g.ID, 3, read); err != nil {
			t.Fatal(err)
		}
	}
	aggregate := func(l *receiptLog, count uint32) bool {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, u := range l.ups {
			if u.ConvId == g.ID && u.UserId == "" && u.Type == read && u.Seq == 3 && u.Count >= count {
				return true
			}
		}
		return false
	}
	poll.Until(t, 20*time.Second, "ana gets the aggregate read count", func() bool { return aggregate(logs[0], 2) })
	poll.Until(t, 20*time.Second, "bo hears of its own read", func() bool { return logs[1].has(g.ID, ids[1], read, 3) })
	for i, l := range logs {
		for _, other := range []int{1, 2} {
			if other != i && l.has(g.ID, ids[other], read, 1) {
				t.Fatalf("%s got %s's read position in a large group", names[i], names[other])
			}
		}
	}
	list, err := rcs[3].Receipts(ctx, g.ID)
	if err != nil {
		t.Fatal(err)
	}
	// ana, who sent the last message, has read it too.
	if list.ReadCount != 3 || list.DeliveredCount != 3 || list.MemberCount != 4 || len(list.Members) != 0 {
		t.Fatalf("large group receipts: %+v", list)
	}
}

// BenchmarkReceiptFanout: one device reports reads, another member's
// device waits for each update (over WebSocket, on parley serve): the time
// from the report to the other member seeing it, p50/p99.
func BenchmarkReceiptFanout(b *testing.B) {
	s := startTestSystem(b, "", func(c *system.Config) { c.Edge.Session.FrameRate, c.Edge.Session.FrameBurst = 100_000, 200_000 })
	ctx := b.Context()
	anaRC, anaS := s.User(b, "acme", "ana")
	boRC, boS := s.User(b, "acme", "bo")
	seen := make(chan uint64, 1024)
	ana := s.receiptDevice(b, "ws", anaRC, anaS, &receiptLog{})
	s.receiptDevice(b, "ws", boRC, boS, &receiptLog{}, func(c *client.Config) {
		c.OnReceipt = func(u *syncpb.ReceiptUpdate) {
			if u.UserId == anaS.User.ID && u.Type == syncpb.ReceiptType_RECEIPT_TYPE_READ {
				seen <- u.Seq
			}
		}
	})
	const msgs = 500
	var conv string
	var lat []time.Duration
	seq := uint64(msgs)
	for b.Loop() {
		if seq == msgs {
			// A fresh conversation with msgs messages from bo to read.
			b.StopTimer()
			g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "bench", MemberIDs: []string{boS.User.ID}})
			if err != nil {
				b.Fatal(err)
			}
			conv, seq = g.ID, 0
			for i := 0; i < msgs; i++ {
				if _, err := boRC.Send(ctx, rest.SendRequest{ConvID: conv, Body: "x"}); err != nil {
					b.Fatal(err)
				}
			}
			b.StartTimer()
		}
		seq++
		start := time.Now()
		if err := ana.Receipt(ctx, conv, seq, syncpb.ReceiptType_RECEIPT_TYPE_READ); err != nil {
			b.Fatal(err)
		}
		for got := range seen {
			if got >= seq {
				break
			}
		}
		lat = append(lat, time.Since(start))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
}

// A sender has received and read what it sent, and every answer says so
// alike: after ana sends, her read_seq is the same in GET
// /v1/conversations/{id}, in its receipts (read and delivered), in GET
// /v1/unread, in a new device's sync and on the sending device; a report
// of hers below it moves nothing, so no member hears of a lower position.
func TestReceiptsSenderPositionIsTheSameEverywhere(t *testing.T) {
	s := startTestSystem(t, "", nil)
	ctx := t.Context()
	anaRC, anaS := s.User(t, "acme", "ana")
	boRC, boS := s.User(t, "acme", "bo")
	ana := s.receiptDevice(t, "ws", anaRC, anaS, &receiptLog{})
	boLog := &receiptLog{}
	s.receiptDevice(t, "ws", boRC, boS, boLog)
	g, err := anaRC.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "mine", MemberIDs: []string{boS.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	var last *syncpb.SendAck
	for i := 0; i < 2; i++ {
		if last, err = ana.Send(ctx, &syncpb.SendRequest{ConvId: g.ID, Body: fmt.Appendf(nil, "m%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when string, readers int) {
		t.Helper()
		c, err := anaRC.Conversation(ctx, g.ID)
		if err != nil || c.ReadSeq != last.Seq || c.Unread != 0 {
			t.Fatalf("%s: GET conversation: read_seq %d unread %d (%v), want %d 0", when, c.ReadSeq, c.Unread, err, last.Seq)
		}
		list, err := boRC.Receipts(ctx, g.ID)
		if err != nil {
			t.Fatal(err)
		}
		var mine *rest.MemberReceipts
		for i, m := range list.Members {
			if m.UserID == anaS.User.ID {
				mine = &list.Members[i]
			}
		}
		if mine == nil || mine.ReadSeq != last.Seq || mine.DeliveredSeq != last.Seq || mine.ReadTS != last.TsUnixMs || mine.DeliveredTS != last.TsUnixMs {
			t.Fatalf("%s: GET receipts has ana at %+v, want read and delivered %d at %d", when, mine, last.Seq, last.TsUnixMs)
		}
		if list.LastSeq != last.Seq || list.ReadCount != readers || list.DeliveredCount != readers {
			t.Fatalf("%s: GET receipts counts %+v, want %d at the last message", when, list, readers)
		}
		u, err := anaRC.Unread(ctx)
		if err != nil || u.Total != 0 || len(u.Conversations) != 0 {
			t.Fatalf("%s: GET unread %+v %v", when, u, err)
		}
	}
	check("after sending", 1) // ana
	poll.Until(t, 20*time.Second, "the sending device's read position", func() bool { return ana.ReadSeq(g.ID) == last.Seq && ana.Unread()[g.ID] == 0 })
	phoneRC, phoneS := s.Login(t, "acme", "ana", "ana-phone")
	phone := s.receiptDevice(t, "ws", phoneRC, phoneS, &receiptLog{})
	poll.Until(t, 20*time.Second, "a new device's sync", func() bool { return phone.ReadSeq(g.ID) == last.Seq })
	if n := phone.Unread()[g.ID]; n != 0 {
		t.Fatalf("the new device counts %d unread", n)
	}

	// A stale report of ana's tells nobody anything; bo's read after it
	// reaches bo's devices after anything ana's report would have sent.
	read := syncpb.ReceiptType_RECEIPT_TYPE_READ
	if err := phone.Receipt(ctx, g.ID, 1, read); err != nil {
		t.Fatal(err)
	}
	if err := phoneRC.Receipt(ctx, g.ID, 1, "delivered"); err != nil {
		t.Fatal(err)
	}
	boDev, err := boRC.Conversation(ctx, g.ID)
	if err != nil || boDev.Unread != last.Seq {
		t.Fatalf("bo: %+v %v", boDev, err)
	}
	if err := boRC.Receipt(ctx, g.ID, last.Seq, "read"); err != nil {
		t.Fatal(err)
	}
	poll.Until(t, 20*time.Second, "bo hears of his own read", func() bool { return boLog.has(g.ID, boS.User.ID, read, last.Seq) })
	boLog.mu.Lock()
	for _, u := range boLog.ups {
		if u.UserId == anaS.User.ID && u.Seq < last.Seq {
			t.Errorf("bo was told ana is at %v, below her own message %d", u, last.Seq)
		}
	}
	boLog.mu.Unlock()
	check("after ana's stale reports", 2) // and bo
}
