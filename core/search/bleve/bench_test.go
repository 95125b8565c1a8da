package bleve_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/parley-chat/parley/core/search"
	"github.com/parley-chat/parley/core/search/bleve"
)

// The benchmark index: -search.docs messages spread over -search.convs
// conversations (the target is 1,000,000 over 1,000). It is built
// once into the OS temp dir and kept there for later runs.
var (
	benchDocs  = flag.Int("search.docs", 100_000, "messages in the benchmark index")
	benchConvs = flag.Int("search.convs", 1_000, "conversations in the benchmark index")
)

var (
	benchOnce sync.Once
	benchDir  string
	benchErr  error
)

// vocab is a Zipf-distributed vocabulary: a few common words, many rare.
var vocab = func() []string {
	r := rand.New(rand.NewPCG(1, 2))
	syll := []string{"ka", "lo", "mi", "ne", "ru", "ta", "po", "si", "de", "va", "qu", "zo", "ber", "tin", "gal"}
	seen := map[string]bool{}
	var out []string
	for len(out) < 20_000 {
		var b strings.Builder
		for range 2 + r.IntN(3) {
			b.WriteString(syll[r.IntN(len(syll))])
		}
		if w := b.String(); !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}()

func benchConv(i int) string { return fmt.Sprintf("c_%06d", i) }

func benchIndex(b *testing.B) string {
	benchOnce.Do(func() {
		benchDir = filepath.Join(os.TempDir(), fmt.Sprintf("parley-search-bench-v3-%d-%d", *benchDocs, *benchConvs))
		done := filepath.Join(benchDir, "complete")
		if _, err := os.Stat(done); err == nil {
			return
		}
		_ = os.RemoveAll(benchDir)
		start := time.Now()
		e, err := bleve.Open(bleve.Config{Dir: filepath.Join(benchDir, "index")})
		if err != nil {
			benchErr = err
			return
		}
		r := rand.New(rand.NewPCG(3, 4))
		zipf := rand.NewZipf(r, 1.1, 10, uint64(len(vocab)-1))
		seqs := make([]uint64, *benchConvs)
		batch := make([]search.Doc, 0, 1000)
		for i := range *benchDocs {
			c := r.IntN(*benchConvs)
			seqs[c]++
			words := make([]string, 6+r.IntN(14))
			for j := range words {
				words[j] = vocab[zipf.Uint64()]
			}
			batch = append(batch, search.Doc{
				Workspace: "w_bench", ConvID: benchConv(c), Seq: seqs[c], MsgID: fmt.Sprintf("m_%d", i),
				Sender: fmt.Sprintf("u_%d", r.IntN(200)), TS: 1_772_000_000_000 + int64(i)*1000,
				Text: strings.Join(words, " "), HasAttachment: r.IntN(20) == 0,
			})
			if len(batch) == cap(batch) || i == *benchDocs-1 {
				if err := e.Index(context.Background(), batch); err != nil {
					benchErr = err
					return
				}
				batch = batch[:0]
			}
		}
		if err := bleve.Settle(context.Background(), e); err != nil {
			benchErr = err
			return
		}
		if err := e.Close(); err != nil {
			benchErr = err
			return
		}
		benchErr = os.WriteFile(done, nil, 0o644)
		fmt.Fprintf(os.Stderr, "built the benchmark index of %d messages in %v\n", *benchDocs, time.Since(start))
	})
	if benchErr != nil {
		b.Fatalf("benchmark index: %v", benchErr)
	}
	return filepath.Join(benchDir, "index")
}

// BenchmarkSearch measures query latency for a user in 100 and in 5,000
// conversations (for the latter, every conversation of the index and the
// rest empty), newest first and by relevance, and reports the p99.
func BenchmarkSearch(b *testing.B) {
	dir := benchIndex(b)
	e, err := bleve.Open(bleve.Config{Dir: dir})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	if err := bleve.Settle(b.Context(), e); err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	queries := []string{
		vocab[10],                               // common
		vocab[500],                              // middling
		vocab[5000],                             // rare
		vocab[10] + " " + vocab[40],             // two words
		`"` + vocab[10] + " " + vocab[11] + `"`, // phrase
		vocab[300][:3] + "*",                    // prefix
		vocab[200] + "x",                        // typo (fuzzy)
		"from:u_7 has:attachment",               // filters only
		vocab[20] + " -" + vocab[30],            // exclusion
	}
	for _, member := range []int{100, 5000} {
		convs := make([]string, member)
		for i := range convs {
			convs[i] = benchConv(i * max(1, *benchConvs/member)) // 100: spread over the index
		}
		for _, sort := range []search.Sort{search.Newest, search.Relevance} {
			b.Run(fmt.Sprintf("convs=%d/sort=%s", member, sort), func(b *testing.B) {
				var lat []time.Duration
				i := 0
				cpu0 := cpuTime()
				for b.Loop() {
					q, err := search.Parse(queries[i%len(queries)])
					if err != nil {
						b.Fatal(err)
					}
					i++
					start := time.Now()
					_, err = e.Search(context.Background(), search.Request{Workspace: "w_bench", Convs: convs, Query: q, Sort: sort, Limit: 20})
					lat = append(lat, time.Since(start))
					if err != nil {
						b.Fatal(err)
					}
				}
				// CPU time per query says what latency would be on an idle
				// machine: the shared machine's load inflates wall time.
				b.ReportMetric(float64((cpuTime()-cpu0).Microseconds())/1000/float64(len(lat)), "cpu-ms/op")
				slices.Sort(lat)
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
			})
		}
	}
}

// cpuTime is the process's user and system CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
