package typesense

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/typesense/typesense-go/v3/typesense/api"
	"github.com/typesense/typesense-go/v3/typesense/api/pointer"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/internal/cjk"
)

// hit is one result as merged across chunks.
type hit struct {
	search.Hit
	textMatch int64
	convh     int64
	matched   []string
}

// Search implements search.Engine.
func (e *Engine) Search(ctx context.Context, req search.Request) (search.Result, error) {
	p, done, err := req.Plan()
	if err != nil {
		return search.Result{}, err
	}
	q, prefix, err := queryText(&req.Query)
	if err != nil || done {
		return search.Result{}, err
	}
	if err := e.gate.Enter(); err != nil {
		return search.Result{}, err
	}
	defer e.gate.Leave()
	limit, from, horizon := p.Limit, p.From, int64(0)
	if req.Sort == search.Relevance {
		horizon = p.Horizon(func() int64 {
			e.wmu.Lock() // an import in flight here lands before the horizon
			defer e.wmu.Unlock()
			return max(e.lastIx, e.clock().UnixMicro())
		})
	}
	base := filterText(&req, horizon)
	if cur := p.Cursor; req.Sort == search.Newest && !p.First {
		h := convHash(cur.Conv)
		base += fmt.Sprintf(" && (%[1]s:<%[2]d || (%[1]s:=%[2]d && %[3]s:<%[4]d) || (%[1]s:=%[2]d && %[3]s:=%[4]d && %[5]s:<%[6]d))",
			fTS, cur.TS, fConvHash, h, fSeq, cur.Seq)
	}
	sortBy := fmt.Sprintf("%s:desc,%s:desc,%s:desc", fTS, fConvHash, fSeq)
	if req.Sort == search.Relevance {
		sortBy = fmt.Sprintf("_text_match:desc,%s:desc,%s:desc", fTS, fConvHash)
	}
	chunks := slices.Collect(slices.Chunk(req.Convs, e.chunk))

	// What each chunk must return: its own top `need` hits, from `skip`.
	need, skip := limit+1, 0
	if req.Sort == search.Relevance {
		if len(chunks) == 1 {
			skip = from
		} else {
			need = from + limit + 1
		}
	}
	var searches []api.MultiSearchCollectionParameters
	firsts := make([]bool, 0) // whether a search is a chunk's first, whose found counts
	for _, c := range chunks {
		filter := base + " && " + fConv + ":=[" + quoteAll(c) + "]"
		for off := 0; off < need; off += maxPerPage {
			searches = append(searches, e.params(q, prefix, filter, sortBy, skip+off, min(maxPerPage, need-off)))
			firsts = append(firsts, off == 0)
		}
	}

	var hits []hit
	total := 0
	for start := 0; start < len(searches); start += maxSearchesPerRequest {
		end := min(len(searches), start+maxSearchesPerRequest)
		res, err := e.c.MultiSearch.Perform(ctx, &api.MultiSearchParams{}, api.MultiSearchSearchesParameter{Searches: searches[start:end]})
		if err != nil {
			return search.Result{}, fmt.Errorf("search/typesense: multi_search: %w", err)
		}
		if len(res.Results) != end-start {
			return search.Result{}, fmt.Errorf("search/typesense: multi_search: %d results for %d searches", len(res.Results), end-start)
		}
		for i, r := range res.Results {
			if r.Error != nil {
				return search.Result{}, fmt.Errorf("search/typesense: search: %s", *r.Error)
			}
			if firsts[start+i] && r.Found != nil {
				total += *r.Found
			}
			if r.Hits == nil {
				continue
			}
			for _, h := range *r.Hits {
				ht, err := parseHit(h)
				if err != nil {
					return search.Result{}, err
				}
				hits = append(hits, ht)
			}
		}
	}
	slices.SortFunc(hits, func(a, b hit) int {
		if req.Sort == search.Relevance {
			if c := cmp.Compare(b.textMatch, a.textMatch); c != 0 {
				return c
			}
		}
		return cmp.Or(cmp.Compare(b.TS, a.TS), cmp.Compare(b.convh, a.convh), cmp.Compare(b.Seq, a.Seq))
	})
	if req.Sort == search.Relevance && len(chunks) > 1 {
		hits = hits[min(from, len(hits)):]
	}
	out := search.Result{}
	if p.Count {
		out.Total = total
	}
	for _, h := range hits[:min(limit, len(hits))] {
		h.Snippet = search.MakeSnippet(h.Snippet.Text, spansOf(h.Snippet.Text, h.matched))
		out.Hits = append(out.Hits, h.Hit)
	}
	if len(hits) > limit {
		out.Next = p.Next(req.Sort, out.Hits[len(out.Hits)-1], horizon)
	}
	return out, nil
}

func (e *Engine) params(q, prefix, filter, sortBy string, offset, limit int) api.MultiSearchCollectionParameters {
	return api.MultiSearchCollectionParameters{
		Collection:          pointer.String(e.coll),
		Q:                   pointer.String(q),
		QueryBy:             pointer.String(fBody),
		Prefix:              pointer.String(prefix),
		FilterBy:            pointer.String(filter),
		SortBy:              pointer.String(sortBy),
		Offset:              pointer.Int(offset),
		Limit:               pointer.Int(limit),
		NumTypos:            pointer.String("1"),
		MinLen1typo:         pointer.Int(search.FuzzyMinLetters),
		TypoTokensThreshold: pointer.Int(1 << 20), // always look for typos, as Bleve does
		DropTokensThreshold: pointer.Int(0),       // every word must match
		HighlightFields:     pointer.String(fBody),
		IncludeFields:       pointer.String(strings.Join([]string{fConv, fSeq, fSender, fTS, fText, fMsg, fConvHash}, ",")),
	}
}

// queryText is q as Typesense's q and prefix parameters.
func queryText(q *search.Query) (text, prefix string, err error) {
	var words []string
	var pre string
	for _, t := range q.Terms {
		switch t.Kind {
		case search.Prefix:
			if pre != "" {
				return "", "", &search.QueryError{Reason: "only one prefix (word*) per query with this engine", Pos: -1}
			}
			pre = t.Text
		case search.Phrase:
			words = append(words, phrase(t.Text, false))
		default:
			words = append(words, grams(t.Text))
		}
	}
	for _, t := range q.Exclude {
		switch t.Kind {
		case search.Prefix:
			return "", "", &search.QueryError{Reason: "an excluded prefix (-word*) is not supported by this engine", Pos: -1}
		case search.Phrase:
			words = append(words, phrase(t.Text, true))
		default:
			for _, w := range strings.Fields(grams(t.Text)) {
				words = append(words, "-"+w)
			}
		}
	}
	if pre != "" {
		words = append(words, grams(pre))
		prefix = "true"
	} else {
		prefix = "false"
	}
	if len(q.Terms) == 0 {
		if len(q.Exclude) > 0 {
			return "", "", &search.QueryError{Reason: "exclusions need a word to search for with this engine", Pos: -1}
		}
		return "*", "false", nil
	}
	return strings.Join(words, " "), prefix, nil
}

// grams is a query word with its CJK runs as the grams the index holds.
func grams(w string) string {
	b := []byte(w)
	var parts []string
	for _, seg := range cjk.Split(b) {
		run := b[seg.Start:seg.End]
		if !seg.CJK {
			parts = append(parts, string(run))
			continue
		}
		for _, g := range cjk.Grams(run, true) {
			parts = append(parts, string(run[g.Start:g.End]))
		}
	}
	return strings.Join(parts, " ")
}

// phrase quotes p, but a phrase with CJK text becomes its grams, each of
// which must (or, excluded, must not) match: the index's gram order does
// not keep a run's grams adjacent.
func phrase(p string, exclude bool) string {
	neg := ""
	if exclude {
		neg = "-"
	}
	for _, r := range p {
		if cjk.Is(r) {
			ws := strings.Fields(grams(p))
			return neg + strings.Join(ws, " "+neg)
		}
	}
	return neg + `"` + p + `"`
}

func filterText(req *search.Request, horizon int64) string {
	var f []string
	f = append(f, fWorkspace+":="+quote(req.Workspace))
	q := &req.Query
	if len(q.From) > 0 {
		f = append(f, fSender+":=["+quoteAll(q.From)+"]")
	}
	if !q.After.IsZero() {
		f = append(f, fTS+":>="+strconv.FormatInt(q.After.UnixMilli(), 10))
	}
	if !q.Before.IsZero() {
		f = append(f, fTS+":<"+strconv.FormatInt(q.Before.UnixMilli(), 10))
	}
	if q.HasAttachment {
		f = append(f, fAttach+":=true")
	}
	if horizon > 0 {
		f = append(f, fIx+":<="+strconv.FormatInt(horizon, 10))
	}
	return strings.Join(f, " && ")
}

func quoteAll(vs []string) string {
	q := make([]string, len(vs))
	for i, v := range vs {
		q[i] = quote(v)
	}
	return strings.Join(q, ",")
}

func parseHit(h api.SearchResultHit) (hit, error) {
	var out hit
	if h.Document == nil {
		return out, fmt.Errorf("search/typesense: a hit without a document")
	}
	d := *h.Document
	str := func(k string) string { s, _ := d[k].(string); return s }
	num := func(k string) int64 { f, _ := d[k].(float64); return int64(f) }
	out.ConvID, out.Seq, out.Sender, out.TS, out.MsgID = str(fConv), uint64(num(fSeq)), str(fSender), num(fTS), str(fMsg)
	out.Snippet.Text = str(fText)
	out.convh = num(fConvHash)
	if out.ConvID == "" || out.Seq == 0 {
		return out, fmt.Errorf("search/typesense: a hit without conv or seq")
	}
	if h.TextMatch != nil {
		out.textMatch = *h.TextMatch
		out.Score = float64(*h.TextMatch)
	}
	if h.Highlight != nil {
		if f, ok := (*h.Highlight)[fBody].(map[string]any); ok {
			if toks, ok := f["matched_tokens"].([]any); ok {
				for _, t := range toks {
					if s, ok := t.(string); ok {
						out.matched = append(out.matched, s)
					}
				}
			}
		}
	}
	return out, nil
}

// spansOf marks where the tokens Typesense matched occur in text, without
// regard to case: a Latin token where it is a whole word, a CJK gram
// anywhere.
func spansOf(text string, tokens []string) []search.Span {
	lower := strings.ToLower(text)
	if len(lower) != len(text) { // case folding moved bytes: match as written
		lower = text
	}
	var spans []search.Span
	for _, tok := range tokens {
		t := strings.ToLower(tok)
		if t == "" {
			continue
		}
		r, _ := utf8.DecodeRuneInString(t)
		whole := !cjk.Is(r)
		for i := 0; ; {
			j := strings.Index(lower[i:], t)
			if j < 0 {
				break
			}
			s, e := i+j, i+j+len(t)
			if !whole || (boundary(lower, s, true) && boundary(lower, e, false)) {
				spans = append(spans, search.Span{Start: s, End: e})
			}
			i = s + 1
			for i < len(lower) && !utf8.RuneStart(lower[i]) {
				i++
			}
		}
	}
	return spans
}

func boundary(s string, i int, before bool) bool {
	var r rune
	if before {
		if i == 0 {
			return true
		}
		r, _ = utf8.DecodeLastRuneInString(s[:i])
	} else {
		if i == len(s) {
			return true
		}
		r, _ = utf8.DecodeRuneInString(s[i:])
	}
	return !unicode.IsLetter(r) && !unicode.IsNumber(r)
}
