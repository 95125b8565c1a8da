package bleve

import (
	"context"
	"fmt"

	bv "github.com/blevesearch/bleve/v2"

	"github.com/parley-chat/parley/core/search"
)

// Search implements search.Engine.
func (e *Engine) Search(ctx context.Context, req search.Request) (search.Result, error) {
	if err := req.Check(); err != nil {
		return search.Result{}, err
	}
	var cur search.Cursor
	if req.Cursor != "" {
		var err error
		if cur, err = search.DecodeCursor(req.Cursor, req.Sort); err != nil {
			return search.Result{}, err
		}
	}
	if err := e.begin(); err != nil {
		return search.Result{}, err
	}
	defer e.end()
	if len(req.Convs) == 0 {
		return search.Result{}, nil
	}
	var horizon int64
	limit, from := req.Limit, 0
	if req.Sort == search.Relevance {
		horizon, from = cur.Horizon, cur.Offset
		if req.Cursor == "" {
			horizon = e.committed.Load()
		}
		if horizon == 0 { // nothing was ever indexed
			return search.Result{}, nil
		}
		if limit = min(limit, search.MaxRelevanceDepth-from); limit <= 0 {
			return search.Result{}, nil
		}
	}
	sr := bv.NewSearchRequestOptions(buildQuery(&req, horizon), limit+1, from, false)
	sr.Fields = []string{fText, fSender, fTS, fMsg}
	sr.IncludeLocations = true
	if req.Sort == search.Relevance {
		sr.SortBy([]string{"-_score", "-" + fSortKey})
	} else {
		sr.SortBy([]string{"-" + fSortKey})
		if req.Cursor != "" {
			sr.SearchAfter = []string{sortKey(cur.TS, cur.Conv, cur.Seq)}
		}
	}
	res, err := e.idx.SearchInContext(ctx, sr)
	if err != nil {
		return search.Result{}, fmt.Errorf("search/bleve: search: %w", err)
	}
	out := search.Result{Hits: make([]search.Hit, 0, min(len(res.Hits), limit))}
	if req.Cursor == "" {
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
		var marks []search.Span
		for _, locs := range h.Locations[fText] {
			for _, l := range locs {
				marks = append(marks, search.Span{Start: int(l.Start), End: int(l.End)})
			}
		}
		out.Hits = append(out.Hits, search.Hit{
			ConvID: conv, Seq: seq, MsgID: msg, Sender: sender, TS: int64(ts),
			Score: h.Score, Snippet: search.MakeSnippet(text, marks),
		})
	}
	if len(res.Hits) > limit {
		last := out.Hits[len(out.Hits)-1]
		if req.Sort == search.Relevance {
			next := from + len(out.Hits)
			if next < search.MaxRelevanceDepth {
				out.Next = search.Cursor{Sort: search.Relevance, Horizon: horizon, Offset: next}.Encode()
			}
		} else {
			out.Next = search.Cursor{Sort: search.Newest, TS: last.TS, Conv: last.ConvID, Seq: last.Seq}.Encode()
		}
	}
	return out, nil
}
