package blobtest

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

func TestPattern(t *testing.T) {
	const n = 200<<10 + 7
	whole, err := io.ReadAll(Pattern(1, n))
	if err != nil || len(whole) != n {
		t.Fatalf("read %d bytes: %v", len(whole), err)
	}
	// Reading a byte at a time gives the same stream.
	if err := iotest.TestReader(iotest.OneByteReader(Pattern(1, n)), whole); err != nil {
		t.Fatal(err)
	}
	other, _ := io.ReadAll(Pattern(2, n))
	if bytes.Equal(whole, other) {
		t.Error("two seeds give the same stream")
	}
	// Repetitions of the block differ (their first bytes are stamped).
	if bytes.Equal(whole[:64<<10], whole[64<<10:128<<10]) {
		t.Error("the block repeats unchanged")
	}
}
