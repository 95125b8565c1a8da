package search_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/parley-chat/parley/core/search"
)

func TestMakeSnippet(t *testing.T) {
	s := search.MakeSnippet("hello big world", []search.Span{{10, 15}, {0, 5}, {2, 4}, {99, 100}})
	want := search.Snippet{Text: "hello big world", Marks: []search.Span{{0, 5}, {10, 15}}}
	if !reflect.DeepEqual(s, want) {
		t.Fatalf("got %+v, want %+v", s, want)
	}
	long := strings.Repeat("a ", 200) + "needle" + strings.Repeat(" 海", 200)
	i := strings.Index(long, "needle")
	s = search.MakeSnippet(long, []search.Span{{i, i + 6}})
	if len(s.Marks) != 1 || s.Text[s.Marks[0].Start:s.Marks[0].End] != "needle" {
		t.Fatalf("long snippet %q marks %v", s.Text, s.Marks)
	}
	if !strings.HasPrefix(s.Text, "…") || !strings.HasSuffix(s.Text, "…") || len(s.Text) > search.SnippetLen+2*len("…") {
		t.Fatalf("long snippet %q", s.Text)
	}
	if !strings.Contains(s.Text, "海") || strings.ContainsRune(s.Text, '\uFFFD') {
		t.Fatalf("snippet cut a character: %q", s.Text)
	}
}

func TestCursor(t *testing.T) {
	for _, c := range []search.Cursor{
		{Sort: search.Newest, TS: 1700000000000, Conv: "c_1", Seq: 7},
		{Sort: search.Relevance, Horizon: 12345, Offset: 40},
	} {
		got, err := search.DecodeCursor(c.Encode(), c.Sort)
		if err != nil || got != c {
			t.Fatalf("DecodeCursor(Encode(%+v)) = %+v, %v", c, got, err)
		}
		other := search.Newest + search.Relevance - c.Sort
		if _, err := search.DecodeCursor(c.Encode(), other); !search.IsQueryError(err) {
			t.Fatalf("cursor for %v accepted for %v: %v", c.Sort, other, err)
		}
	}
	for _, bad := range []string{"", "!!", "AQ", "AgA", "AQE"} {
		if _, err := search.DecodeCursor(bad, search.Newest); !search.IsQueryError(err) {
			t.Fatalf("DecodeCursor(%q) = %v, want a *QueryError", bad, err)
		}
	}
}
