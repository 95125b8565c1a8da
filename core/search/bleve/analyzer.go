package bleve

import (
	"fmt"

	"github.com/blevesearch/bleve/v2/analysis"
	"github.com/blevesearch/bleve/v2/analysis/lang/en"
	"github.com/blevesearch/bleve/v2/analysis/token/lowercase"
	"github.com/blevesearch/bleve/v2/analysis/token/porter"
	"github.com/blevesearch/bleve/v2/analysis/tokenizer/unicode"
	"github.com/blevesearch/bleve/v2/registry"

	"github.com/parley-chat/parley/core/search/internal/cjk"
)

// The text field's analyzers, by the names the index mapping stores. The
// index one cuts CJK runs into unigrams and bigrams, the query one into
// bigrams (and a lone or last character), so a query phrase of either
// matches any one or two characters of a run (Bleve's stock cjk analyzer
// indexes bigrams only, and a one-character query then misses). Latin
// text is tokenized by Unicode word boundaries, lower-cased, stripped of
// English possessives and Porter-stemmed.
const (
	indexAnalyzer = "parley_text"
	queryAnalyzer = "parley_text_query"
)

func init() {
	for name, query := range map[string]bool{indexAnalyzer: false, queryAnalyzer: true} {
		err := registry.RegisterAnalyzer(name, func(map[string]interface{}, *registry.Cache) (analysis.Analyzer, error) {
			return newAnalyzer(query), nil
		})
		if err != nil {
			panic(fmt.Sprintf("search/bleve: register analyzer %s: %v", name, err))
		}
	}
}

func newAnalyzer(query bool) analysis.Analyzer {
	filters := []analysis.TokenFilter{lowercase.NewLowerCaseFilter(), en.NewPossessiveFilter()}
	if !query {
		filters = append(filters, keepWord{})
	}
	filters = append(filters, porter.NewPorterStemmer()) // skips KeyWord tokens: CJK grams, kept words
	if !query {
		filters = append(filters, dedupe{})
	}
	return &analysis.DefaultAnalyzer{
		Tokenizer:    &tokenizer{query: query, words: unicode.NewUnicodeTokenizer()},
		TokenFilters: filters,
	}
}

// keepWord indexes each word as written (lower-cased) beside its stem, at
// the same position, so a word with a typo finds the word it misspells:
// "meetimg" is one edit from "meeting", three from its stem "meet". The
// query analyzer does not keep words: a query term is its stem, which
// finds the stem, and with a typo, the word.
type keepWord struct{}

func (keepWord) Filter(in analysis.TokenStream) analysis.TokenStream {
	out := make(analysis.TokenStream, 0, 2*len(in))
	for _, tok := range in {
		if !tok.KeyWord {
			kept := *tok
			kept.KeyWord = true
			out = append(out, &kept)
		}
		out = append(out, tok)
	}
	return out
}

// dedupe drops a token equal to the one before it at the same position (a
// kept word that is its own stem).
type dedupe struct{}

func (dedupe) Filter(in analysis.TokenStream) analysis.TokenStream {
	out := in[:0]
	for _, tok := range in {
		if n := len(out); n > 0 && out[n-1].Position == tok.Position && string(out[n-1].Term) == string(tok.Term) {
			continue
		}
		out = append(out, tok)
	}
	return out
}

// tokenizer splits text into CJK runs, cut into grams, and other text,
// cut at Unicode word boundaries. Positions count characters of a CJK run
// and words elsewhere, the same way for the index and for queries.
type tokenizer struct {
	query bool
	words analysis.Tokenizer
}

func (t *tokenizer) Tokenize(input []byte) analysis.TokenStream {
	out := make(analysis.TokenStream, 0, len(input)/4+1)
	pos := 1
	for _, seg := range cjk.Split(input) {
		text := input[seg.Start:seg.End]
		if !seg.CJK {
			for _, tok := range t.words.Tokenize(text) {
				tok.Start += seg.Start
				tok.End += seg.Start
				tok.Position = pos
				pos++
				out = append(out, tok)
			}
			continue
		}
		for _, g := range cjk.Grams(text, t.query) {
			out = append(out, &analysis.Token{
				Term:     text[g.Start:g.End:g.End],
				Start:    seg.Start + g.Start,
				End:      seg.Start + g.End,
				Position: pos + g.Pos,
				Type:     analysis.Ideographic,
				KeyWord:  true,
			})
		}
		pos += cjk.Runes(text)
	}
	return out
}

// queryText is the query analyzer, for the engine's own use (stemming a
// prefix).
var queryText = newAnalyzer(true)
