package search_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/syncproto"
)

func TestParse(t *testing.T) {
	day := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want search.Query
	}{
		{"hello", search.Query{Terms: []search.Term{{Kind: search.Word, Text: "hello", Fuzzy: true}}}},
		{"hi there", search.Query{Terms: []search.Term{{Text: "hi"}, {Text: "there", Fuzzy: true}}}},
		{`"exact  phrase" -spam`, search.Query{
			Terms:   []search.Term{{Kind: search.Phrase, Text: "exact phrase"}},
			Exclude: []search.Term{{Kind: search.Word, Text: "spam"}}}},
		{`-"not this"`, search.Query{Terms: nil, Exclude: []search.Term{{Kind: search.Phrase, Text: "not this"}}, HasAttachment: true}},
		{"hel* -wor*", search.Query{Terms: []search.Term{{Kind: search.Prefix, Text: "hel"}}, Exclude: []search.Term{{Kind: search.Prefix, Text: "wor"}}}},
		{"上海 from:u_1 FROM:u_2 from:u_1", search.Query{Terms: []search.Term{{Text: "上海"}}, From: []string{"u_1", "u_2"}}},
		{"after:2026-03-01 before:1772409600000", search.Query{After: day, Before: day.Add(24 * time.Hour)}},
		{"x after:2026-03-01T00:00:00Z", search.Query{Terms: []search.Term{{Text: "x"}}, After: day}},
		{"has:attachment report", search.Query{Terms: []search.Term{{Text: "report", Fuzzy: true}}, HasAttachment: true}},
		{"!!! ok", search.Query{Terms: []search.Term{{Text: "ok"}}}},
		{"url:http://x", search.Query{Terms: []search.Term{{Text: "url:http://x", Fuzzy: true}}}},
		{"Message", search.Query{Terms: []search.Term{{Text: "Message", Fuzzy: true}}}},
		{"ab12c", search.Query{Terms: []search.Term{{Text: "ab12c"}}}},
	}
	// The has:attachment row above pairs -"not this" with a filter.
	tests[3].in += " has:attachment"
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := search.Parse(tt.in)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("Parse = %+v, want %+v", got, tt.want)
			}
			again, err := search.Parse(got.String())
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("Parse(%q) = %+v, %v; want %+v", got.String(), again, err, got)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"", "   ", "!!!", `"unterminated`, `"a"b`, `a"b`, "-", "- x", "h*", "*", "a*b", "a**",
		"from:", "from:bad/id", "has:link", "before:yesterday", "after:0", "before:-5",
		"-from:u_1", "-has:attachment", "after:2026-01-02 before:2026-01-01",
		"before:2026-01-01 before:2026-01-02", "-spam", `""`,
		strings.Repeat("a ", 33), strings.Repeat("x", search.MaxQueryLen+1), "bad\xffutf8",
	} {
		t.Run(in, func(t *testing.T) {
			q, err := search.Parse(in)
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want an error", in, q)
			}
			var qe *search.QueryError
			if !errors.As(err, &qe) || qe.Code() != "invalid_argument" {
				t.Fatalf("Parse(%q) error %T %v, want a *QueryError", in, err, err)
			}
			if !errors.Is(err, syncproto.ErrInvalidArgument) {
				t.Fatalf("errors.Is(%v, ErrInvalidArgument) = false", err)
			}
			if qe.Wire().Code != syncproto.ErrInvalidArgument.Code {
				t.Fatalf("Wire code %v", qe.Wire().Code)
			}
		})
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{
		"hello world", `"exact phrase" -nope hel*`, "from:u_1 before:2026-01-01 after:1700000000000 has:attachment",
		"我家在上海东边 タワー 세계", `-"a b" --x`, "a:b:c", "\"\" x", "after:2026-01-01T10:00:00+02:00",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := search.Parse(s)
		if err != nil {
			if !search.IsQueryError(err) {
				t.Fatalf("Parse(%q): %T %v is not a *QueryError", s, err, err)
			}
			return
		}
		again, err := search.Parse(q.String())
		if err != nil {
			t.Fatalf("Parse(%q) = %+v, but its String %q: %v", s, q, q.String(), err)
		}
		if !reflect.DeepEqual(again, q) {
			t.Fatalf("Parse(%q) = %+v; Parse(String()) = %+v", s, q, again)
		}
	})
}
