package bleve

import (
	"fmt"
	"slices"
	"testing"

	"github.com/blevesearch/bleve/v2/search/query"

	"github.com/parley-chat/parley/core/search"
)

func tokens(query bool, text string) []string {
	var out []string
	for _, tok := range newAnalyzer(query).Analyze([]byte(text)) {
		out = append(out, fmt.Sprintf("%s@%d", tok.Term, tok.Position))
	}
	return out
}

func TestAnalyzer(t *testing.T) {
	for _, tc := range []struct {
		query bool
		text  string
		want  []string
	}{
		{false, "我家在上海", []string{"我@1", "我家@1", "家@2", "家在@2", "在@3", "在上@3", "上@4", "上海@4", "海@5"}},
		{true, "上海", []string{"上海@1", "海@2"}},
		{true, "海", []string{"海@1"}},
		{true, "タワー", []string{"タワ@1", "ワー@2", "ー@3"}},
		{false, "세계 ok", []string{"세@1", "세계@1", "계@2", "ok@3"}},
		{false, "Running in 北京 today's", []string{"running@1", "run@1", "in@2", "北@3", "北京@3", "京@4", "today@5", "todai@5"}},
		{true, "Running today's", []string{"run@1", "todai@2"}},
	} {
		if got := tokens(tc.query, tc.text); !slices.Equal(got, tc.want) {
			t.Errorf("query=%v %q: %v, want %v", tc.query, tc.text, got, tc.want)
		}
	}
}

// TestQueriesNameTheirAnalyzer guards against bleve#1475: a query that
// leaves its analyzer to the mapping may get "standard", which neither
// stems nor cuts CJK text into grams.
func TestQueriesNameTheirAnalyzer(t *testing.T) {
	for _, term := range []search.Term{{Kind: search.Word, Text: "上海"}, {Kind: search.Phrase, Text: "a b"}, {Kind: search.Word, Text: "e-mails", Fuzzy: true}} {
		m, ok := textQuery(term, term.Fuzzy).(*query.MatchPhraseQuery)
		if !ok || m.Analyzer != queryAnalyzer || m.FieldVal != fText {
			t.Errorf("%+v: %#v, want a match-phrase query on %q with analyzer %q", term, m, fText, queryAnalyzer)
		}
	}
	// A one-token word is analyzed here, with the query analyzer.
	if tq, ok := textQuery(search.Term{Text: "Runs"}, false).(*query.TermQuery); !ok || tq.Term != "run" || tq.FieldVal != fText {
		t.Errorf("runs: %#v, want a term query for run", tq)
	}
	if fq, ok := textQuery(search.Term{Text: "Messages", Fuzzy: true}, true).(*query.FuzzyQuery); !ok || fq.Term != "messag" || fq.Fuzziness != 1 {
		t.Errorf("messages: %#v, want a fuzzy query for messag", fq)
	}
	m := newMapping()
	if got := m.AnalyzerNameForPath(fText); got != indexAnalyzer {
		t.Errorf("the text field's analyzer is %q, want %q", got, indexAnalyzer)
	}
	if len(m.TypeMapping) != 0 || m.DefaultMapping.Dynamic {
		t.Error("the mapping must have one static document mapping")
	}
}
