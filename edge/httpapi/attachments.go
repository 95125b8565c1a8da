package httpapi

import (
	"errors"
	"fmt"
	"net/http"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/edge/attach"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func (c *call) who() attach.Who {
	return attach.Who{Workspace: c.claims.WorkspaceID, User: c.claims.UserID}
}

func (a *API) attachOff() error {
	return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "attachments are not enabled on this server")
}

// createUpload: POST /v1/uploads, tus creation (Upload-Length required,
// Upload-Metadata filename and filetype). The upload belongs to the
// token's user.
func (a *API) createUpload(c *call) error {
	if a.attach == nil {
		return a.attachOff()
	}
	c.r.Body = c.body
	a.attach.ServeTus(c.w, c.r, c.who(), "")
	return nil
}

// resumeUpload: HEAD (offset, routed by getUpload) and PATCH (append)
// /v1/uploads/{id}, tus.
// Someone else's upload is 404, as a missing one.
func (a *API) resumeUpload(c *call) error {
	if a.attach == nil {
		return a.attachOff()
	}
	c.r.Body = c.body
	a.attach.ServeTus(c.w, c.r, c.who(), c.r.PathValue("id"))
	return nil
}

type uploadJSON struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Size        int64  `json:"size"`
	SHA256      string `json:"sha256"`
	Width       int    `json:"width,omitempty"`
	Height      int    `json:"height,omitempty"`
	Thumbnail   bool   `json:"thumbnail,omitempty"`
}

// getUpload: GET /v1/uploads/{id}, a finished upload of the caller's as
// the server sees it (sniffed type, size, SHA-256). HEAD, which the mux
// routes here too, is tus's offset query.
func (a *API) getUpload(c *call) error {
	if c.r.Method == http.MethodHead {
		return a.resumeUpload(c)
	}
	if a.attach == nil {
		return a.attachOff()
	}
	rec, err := a.attach.Info(c.ctx, c.who(), c.r.PathValue("id"))
	if err != nil {
		return err
	}
	writeJSON(c.w, http.StatusOK, uploadJSON{ID: rec.ID, Name: rec.Name, ContentType: rec.Type, Size: rec.Size,
		SHA256: rec.SHA256, Width: rec.Width, Height: rec.Height, Thumbnail: rec.Thumb})
	return nil
}

// attachAndSend resolves a send's attachments (by upload id; the client's
// name, type and size are replaced by the upload's, its meta kept) and
// sends it while the uploads are claimed.
func (a *API) attachAndSend(c *call, conv, clientMsgID string, atts []*syncpb.Attachment, send func([]*syncpb.Attachment) error) error {
	ids := make([]string, len(atts))
	for i, at := range atts {
		if err := checkID(fmt.Sprintf("attachments[%d].id", i), at.Id); err != nil {
			return err
		}
		ids[i] = at.Id
	}
	return a.attach.Attach(c.ctx, c.who(), conv, clientMsgID, ids, func(resolved []*syncpb.Attachment) error {
		for i, at := range resolved {
			at.Meta = atts[i].Meta
		}
		return send(resolved)
	})
}

// download: GET /v1/attachments/{id}, a 302 to a URL that serves the
// bytes for a few minutes. Only members of the conversation holding the
// attachment get one; everyone else gets 404, as for a missing one.
func (a *API) download(c *call) error { return a.redirect(c, false) }

// downloadThumb: GET /v1/attachments/{id}/thumb, as download for the
// image's thumbnail (a JPEG); 404 when it has none.
func (a *API) downloadThumb(c *call) error { return a.redirect(c, true) }

func (a *API) redirect(c *call, thumb bool) error {
	if a.attach == nil {
		return a.attachOff()
	}
	id := c.r.PathValue("id")
	if err := checkID("id", id); err != nil {
		return err
	}
	rec, conv, err := a.attach.Lookup(c.ctx, id)
	if err != nil {
		return err
	}
	c.info.conv = conv
	_, err = a.callCore(c, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_GetConversation{GetConversation: &syncpb.GetConversationRequest{ConvId: conv}}})
	if err != nil {
		switch syncproto.AsError(err).Code {
		case syncpb.Code_CODE_NOT_MEMBER, syncpb.Code_CODE_NOT_FOUND, syncpb.Code_CODE_FORBIDDEN:
			return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such attachment")
		}
		return err
	}
	u, err := a.attach.DownloadURL(c.ctx, rec, thumb)
	if err != nil {
		return err
	}
	h := c.w.Header()
	h.Set("Location", u)
	h.Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusFound)
	return nil
}

// serveBlob: GET /v1/blobs/{kind}/{id}?exp=&sig=..., a signed URL from
// download: the bytes, with Range support. A bad or expired signature is
// 403.
func (a *API) serveBlob(c *call) error {
	if a.attach == nil {
		return a.attachOff()
	}
	err := a.attach.ServeBlob(c.w, c.r, c.r.PathValue("kind")+"/"+c.r.PathValue("id"))
	switch {
	case errors.Is(err, attach.ErrBadSignature):
		return syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "the link is invalid or has expired")
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrBadKey):
		return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such attachment")
	}
	return err
}
