package search

// Page is what an engine fetches for a Request, from Request.Plan.
type Page struct {
	First  bool   // no cursor: the first page
	Count  bool   // the first page of a Request with Count: report Total
	Cursor Cursor // decoded from Request.Cursor
	// Limit is how many hits to return; an engine fetches one more to know
	// whether a next page follows.
	Limit int
	// From is the offset of the first hit (relevance).
	From int
}

// Plan checks r, fills in its defaults and decodes its cursor. done means
// the answer is empty without a search: no conversations, or the cursor
// is at MaxRelevanceDepth.
func (r *Request) Plan() (p Page, done bool, err error) {
	if err := r.Check(); err != nil {
		return p, false, err
	}
	p.First, p.Limit = r.Cursor == "", r.Limit
	p.Count = p.First && r.Count
	if !p.First {
		if p.Cursor, err = DecodeCursor(r.Cursor, r.Sort); err != nil {
			return p, false, err
		}
	}
	if r.Sort == Relevance {
		p.From = p.Cursor.Offset
		p.Limit = min(p.Limit, MaxRelevanceDepth-p.From)
	}
	return p, len(r.Convs) == 0 || p.Limit <= 0, nil
}

// Horizon is the relevance horizon of the page: the cursor's, or on the
// first page, current (the engine's index position now).
func (p Page) Horizon(current func() int64) int64 {
	if p.First {
		return current()
	}
	return p.Cursor.Horizon
}

// Next is the cursor of the page after p, when more hits follow the last
// one p returned; horizon is the one p used (relevance).
func (p Page) Next(sort Sort, last Hit, horizon int64) string {
	if sort == Relevance {
		next := p.From + p.Limit
		if next >= MaxRelevanceDepth {
			return ""
		}
		return Cursor{Sort: Relevance, Horizon: horizon, Offset: next}.Encode()
	}
	return Cursor{Sort: Newest, TS: last.TS, Conv: last.ConvID, Seq: last.Seq}.Encode()
}
