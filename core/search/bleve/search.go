package bleve

import (
	"context"
	"fmt"

	bv "github.com/blevesearch/bleve/v2"
	bsearch "github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/parley-chat/parley/core/search"
)

// Search implements search.Engine.
func (e *Engine) Search(ctx context.Context, req search.Request) (search.Result, error) {
	p, done, err := req.Plan()
	if err != nil || done {
		return search.Result{}, err
	}
	if err := e.gate.Enter(); err != nil {
		return search.Result{}, err
	}
	defer e.gate.Leave()
	var res *bv.SearchResult
	var counted bool // res.Total counts every match
	var horizon int64
	if req.Sort == search.Relevance {
		if horizon = p.Horizon(e.committed.Load); horizon == 0 { // nothing was ever indexed
			return search.Result{}, nil
		}
		res, err = e.relevance(ctx, &req, p, horizon)
		counted = true
	} else {
		res, counted, err = e.newest(ctx, &req, p)
	}
	if err != nil {
		return search.Result{}, err
	}
	limit := p.Limit
	marks, err := e.marks(ctx, &req.Query, res.Hits[:min(len(res.Hits), limit)])
	if err != nil {
		return search.Result{}, err
	}
	out := search.Result{Hits: make([]search.Hit, 0, min(len(res.Hits), limit))}
	if p.Count {
		out.Total = int(res.Total)
		if !counted {
			if out.Total, err = e.count(ctx, &req); err != nil {
				return search.Result{}, err
			}
		}
	}
	for _, h := range res.Hits {
		if len(out.Hits) == limit {
			break
		}
		conv, seq, ok := parseDocID(h.ID)
		if !ok {
			return search.Result{}, fmt.Errorf("search/bleve: bad document id %q", h.ID)
		}
		text, _ := h.Fields[fText].(string)
		ts, _ := h.Fields[fTS].(float64)
		sender, _ := h.Fields[fSender].(string)
		msg, _ := h.Fields[fMsg].(string)
		out.Hits = append(out.Hits, search.Hit{
			ConvID: conv, Seq: seq, MsgID: msg, Sender: sender, TS: int64(ts),
			Score: h.Score, Snippet: search.MakeSnippet(text, marks[h.ID]),
		})
	}
	if len(res.Hits) > limit {
		out.Next = p.Next(req.Sort, out.Hits[len(out.Hits)-1], horizon)
	}
	return out, nil
}

var hitFields = []string{fText, fSender, fTS, fMsg}

// relevance finds the page of a by-relevance search: the best from
// p.From, of what was indexed by horizon.
func (e *Engine) relevance(ctx context.Context, req *search.Request, p search.Page, horizon int64) (*bv.SearchResult, error) {
	sr := bv.NewSearchRequestOptions(buildQuery(req, shape{horizon: horizon}), p.Limit+1, p.From, false)
	sr.Fields = hitFields
	sr.SortBy([]string{"-_score", "-" + fSortKey})
	res, err := e.idx.SearchInContext(ctx, sr)
	if err != nil {
		return nil, fmt.Errorf("search/bleve: search: %w", err)
	}
	return res, nil
}

const defaultWindowDocs = 20_000

// newest finds the page of a newest-first search. The newest limit+1
// matches are all the page needs, so it searches a recent window of ts
// first, sized from the index's density to hold about Config.WindowDocs
// messages (of all conversations), and widens it, by how far this window
// fell short, until the page is full or the window covers everything: a
// common word is then sorted over the few matches of a window, not over
// all of them. whole says the search covered every match (on the first
// page: its Total is the count).
func (e *Engine) newest(ctx context.Context, req *search.Request, p search.Page) (res *bv.SearchResult, whole bool, err error) {
	lo0, hi := e.tsMin.Load(), e.tsMax.Load()
	if !p.First {
		hi = min(hi, p.Cursor.TS)
	}
	var w int64
	if n, err := e.idx.DocCount(); err == nil && e.windowDocs > 0 && int64(n) > 4*e.windowDocs && hi > lo0 {
		w = max(1, (e.tsMax.Load()-lo0+1)*e.windowDocs/int64(n))
	}
	for {
		lo := int64(-1)
		if w > 0 && hi-w > lo0 {
			lo = hi - w
		}
		var extra []query.Query
		if lo >= 0 || !p.First {
			extra = append(extra, tsRange(lo, cond(p.First, -1, hi)))
		}
		sr := bv.NewSearchRequestOptions(buildQuery(req, shape{perCandidate: lo >= 0, extra: extra}), p.Limit+1, 0, false)
		sr.Fields = hitFields
		sr.SortBy([]string{"-" + fSortKey})
		if !p.First {
			sr.SearchAfter = []string{sortKey(p.Cursor.TS, p.Cursor.Conv, p.Cursor.Seq)}
		}
		if res, err = e.idx.SearchInContext(ctx, sr); err != nil {
			return nil, false, fmt.Errorf("search/bleve: search: %w", err)
		}
		if lo < 0 {
			return res, p.First, nil
		}
		if len(res.Hits) > p.Limit {
			return res, false, nil
		}
		// Widen to where, at this window's rate, the page would fill
		// twice over: 4 to 64 times as wide.
		w *= min(64, max(4, 2*int64(p.Limit+1)/max(1, int64(len(res.Hits)))))
	}
}

// count is how many messages match req, counted without scores or sorting.
func (e *Engine) count(ctx context.Context, req *search.Request) (int, error) {
	sr := bv.NewSearchRequestOptions(buildQuery(req, shape{}), 0, 0, false)
	sr.Score = "none"
	res, err := e.idx.SearchInContext(ctx, sr)
	if err != nil {
		return 0, fmt.Errorf("search/bleve: count: %w", err)
	}
	return int(res.Total), nil
}

func cond[T any](c bool, a, b T) T {
	if c {
		return a
	}
	return b
}

// marks finds where q's terms matched in hits. It is a second search,
// over those hits alone: asking the main search for term locations would
// decode them for every candidate, not only the page.
func (e *Engine) marks(ctx context.Context, q *search.Query, hits []*bsearch.DocumentMatch) (map[string][]search.Span, error) {
	if len(q.Terms) == 0 || len(hits) == 0 {
		return nil, nil
	}
	ids := make([]string, len(hits))
	for i, h := range hits {
		ids[i] = h.ID
	}
	terms := make([]query.Query, len(q.Terms))
	for i, t := range q.Terms {
		terms[i] = textQuery(t, t.Fuzzy)
	}
	sr := bv.NewSearchRequestOptions(query.NewConjunctionQuery([]query.Query{
		query.NewDocIDQuery(ids), query.NewDisjunctionQuery(terms),
	}), len(ids), 0, false)
	sr.IncludeLocations = true
	sr.Score = "none"
	res, err := e.idx.SearchInContext(ctx, sr)
	if err != nil {
		return nil, fmt.Errorf("search/bleve: highlight: %w", err)
	}
	out := make(map[string][]search.Span, len(res.Hits))
	for _, h := range res.Hits {
		for _, locs := range h.Locations[fText] {
			for _, l := range locs {
				out[h.ID] = append(out[h.ID], search.Span{Start: int(l.Start), End: int(l.End)})
			}
		}
	}
	return out, nil
}
