package bleve_test

import (
	"path/filepath"
	"testing"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/bleve"
	"github.com/parley-chat/parley/core/search/searchtest"
)

func newStore(t *testing.T) searchtest.Open {
	dir := filepath.Join(t.TempDir(), "index")
	return func(t *testing.T) search.Engine {
		t.Helper()
		e, err := bleve.Open(bleve.Config{Dir: dir})
		if err != nil {
			t.Fatalf("Open: %v", err)
		}
		return e
	}
}

func TestConformance(t *testing.T) {
	searchtest.Run(t, newStore)
}
