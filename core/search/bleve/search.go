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
	limit, from, horizon := p.Limit, p.From, int64(0)
	if req.Sort == search.Relevance {
		if horizon = p.Horizon(e.committed.Load); horizon == 0 { // nothing was ever indexed
			return search.Result{}, nil
		}
	}
	sr := bv.NewSearchRequestOptions(buildQuery(&req, horizon), limit+1, from, false)
	sr.Fields = []string{fText, fSender, fTS, fMsg}
	if req.Sort == search.Relevance {
		sr.SortBy([]string{"-_score", "-" + fSortKey})
	} else {
		sr.SortBy([]string{"-" + fSortKey})
		if !p.First {
			sr.SearchAfter = []string{sortKey(p.Cursor.TS, p.Cursor.Conv, p.Cursor.Seq)}
		}
	}
	res, err := e.idx.SearchInContext(ctx, sr)
	if err != nil {
		return search.Result{}, fmt.Errorf("search/bleve: search: %w", err)
	}
	marks, err := e.marks(ctx, &req.Query, res.Hits[:min(len(res.Hits), limit)])
	if err != nil {
		return search.Result{}, err
	}
	out := search.Result{Hits: make([]search.Hit, 0, min(len(res.Hits), limit))}
	if p.First {
		out.Total = int(res.Total)
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
