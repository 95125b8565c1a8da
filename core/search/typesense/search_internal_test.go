package typesense

import (
	"reflect"
	"strings"
	"testing"

	"github.com/parley-chat/parley/core/search"
)

// These test what this package makes of a query and a document, which
// needs no server; what Typesense does with it is the conformance suite's
// part, against a real server.

func TestQueryText(t *testing.T) {
	for _, tc := range []struct{ in, q, prefix string }{
		{"hello world", "hello world", "false"},
		{`"red car" -spam hel*`, `"red car" -spam hel`, "true"},
		{"上海", "上海 海", "false"},
		{"北京 meeting", "北京 京 meeting", "false"},
		{`x -"上海东"`, "x -上海 -海东 -东", "false"},
		{"from:u_1", "*", "false"},
	} {
		q, err := search.Parse(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		got, prefix, err := queryText(&q)
		if err != nil || got != tc.q || prefix != tc.prefix {
			t.Errorf("%q: %q prefix=%s %v, want %q prefix=%s", tc.in, got, prefix, err, tc.q, tc.prefix)
		}
	}
	for _, in := range []string{"ab* cd*", "x -ab*", "-x has:attachment"} {
		q, err := search.Parse(in)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := queryText(&q); !search.IsQueryError(err) {
			t.Errorf("%q: %v, want a *QueryError", in, err)
		}
	}
}

func TestBody(t *testing.T) {
	got := strings.Fields(body("go to 上海东 now"))
	want := []string{"go", "to", "上", "上海", "海", "海东", "东", "now"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("body: %q, want %q", got, want)
	}
}

func TestFilterText(t *testing.T) {
	q, err := search.Parse("x from:u_1 has:attachment after:1000 before:2000")
	if err != nil {
		t.Fatal(err)
	}
	req := search.Request{Workspace: "w_1", Query: q}
	want := "ws:=`w_1` && sender:=[`u_1`] && ts:>=1000 && ts:<2000 && att:=true && ix:<=7"
	if got := filterText(&req, 7); got != want {
		t.Errorf("filter %q, want %q", got, want)
	}
}

func TestSpansOf(t *testing.T) {
	text := "Hello, hello-world; othello 我家在上海"
	got := spansOf(text, []string{"hello", "上海"})
	cjkAt := len("Hello, hello-world; othello 我家在")
	want := []search.Span{{Start: 0, End: 5}, {Start: 7, End: 12}, {Start: cjkAt, End: len(text)}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("spans %v, want %v", got, want)
	}
}
