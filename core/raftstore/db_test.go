package raftstore

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
)

func TestOpenDB(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "badger")
	db, err := OpenDB(dir, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	opts := db.Opts()
	if opts.SyncWrites || opts.Compression != options.None || opts.ValueLogFileSize != 64<<20 {
		t.Fatalf("options: SyncWrites %v, Compression %v, ValueLogFileSize %d", opts.SyncWrites, opts.Compression, opts.ValueLogFileSize)
	}
	// Badger locks its directory: a second open fails, and cleanly.
	if _, err := OpenDB(dir, nil); err == nil || !strings.Contains(err.Error(), "raftstore: open badger") {
		t.Fatalf("second OpenDB = %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenDB(file, nil); err == nil {
		t.Fatal("OpenDB on a regular file succeeded")
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug - 4}))}
	var _ badger.Logger = l
	tests := []struct {
		log   func(string, ...any)
		level string
	}{
		{l.Errorf, "ERROR"},
		{l.Warningf, "WARN"},
		{l.Infof, "DEBUG"}, // Badger is chatty at Info
		{l.Debugf, "DEBUG-4"},
	}
	for i, tt := range tests {
		buf.Reset()
		tt.log("message %d\n", i)
		want := fmt.Sprintf("level=%s msg=\"message %d\"\n", tt.level, i)
		if !strings.HasSuffix(buf.String(), want) {
			t.Errorf("logged %q, want suffix %q", buf.String(), want)
		}
	}
}
