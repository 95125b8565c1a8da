package httpapi

import (
	"net/http"
	"strconv"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

type searchHitJSON struct {
	ConvID   string          `json:"conv_id"`
	Seq      uint64          `json:"seq"`
	MsgID    string          `json:"msg_id"`
	SenderID string          `json:"sender_id"`
	TS       int64           `json:"ts"`
	Snippet  string          `json:"snippet"`
	Marks    []textRangeJSON `json:"marks"`
}

// textRangeJSON is a byte range [start, end) of a snippet.
type textRangeJSON struct {
	Start uint32 `json:"start"`
	End   uint32 `json:"end"`
}

type searchResponse struct {
	Hits       []searchHitJSON `json:"hits"`
	Total      uint32          `json:"total"`
	NextCursor string          `json:"next_cursor"`
}

// search: GET /v1/search?q=&conv_id=&from=&before=&after=&has=attachment&sort=&limit=&cursor=.
// before and after are Unix milliseconds; only the caller's
// conversations are searched (a conversation it may not read gives the
// same empty page as one that does not exist).
func (a *API) search(c *call) error {
	v := c.r.URL.Query()
	req := &syncpb.SearchRequest{Query: v.Get("q"), ConvId: v.Get("conv_id"), FromUserId: v.Get("from"), Cursor: v.Get("cursor")}
	c.info.conv = req.ConvId
	for _, p := range []struct {
		name string
		dst  *int64
	}{{"before", &req.BeforeUnixMs}, {"after", &req.AfterUnixMs}} {
		if s := v.Get(p.name); s != "" {
			ms, err := strconv.ParseInt(s, 10, 64)
			if err != nil || ms < 0 {
				return invalid("%s must be Unix milliseconds", p.name)
			}
			*p.dst = ms
		}
	}
	switch v.Get("has") {
	case "":
	case "attachment":
		req.HasAttachment = true
	default:
		return invalid(`has must be "attachment"`)
	}
	switch v.Get("sort") {
	case "", "newest":
	case "relevance":
		req.Sort = syncpb.SearchSort_SEARCH_SORT_RELEVANCE
	default:
		return invalid(`sort must be "newest" or "relevance"`)
	}
	limit, err := queryUint(c.r, "limit", syncproto.MaxSearchLimit)
	if err != nil {
		return err
	}
	req.Limit = uint32(limit)
	r, err := a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_Search{Search: req}})
	if err != nil {
		return err
	}
	s := r.GetSearch()
	if s == nil {
		return missing("search")
	}
	out := searchResponse{Hits: make([]searchHitJSON, 0, len(s.Hits)), Total: s.Total, NextCursor: s.NextCursor}
	for _, h := range s.Hits {
		hit := searchHitJSON{ConvID: h.ConvId, Seq: h.Seq, MsgID: h.MsgId, SenderID: h.SenderId, TS: h.TsUnixMs,
			Snippet: h.Snippet, Marks: make([]textRangeJSON, 0, len(h.Marks))}
		for _, m := range h.Marks {
			hit.Marks = append(hit.Marks, textRangeJSON{Start: m.Start, End: m.End})
		}
		out.Hits = append(out.Hits, hit)
	}
	writeJSON(c.w, http.StatusOK, out)
	return nil
}
