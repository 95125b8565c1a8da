package bleve_test

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/bleve"
	"github.com/parley-chat/parley/core/search/searchtest"
)

func newStore(t *testing.T) searchtest.Open { return newStoreWith(bleve.Config{})(t) }

func newStoreWith(cfg bleve.Config) searchtest.NewStore {
	return func(t *testing.T) searchtest.Open {
		cfg.Dir = filepath.Join(t.TempDir(), "index")
		return func(t *testing.T) search.Engine {
			t.Helper()
			e, err := bleve.Open(cfg)
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return e
		}
	}
}

func TestConformance(t *testing.T) {
	searchtest.Run(t, newStore)
}

// TestConformanceWindows runs the suite with newest-first windows of two
// messages, so that its small indexes take the windowed path, widening
// and all.
func TestConformanceWindows(t *testing.T) {
	searchtest.Run(t, newStoreWith(bleve.Config{WindowDocs: 2}))
}

// TestExcludedPrefix: Bleve can exclude a prefix (Typesense cannot, so
// it is not in the conformance suite).
func TestExcludedPrefix(t *testing.T) {
	e := newStore(t)(t)
	defer e.Close()
	ctx := t.Context()
	docs := []search.Doc{
		searchtest.Msg("c_a", 1, 1, "u_1", "lunch today?"),
		searchtest.Msg("c_a", 2, 2, "u_1", "lunch offer"),
		searchtest.Msg("c_a", 3, 3, "u_1", "lunch, officially"),
	}
	if err := e.Index(ctx, docs); err != nil {
		t.Fatal(err)
	}
	q, err := search.Parse("lunch -off*")
	if err != nil {
		t.Fatal(err)
	}
	res, err := e.Search(ctx, search.Request{Workspace: searchtest.Workspace, Convs: []string{"c_a"}, Query: q})
	if err != nil || len(res.Hits) != 1 || res.Hits[0].Seq != 1 {
		t.Fatalf("lunch -off*: %+v, %v; want c_a/1 alone", res.Hits, err)
	}
}

func TestOpenEmptyDir(t *testing.T) {
	dir := t.TempDir() // exists, empty
	e, err := bleve.Open(bleve.Config{Dir: dir})
	if err != nil {
		t.Fatalf("Open of an empty directory: %v", err)
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := bleve.Open(bleve.Config{}); err == nil {
		t.Fatal("Open without a Dir succeeded")
	}
}
