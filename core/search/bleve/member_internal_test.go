package bleve

import (
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/searchtest"
)

// TestMembershipPaths: a set of maxConvTerms conversations (one posting
// union) and one of maxConvTerms+1 (checked per candidate) find the same.
func TestMembershipPaths(t *testing.T) {
	e, err := Open(Config{Dir: filepath.Join(t.TempDir(), "index")})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	var docs []search.Doc
	var convs []string
	for i := range maxConvTerms + 40 {
		c := fmt.Sprintf("c_%04d", i)
		if i < maxConvTerms {
			convs = append(convs, c)
		}
		docs = append(docs, searchtest.Msg(c, 1, i, "u_1", fmt.Sprintf("weekly sync %d", i%7)))
	}
	if err := e.Index(t.Context(), docs); err != nil {
		t.Fatal(err)
	}
	q, err := search.Parse("weekly sync")
	if err != nil {
		t.Fatal(err)
	}
	var got [2][]string
	var total [2]int
	for i, set := range [][]string{convs, append(slices.Clone(convs), "c_none")} {
		for r := (search.Request{Workspace: searchtest.Workspace, Convs: set, Query: q, Limit: 50, Count: true}); ; {
			res, err := e.Search(t.Context(), r)
			if err != nil {
				t.Fatal(err)
			}
			if total[i] == 0 {
				total[i] = res.Total
			}
			for _, h := range res.Hits {
				got[i] = append(got[i], h.ConvID)
			}
			if r.Cursor = res.Next; r.Cursor == "" {
				break
			}
		}
	}
	if len(got[0]) != maxConvTerms || !slices.Equal(got[0], got[1]) || total[0] != maxConvTerms || total[1] != maxConvTerms {
		t.Fatalf("union: %d hits (total %d); per candidate: %d hits (total %d); want %d, alike",
			len(got[0]), total[0], len(got[1]), total[1], maxConvTerms)
	}
}

func TestSortKey(t *testing.T) {
	tss := []int64{0, 1, 255, 256, 1 << 40, 1_772_000_000_000, 1_772_000_000_001, 253_402_214_400_000}
	for i := 1; i < len(tss); i++ {
		a, b := sortKey(tss[i-1], "c_zz", 99), sortKey(tss[i], "c_a", 1)
		if !(a < b) || len(a) != 16 || strings.ContainsRune(a, 0xff) {
			t.Errorf("sortKey(%d) = %q, not below sortKey(%d) = %q", tss[i-1], a, tss[i], b)
		}
	}
	if sortKey(5, "c_a", 1) == sortKey(5, "c_a", 2) || sortKey(5, "c_a", 1) == sortKey(5, "c_b", 1) {
		t.Error("messages of one ms share a sort key")
	}
}
