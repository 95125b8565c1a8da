package typesense_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	ts "github.com/typesense/typesense-go/v3/typesense"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/searchtest"
	"github.com/parley-chat/parley/core/search/typesense"
)

// The conformance suite runs against a real Typesense server (28 or
// later) when these name one; there is no stand-in.
const (
	envURL = "PARLEY_TEST_TYPESENSE_URL"     // e.g. http://127.0.0.1:8108
	envKey = "PARLEY_TEST_TYPESENSE_API_KEY" // an admin key
)

func server(t *testing.T) (url, key string) {
	url, key = os.Getenv(envURL), os.Getenv(envKey)
	if url == "" || key == "" {
		t.Skipf("%s and %s are not set: no Typesense server to run the conformance suite against", envURL, envKey)
	}
	return url, key
}

func TestConformance(t *testing.T) {
	url, key := server(t)
	searchtest.Run(t, func(t *testing.T) searchtest.Open {
		var b [6]byte
		_, _ = rand.Read(b[:])
		coll := "parley_test_" + hex.EncodeToString(b[:])
		t.Cleanup(func() {
			c := ts.NewClient(ts.WithServer(url), ts.WithAPIKey(key))
			_, _ = c.Collection(coll).Delete(context.Background())
		})
		return func(t *testing.T) search.Engine {
			t.Helper()
			e, err := typesense.Open(t.Context(), typesense.Config{URL: url, APIKey: key, Collection: coll, ConvChunk: 1000})
			if err != nil {
				t.Fatalf("Open: %v", err)
			}
			return e
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, c := range []typesense.Config{{}, {URL: "http://x"}, {URL: "http://x", APIKey: "k", ConvChunk: -1}} {
		if err := c.Validate(); err == nil {
			t.Errorf("%+v: Validate() = nil", c)
		}
	}
	if _, err := typesense.Open(context.Background(), typesense.Config{}); err == nil {
		t.Error("Open of an empty Config succeeded")
	}
}
