package search

import (
	"cmp"
	"slices"
	"unicode/utf8"
)

// Snippet is a piece of a message's text with the matched terms marked.
// Text is plain text (never markup); Marks are byte ranges of Text, in
// order and not overlapping. A client renders them as it likes.
type Snippet struct {
	Text  string
	Marks []Span
}

// Span is the byte range [Start, End).
type Span struct{ Start, End int }

// Snippet sizes, in bytes.
const (
	SnippetLen    = 200 // at most this much text (plus an ellipsis at either end)
	snippetBefore = 60  // text kept before the first mark
)

const ellipsis = "…"

// MakeSnippet cuts text around the first of marks (byte ranges of text, in
// any order, possibly overlapping; ranges outside text are dropped) and
// returns the window with the marks that fall in it. Engines use it so
// that every engine's snippets look alike.
func MakeSnippet(text string, marks []Span) Snippet {
	ms := make([]Span, 0, len(marks))
	for _, m := range marks {
		if m.Start >= 0 && m.Start < m.End && m.End <= len(text) {
			ms = append(ms, m)
		}
	}
	slices.SortFunc(ms, func(a, b Span) int { return cmp.Or(cmp.Compare(a.Start, b.Start), cmp.Compare(a.End, b.End)) })
	merged := ms[:0]
	for _, m := range ms {
		if n := len(merged); n > 0 && m.Start < merged[n-1].End {
			merged[n-1].End = max(merged[n-1].End, m.End)
			continue
		}
		merged = append(merged, m)
	}
	start, end := 0, len(text)
	if len(text) > SnippetLen {
		if len(merged) > 0 {
			start = max(0, merged[0].Start-snippetBefore)
		}
		end = min(len(text), start+SnippetLen)
		start = max(0, min(start, end-SnippetLen))
		start, end = runeStart(text, start), runeStart(text, end)
	}
	var s Snippet
	prefix := ""
	if start > 0 {
		prefix = ellipsis
	}
	s.Text = prefix + text[start:end]
	if end < len(text) {
		s.Text += ellipsis
	}
	for _, m := range merged {
		if m.End <= start || m.Start >= end {
			continue
		}
		s.Marks = append(s.Marks, Span{
			Start: len(prefix) + max(m.Start, start) - start,
			End:   len(prefix) + min(m.End, end) - start,
		})
	}
	return s
}

// runeStart moves i back to the start of the character it is in.
func runeStart(s string, i int) int {
	for i > 0 && i < len(s) && !utf8.RuneStart(s[i]) {
		i--
	}
	return i
}
