package e2e_test

// Attachments end to end: tus uploads through client/rest into the real
// blob/disk store, attaching them to messages, and signed downloads.

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"image"
	"image/color"
	"image/png"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/parley-chat/parley/blob/media"
	"github.com/parley-chat/parley/client/rest"
	"github.com/parley-chat/parley/edge/attach"
	"github.com/parley-chat/parley/syncproto/syncpb"
	"github.com/parley-chat/parley/system"
)

// testClock is a settable clock for the attachment service.
type testClock struct{ off atomic.Int64 }

func (c *testClock) now() time.Time          { return time.Now().Add(time.Duration(c.off.Load())) }
func (c *testClock) advance(d time.Duration) { c.off.Add(int64(d)) }

// markerScanner refuses uploads that contain the marker.
type markerScanner struct{}

const virusMarker = "X5O!P%@AP-PARLEY-TEST-VIRUS"

func (markerScanner) Scan(_ context.Context, _ attach.Upload, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if bytes.Contains(b, []byte(virusMarker)) {
		return errors.New("infected")
	}
	return nil
}

type attachEnv struct {
	s     *testSystem
	clock *testClock
}

func startAttachSystem(t *testing.T, mod func(*attach.Config)) *attachEnv {
	t.Helper()
	clock := &testClock{}
	s := startTestSystem(t, "", func(c *system.Config) {
		c.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError}))
		c.Attach.Now = clock.now
		c.Attach.Scanner = markerScanner{}
		c.Attach.SweepEvery = time.Hour // tests sweep by hand
		if mod != nil {
			mod(&c.Attach)
		}
	})
	return &attachEnv{s: s, clock: clock}
}

// client is a rest client for sess with opts.
func (e *attachEnv) client(sess *rest.Session, opts ...rest.Option) *rest.Client {
	return rest.New(e.s.base, append([]rest.Option{rest.WithTokens(sess.AccessToken, sess.RefreshToken)}, opts...)...)
}

// cutter is a transport that cuts the bodies of the first n PATCHes
// after part of them, as a dropped connection does.
type cutter struct {
	mu   sync.Mutex
	left int
	cuts int
}

func (c *cutter) RoundTrip(r *http.Request) (*http.Response, error) {
	c.mu.Lock()
	cut := r.Method == http.MethodPatch && c.left > 0 && r.ContentLength > 1
	if cut {
		c.left--
		c.cuts++
	}
	c.mu.Unlock()
	if cut {
		r = r.Clone(r.Context())
		r.Body = io.NopCloser(&failAfter{r: r.Body, n: r.ContentLength / 2})
	}
	return http.DefaultTransport.RoundTrip(r)
}

type failAfter struct {
	r io.Reader
	n int64
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errors.New("cut")
	}
	if int64(len(p)) > f.n {
		p = p[:f.n]
	}
	n, err := f.r.Read(p)
	f.n -= int64(n)
	return n, err
}

func randomBytes(t *testing.T, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func pngBytes(t *testing.T) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 640, 480))
	for i := range img.Pix {
		img.Pix[i] = byte(i)
	}
	img.Set(0, 0, color.White)
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// fetch GETs path with token, following the redirect to the signed URL.
func fetch(t *testing.T, s *testSystem, path, token string, h map[string]string) (*http.Response, []byte) {
	t.Helper()
	r := s.request(t, "GET", path, token, h, nil)
	return &http.Response{StatusCode: r.status, Header: r.header}, r.body
}

// signedURL is where GET /v1/attachments/{id}[/thumb] redirects.
func signedURL(t *testing.T, base, path, token string) string {
	t.Helper()
	hc := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequestWithContext(t.Context(), "GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("GET %s: %d, want 302", path, resp.StatusCode)
	}
	return resp.Header.Get("Location")
}

func wantErr(t *testing.T, err error, status int, code syncpb.Code) {
	t.Helper()
	var e *rest.Error
	if !errors.As(err, &e) || e.Status != status || e.Code != code {
		t.Fatalf("err = %v, want HTTP %d %v", err, status, code)
	}
}

// noBytesKept checks that neither the store nor the tus folder holds
// anything of upload id ("" for: nothing at all).
func (e *attachEnv) noBytesKept(t *testing.T, id string) {
	t.Helper()
	for _, dir := range []string{filepath.Join(e.s.dir, "blobs", "uploads"), filepath.Join(e.s.dir, "blobs", "thumbs"),
		filepath.Join(e.s.dir, "blobs", "uploadmeta"), filepath.Join(e.s.dir, "edge", "uploads")} {
		ents, _ := os.ReadDir(dir)
		for _, en := range ents {
			if id == "" || strings.HasPrefix(en.Name(), id) {
				t.Errorf("%s/%s is still there", dir, en.Name())
			}
		}
	}
}

func (e *attachEnv) tusEntries() int {
	ents, _ := os.ReadDir(filepath.Join(e.s.dir, "edge", "uploads"))
	return len(ents)
}

// noStored checks the store holds no upload at all.
func (e *attachEnv) noStored(t *testing.T) {
	t.Helper()
	for _, d := range []string{"uploads", "thumbs", "uploadmeta"} {
		if ents, _ := os.ReadDir(filepath.Join(e.s.dir, "blobs", d)); len(ents) > 0 {
			t.Errorf("blobs/%s holds %d entries", d, len(ents))
		}
	}
}

func TestUploadResumesAfterCuts(t *testing.T) {
	e := startAttachSystem(t, nil)
	_, sess := e.s.User(t, "acme", "ann")
	cut := &cutter{left: 3}
	rc := e.client(sess, rest.WithHTTPClient(&http.Client{Transport: cut}), rest.WithUploadChunk(4<<20))
	data := randomBytes(t, 20<<20)
	sum := sha256.Sum256(data)
	var last int64
	id, err := rc.Upload(t.Context(), bytes.NewReader(data), int64(len(data)), "big.bin", "image/png", func(n int64) { last = n })
	if err != nil {
		t.Fatal(err)
	}
	if cut.cuts != 3 || last != int64(len(data)) {
		t.Fatalf("cuts %d, progress %d", cut.cuts, last)
	}
	info, err := rc.UploadInfo(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	if info.SHA256 != hex.EncodeToString(sum[:]) || info.Size != int64(len(data)) || info.ContentType != "application/octet-stream" {
		t.Fatalf("upload %+v: want sha %x, size %d, sniffed octet-stream (not the declared image/png)", info, sum, len(data))
	}

	conv, err := rc.CreateConversation(t.Context(), rest.NewConversation{Type: "group", Title: "files"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := rc.Send(t.Context(), rest.SendRequest{ConvID: conv.ID, Body: "here", Attachments: []rest.AttachmentRef{{ID: id}}}); err != nil {
		t.Fatal(err)
	}
	resp, body := fetch(t, e.s, "/v1/attachments/"+id, sess.AccessToken, nil)
	if resp.StatusCode != 200 || sha256.Sum256(body) != sum {
		t.Fatalf("download: %d, %d bytes, identical %v: %.200s", resp.StatusCode, len(body), sha256.Sum256(body) == sum, body)
	}
	if got := resp.Header.Get("Content-Disposition"); !strings.HasPrefix(got, "attachment;") || !strings.Contains(got, "filename*=UTF-8''big.bin") {
		t.Errorf("Content-Disposition %q", got)
	}
	if resp.Header.Get("X-Content-Type-Options") != "nosniff" || !strings.HasPrefix(resp.Header.Get("Cache-Control"), "private, max-age=") ||
		resp.Header.Get("ETag") != `"`+info.SHA256+`"` {
		t.Errorf("headers %v", resp.Header)
	}
	// A range.
	resp, body = fetch(t, e.s, "/v1/attachments/"+id, sess.AccessToken, map[string]string{"Range": "bytes=10-19"})
	if resp.StatusCode != http.StatusPartialContent || !bytes.Equal(body, data[10:20]) {
		t.Fatalf("range: %d %q", resp.StatusCode, body)
	}
	// The tus folder is emptied once the upload is attached.
	if err := e.s.System.Attach().Sweep(t.Context()); err != nil {
		t.Fatal(err)
	}
	if ents, _ := os.ReadDir(filepath.Join(e.s.dir, "edge", "uploads")); len(ents) != 0 {
		t.Errorf("tus folder after sweep: %d entries", len(ents))
	}
}

func TestUploadRefusals(t *testing.T) {
	e := startAttachSystem(t, func(c *attach.Config) {
		c.MaxSize = 1 << 20
	})
	_, ann := e.s.User(t, "acme", "ann")
	_, bob := e.s.User(t, "acme", "bob")
	rc := e.client(ann)
	ctx := t.Context()

	t.Run("declared length over the limit", func(t *testing.T) {
		_, err := rc.Upload(ctx, bytes.NewReader(nil), 2<<20, "big", "", nil)
		wantErr(t, err, 413, syncpb.Code_CODE_TOO_LARGE)
		e.noBytesKept(t, "")
	})
	t.Run("body longer than declared", func(t *testing.T) {
		req, _ := http.NewRequestWithContext(ctx, "POST", e.s.base+"/v1/uploads", nil)
		req.Header.Set("Authorization", "Bearer "+ann.AccessToken)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Length", "10")
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 201 {
			t.Fatalf("create: %v %v", resp, err)
		}
		loc := resp.Header.Get("Location")
		resp.Body.Close()
		req, _ = http.NewRequestWithContext(ctx, "PATCH", loc, bytes.NewReader(make([]byte, 20)))
		req.Header.Set("Authorization", "Bearer "+ann.AccessToken)
		req.Header.Set("Tus-Resumable", "1.0.0")
		req.Header.Set("Upload-Offset", "0")
		req.Header.Set("Content-Type", "application/offset+octet-stream")
		resp, err = http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("PATCH of 20 bytes into 10: %d, want 413", resp.StatusCode)
		}
		id := loc[strings.LastIndex(loc, "/")+1:]
		if _, err := rc.UploadInfo(ctx, id); rest.Code(err) != syncpb.Code_CODE_NOT_FOUND {
			t.Fatalf("upload info after refused PATCH: %v", err)
		}
	})
	t.Run("shorter than declared never finishes", func(t *testing.T) {
		_, err := rc.Upload(ctx, bytes.NewReader(make([]byte, 5)), 10, "short", "", nil)
		if err == nil {
			t.Fatal("an upload of 5 of 10 declared bytes succeeded")
		}
	})
	t.Run("scanner refuses", func(t *testing.T) {
		before := e.tusEntries()
		_, err := rc.Upload(ctx, strings.NewReader("hello "+virusMarker), int64(len("hello "+virusMarker)), "eicar.txt", "", nil)
		wantErr(t, err, 422, syncpb.Code_CODE_INVALID_ARGUMENT)
		if after := e.tusEntries(); after != before {
			t.Errorf("tus folder: %d entries before, %d after", before, after)
		}
		e.noStored(t)
	})
	t.Run("someone else's upload", func(t *testing.T) {
		id, err := rc.Upload(ctx, strings.NewReader("mine"), 4, "mine.txt", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		brc := e.client(bob)
		if _, err := brc.UploadInfo(ctx, id); rest.Code(err) != syncpb.Code_CODE_NOT_FOUND {
			t.Fatalf("bob reads ann's upload: %v", err)
		}
		conv, err := brc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "b"})
		if err != nil {
			t.Fatal(err)
		}
		_, err = brc.Send(ctx, rest.SendRequest{ConvID: conv.ID, Body: "x", Attachments: []rest.AttachmentRef{{ID: id}}})
		wantErr(t, err, 404, syncpb.Code_CODE_NOT_FOUND)
		if _, err := brc.Upload(ctx, strings.NewReader("x"), 1, "x", "", nil); err != nil {
			t.Fatal(err)
		}
		if r := e.s.do(t, "PATCH", "/v1/uploads/"+id, bob.AccessToken, []byte("x")); r.status != 404 || r.code(t) != "not_found" {
			t.Fatalf("bob PATCHes ann's upload: %d %s", r.status, r.body)
		}
	})
	t.Run("expired", func(t *testing.T) {
		id, err := rc.Upload(ctx, strings.NewReader("late"), 4, "late.txt", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		conv, err := rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "late"})
		if err != nil {
			t.Fatal(err)
		}
		e.clock.advance(attach.DefaultTTL + time.Minute)
		_, err = rc.Send(ctx, rest.SendRequest{ConvID: conv.ID, Body: "x", Attachments: []rest.AttachmentRef{{ID: id}}})
		wantErr(t, err, 404, syncpb.Code_CODE_NOT_FOUND)
		if err := e.s.System.Attach().Sweep(ctx); err != nil {
			t.Fatal(err)
		}
		e.noBytesKept(t, id)
	})
}

func TestUploadDisallowedType(t *testing.T) {
	e := startAttachSystem(t, func(c *attach.Config) { c.Allow = media.AllowList{"image/*"} })
	_, ann := e.s.User(t, "acme", "ann")
	rc := e.client(ann)
	_, err := rc.Upload(t.Context(), strings.NewReader("#!/bin/sh\necho hi\n"), 18, "run.png", "image/png", nil)
	wantErr(t, err, 415, syncpb.Code_CODE_INVALID_ARGUMENT)
	e.noBytesKept(t, "")
	img := pngBytes(t)
	id, err := rc.Upload(t.Context(), bytes.NewReader(img), int64(len(img)), "pic.png", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	info, err := rc.UploadInfo(t.Context(), id)
	if err != nil || info.ContentType != "image/png" || info.Width != 640 || info.Height != 480 || !info.Thumbnail {
		t.Fatalf("png upload: %+v %v", info, err)
	}
}

func TestAttachOnceAndDownloadAuthz(t *testing.T) {
	e := startAttachSystem(t, nil)
	_, ann := e.s.User(t, "acme", "ann")
	_, bob := e.s.User(t, "acme", "bob")
	_, eve := e.s.User(t, "acme", "eve")
	_, out := e.s.User(t, "beta", "out")
	rc := e.client(ann)
	ctx := t.Context()
	conv, err := rc.CreateConversation(ctx, rest.NewConversation{Type: "group", Title: "t", MemberIDs: []string{bob.User.ID}})
	if err != nil {
		t.Fatal(err)
	}
	img := pngBytes(t)
	id, err := rc.Upload(ctx, bytes.NewReader(img), int64(len(img)), "café ☕.png", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	req := rest.SendRequest{ConvID: conv.ID, ClientMsgID: "m-1", Body: "pic", Attachments: []rest.AttachmentRef{{ID: id}}}
	first, err := rc.Send(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	again, err := rc.Send(ctx, req)
	if err != nil || !again.Duplicate || again.Seq != first.Seq {
		t.Fatalf("retry: %+v %v", again, err)
	}
	req.ClientMsgID = "m-2"
	_, err = rc.Send(ctx, req)
	wantErr(t, err, 409, syncpb.Code_CODE_CONFLICT)
	h, err := rc.History(ctx, rest.HistoryRequest{ConvID: conv.ID})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range h.Messages {
		for _, a := range m.Attachments {
			n++
			sum := sha256.Sum256(img)
			if a.ID != id || a.ContentType != "image/png" || a.SHA256 != hex.EncodeToString(sum[:]) || a.Width != 640 || !a.Thumbnail {
				t.Errorf("attachment %+v", a)
			}
		}
	}
	if n != 1 {
		t.Fatalf("history holds the attachment %d times, want 1", n)
	}

	// Members download; the image is shown inline, named in UTF-8.
	for _, who := range []*rest.Session{ann, bob} {
		resp, body := fetch(t, e.s, "/v1/attachments/"+id, who.AccessToken, nil)
		if resp.StatusCode != 200 || !bytes.Equal(body, img) {
			t.Fatalf("%s: %d", who.User.Username, resp.StatusCode)
		}
		if cd := resp.Header.Get("Content-Disposition"); cd != `inline; filename="caf_ _.png"; filename*=UTF-8''caf%C3%A9%20%E2%98%95.png` {
			t.Errorf("Content-Disposition %q", cd)
		}
		resp, body = fetch(t, e.s, "/v1/attachments/"+id+"/thumb", who.AccessToken, nil)
		if resp.StatusCode != 200 || media.Sniff(body) != "image/jpeg" {
			t.Fatalf("thumb: %d %s", resp.StatusCode, media.Sniff(body))
		}
	}
	// Strangers, other workspaces, kicked members and missing ids: 404.
	if err := rc.RemoveMember(ctx, conv.ID, bob.User.ID); err != nil {
		t.Fatal(err)
	}
	for name, tok := range map[string]string{"stranger": eve.AccessToken, "other workspace": out.AccessToken, "kicked": bob.AccessToken} {
		for _, p := range []string{"/v1/attachments/" + id, "/v1/attachments/" + id + "/thumb", "/v1/attachments/nosuchupload"} {
			if r := e.s.do(t, "GET", p, tok, nil); r.status != 404 || r.code(t) != "not_found" {
				t.Errorf("%s GET %s: %d %s", name, p, r.status, r.body)
			}
		}
	}
	// Signed URLs: tampered or expired ones are refused.
	u := signedURL(t, e.s.base, "/v1/attachments/"+id, ann.AccessToken)
	if resp, _ := fetch(t, e.s, u, "", nil); resp.StatusCode != 200 {
		t.Fatalf("signed URL: %d", resp.StatusCode)
	}
	tampered := []string{
		strings.Replace(u, "/v1/blobs/uploads/", "/v1/blobs/thumbs/", 1),
		strings.Replace(u, "sig=", "sig=A", 1),
		strings.Replace(u, "n=", "n=x", 1),
		strings.Replace(u, "t=image%2Fpng", "t=text%2Fhtml", 1),
	}
	for _, bad := range tampered {
		if r := e.s.do(t, "GET", bad, "", nil); r.status != 403 || r.code(t) != "forbidden" {
			t.Errorf("tampered %s: %d %s", bad, r.status, r.body)
		}
	}
	e.clock.advance(attach.DefaultURLTTL + time.Second)
	if r := e.s.do(t, "GET", u, "", nil); r.status != 403 {
		t.Errorf("expired URL: %d", r.status)
	}
}
