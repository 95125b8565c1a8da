package bleve

import (
	"context"
	"strings"

	"github.com/blevesearch/bleve/v2/mapping"
	"github.com/blevesearch/bleve/v2/search"
	"github.com/blevesearch/bleve/v2/search/query"
	"github.com/blevesearch/bleve/v2/search/searcher"
	index "github.com/blevesearch/bleve_index_api"

	psearch "github.com/parley-chat/parley/core/search"
)

// shape says how to build a request's query.
type shape struct {
	horizon int64 // > 0: only what was indexed by then
	// perCandidate checks membership per candidate whatever the set's
	// size: right when the other clauses match few documents (a ts
	// window), where a union of the set's posting lists would cost more
	// than the whole rest of the search.
	perCandidate bool
	extra        []query.Query // more filters
}

// buildQuery is req as a Bleve query: the filters (one unscored clause)
// and each term must match, no exclusion may.
func buildQuery(req *psearch.Request, sh shape) query.Query {
	filters := append([]query.Query{termQuery(fWorkspace, req.Workspace)}, sh.extra...)
	var members map[string]struct{}
	if len(req.Convs) <= maxConvTerms && !sh.perCandidate {
		filters = append(filters, &termsQuery{field: fConv, terms: req.Convs})
	} else {
		members = make(map[string]struct{}, len(req.Convs))
		for _, c := range req.Convs {
			members[c] = struct{}{}
		}
	}
	q := &req.Query
	if len(q.From) > 0 {
		filters = append(filters, &termsQuery{field: fSender, terms: q.From})
	}
	if !q.After.IsZero() || !q.Before.IsZero() {
		lo, hi := int64(-1), int64(-1)
		if !q.After.IsZero() {
			lo = q.After.UnixMilli()
		}
		if !q.Before.IsZero() {
			hi = q.Before.UnixMilli() - 1
		}
		filters = append(filters, tsRange(lo, hi))
	}
	if q.HasAttachment {
		b := query.NewBoolFieldQuery(true)
		b.SetField(fAttach)
		filters = append(filters, b)
	}
	if sh.horizon > 0 {
		hi, yes := float64(sh.horizon), true
		r := query.NewNumericRangeInclusiveQuery(nil, &hi, nil, &yes)
		r.SetField(fIx)
		filters = append(filters, r)
	}
	must := []query.Query{&unscored{query.NewConjunctionQuery(filters)}}
	for _, t := range q.Terms {
		must = append(must, textQuery(t, t.Fuzzy))
	}
	var mustNot []query.Query
	for _, t := range q.Exclude {
		mustNot = append(mustNot, textQuery(t, false))
	}
	bq := query.NewBooleanQuery(must, nil, mustNot)
	if members != nil {
		return &memberQuery{q: bq, convs: members}
	}
	return bq
}

// maxConvTerms is the most allowed conversations that become a union of
// their posting lists. Each costs a dictionary lookup per index segment
// (about 12µs on the benchmark machine), so a larger set is checked per
// candidate instead, against the candidate's conversation doc value:
// then the cost follows what the rest of the query matches, which the
// query pays for anyway, and not the size of the set.
const maxConvTerms = 256

// tsRange matches lo <= ts <= hi; -1 leaves a side open.
func tsRange(lo, hi int64) query.Query {
	var min, max *float64
	if lo >= 0 {
		v := float64(lo)
		min = &v
	}
	if hi >= 0 {
		v := float64(hi)
		max = &v
	}
	yes := true
	r := query.NewNumericRangeInclusiveQuery(min, max, &yes, &yes)
	r.SetField(fTS)
	return r
}

func termQuery(field, term string) query.Query {
	t := query.NewTermQuery(term)
	t.SetField(field)
	return t
}

// textQuery matches one term on the text field with the query analyzer:
// named on the query itself (bleve#1475), or applied here. A word that
// analyzes to several tokens (CJK grams, "e-mail") is a phrase of them.
func textQuery(t psearch.Term, fuzzy bool) query.Query {
	switch t.Kind {
	case psearch.Prefix:
		p := strings.ToLower(t.Text)
		qs := []query.Query{prefixQuery(p)}
		// The index holds stems: "messages*" must find "messag".
		if toks := queryText.Analyze([]byte(p)); len(toks) == 1 && string(toks[0].Term) != p {
			qs = append(qs, prefixQuery(string(toks[0].Term)))
		}
		if len(qs) == 1 {
			return qs[0]
		}
		return query.NewDisjunctionQuery(qs)
	default:
		// One token is a term (or fuzzy) query: a phrase searcher would
		// read term positions for every candidate.
		if toks := queryText.Analyze([]byte(t.Text)); len(toks) == 1 {
			term := string(toks[0].Term)
			if fuzzy {
				f := query.NewFuzzyQuery(term)
				f.SetField(fText)
				f.SetFuzziness(1)
				return f
			}
			return termQuery(fText, term)
		}
		m := query.NewMatchPhraseQuery(t.Text)
		m.SetField(fText)
		m.Analyzer = queryAnalyzer
		if fuzzy {
			m.SetFuzziness(1)
		}
		return m
	}
}

func prefixQuery(p string) query.Query {
	q := query.NewPrefixQuery(p)
	q.SetField(fText)
	return q
}

// unscored runs q without scores or term vectors: filters must not move
// relevance, and a disjunction of term clauses run this way is merged by
// scorch into one posting-list bitmap.
type unscored struct{ q query.Query }

func (u *unscored) Searcher(ctx context.Context, i index.IndexReader, m mapping.IndexMapping, _ search.SearcherOptions) (search.Searcher, error) {
	return u.q.Searcher(ctx, i, m, search.SearcherOptions{Score: "none"})
}

// termsQuery matches documents whose field holds any of terms: one
// multi-term searcher, not a query object per term.
type termsQuery struct {
	field string
	terms []string
}

func (t *termsQuery) Searcher(ctx context.Context, i index.IndexReader, _ mapping.IndexMapping, opts search.SearcherOptions) (search.Searcher, error) {
	if len(t.terms) == 1 {
		return searcher.NewTermSearcher(ctx, i, t.terms[0], t.field, 1, opts)
	}
	return searcher.NewMultiTermSearcher(ctx, i, t.terms, t.field, 1, opts, false)
}

// memberQuery keeps the hits of q whose conversation is in convs. The
// check runs inside the searcher, before hits are counted, sorted or
// paged.
type memberQuery struct {
	q     query.Query
	convs map[string]struct{}
}

func (mq *memberQuery) Searcher(ctx context.Context, i index.IndexReader, m mapping.IndexMapping, opts search.SearcherOptions) (search.Searcher, error) {
	s, err := mq.q.Searcher(ctx, i, m, opts)
	if err != nil {
		return nil, err
	}
	dvr, err := i.DocValueReader([]string{fConv})
	if err != nil {
		_ = s.Close()
		return nil, err
	}
	return searcher.NewFilteringSearcher(ctx, s, func(_ *search.SearchContext, d *search.DocumentMatch) bool {
		in := false
		err := dvr.VisitDocValues(d.IndexInternalID, func(_ string, term []byte) {
			_, in = mq.convs[string(term)]
		})
		return err == nil && in
	}), nil
}
