// Package searchtest is the conformance suite every search.Engine passes:
// Run(t, newStore) with the engine's own way to make an empty store.
package searchtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/core/search"
)

// Open opens an engine on one store. Called again after the engine it
// returned was closed, it must find what was indexed.
type Open func(t *testing.T) search.Engine

// NewStore makes an empty store for one test and returns its Open. It
// cleans the store up with t.Cleanup.
type NewStore func(t *testing.T) Open

// Workspace is the workspace of every doc the suite indexes.
const Workspace = "w_test"

// T0 is the ts of the suite's first message (Unix ms).
const T0 = int64(1_772_000_000_000)

// Run runs the conformance suite.
func Run(t *testing.T, newStore NewStore) {
	for _, tc := range []struct {
		name string
		f    func(t *testing.T, open Open)
	}{
		{"Words", testWords},
		{"Stemming", testStemming},
		{"Phrase", testPhrase},
		{"Exclude", testExclude},
		{"Prefix", testPrefix},
		{"Fuzzy", testFuzzy},
		{"Filters", testFilters},
		{"CJK", testCJK},
		{"Membership", testMembership},
		{"ManyConversations", testManyConversations},
		{"NewestPagesUnderInserts", testNewestPages},
		{"RelevancePagesUnderInserts", testRelevancePages},
		{"SortOrders", testSortOrders},
		{"Delete", testDelete},
		{"Replace", testReplace},
		{"Snippet", testSnippet},
		{"BadRequests", testBadRequests},
		{"Reopen", testReopen},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.f(t, newStore(t))
		})
	}
}

// Msg makes a doc in Workspace: message seq of conv, sent i seconds after T0.
func Msg(conv string, seq uint64, i int, sender, text string) search.Doc {
	return search.Doc{
		Workspace: Workspace, ConvID: conv, Seq: seq, MsgID: fmt.Sprintf("m_%s_%d", conv, seq),
		Sender: sender, TS: T0 + int64(i)*1000, Text: text,
	}
}

func opened(t *testing.T, open Open, docs ...search.Doc) search.Engine {
	t.Helper()
	e := open(t)
	t.Cleanup(func() { _ = e.Close() })
	index(t, e, docs...)
	return e
}

func index(t *testing.T, e search.Engine, docs ...search.Doc) {
	t.Helper()
	if len(docs) == 0 {
		return
	}
	if err := e.Index(context.Background(), docs); err != nil {
		t.Fatalf("Index: %v", err)
	}
}

// find runs q over convs and returns the hits as conv/seq, in order.
func find(t *testing.T, e search.Engine, q string, convs ...string) []string {
	t.Helper()
	return keys(run(t, e, req(t, q, search.Newest, convs...)).Hits)
}

func req(t *testing.T, q string, sort search.Sort, convs ...string) search.Request {
	t.Helper()
	pq, err := search.Parse(q)
	if err != nil {
		t.Fatalf("Parse(%q): %v", q, err)
	}
	if len(convs) == 0 {
		convs = []string{"c_a", "c_b", "c_c"}
	}
	return search.Request{Workspace: Workspace, Convs: convs, Query: pq, Sort: sort, Limit: search.MaxLimit, Count: true}
}

func run(t *testing.T, e search.Engine, r search.Request) search.Result {
	t.Helper()
	res, err := e.Search(context.Background(), r)
	if err != nil {
		t.Fatalf("Search(%q): %v", r.Query.String(), err)
	}
	return res
}

func keys(hits []search.Hit) []string {
	ks := make([]string, len(hits))
	for i, h := range hits {
		ks[i] = fmt.Sprintf("%s/%d", h.ConvID, h.Seq)
	}
	return ks
}

func expect(t *testing.T, e search.Engine, q string, want ...string) {
	t.Helper()
	got := find(t, e, q)
	if want == nil {
		want = []string{}
	}
	if !slices.Equal(got, want) {
		t.Errorf("%q found %v, want %v", q, got, want)
	}
}

func testWords(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "hello world"),
		Msg("c_a", 2, 2, "u_1", "hello there"),
		Msg("c_b", 1, 3, "u_2", "Peace in the WORLD!"))
	expect(t, e, "hello world", "c_a/1")
	expect(t, e, "world", "c_b/1", "c_a/1")
	expect(t, e, "HELLO", "c_a/2", "c_a/1")
	expect(t, e, "goodbye")
}

func testStemming(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "she was running late"),
		Msg("c_a", 2, 2, "u_1", "two new messages for you"),
		Msg("c_a", 3, 3, "u_1", "the team's plans"))
	expect(t, e, "runs", "c_a/1")
	expect(t, e, "run", "c_a/1")
	expect(t, e, "message", "c_a/2")
	expect(t, e, "plan team", "c_a/3")
}

func testPhrase(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "the quick brown fox"),
		Msg("c_a", 2, 2, "u_1", "brown and quick, the fox"))
	expect(t, e, `"quick brown"`, "c_a/1")
	expect(t, e, `"brown quick"`)
	expect(t, e, "quick brown", "c_a/2", "c_a/1")
}

func testExclude(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "lunch today?"),
		Msg("c_a", 2, 2, "u_1", "lunch spam offer"),
		Msg("c_a", 3, 3, "u_1", "lunch, a special offer"))
	expect(t, e, "lunch -spam", "c_a/3", "c_a/1")
	expect(t, e, `lunch -"special offer"`, "c_a/2", "c_a/1")
}

func testPrefix(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "Hello there"),
		Msg("c_a", 2, 2, "u_1", "a helicopter"),
		Msg("c_a", 3, 3, "u_1", "in a shell"),
		Msg("c_a", 4, 4, "u_1", "new messages"))
	expect(t, e, "hel*", "c_a/2", "c_a/1")
	expect(t, e, "HELI*", "c_a/2")
	expect(t, e, "messages*", "c_a/4")
	expect(t, e, "hel* there", "c_a/1")
}

func testFuzzy(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "the meeting is tomorrow"),
		Msg("c_a", 2, 2, "u_1", "hello friend"))
	expect(t, e, "meetimg", "c_a/1")            // 7 letters: one typo
	expect(t, e, "tomorow", "c_a/1")            // a letter missing
	expect(t, e, "frend", "c_a/2")              // 5 letters: one typo
	expect(t, e, "helo")                        // 4 letters: exact only
	expect(t, e, "meetinng tomorroww", "c_a/1") // a typo in every word
	expect(t, e, "meetinngg")                   // two typos
	expect(t, e, "-meetimg hello", "c_a/2")
}

func testFilters(t *testing.T, open Open) {
	withFile := Msg("c_a", 3, 30, "u_2", "report attached")
	withFile.HasAttachment = true
	e := opened(t, open,
		Msg("c_a", 1, 10, "u_1", "report draft"),
		Msg("c_a", 2, 20, "u_2", "report final"),
		withFile)
	ms := func(i int) string { return fmt.Sprint(T0 + int64(i)*1000) }
	expect(t, e, "report from:u_2", "c_a/3", "c_a/2")
	expect(t, e, "from:u_1", "c_a/1")
	expect(t, e, "report from:u_1 from:u_2", "c_a/3", "c_a/2", "c_a/1")
	expect(t, e, "from:u_3")
	expect(t, e, "report after:"+ms(20), "c_a/3", "c_a/2")
	expect(t, e, "report before:"+ms(20), "c_a/1")
	expect(t, e, "after:"+ms(11)+" before:"+ms(30), "c_a/2")
	expect(t, e, "has:attachment", "c_a/3")
	expect(t, e, "report has:attachment from:u_1")
	day := time.UnixMilli(T0).UTC().Format(time.DateOnly)
	next := time.UnixMilli(T0).UTC().Add(24 * time.Hour).Format(time.DateOnly)
	expect(t, e, "report after:"+day+" before:"+next, "c_a/3", "c_a/2", "c_a/1")
}

func testCJK(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "我家在上海东边"),
		Msg("c_a", 2, 2, "u_1", "東京タワーに行きました"),
		Msg("c_a", 3, 3, "u_1", "안녕하세요 세계"),
		Msg("c_a", 4, 4, "u_1", "meeting in 北京 tomorrow"))
	for _, tc := range []struct {
		q    string
		want []string
	}{
		{"上海", []string{"c_a/1"}},
		{"海", []string{"c_a/1"}},
		{"东边", []string{"c_a/1"}},
		{"我", []string{"c_a/1"}},
		{"上海东边", []string{"c_a/1"}},
		{"上东", nil},
		{"南京", nil},
		{"タワー", []string{"c_a/2"}},
		{"タワ", []string{"c_a/2"}},
		{"ワ", []string{"c_a/2"}},
		{"東京", []string{"c_a/2"}},
		{"세계", []string{"c_a/3"}},
		{"세", []string{"c_a/3"}},
		{"안녕", []string{"c_a/3"}},
		{"北京 meeting", []string{"c_a/4"}},
		{"京", []string{"c_a/4", "c_a/2"}},
	} {
		expect(t, e, tc.q, tc.want...)
	}
}

func testMembership(t *testing.T, open Open) {
	other := Msg("c_a", 9, 9, "u_9", "secret plans")
	other.Workspace = "w_other"
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "plans for friday"),
		Msg("c_secret", 1, 2, "u_2", "secret plans for friday"),
		other)
	for _, convs := range [][]string{{"c_b"}, {"c_nonexistent"}, {"c_b", "c_nonexistent"}} {
		r := req(t, "secret", search.Newest, convs...)
		for _, sort := range []search.Sort{search.Newest, search.Relevance} {
			r.Sort = sort
			if res := run(t, e, r); len(res.Hits) != 0 || res.Total != 0 || res.Next != "" {
				t.Errorf("convs %v, sort %v: %+v, want nothing", convs, sort, res)
			}
		}
	}
	r := req(t, "plans", search.Newest, "c_a")
	if res := run(t, e, r); !slices.Equal(keys(res.Hits), []string{"c_a/1"}) || res.Total != 1 {
		t.Errorf("member of c_a: %v total %d, want [c_a/1] total 1 (no other workspace)", keys(res.Hits), res.Total)
	}
	r.Convs = nil
	if res := run(t, e, r); len(res.Hits) != 0 || res.Total != 0 {
		t.Errorf("no conversations: %+v, want nothing", res)
	}
	r.Convs = []string{"c_a", "c_secret"}
	if res := run(t, e, r); len(res.Hits) != 2 || res.Total != 2 {
		t.Errorf("member of both: %v total %d, want both", keys(res.Hits), res.Total)
	}
	r.Count = false
	if res := run(t, e, r); len(res.Hits) != 2 || res.Total != 0 {
		t.Errorf("without Count: %v total %d, want both and total 0", keys(res.Hits), res.Total)
	}
}

// testManyConversations: a user in 10,000 conversations, a few with
// matches, some matches in conversations they are not in.
func testManyConversations(t *testing.T, open Open) {
	var docs []search.Doc
	for i := range 50 {
		docs = append(docs, Msg(fmt.Sprintf("c_%05d", i*400), 1, i, "u_1", "quarterly numbers"))
		docs = append(docs, Msg(fmt.Sprintf("c_x%05d", i), 1, i, "u_1", "quarterly numbers"))
	}
	e := opened(t, open, docs...)
	convs := make([]string, 10000)
	for i := range convs {
		convs[i] = fmt.Sprintf("c_%05d", i*2) // every other: i*400 is in
	}
	r := req(t, "quarterly", search.Newest, convs...)
	r.Limit = 20
	var got []string
	start := time.Now()
	for page := 0; ; page++ {
		res := run(t, e, r)
		if page == 0 && res.Total != 50 {
			t.Errorf("total %d, want 50", res.Total)
		}
		got = append(got, keys(res.Hits)...)
		if res.Next == "" {
			break
		}
		r.Cursor = res.Next
	}
	t.Logf("10,000 conversations: %d hits in %v", len(got), time.Since(start))
	if len(got) != 50 {
		t.Fatalf("got %d hits, want 50: %v", len(got), got)
	}
	for _, k := range got {
		if strings.HasPrefix(k, "c_x") {
			t.Fatalf("hit %s in a conversation not allowed", k)
		}
	}
}

// pages collects every page of r while more is indexed alongside.
func pages(t *testing.T, e search.Engine, r search.Request, during func(page int)) []string {
	t.Helper()
	var got []string
	for page := 0; ; page++ {
		res := run(t, e, r)
		got = append(got, keys(res.Hits)...)
		if res.Next == "" {
			return got
		}
		if page > 100 {
			t.Fatal("more than 100 pages")
		}
		r.Cursor = res.Next
		during(page)
	}
}

func pagingDocs() ([]search.Doc, []string) {
	var docs []search.Doc
	for i := range 40 {
		conv := []string{"c_a", "c_b", "c_c"}[i%3]
		docs = append(docs, Msg(conv, uint64(i+1), i/2, "u_1", fmt.Sprintf("status update number %d", i))) // ts ties in pairs
	}
	want := keys(hitsOf(docs))
	return docs, want
}

func hitsOf(docs []search.Doc) []search.Hit {
	hs := make([]search.Hit, len(docs))
	for i, d := range docs {
		hs[i] = search.Hit{ConvID: d.ConvID, Seq: d.Seq}
	}
	return hs
}

// inserter indexes new matching messages, newest of all, while pages are read.
func inserter(t *testing.T, e search.Engine) (during func(int), wait func()) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	n := 0
	during = func(page int) {
		for range 3 {
			n++
			d := Msg("c_a", uint64(1000+n), 1000+n, "u_1", "status update, a late one")
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := e.Index(context.Background(), []search.Doc{d}); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
				}
			}()
		}
		if page%2 == 0 {
			wg.Wait() // some pages read after the inserts landed, some while they run
		}
	}
	return during, func() {
		wg.Wait()
		if err := errors.Join(errs...); err != nil {
			t.Fatalf("Index during paging: %v", err)
		}
	}
}

// pageUnderInserts reads every page of "status" in sort, 7 hits a page,
// while newer matching messages are indexed, and checks that the pages
// hold each message indexed before the first page exactly once.
func pageUnderInserts(t *testing.T, open Open, sort search.Sort) (docs []search.Doc, got []string) {
	docs, all := pagingDocs()
	e := opened(t, open, docs...)
	r := req(t, "status", sort)
	r.Limit = 7
	if first := run(t, e, r); first.Total != len(all) {
		t.Errorf("total %d, want %d", first.Total, len(all))
	}
	during, wait := inserter(t, e)
	got = pages(t, e, r, during)
	wait()
	if dups := duplicates(got); len(dups) > 0 {
		t.Fatalf("pages repeat %v", dups)
	}
	slices.Sort(all)
	if sorted := slices.Sorted(slices.Values(got)); !slices.Equal(sorted, all) {
		t.Fatalf("pages hold %v, want exactly the first %d messages %v", got, len(all), all)
	}
	return docs, got
}

func testNewestPages(t *testing.T, open Open) {
	docs, got := pageUnderInserts(t, open, search.Newest)
	ts := map[string]int64{}
	for _, d := range docs {
		ts[fmt.Sprintf("%s/%d", d.ConvID, d.Seq)] = d.TS
	}
	for i := 1; i < len(got); i++ {
		if ts[got[i]] > ts[got[i-1]] {
			t.Fatalf("%s (ts %d) after %s (ts %d)", got[i], ts[got[i]], got[i-1], ts[got[i-1]])
		}
	}
}

func testRelevancePages(t *testing.T, open Open) {
	pageUnderInserts(t, open, search.Relevance)
}

func duplicates(ks []string) []string {
	seen := map[string]bool{}
	var dups []string
	for _, k := range ks {
		if seen[k] {
			dups = append(dups, k)
		}
		seen[k] = true
	}
	return dups
}

func testSortOrders(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "red car"),
		Msg("c_b", 1, 2, "u_1", "a red and very old and rather rusty car in the yard"),
		Msg("c_c", 1, 3, "u_1", "car, red"))
	got := keys(run(t, e, req(t, "red car", search.Newest)).Hits)
	if !slices.Equal(got, []string{"c_c/1", "c_b/1", "c_a/1"}) {
		t.Errorf("newest first: %v", got)
	}
	got = keys(run(t, e, req(t, "red car", search.Relevance)).Hits)
	if len(got) != 3 || got[2] != "c_b/1" {
		t.Errorf("by relevance: %v, want the long message last", got)
	}
	res := run(t, e, req(t, `"red car"`, search.Relevance))
	if !slices.Equal(keys(res.Hits), []string{"c_a/1"}) || res.Hits[0].Score <= 0 {
		t.Errorf("phrase by relevance: %+v", res.Hits)
	}
}

func testDelete(t *testing.T, open Open) {
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_1", "delete me"),
		Msg("c_a", 2, 2, "u_1", "delete me too"),
		Msg("c_a", 3, 3, "u_1", "keep me, do not delete"),
		Msg("c_b", 1, 4, "u_1", "delete the whole conversation"),
		Msg("c_b", 2, 5, "u_1", "all of it, delete"))
	ctx := context.Background()
	if err := e.Delete(ctx, "c_a", 1, 2, 99); err != nil {
		t.Fatal(err)
	}
	expect(t, e, "delete", "c_b/2", "c_b/1", "c_a/3")
	if err := e.DeleteConversation(ctx, "c_b"); err != nil {
		t.Fatal(err)
	}
	expect(t, e, "delete", "c_a/3")
	if err := e.DeleteConversation(ctx, "c_nothing"); err != nil {
		t.Fatal(err)
	}
}

func testReplace(t *testing.T, open Open) {
	e := opened(t, open, Msg("c_a", 1, 1, "u_1", "original words"))
	index(t, e, Msg("c_a", 1, 1, "u_1", "edited text"))
	expect(t, e, "original")
	expect(t, e, "edited", "c_a/1")
}

func testSnippet(t *testing.T, open Open) {
	long := strings.Repeat("filler words here ", 30) + "the needle sits here" + strings.Repeat(" more filler", 30)
	e := opened(t, open,
		Msg("c_a", 1, 1, "u_7", "Hello big World"),
		Msg("c_a", 2, 2, "u_7", long),
		Msg("c_a", 3, 3, "u_7", "我家在上海东边"))
	res := run(t, e, req(t, "hello world", search.Newest))
	if len(res.Hits) != 1 {
		t.Fatalf("hits %v", keys(res.Hits))
	}
	h := res.Hits[0]
	if h.MsgID != "m_c_a_1" || h.Sender != "u_7" || h.TS != T0+1000 {
		t.Errorf("hit %+v", h)
	}
	if got := marked(h.Snippet); !slices.Equal(got, []string{"Hello", "World"}) || h.Snippet.Text != "Hello big World" {
		t.Errorf("snippet %q marks %q", h.Snippet.Text, got)
	}
	res = run(t, e, req(t, "needle", search.Newest))
	if len(res.Hits) != 1 {
		t.Fatalf("needle hits %v", keys(res.Hits))
	}
	s := res.Hits[0].Snippet
	if got := marked(s); !slices.Equal(got, []string{"needle"}) || len(s.Text) > search.SnippetLen+8 {
		t.Errorf("long snippet %q marks %q", s.Text, got)
	}
	res = run(t, e, req(t, "上海", search.Newest))
	if len(res.Hits) != 1 || !slices.Equal(marked(res.Hits[0].Snippet), []string{"上海"}) {
		t.Errorf("CJK snippet %+v", res.Hits)
	}
}

func marked(s search.Snippet) []string {
	var out []string
	for _, m := range s.Marks {
		out = append(out, s.Text[m.Start:m.End])
	}
	return out
}

func testBadRequests(t *testing.T, open Open) {
	e := opened(t, open, Msg("c_a", 1, 1, "u_1", "x"))
	ctx := context.Background()
	good := req(t, "x", search.Newest)
	for name, mod := range map[string]func(*search.Request){
		"cursor":          func(r *search.Request) { r.Cursor = "garbage" },
		"cursor for sort": func(r *search.Request) { r.Cursor = search.Cursor{Sort: search.Relevance, Horizon: 1}.Encode() },
		"limit":           func(r *search.Request) { r.Limit = search.MaxLimit + 1 },
		"workspace":       func(r *search.Request) { r.Workspace = "" },
		"conversation":    func(r *search.Request) { r.Convs = []string{"c/1"} },
	} {
		r := good
		mod(&r)
		if _, err := e.Search(ctx, r); !search.IsQueryError(err) {
			t.Errorf("%s: %v, want a *QueryError", name, err)
		}
	}
	if err := e.Index(ctx, []search.Doc{{Workspace: Workspace, ConvID: "c_a"}}); err == nil {
		t.Error("Index of a doc without seq succeeded")
	}
}

func testReopen(t *testing.T, open Open) {
	e := open(t)
	index(t, e, Msg("c_a", 1, 1, "u_1", "kept across restarts"))
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	ctx := context.Background()
	if _, err := e.Search(ctx, req(t, "kept", search.Newest)); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Search after Close: %v, want ErrClosed", err)
	}
	if err := e.Index(ctx, []search.Doc{Msg("c_a", 2, 2, "u_1", "x")}); !errors.Is(err, search.ErrClosed) {
		t.Errorf("Index after Close: %v, want ErrClosed", err)
	}
	e = opened(t, open)
	expect(t, e, "restarts", "c_a/1")
	index(t, e, Msg("c_a", 2, 2, "u_1", "restarts are fine"))
	r := req(t, "restarts", search.Relevance)
	r.Limit = 1
	res := run(t, e, r)
	r.Cursor = res.Next
	res2 := run(t, e, r)
	if got := append(keys(res.Hits), keys(res2.Hits)...); len(got) != 2 || got[0] == got[1] {
		t.Errorf("relevance pages after reopen: %v", got)
	}
}
