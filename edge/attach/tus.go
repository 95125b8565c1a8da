package attach

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/tus/tusd/v2/pkg/filestore"
	"github.com/tus/tusd/v2/pkg/handler"
	"github.com/tus/tusd/v2/pkg/memorylocker"
	xslog "golang.org/x/exp/slog"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/blob/media"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// BasePath is where the tus endpoints live: POST BasePath creates an
// upload, HEAD and PATCH BasePath+"/{id}" resume and append.
const BasePath = "/v1/uploads"

// Metadata keys tusd keeps in an upload's .info file. Only name and type
// come from the client (tus's "filename"/"name" and "filetype"/"type");
// the rest the pre-create hook sets from the verified token.
const (
	metaOwner     = "parley_owner"
	metaWorkspace = "parley_workspace"
	metaCreated   = "parley_created_ms"
	metaName      = "name"
	metaType      = "declared_type"
)

type whoKey struct{}

// WithWho returns ctx carrying the caller's verified identity, which the
// tus handlers read; the API sets it before calling ServeTus.
func WithWho(ctx context.Context, who Who) context.Context {
	return context.WithValue(ctx, whoKey{}, who)
}

type tusServer struct {
	s     *Service
	store filestore.FileStore
	h     *handler.UnroutedHandler
}

func newTusServer(s *Service) (*tusServer, error) {
	t := &tusServer{s: s, store: filestore.New(s.cfg.Dir)}
	comp := handler.NewStoreComposer()
	t.store.UseIn(comp)
	memorylocker.New().UseIn(comp)
	// tusd logs every request at info; keep only its errors.
	quiet := xslog.New(xslog.NewTextHandler(io.Discard, nil))
	h, err := handler.NewUnroutedHandler(handler.Config{
		StoreComposer:             comp,
		BasePath:                  BasePath + "/",
		DisableDownload:           true,
		DisableTermination:        true,
		DisableConcatenation:      true,
		Logger:                    quiet,
		PreUploadCreateCallback:   t.preCreate,
		PreFinishResponseCallback: t.preFinish,
	})
	if err != nil {
		return nil, fmt.Errorf("attach: tusd: %w", err)
	}
	t.h = h
	return t, nil
}

// tusError is an error tusd sends as is: our JSON error body.
func tusError(status int, e *syncproto.Error) handler.Error {
	body, _ := json.Marshal(map[string]any{"error": map[string]any{
		"code": syncproto.CodeName(e.Code), "numeric_code": int32(e.Code), "message": e.Message}})
	return handler.Error{ErrorCode: syncproto.CodeName(e.Code), Message: e.Message, HTTPResponse: handler.HTTPResponse{
		StatusCode: status, Body: string(body) + "\n",
		Header: handler.HTTPHeader{"Content-Type": "application/json; charset=utf-8"},
	}}
}

func codedError(code syncpb.Code, format string, args ...any) handler.Error {
	return tusError(syncproto.HTTPStatus(code), syncproto.Errorf(code, format, args...))
}

func whoOf(ctx context.Context) (Who, bool) {
	w, ok := ctx.Value(whoKey{}).(Who)
	return w, ok && w.User != ""
}

// preCreate admits a new upload: a known length within the workspace's
// limit, owned by the token's user.
func (t *tusServer) preCreate(ev handler.HookEvent) (handler.HTTPResponse, handler.FileInfoChanges, error) {
	who, ok := whoOf(ev.Context)
	if !ok {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, codedError(syncpb.Code_CODE_UNAUTHENTICATED, "missing bearer token")
	}
	up := ev.Upload
	if up.SizeIsDeferred {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, codedError(syncpb.Code_CODE_INVALID_ARGUMENT, "Upload-Length is required")
	}
	if lim := t.s.limits(who.Workspace); up.Size > lim.MaxSize {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, codedError(syncpb.Code_CODE_TOO_LARGE, "upload of %d bytes exceeds the limit of %d", up.Size, lim.MaxSize)
	}
	name := first(up.MetaData["filename"], up.MetaData["name"])
	if len(name) > 255 {
		return handler.HTTPResponse{}, handler.FileInfoChanges{}, codedError(syncpb.Code_CODE_INVALID_ARGUMENT, "file name longer than 255 bytes")
	}
	meta := handler.MetaData{
		metaOwner: who.User, metaWorkspace: who.Workspace, metaName: name,
		metaType:    first(up.MetaData["filetype"], up.MetaData["type"]),
		metaCreated: strconv.FormatInt(t.s.now().UnixMilli(), 10),
	}
	return handler.HTTPResponse{}, handler.FileInfoChanges{MetaData: meta}, nil
}

func first(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// preFinish moves a finished upload into the store: sniffed, checked,
// scanned, thumbnailed. A refused upload leaves no bytes anywhere.
func (t *tusServer) preFinish(ev handler.HookEvent) (handler.HTTPResponse, error) {
	ctx := context.WithoutCancel(ev.Context)
	id := ev.Upload.ID
	if err := t.finish(ctx, ev.Upload); err != nil {
		_ = t.s.deleteUpload(ctx, id)
		_ = t.remove(ctx, id)
		var he handler.Error
		if errors.As(err, &he) {
			return handler.HTTPResponse{}, he
		}
		t.s.log.Error("attach: finish upload", "upload", id, "err", err)
		return handler.HTTPResponse{}, codedError(syncpb.Code_CODE_INTERNAL, "could not store the upload")
	}
	return handler.HTTPResponse{}, nil
}

func (t *tusServer) finish(ctx context.Context, up handler.FileInfo) error {
	meta := up.MetaData
	lim := t.s.limits(meta[metaWorkspace])
	if up.Size > lim.MaxSize {
		return codedError(syncpb.Code_CODE_TOO_LARGE, "upload exceeds the limit of %d bytes", lim.MaxSize)
	}
	path := t.binPath(up.ID)
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	typ, _, err := media.SniffReader(f)
	if err != nil {
		return err
	}
	if lim.Allow.Check(typ) != nil {
		return tusError(http.StatusUnsupportedMediaType, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "type %s is not allowed here", typ))
	}
	u := Upload{ID: up.ID, Owner: meta[metaOwner], Workspace: meta[metaWorkspace], Name: meta[metaName], Type: typ, Size: up.Size}
	if t.s.cfg.Scanner != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return err
		}
		if err := t.s.cfg.Scanner.Scan(ctx, u, f); err != nil {
			return tusError(http.StatusUnprocessableEntity, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "upload refused: %v", err))
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	info, err := t.s.cfg.Store.Put(ctx, blobKey(up.ID), f, up.Size)
	if err != nil {
		if errors.Is(err, blob.ErrTooLarge) {
			return codedError(syncpb.Code_CODE_TOO_LARGE, "upload exceeds the store's limit")
		}
		return err
	}
	created, _ := strconv.ParseInt(meta[metaCreated], 10, 64)
	rec := Record{ID: up.ID, Owner: u.Owner, Workspace: u.Workspace, Name: u.Name, Type: typ, Size: info.Size,
		SHA256: hex.EncodeToString(info.SHA256[:]), CreatedMS: created}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return err
	}
	if img, err := media.Thumbnail(f, t.s.cfg.Thumb); err == nil || img.Width > 0 {
		rec.Width, rec.Height = img.Width, img.Height
		if err == nil && len(img.Thumb) > 0 {
			if _, err := t.s.cfg.Store.Put(ctx, thumbKey(up.ID), bytes.NewReader(img.Thumb), int64(len(img.Thumb))); err != nil {
				return err
			}
			rec.Thumb = true
		}
	}
	return t.s.putJSON(ctx, recordKey(up.ID), rec)
}

func (t *tusServer) binPath(id string) string { return filepath.Join(t.s.cfg.Dir, id) }

// tusMeta is an upload's tusd metadata.
type tusMeta handler.MetaData

func (m tusMeta) created() time.Time {
	ms, _ := strconv.ParseInt(m[metaCreated], 10, 64)
	return time.UnixMilli(ms)
}

// meta reads an upload's tusd metadata.
func (t *tusServer) meta(ctx context.Context, id string) (tusMeta, error) {
	up, err := t.store.GetUpload(ctx, id)
	if err != nil {
		return nil, err
	}
	info, err := up.GetInfo(ctx)
	if err != nil {
		return nil, err
	}
	return tusMeta(info.MetaData), nil
}

// remove deletes an upload's partial files.
func (t *tusServer) remove(ctx context.Context, id string) error {
	errs := []error{os.Remove(t.binPath(id)), os.Remove(t.binPath(id) + ".info")}
	for i, err := range errs {
		if errors.Is(err, os.ErrNotExist) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// ServeTus serves the tus protocol for who: POST creates (id ""), HEAD
// and PATCH act on upload id, which must be who's (else 404 as for a
// missing one). OPTIONS answers tus's discovery.
func (s *Service) ServeTus(w http.ResponseWriter, r *http.Request, who Who, id string) {
	t := s.tus
	r = r.WithContext(WithWho(r.Context(), who))
	var h http.Handler
	switch {
	case id == "" && r.Method == http.MethodPost:
		h = http.HandlerFunc(t.h.PostFile)
	case id != "" && (r.Method == http.MethodHead || r.Method == http.MethodPatch):
		meta, err := t.meta(r.Context(), id)
		if err != nil || meta[metaOwner] != who.User || meta[metaWorkspace] != who.Workspace {
			if r.Method == http.MethodHead {
				w.WriteHeader(http.StatusNotFound)
				return
			}
			he := codedError(syncpb.Code_CODE_NOT_FOUND, "no such upload")
			for k, v := range he.HTTPResponse.Header {
				w.Header().Set(k, v)
			}
			w.WriteHeader(he.HTTPResponse.StatusCode)
			_, _ = io.WriteString(w, he.HTTPResponse.Body)
			return
		}
		if r.Method == http.MethodHead {
			h = http.HandlerFunc(t.h.HeadFile)
		} else {
			h = http.HandlerFunc(t.h.PatchFile)
		}
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	// tusd's handlers read the id from a path without the base.
	t.h.Middleware(http.StripPrefix(BasePath, h)).ServeHTTP(w, r)
}
