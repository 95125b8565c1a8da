package core

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/parley-chat/parley/core/route"
	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/bleve"
	"github.com/parley-chat/parley/core/search/indexer"
	"github.com/parley-chat/parley/core/search/typesense"
	"github.com/parley-chat/parley/core/shard"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Search engines of SearchConfig.Engine.
const (
	SearchBleve     = "bleve"
	SearchTypesense = "typesense"
)

// SearchConfig configures message search. Every node indexes every
// shard's messages (it holds them all) and answers searches from its
// own index.
type SearchConfig struct {
	// Disabled turns search off: nothing is indexed and search requests
	// are refused (search is on by default).
	Disabled bool
	// Engine is SearchBleve (default: an embedded index in Dir) or
	// SearchTypesense (a Typesense cluster at TypesenseURL).
	Engine string
	// Dir holds the Bleve index (default DataDir/search).
	Dir string
	// TypesenseURL and TypesenseKey reach the Typesense cluster.
	TypesenseURL, TypesenseKey string
	// BatchSize is the most messages indexed in one engine call
	// (default 2000).
	BatchSize int
}

// Validate names the first bad field.
func (c *SearchConfig) Validate() error {
	switch {
	case c.Disabled:
		return nil
	case c.Engine != "" && c.Engine != SearchBleve && c.Engine != SearchTypesense:
		return fmt.Errorf("core: Config.Search.Engine %q must be %s or %s", c.Engine, SearchBleve, SearchTypesense)
	case c.Engine == SearchTypesense && (c.TypesenseURL == "" || c.TypesenseKey == ""):
		return errors.New("core: Config.Search: the typesense engine needs TypesenseURL and TypesenseKey")
	case c.BatchSize < 0 || c.BatchSize > 10000:
		return fmt.Errorf("core: Config.Search.BatchSize %d out of 0..10000", c.BatchSize)
	}
	return nil
}

// openSearch opens the engine and the indexer (not yet running) over the
// node's shards; lazy: the shards are the node's groups when read.
func (n *Node) openSearch() error {
	c := n.cfg.Search
	if c.Disabled {
		return nil
	}
	var err error
	switch c.Engine {
	case SearchTypesense:
		ctx, cancel := context.WithTimeout(n.stopCtx, 30*time.Second)
		n.engine, err = typesense.Open(ctx, typesense.Config{URL: c.TypesenseURL, APIKey: c.TypesenseKey})
		cancel()
	default:
		dir := c.Dir
		if dir == "" {
			dir = filepath.Join(n.cfg.DataDir, "search")
		}
		n.engine, err = bleve.Open(bleve.Config{Dir: dir})
	}
	if err != nil {
		return fmt.Errorf("core: search: %w", err)
	}
	n.shardFSMs = make([]*shard.FSM, n.cfg.ShardCount)
	shards := make([]indexer.Shard, n.cfg.ShardCount)
	for i := range shards {
		shards[i] = lazyShard{n, i}
	}
	n.indexer, err = indexer.New(indexer.Config{
		Engine: n.engine, DB: n.db, Shards: shards, BatchSize: c.BatchSize, Now: n.cfg.Now, Logger: n.log,
		SearchOff: func(ws string) (bool, error) { return n.groups[route.DirGroup].dir.SearchOff(ws) },
	})
	if err != nil {
		return fmt.Errorf("core: search: %w", err)
	}
	return nil
}

// runSearch starts the indexer once every group exists.
func (n *Node) runSearch() {
	if n.indexer == nil {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		_ = n.indexer.Run(n.stopCtx)
	}()
}

// lazyShard is shard i of n, looked up when read: the indexer exists
// before the shards do, so that no commit goes unseen. New sets
// n.shardFSMs[i] before shard i's group starts, so every call (from the
// group's restore or from Run, started later) finds it.
type lazyShard struct {
	n *Node
	i int
}

func (s lazyShard) Conversations() ([]shard.ConvSeq, error) {
	return s.n.shardFSMs[s.i].Conversations()
}

func (s lazyShard) MessagesAfter(conv string, after uint64, limit int) (string, []*syncpb.Message, error) {
	return s.n.shardFSMs[s.i].MessagesAfter(conv, after, limit)
}

// searchCollectors are the indexer's series.
func (n *Node) searchCollectors() []prometheus.Collector {
	if n.indexer == nil {
		return nil
	}
	return []prometheus.Collector{
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_search_index_lag_messages", Help: "Messages committed on this node and not yet in its search index.",
		}, func() float64 { return float64(n.indexer.Stats().LagMessages) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "parley_search_index_lag_seconds", Help: "Age of the oldest message waiting for this node's search index (0: none).",
		}, func() float64 { return n.indexer.Stats().LagSeconds }),
		prometheus.NewCounterFunc(prometheus.CounterOpts{
			Name: "parley_search_indexed_total", Help: "Messages this node's indexer wrote to its search index.",
		}, func() float64 { return float64(n.indexer.Stats().Indexed) }),
	}
}

// emptySearch is the answer of a search that can find nothing: the same
// whether a conversation does not exist or the caller may not read it.
func emptySearch() *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Search{Search: &syncpb.SearchResponse{}}}
}

// search answers a search from this node's index: only conversations the
// caller is a member of now (from every shard's leader) are searched, a
// conversation the caller may not read answers as one that does not
// exist, and each hit is checked against the local store.
func (n *Node) search(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	if n.engine == nil {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "this core does not serve search"))
	}
	caller, sr := req.GetCaller(), req.GetSearch()
	if !syncproto.ValidID(caller.GetUserId()) || !syncproto.ValidID(caller.GetWorkspaceId()) {
		return route.Error(syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "request has no verified caller"))
	}
	if err := syncproto.ValidateSearch(sr); err != nil {
		return route.Error(err)
	}
	q, ok, err := searchQuery(sr)
	if err != nil {
		return searchError(err)
	}
	sort := search.Newest
	if sr.Sort == syncpb.SearchSort_SEARCH_SORT_RELEVANCE {
		sort = search.Relevance
	}
	if off, err := n.groups[route.DirGroup].dir.SearchOff(caller.WorkspaceId); err != nil {
		return route.Error(err)
	} else if off || !ok {
		return emptySearch()
	}
	convs, resp := n.memberConvs(ctx, caller, sr.ConvId)
	if resp != nil {
		return resp
	}
	if len(convs) == 0 {
		return emptySearch()
	}
	res, err := n.engine.Search(ctx, search.Request{
		Workspace: caller.WorkspaceId, Convs: convs, Query: q, Sort: sort,
		Limit: syncproto.SearchLimit(sr.Limit), Cursor: sr.Cursor, Count: sr.Cursor == "",
	})
	if err != nil {
		return searchError(err)
	}
	out := &syncpb.SearchResponse{Total: uint32(res.Total), NextCursor: res.Next}
	for _, h := range res.Hits {
		if ok, err := n.groups[n.ShardGroupOf(h.ConvID)].shard.HasMessage(h.ConvID, h.Seq); err != nil {
			return route.Error(err)
		} else if !ok {
			continue
		}
		hit := &syncpb.SearchHit{ConvId: h.ConvID, Seq: h.Seq, MsgId: h.MsgID, SenderId: h.Sender, TsUnixMs: h.TS, Snippet: h.Snippet.Text}
		for _, m := range h.Snippet.Marks {
			hit.Marks = append(hit.Marks, &syncpb.TextRange{Start: uint32(m.Start), End: uint32(m.End)})
		}
		out.Hits = append(out.Hits, hit)
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Search{Search: out}}
}

// memberConvs lists the caller's conversations now, from every shard's
// leader (read-your-writes: a member added a moment ago is one), or just
// only when the caller is a member of it.
func (n *Node) memberConvs(ctx context.Context, caller *syncpb.Caller, only string) ([]string, *syncpb.CoreResponse) {
	resps, werr := n.router.EveryShard(ctx, &syncpb.CoreRequest{Caller: caller,
		Op: &syncpb.CoreRequest_ListConversations{ListConversations: &syncpb.ListConversationsRequest{}}})
	if werr != nil {
		return nil, &syncpb.CoreResponse{Error: werr}
	}
	var convs []string
	for _, r := range resps {
		for _, c := range r.GetConversations().GetConversations() {
			if only == "" {
				convs = append(convs, c.Id)
			} else if c.Id == only {
				return []string{only}, nil
			}
		}
	}
	if only != "" {
		return nil, nil
	}
	return convs, nil
}

// searchQuery is the request's query with its fields as filters; ok is
// false when the fields and the query's own filters exclude everything.
func searchQuery(sr *syncpb.SearchRequest) (q search.Query, ok bool, err error) {
	if sr.Query != "" {
		if q, err = search.Parse(sr.Query); err != nil {
			return q, false, err
		}
	}
	if sr.FromUserId != "" {
		switch {
		case len(q.From) == 0:
			q.From = []string{sr.FromUserId}
		case !slices.Contains(q.From, sr.FromUserId):
			return q, false, nil
		default:
			q.From = []string{sr.FromUserId}
		}
	}
	if sr.AfterUnixMs > 0 {
		if t := time.UnixMilli(sr.AfterUnixMs).UTC(); t.After(q.After) {
			q.After = t
		}
	}
	if sr.BeforeUnixMs > 0 {
		if t := time.UnixMilli(sr.BeforeUnixMs).UTC(); q.Before.IsZero() || t.Before(q.Before) {
			q.Before = t
		}
	}
	q.HasAttachment = q.HasAttachment || sr.HasAttachment
	if len(q.Terms) == 0 && len(q.From) == 0 && q.After.IsZero() && q.Before.IsZero() && !q.HasAttachment {
		if sr.ConvId == "" {
			return q, false, &search.QueryError{Reason: "nothing to search for", Pos: -1}
		}
		// A conversation alone is a filter too: all of its messages
		// (every ts is at least 1 ms).
		q.After = time.UnixMilli(1).UTC()
	}
	if !q.After.IsZero() && !q.Before.IsZero() && !q.After.Before(q.Before) {
		return q, false, nil
	}
	return q, true, nil
}

// searchError is the response of a failed search: a bad query or cursor
// is invalid_argument with its reason; anything else is the engine's
// failure, which the client may retry.
func searchError(err error) *syncpb.CoreResponse {
	var qe *search.QueryError
	if errors.As(err, &qe) {
		return &syncpb.CoreResponse{Error: qe.Wire().Proto()}
	}
	return route.Error(syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "search is unavailable, retry"))
}

// onRestore is shard i's Config.OnRestore: a snapshot brought messages
// no commit told of, so every conversation past its position is dirty.
func (n *Node) onRestore(i int) func() {
	return func() {
		if n.indexer == nil {
			return
		}
		if err := n.indexer.CatchUp(i); err != nil {
			n.log.Warn("search: catch up after restore", "shard", route.ShardGroup(i), "err", err)
		}
	}
}

// SearchIdle says whether this node's indexer has caught up with its
// shards and has nothing waiting (true when search is off), for tests
// and readiness checks.
func (n *Node) SearchIdle() bool { return n.indexer == nil || n.indexer.Idle() }

// SearchLocal answers a search request from this node's own index, as
// this node answers one that reaches it on the API subject; for tests
// and diagnostics that compare nodes.
func (n *Node) SearchLocal(ctx context.Context, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	return n.search(ctx, req)
}
