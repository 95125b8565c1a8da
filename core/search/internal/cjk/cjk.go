// Package cjk splits text into runs of Chinese, Japanese and Korean
// characters and cuts those runs into the one- and two-character pieces
// that search indexes, so that any one or two characters of a run find
// it. Both engines use it, so they index CJK text alike.
package cjk

import (
	"unicode"
	"unicode/utf8"
)

// Is says whether r is Han, Hiragana, Katakana (with the prolonged sound
// mark ー) or Hangul.
func Is(r rune) bool {
	return r >= 0x1100 && (unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) ||
		unicode.Is(unicode.Katakana, r) || unicode.Is(unicode.Hangul, r) || r == 0x30FC)
}

// Segment is the byte range [Start, End) of a text, a maximal run of CJK
// characters or a stretch of other text.
type Segment struct {
	Start, End int
	CJK        bool
}

// Split cuts b into segments, in order; they cover b.
func Split(b []byte) []Segment {
	var segs []Segment
	for i := 0; i < len(b); {
		r, size := utf8.DecodeRune(b[i:])
		c := Is(r)
		if n := len(segs); n > 0 && segs[n-1].CJK == c {
			segs[n-1].End = i + size
		} else {
			segs = append(segs, Segment{Start: i, End: i + size, CJK: c})
		}
		i += size
	}
	return segs
}

// Gram is one piece of a run: the byte range [Start, End) of the run and
// Pos, the index of its first character.
type Gram struct{ Start, End, Pos int }

// Grams cuts a run of CJK characters into pieces. For the index: every
// character, and every two neighbours, at the first one's position. For a
// query: a lone character as itself; otherwise every two neighbours and
// the last character alone (at its position), which as a phrase matches
// exactly where the index has the run, with no gap between positions.
func Grams(run []byte, query bool) []Gram {
	var starts []int
	for i := 0; i < len(run); {
		starts = append(starts, i)
		_, size := utf8.DecodeRune(run[i:])
		i += size
	}
	n := len(starts)
	end := func(i int) int {
		if i+1 < n {
			return starts[i+1]
		}
		return len(run)
	}
	gs := make([]Gram, 0, 2*n)
	for i := range n {
		if !query || n == 1 || i == n-1 {
			gs = append(gs, Gram{Start: starts[i], End: end(i), Pos: i})
		}
		if i+1 < n {
			gs = append(gs, Gram{Start: starts[i], End: end(i + 1), Pos: i})
		}
	}
	return gs
}

// Runes is how many characters run has (the positions a run takes).
func Runes(run []byte) int { return utf8.RuneCount(run) }
