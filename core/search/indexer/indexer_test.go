package indexer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/bleve"
	"github.com/parley-chat/parley/core/search/indexer"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// memShard is a shard's local state in memory.
type memShard struct {
	mu   sync.Mutex
	ws   map[string]string
	msgs map[string][]*syncpb.Message
}

func newMemShard() *memShard {
	return &memShard{ws: map[string]string{}, msgs: map[string][]*syncpb.Message{}}
}

func (s *memShard) send(ws, conv, text string, kind syncpb.MessageKind) shard.Committed {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.ws[conv] = ws
	seq := uint64(len(s.msgs[conv]) + 1)
	m := &syncpb.Message{ConvId: conv, Seq: seq, MsgId: fmt.Sprintf("%s-%d", conv, seq), SenderUserId: "u1",
		TsUnixMs: time.Now().UnixMilli(), Body: []byte(text), ContentType: "text/plain", Kind: kind}
	s.msgs[conv] = append(s.msgs[conv], m)
	return shard.Committed{ConvID: conv, Messages: []*syncpb.Message{m}}
}

func (s *memShard) Conversations() ([]shard.ConvSeq, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []shard.ConvSeq
	for c, ms := range s.msgs {
		out = append(out, shard.ConvSeq{ConvID: c, LastSeq: uint64(len(ms))})
	}
	return out, nil
}

func (s *memShard) MessagesAfter(conv string, after uint64, limit int) (string, []*syncpb.Message, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.msgs[conv]
	if after >= uint64(len(ms)) {
		return s.ws[conv], nil, nil
	}
	ms = ms[after:]
	return s.ws[conv], slices.Clone(ms[:min(limit, len(ms))]), nil
}

// countingEngine counts Index calls and runs hook after each.
type countingEngine struct {
	search.Engine
	mu    sync.Mutex
	calls int
	hook  func(calls int)
}

func (e *countingEngine) Index(ctx context.Context, docs []search.Doc) error {
	if err := e.Engine.Index(ctx, docs); err != nil {
		return err
	}
	e.mu.Lock()
	e.calls++
	n, h := e.calls, e.hook
	e.mu.Unlock()
	if h != nil {
		h(n)
	}
	return nil
}

type env struct {
	db  *badger.DB
	eng *bleve.Engine
	sh  *memShard
}

func newEnv(t *testing.T) *env {
	t.Helper()
	db, err := badger.Open(badger.DefaultOptions(t.TempDir()).WithLogger(nil))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	eng, err := bleve.Open(bleve.Config{Dir: t.TempDir() + "/search"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	return &env{db: db, eng: eng, sh: newMemShard()}
}

// start runs an indexer until the returned stop is called (or the test ends).
func (e *env) start(t *testing.T, eng search.Engine, off func(string) (bool, error)) (*indexer.Indexer, context.CancelFunc, chan error) {
	t.Helper()
	ix, err := indexer.New(indexer.Config{Engine: eng, DB: e.db, Shards: []indexer.Shard{e.sh}, SearchOff: off, BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ix.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return ix, cancel, done
}

// indexed lists the ids of every doc of convs in the index, page by page.
func (e *env) indexed(t *testing.T, convs []string) []string {
	t.Helper()
	q, err := search.Parse("after:1")
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	cursor := ""
	for {
		res, err := e.eng.Search(context.Background(), search.Request{Workspace: "w1", Convs: convs, Query: q, Limit: search.MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, h := range res.Hits {
			ids = append(ids, h.MsgID)
		}
		if res.Next == "" {
			break
		}
		cursor = res.Next
	}
	slices.Sort(ids)
	return ids
}

// stored lists the ids of the user messages in the shard.
func (e *env) stored(convs []string) []string {
	var ids []string
	for _, c := range convs {
		for _, m := range e.sh.msgs[c] {
			if m.Kind == syncpb.MessageKind_MESSAGE_KIND_USER {
				ids = append(ids, m.MsgId)
			}
		}
	}
	slices.Sort(ids)
	return ids
}

var convs = []string{"c1", "c2", "c3"}

func (e *env) fill(n int) []shard.Committed {
	var cs []shard.Committed
	for i := range n {
		kind := syncpb.MessageKind_MESSAGE_KIND_USER
		if i%10 == 9 {
			kind = syncpb.MessageKind_MESSAGE_KIND_SYSTEM
		}
		cs = append(cs, e.sh.send("w1", convs[i%len(convs)], fmt.Sprintf("hello number %d", i), kind))
	}
	return cs
}

func TestIndexesCommitsAndSkipsSystemMessages(t *testing.T) {
	e := newEnv(t)
	ix, _, _ := e.start(t, e.eng, nil)
	ix.Notify(0, e.fill(40))
	poll.Until(t, 10*time.Second, "indexer idle", ix.Idle)
	if got, want := e.indexed(t, convs), e.stored(convs); !slices.Equal(got, want) {
		t.Fatalf("index holds %d docs, store %d user messages:\n%v\n%v", len(got), len(want), got, want)
	}
	if st := ix.Stats(); st.Indexed != 36 || st.LagMessages != 0 {
		t.Fatalf("stats %+v, want 36 indexed and no lag", st)
	}
}

// An indexer closed between batches and started again indexes the rest:
// the index then equals the store, every message once.
func TestRestartBetweenBatchesResumes(t *testing.T) {
	e := newEnv(t)
	cs := e.fill(100)
	var cancel context.CancelFunc
	stopped := make(chan struct{})
	ce := &countingEngine{Engine: e.eng, hook: func(n int) {
		if n == 3 {
			cancel()
			close(stopped)
		}
	}}
	ix, c, done := e.start(t, ce, nil)
	cancel = c
	ix.Notify(0, cs)
	<-stopped
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("Run: %v", err)
	}
	done <- nil // for the cleanup
	if got := e.indexed(t, convs); len(got) >= len(e.stored(convs)) {
		t.Fatalf("the first indexer indexed everything (%d docs) before it was closed", len(got))
	}
	ix2, _, _ := e.start(t, e.eng, nil) // catches up from the stored positions
	poll.Until(t, 10*time.Second, "indexer idle", ix2.Idle)
	if got, want := e.indexed(t, convs), e.stored(convs); !slices.Equal(got, want) {
		t.Fatalf("after restart the index holds %d docs, the store %d", len(got), len(want))
	}
}

// Positions lost: a new indexer catches up from the shards, replacing
// (not doubling) what the index holds.
func TestLostPositionsCatchUp(t *testing.T) {
	e := newEnv(t)
	ix, cancel, done := e.start(t, e.eng, nil)
	ix.Notify(0, e.fill(30))
	poll.Until(t, 10*time.Second, "indexer idle", ix.Idle)
	cancel()
	<-done
	done <- nil
	if err := indexer.ResetPositions(e.db); err != nil {
		t.Fatal(err)
	}
	e.fill(5) // committed while no indexer ran
	ix2, _, _ := e.start(t, e.eng, nil)
	poll.Until(t, 10*time.Second, "indexer idle", ix2.Idle)
	if got, want := e.indexed(t, convs), e.stored(convs); !slices.Equal(got, want) {
		t.Fatalf("index holds %d docs, store %d", len(got), len(want))
	}
	if st := ix2.Stats(); st.Indexed != uint64(len(e.stored(convs))) {
		t.Fatalf("second indexer indexed %d, want all %d again", st.Indexed, len(e.stored(convs)))
	}
}

func TestSearchOffWorkspaceIsNotIndexed(t *testing.T) {
	e := newEnv(t)
	ix, _, _ := e.start(t, e.eng, func(ws string) (bool, error) { return ws == "w1", nil })
	ix.Notify(0, e.fill(10))
	poll.Until(t, 10*time.Second, "indexer idle", ix.Idle)
	if got := e.indexed(t, convs); len(got) != 0 {
		t.Fatalf("search_off workspace indexed: %v", got)
	}
}
