package blobtest

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/parley-chat/parley/blob"
)

// Bench measures Put and Get throughput of s for 1 MiB and 64 MiB blobs,
// reporting MB/s (b.SetBytes). Puts stream from a Pattern (no blob held in
// memory); Gets read the whole blob into io.Discard.
func Bench(b *testing.B, s blob.Store) {
	for _, size := range []int64{1 << 20, 64 << 20} {
		name := fmt.Sprintf("%dMiB", size>>20)
		key := "bench/" + name
		b.Run("Put/"+name, func(b *testing.B) {
			b.SetBytes(size)
			for i := 0; b.Loop(); i++ {
				if _, err := s.Put(context.Background(), key, Pattern(uint64(i), size), size); err != nil {
					b.Fatal(err)
				}
			}
		})
		b.Run("Get/"+name, func(b *testing.B) {
			if _, err := s.Put(context.Background(), key, Pattern(1, size), size); err != nil {
				b.Fatal(err)
			}
			b.SetBytes(size)
			buf := make([]byte, 256<<10)
			for b.Loop() {
				o, err := s.Open(context.Background(), key, blob.Whole)
				if err != nil {
					b.Fatal(err)
				}
				n, err := io.CopyBuffer(io.Discard, o, buf)
				o.Close()
				if err != nil || n != size {
					b.Fatalf("read %d of %d bytes: %v", n, size, err)
				}
			}
		})
	}
}
