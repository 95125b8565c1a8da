package attach

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/parley-chat/parley/blob"
)

// BlobPath is where the edge serves signed blob URLs:
// BlobPath+"/<key>?exp=&n=&t=&h=&sig=".
const BlobPath = "/v1/blobs"

// DownloadURL returns where to fetch rec's bytes (thumb: its thumbnail)
// for URLTTL: a presigned store URL when the store is a blob.Presigner,
// else a path on this edge signed with SignKey over the key, expiry,
// name, type and ETag.
func (s *Service) DownloadURL(ctx context.Context, rec *Record, thumb bool) (string, error) {
	key, name, typ, etag := blobKey(rec.ID), rec.Name, rec.Type, rec.SHA256
	if thumb {
		if !rec.Thumb {
			return "", notFound("thumbnail")
		}
		key, name, typ, etag = thumbKey(rec.ID), "thumb.jpg", "image/jpeg", "t"+rec.SHA256
	}
	if p, ok := s.cfg.Store.(blob.Presigner); ok {
		return p.PresignGet(ctx, key, s.cfg.URLTTL)
	}
	exp := strconv.FormatInt(s.now().Add(s.cfg.URLTTL).Unix(), 10)
	q := url.Values{"exp": {exp}, "n": {name}, "t": {typ}, "h": {etag}}
	q.Set("sig", s.sign(key, q))
	return BlobPath + "/" + key + "?" + q.Encode(), nil
}

func (s *Service) sign(key string, q url.Values) string {
	m := hmac.New(sha256.New, s.cfg.SignKey)
	for _, v := range []string{key, q.Get("exp"), q.Get("n"), q.Get("t"), q.Get("h")} {
		fmt.Fprintf(m, "%d:%s\n", len(v), v)
	}
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// ErrBadSignature is ServeBlob's answer to a URL that is tampered with or
// expired.
var ErrBadSignature = errors.New("attach: bad or expired signature")

// ServeBlob serves a signed blob URL (key is the path after BlobPath+"/"):
// Range (206), ETag, private caching up to the expiry, the original name
// in Content-Disposition, nosniff, and "attachment" for every type a
// browser could run (HTML, SVG, scripts) or that is not plainly inert.
// It returns ErrBadSignature (before writing) for a bad or expired URL
// and a blob error for a missing blob.
func (s *Service) ServeBlob(w http.ResponseWriter, r *http.Request, key string) error {
	q := r.URL.Query()
	got, err := base64.RawURLEncoding.DecodeString(q.Get("sig"))
	want, _ := base64.RawURLEncoding.DecodeString(s.sign(key, q))
	if err != nil || !hmac.Equal(got, want) {
		return ErrBadSignature
	}
	exp, err := strconv.ParseInt(q.Get("exp"), 10, 64)
	left := time.Unix(exp, 0).Sub(s.now())
	if err != nil || left <= 0 {
		return ErrBadSignature
	}
	ctx := r.Context()
	info, err := s.cfg.Store.Stat(ctx, key)
	if err != nil {
		return err
	}
	typ := q.Get("t")
	h := w.Header()
	h.Set("Content-Type", typ)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", fmt.Sprintf("private, max-age=%d", int(left/time.Second)))
	h.Set("ETag", `"`+q.Get("h")+`"`)
	h.Set("Content-Disposition", Disposition(typ, q.Get("n")))
	h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
	rs := &blobSeeker{ctx: ctx, store: s.cfg.Store, key: key, size: info.Size}
	defer rs.Close()
	http.ServeContent(w, r, "", info.ModTime, rs)
	return nil
}

// inline are the types shown in the browser rather than downloaded.
func inline(typ string) bool {
	t, _, _ := mime.ParseMediaType(typ)
	switch t {
	case "image/png", "image/jpeg", "image/gif", "image/webp", "application/pdf", "text/plain":
		return true
	}
	return strings.HasPrefix(t, "video/") || strings.HasPrefix(t, "audio/")
}

// Disposition is the Content-Disposition for a file of type typ named
// name (RFC 6266): an ASCII fallback and the UTF-8 name in filename*.
func Disposition(typ, name string) string {
	d := "attachment"
	if inline(typ) {
		d = "inline"
	}
	if name == "" {
		return d
	}
	var ascii strings.Builder
	for _, c := range name {
		switch {
		case c < 0x20 || c >= 0x7f || c == '"' || c == '\\' || c == '/' || c == ';':
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(c)
		}
	}
	return fmt.Sprintf(`%s; filename="%s"; filename*=UTF-8''%s`, d, ascii.String(), pathEscape(name))
}

// pathEscape is RFC 5987's attr-char encoding.
func pathEscape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

// blobSeeker is an io.ReadSeeker over a blob for http.ServeContent: a
// Seek drops the open body, the next Read opens the blob at the offset.
type blobSeeker struct {
	ctx       context.Context
	store     blob.Store
	key       string
	size, pos int64
	body      io.ReadCloser
}

func (b *blobSeeker) Read(p []byte) (int, error) {
	if b.pos >= b.size {
		return 0, io.EOF
	}
	if b.body == nil {
		o, err := b.store.Open(b.ctx, b.key, blob.Range{Off: b.pos, Len: -1})
		if err != nil {
			return 0, err
		}
		b.body = o
	}
	n, err := b.body.Read(p)
	b.pos += int64(n)
	return n, err
}

func (b *blobSeeker) Seek(off int64, whence int) (int64, error) {
	switch whence {
	case io.SeekCurrent:
		off += b.pos
	case io.SeekEnd:
		off += b.size
	}
	if off < 0 {
		return 0, errors.New("attach: seek before start")
	}
	if off != b.pos {
		b.Close()
		b.pos = off
	}
	return off, nil
}

func (b *blobSeeker) Close() error {
	if b.body == nil {
		return nil
	}
	err := b.body.Close()
	b.body = nil
	return err
}
