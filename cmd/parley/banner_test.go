package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer for one writer goroutine and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// The first thing parley serve prints, logs included, is the banner, and
// it is the one README.md shows for make run (addresses and the data
// directory aside).
func TestServeBannerComesFirstAndMatchesREADME(t *testing.T) {
	readme, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "`make run` prints where it listens:\n\n```\n")
	want, _, ok2 := strings.Cut(after, "```")
	if !ok || !ok2 {
		t.Fatal("README.md has no banner block after \"`make run` prints where it listens:\"")
	}
	dir := t.TempDir()
	var out syncBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- runServe(ctx, []string{"--data", dir, "--http", "127.0.0.1:0", "--udp", "127.0.0.1:0", "--nats", "127.0.0.1:0",
			"--metrics", "127.0.0.1:0"}, &out, &out) // as make run
	}()
	deadline := time.Now().Add(60 * time.Second)
	for !strings.Contains(out.String(), "Ctrl-C stops.\n") {
		if time.Now().After(deadline) {
			cancel()
			t.Fatalf("no banner within 60s: %q", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v", err)
	}
	got, _, _ := strings.Cut(out.String(), "Ctrl-C stops.\n")
	got += "Ctrl-C stops.\n"
	addr := regexp.MustCompile(`127\.0\.0\.1:\d+`)
	norm := func(s, data string) string {
		return addr.ReplaceAllString(strings.ReplaceAll(s, data, "DATA"), "ADDR")
	}
	// README's serve runs with --data ./data, which paths print as data/.
	w := norm(strings.ReplaceAll(want, " data/", " ./data/"), "./data")
	if g := norm(got, dir); g != w {
		t.Fatalf("serve's first lines:\n%s\nREADME's banner:\n%s", g, w)
	}
}
