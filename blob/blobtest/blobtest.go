// Package blobtest is the conformance suite every blob.Store passes, and
// the throughput benchmark every store reports. A store's tests call Run
// with a constructor; its benchmarks call Bench.
package blobtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/parley-chat/parley/blob"
)

// Options are what the suite asks of a new store.
type Options struct {
	// Now is the clock the store signs and stamps with (time.Now, or one
	// hours behind to test that presigned URLs expire).
	Now func() time.Time
	// MaxSize is the store's largest blob; 0 means the store's default.
	MaxSize int64
}

// NewStore returns a new, empty store for one test. It registers with
// t.Cleanup whatever it must tear down, and there it also checks that
// the store left nothing behind (temporary files, unfinished multipart
// uploads): the suite's failed Puts rely on that check.
type NewStore func(t *testing.T, o Options) blob.Store

// FailAfter is how many bytes the suite's failing and paused Puts
// deliver before they fail or pause: past two S3 parts of the minimum
// size, so that a multipart upload is under way by then.
const FailAfter = 11 << 20

// LargeSize is the size of the suite's streaming test.
const LargeSize = 20 << 20

// Run runs the conformance suite against the stores newStore makes.
func Run(t *testing.T, newStore NewStore) {
	t.Run("Roundtrip", func(t *testing.T) { testRoundtrip(t, newStore) })
	t.Run("Overwrite", func(t *testing.T) { testOverwrite(t, newStore) })
	t.Run("Ranges", func(t *testing.T) { testRanges(t, newStore) })
	t.Run("Missing", func(t *testing.T) { testMissing(t, newStore) })
	t.Run("BadKey", func(t *testing.T) { testBadKey(t, newStore) })
	t.Run("Delete", func(t *testing.T) { testDelete(t, newStore) })
	t.Run("ConcurrentPuts", func(t *testing.T) { testConcurrentPuts(t, newStore) })
	t.Run("FailedPut", func(t *testing.T) { testFailedPut(t, newStore) })
	t.Run("InvisibleUntilDone", func(t *testing.T) { testInvisibleUntilDone(t, newStore) })
	t.Run("Limits", func(t *testing.T) { testLimits(t, newStore) })
	t.Run("Large", func(t *testing.T) { testLarge(t, newStore) })
	t.Run("Presign", func(t *testing.T) { testPresign(t, newStore) })
}

func defaults(t *testing.T, newStore NewStore) blob.Store {
	return newStore(t, Options{Now: time.Now})
}

// Data returns n pseudo-random bytes, the same for the same seed.
func Data(seed uint64, n int) []byte {
	b := make([]byte, n)
	r := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24)})
	r.Read(b)
	return b
}

func put(t *testing.T, s blob.Store, key string, data []byte) blob.Info {
	t.Helper()
	info, err := s.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		t.Fatalf("Put(%s, %d bytes): %v", key, len(data), err)
	}
	return info
}

func read(t *testing.T, s blob.Store, key string, rg blob.Range) (*blob.Object, []byte) {
	t.Helper()
	o, err := s.Open(context.Background(), key, rg)
	if err != nil {
		t.Fatalf("Open(%s, %+v): %v", key, rg, err)
	}
	defer o.Close()
	b, err := io.ReadAll(o)
	if err != nil {
		t.Fatalf("read %s %+v: %v", key, rg, err)
	}
	return o, b
}

func wantCode(t *testing.T, what string, err error, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: got %v, want %v", what, err, want)
	}
}

func testRoundtrip(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	for i, n := range []int{0, 1, 1000, 1<<20 + 3} {
		for _, declared := range []bool{true, false} {
			key := fmt.Sprintf("rt/%d-%v", n, declared)
			data := Data(uint64(i), n)
			size := int64(-1)
			if declared {
				size = int64(n)
			}
			info, err := s.Put(context.Background(), key, bytes.NewReader(data), size)
			if err != nil {
				t.Fatalf("Put(%s): %v", key, err)
			}
			if info.Key != key || info.Size != int64(n) || info.SHA256 != sha256.Sum256(data) {
				t.Errorf("Put(%s) = %+v, want size %d sha256 %x", key, info, n, sha256.Sum256(data))
			}
			o, got := read(t, s, key, blob.Whole)
			if !bytes.Equal(got, data) {
				t.Errorf("Open(%s) read %d bytes, not what was put (%d)", key, len(got), n)
			}
			if o.Size != int64(n) || o.Off != 0 || o.Len != int64(n) || o.Key != key {
				t.Errorf("Open(%s) = %+v", key, o.Info)
			}
			st, err := s.Stat(context.Background(), key)
			if err != nil || st.Size != int64(n) || st.Key != key || st.ModTime.IsZero() {
				t.Errorf("Stat(%s) = %+v, %v", key, st, err)
			}
		}
	}
}

func testOverwrite(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	put(t, s, "ow", Data(1, 5000))
	second := Data(2, 300)
	put(t, s, "ow", second)
	if _, got := read(t, s, "ow", blob.Whole); !bytes.Equal(got, second) {
		t.Fatalf("after overwrite read %d bytes, want the second blob", len(got))
	}
}

func testRanges(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	const n = 10000
	data := Data(3, n)
	put(t, s, "r", data)
	put(t, s, "empty", nil)
	for _, rg := range []blob.Range{
		blob.Whole, {Off: 0, Len: 1}, {Off: 1, Len: 1}, {Off: 100, Len: 5000}, {Off: 9999, Len: -1},
		{Off: 9000, Len: 5000}, {Off: 5000, Len: -1}, {Off: n, Len: -1}, {Off: 10, Len: 0},
	} {
		off, ln, _ := rg.Resolve(n)
		o, got := read(t, s, "r", rg)
		if !bytes.Equal(got, data[off:off+ln]) {
			t.Errorf("range %+v: read %d bytes, want data[%d:%d]", rg, len(got), off, off+ln)
		}
		if o.Off != off || o.Len != ln || o.Size != n {
			t.Errorf("range %+v: object says off %d len %d size %d, want %d %d %d", rg, o.Off, o.Len, o.Size, off, ln, n)
		}
	}
	if _, got := read(t, s, "empty", blob.Whole); len(got) != 0 {
		t.Errorf("empty blob read %d bytes", len(got))
	}
	for _, rg := range []blob.Range{{Off: n + 1, Len: -1}, {Off: n + 100, Len: 10}, {Off: -1, Len: 10}} {
		_, err := s.Open(context.Background(), "r", rg)
		wantCode(t, fmt.Sprintf("Open range %+v", rg), err, blob.ErrBadRange)
	}
}

func testMissing(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	put(t, s, "dir/present", []byte("x"))
	for _, key := range []string{"absent", "dir/absent", "nodir/absent", "dir/present/under"} {
		_, err := s.Open(context.Background(), key, blob.Whole)
		wantCode(t, "Open "+key, err, blob.ErrNotFound)
		_, err = s.Stat(context.Background(), key)
		wantCode(t, "Stat "+key, err, blob.ErrNotFound)
		if err := s.Delete(context.Background(), key); err != nil {
			t.Errorf("Delete(%s) of a missing key: %v", key, err)
		}
	}
	// A folder of keys is not a blob.
	_, err := s.Stat(context.Background(), "dir")
	wantCode(t, "Stat dir", err, blob.ErrNotFound)
	_, err = s.Open(context.Background(), "dir", blob.Whole)
	wantCode(t, "Open dir", err, blob.ErrNotFound)
}

func testBadKey(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	ctx := context.Background()
	for _, key := range []string{"", "../x", "a/../../x", "/abs", ".tmp/x", "a//b"} {
		_, err := s.Put(ctx, key, bytes.NewReader([]byte("x")), 1)
		wantCode(t, fmt.Sprintf("Put %q", key), err, blob.ErrBadKey)
		_, err = s.Open(ctx, key, blob.Whole)
		wantCode(t, fmt.Sprintf("Open %q", key), err, blob.ErrBadKey)
		_, err = s.Stat(ctx, key)
		wantCode(t, fmt.Sprintf("Stat %q", key), err, blob.ErrBadKey)
		wantCode(t, fmt.Sprintf("Delete %q", key), s.Delete(ctx, key), blob.ErrBadKey)
		if p, ok := s.(blob.Presigner); ok {
			_, err := p.PresignGet(ctx, key, time.Minute)
			wantCode(t, fmt.Sprintf("PresignGet %q", key), err, blob.ErrBadKey)
		}
	}
}

func testDelete(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	put(t, s, "d/1", []byte("one"))
	put(t, s, "d/2", []byte("two"))
	for range 2 {
		if err := s.Delete(context.Background(), "d/1"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	_, err := s.Stat(context.Background(), "d/1")
	wantCode(t, "Stat after Delete", err, blob.ErrNotFound)
	_, err = s.Open(context.Background(), "d/1", blob.Whole)
	wantCode(t, "Open after Delete", err, blob.ErrNotFound)
	if _, got := read(t, s, "d/2", blob.Whole); string(got) != "two" {
		t.Fatalf("the other key reads %q", got)
	}
	// The key can be written again.
	put(t, s, "d/1", []byte("again"))
	if _, got := read(t, s, "d/1", blob.Whole); string(got) != "again" {
		t.Fatalf("rewritten key reads %q", got)
	}
}

func testConcurrentPuts(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			data := Data(uint64(100+i), 64<<10+i)
			_, errs[i] = s.Put(context.Background(), fmt.Sprintf("c/%d", i), bytes.NewReader(data), -1)
		})
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("Put c/%d: %v", i, errs[i])
		}
		if _, got := read(t, s, fmt.Sprintf("c/%d", i), blob.Whole); !bytes.Equal(got, Data(uint64(100+i), 64<<10+i)) {
			t.Errorf("c/%d reads %d bytes, not its own", i, len(got))
		}
	}
}

// hookReader delivers r, calling hook once FailAfter bytes have passed;
// an error hook returns is the reader's from then on.
type hookReader struct {
	r      io.Reader
	n      int
	hook   func() error
	hooked bool
	err    error
}

func (h *hookReader) Read(p []byte) (int, error) {
	if h.n >= FailAfter && !h.hooked {
		h.hooked = true
		h.err = h.hook()
	}
	if h.err != nil {
		return 0, h.err
	}
	if h.n < FailAfter && len(p) > FailAfter-h.n {
		p = p[:FailAfter-h.n]
	}
	n, err := h.r.Read(p)
	h.n += n
	return n, err
}

var errBoom = errors.New("blobtest: reader failed")

func testFailedPut(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	old := Data(7, 1000)
	put(t, s, "f/kept", old)
	for _, key := range []string{"f/new", "f/kept"} {
		t.Run("ReaderError/"+key, func(t *testing.T) {
			r := &hookReader{r: Pattern(1, 1<<30), hook: func() error { return errBoom }}
			_, err := s.Put(context.Background(), key, r, -1)
			wantCode(t, "Put with a failing reader", err, errBoom)
			checkUnchanged(t, s, key, old)
		})
		t.Run("Canceled/"+key, func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			r := &hookReader{r: Pattern(2, 1<<30), hook: func() error { cancel(); return nil }}
			_, err := s.Put(ctx, key, r, 1<<30)
			wantCode(t, "Put canceled mid-stream", err, context.Canceled)
			if blob.CodeOf(err) != blob.CodeCanceled {
				t.Errorf("code %q, want canceled", blob.CodeOf(err))
			}
			checkUnchanged(t, s, key, old)
		})
		t.Run("Short/"+key, func(t *testing.T) {
			_, err := s.Put(context.Background(), key, Pattern(3, FailAfter), FailAfter+1)
			wantCode(t, "Put shorter than declared", err, blob.ErrSizeMismatch)
			checkUnchanged(t, s, key, old)
		})
		t.Run("Long/"+key, func(t *testing.T) {
			_, err := s.Put(context.Background(), key, Pattern(4, FailAfter+1), FailAfter)
			wantCode(t, "Put longer than declared", err, blob.ErrSizeMismatch)
			checkUnchanged(t, s, key, old)
		})
	}
	_, err := s.Put(context.Background(), "f/tiny", bytes.NewReader([]byte("abc")), 2)
	wantCode(t, "Put of 3 bytes declared as 2", err, blob.ErrSizeMismatch)
	checkUnchanged(t, s, "f/tiny", nil)
}

// testInvisibleUntilDone checks that a Put halfway through (past the
// first S3 parts) shows nothing of itself: a new key is missing, an old
// blob reads as it was, until the Put returns.
func testInvisibleUntilDone(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	old := Data(7, 1000)
	put(t, s, "f/kept", old)
	for _, key := range []string{"f/new", "f/kept"} {
		reached, release := make(chan struct{}), make(chan struct{})
		r := &hookReader{r: Pattern(10, FailAfter+1000), hook: func() error {
			close(reached)
			<-release
			return nil
		}}
		done := make(chan error, 1)
		go func() {
			_, err := s.Put(context.Background(), key, r, FailAfter+1000)
			done <- err
		}()
		select {
		case <-reached:
		case err := <-done:
			t.Fatalf("Put returned before its reader was through: %v", err)
		case <-time.After(time.Minute):
			t.Fatal("Put did not read its first bytes within a minute")
		}
		checkUnchanged(t, s, key, old)
		close(release)
		if err := <-done; err != nil {
			t.Fatalf("Put(%s): %v", key, err)
		}
		info, err := s.Stat(context.Background(), key)
		if err != nil || info.Size != FailAfter+1000 {
			t.Fatalf("Stat after the Put: %+v, %v", info, err)
		}
	}
}

// checkUnchanged fails unless key holds old (nothing, if old is nil).
func checkUnchanged(t *testing.T, s blob.Store, key string, old []byte) {
	t.Helper()
	if key != "f/kept" {
		_, err := s.Stat(context.Background(), key)
		wantCode(t, "Stat after a failed Put", err, blob.ErrNotFound)
		return
	}
	if _, got := read(t, s, key, blob.Whole); !bytes.Equal(got, old) {
		t.Fatalf("a failed Put changed %s: %d bytes", key, len(got))
	}
}

func testLimits(t *testing.T, newStore NewStore) {
	const max = 6 << 20
	s := newStore(t, Options{Now: time.Now, MaxSize: max})
	put(t, s, "l/max", Data(8, max))
	_, err := s.Put(context.Background(), "l/declared", Pattern(9, max+1), max+1)
	wantCode(t, "declared past the maximum", err, blob.ErrTooLarge)
	_, err = s.Put(context.Background(), "l/streamed", Pattern(9, max+1), -1)
	wantCode(t, "streamed past the maximum", err, blob.ErrTooLarge)
	if blob.CodeOf(err) != blob.CodeTooLarge {
		t.Errorf("code %q", blob.CodeOf(err))
	}
	for _, key := range []string{"l/declared", "l/streamed"} {
		_, err := s.Stat(context.Background(), key)
		wantCode(t, "Stat after too large", err, blob.ErrNotFound)
	}
}

func testLarge(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	want := sha256.New()
	io.Copy(want, Pattern(5, LargeSize))
	info, err := s.Put(context.Background(), "big", Pattern(5, LargeSize), -1)
	if err != nil {
		t.Fatalf("Put: %v", err)
	}
	if info.Size != LargeSize || !bytes.Equal(info.SHA256[:], want.Sum(nil)) {
		t.Fatalf("Put = size %d sha %x, want %d %x", info.Size, info.SHA256, LargeSize, want.Sum(nil))
	}
	o, err := s.Open(context.Background(), "big", blob.Whole)
	if err != nil {
		t.Fatal(err)
	}
	defer o.Close()
	got := sha256.New()
	if n, err := io.Copy(got, o); err != nil || n != LargeSize {
		t.Fatalf("read %d bytes: %v", n, err)
	}
	if !bytes.Equal(got.Sum(nil), want.Sum(nil)) {
		t.Fatal("read back a different blob")
	}
	// A range across the middle.
	o2, part := read(t, s, "big", blob.Range{Off: LargeSize/2 - 10, Len: 20})
	full, _ := io.ReadAll(Pattern(5, LargeSize))
	if !bytes.Equal(part, full[LargeSize/2-10:LargeSize/2+10]) || o2.Size != LargeSize {
		t.Fatal("middle range differs")
	}
}

func testPresign(t *testing.T, newStore NewStore) {
	s := defaults(t, newStore)
	p, ok := s.(blob.Presigner)
	if !ok {
		t.Skip("store does not presign")
	}
	ctx := context.Background()
	data := Data(6, 100<<10)
	put(t, s, "p/obj", data)
	u, err := p.PresignGet(ctx, "p/obj", time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	status, got := httpGet(t, u, "")
	if status != http.StatusOK || !bytes.Equal(got, data) {
		t.Fatalf("GET presigned: %d, %d bytes (want 200, %d)", status, len(got), len(data))
	}
	status, got = httpGet(t, u, "bytes=10-19")
	if status != http.StatusPartialContent || !bytes.Equal(got, data[10:20]) {
		t.Fatalf("GET presigned with Range: %d, %q", status, got)
	}
	for _, ttl := range []time.Duration{0, -time.Second, 8 * 24 * time.Hour} {
		_, err := p.PresignGet(ctx, "p/obj", ttl)
		wantCode(t, fmt.Sprintf("PresignGet ttl %v", ttl), err, blob.ErrInvalid)
	}

	// A store whose clock is two hours behind signs URLs that expired an
	// hour ago.
	past := newStore(t, Options{Now: func() time.Time { return time.Now().Add(-2 * time.Hour) }})
	put(t, past, "p/obj", data)
	u, err = past.(blob.Presigner).PresignGet(ctx, "p/obj", time.Hour-time.Minute)
	if err != nil {
		t.Fatalf("PresignGet: %v", err)
	}
	if status, body := httpGet(t, u, ""); status != http.StatusForbidden {
		t.Fatalf("GET of an expired URL: %d %q, want 403", status, body)
	}
}

func httpGet(t *testing.T, u, rng string) (int, []byte) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading: %v", u, err)
	}
	return resp.StatusCode, b
}
