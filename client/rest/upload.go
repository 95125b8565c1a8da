package rest

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// DefaultUploadChunk is how many bytes Upload sends per PATCH unless
// WithUploadChunk says otherwise. A chunk is held in memory so that a cut
// connection resumes from the server's offset without a seekable reader.
const DefaultUploadChunk = 4 << 20

// uploadRetries bounds how often Upload resumes one chunk after
// connection failures.
const uploadRetries = 8

// WithUploadChunk sets Upload's chunk size in bytes.
func WithUploadChunk(n int) Option { return func(c *Client) { c.chunk = n } }

// AttachmentRef names a finished upload to attach to a message, and
// opaque per-attachment metadata (standard base64).
type AttachmentRef struct {
	ID         string `json:"id"`
	MetaBase64 string `json:"meta_base64,omitempty"`
}

// Attachment is an attachment as the server stored it: name, sniffed
// type, size and SHA-256 come from the upload.
type Attachment struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        uint64 `json:"size"`
	MetaBase64  string `json:"meta_base64"`
	SHA256      string `json:"sha256"`
	Width       uint32 `json:"width"`
	Height      uint32 `json:"height"`
	Thumbnail   bool   `json:"thumbnail"`
}

// UploadInfo is a finished upload as the server sees it.
type UploadInfo struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Width       int    `json:"width"`
	Height      int    `json:"height"`
	Thumbnail   bool   `json:"thumbnail"`
}

// Upload sends size bytes from r as a new upload named name and returns
// its id, to attach with SendRequest.Attachments. It speaks tus 1.0.0:
// POST /v1/uploads creates, PATCH appends chunk by chunk, and after a
// failed connection HEAD asks for the offset the server has and the
// chunk resumes from there. contentType is a hint the server ignores (it
// sniffs the bytes). progress, if not nil, is called with the bytes the
// server has acknowledged. Server refusals are *Error: TOO_LARGE (over
// the workspace's limit), INVALID_ARGUMENT (a disallowed type, HTTP 415,
// or refused by the server's scan).
func (c *Client) Upload(ctx context.Context, r io.Reader, size int64, name, contentType string, progress func(sent int64)) (string, error) {
	if size < 0 {
		return "", errors.New("rest: upload: size is negative")
	}
	h := http.Header{}
	h.Set("Upload-Length", strconv.FormatInt(size, 10))
	h.Set("Upload-Metadata", "filename "+base64.StdEncoding.EncodeToString([]byte(name))+
		",filetype "+base64.StdEncoding.EncodeToString([]byte(contentType)))
	resp, err := c.tus(ctx, http.MethodPost, "/v1/uploads", h, nil)
	if err != nil {
		return "", err
	}
	loc := resp.Header.Get("Location")
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(u.Path, "/v1/uploads/") {
		return "", fmt.Errorf("rest: upload: bad Location %q", loc)
	}
	path := u.Path
	id := strings.TrimPrefix(path, "/v1/uploads/")
	chunk := c.chunk
	if chunk <= 0 {
		chunk = DefaultUploadChunk
	}
	buf := make([]byte, chunk)
	var off int64
	for off < size { // an empty upload is finished when created
		n, err := io.ReadFull(r, buf[:min(int64(chunk), size-off)])
		if err != nil && n < int(min(int64(chunk), size-off)) {
			return "", fmt.Errorf("rest: upload: read: %w", err)
		}
		start := off
		for tries := 0; off < start+int64(n); tries++ {
			h := http.Header{}
			h.Set("Content-Type", "application/offset+octet-stream")
			h.Set("Upload-Offset", strconv.FormatInt(off, 10))
			resp, err := c.tus(ctx, http.MethodPatch, path, h, buf[off-start:n])
			if err == nil {
				if off, err = offsetOf(resp); err != nil {
					return "", err
				}
			} else {
				var e *Error
				if errors.As(err, &e) && e.Status != http.StatusConflict || ctx.Err() != nil || tries >= uploadRetries {
					return "", err
				}
				// The connection failed (or the offset moved): ask where
				// the server is and go on from there.
				if err := sleepCtx(ctx, time.Duration(tries)*50*time.Millisecond); err != nil {
					return "", err
				}
				resp, herr := c.tus(ctx, http.MethodHead, path, nil, nil)
				if herr != nil {
					continue
				}
				if off, err = offsetOf(resp); err != nil {
					return "", err
				}
				if off < start {
					return "", fmt.Errorf("rest: upload: server offset %d went back before %d", off, start)
				}
			}
			if progress != nil {
				progress(off)
			}
		}
	}
	return id, nil
}

// UploadInfo returns the caller's finished upload id.
func (c *Client) UploadInfo(ctx context.Context, id string) (*UploadInfo, error) {
	var out UploadInfo
	if err := c.do(ctx, http.MethodGet, "/v1/uploads/"+url.PathEscape(id), nil, &out, true); err != nil {
		return nil, err
	}
	return &out, nil
}

func offsetOf(resp *http.Response) (int64, error) {
	off, err := strconv.ParseInt(resp.Header.Get("Upload-Offset"), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("rest: upload: bad Upload-Offset %q", resp.Header.Get("Upload-Offset"))
	}
	return off, nil
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

// tus sends one tus request with the access token; an error answer is an
// *Error as for every call.
func (c *Client) tus(ctx context.Context, method, path string, h http.Header, body []byte) (*http.Response, error) {
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return nil, &requestError{err}
	}
	for k, v := range h {
		req.Header[k] = v
	}
	req.Header.Set("Tus-Resumable", "1.0.0")
	access, _ := c.Tokens()
	req.Header.Set("Authorization", "Bearer "+access)
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("rest: %s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		return nil, apiError(resp, b)
	}
	return resp, nil
}
