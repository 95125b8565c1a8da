package attach

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"time"

	"github.com/parley-chat/parley/blob"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

func blobKey(id string) string   { return "uploads/" + id }
func thumbKey(id string) string  { return "thumbs/" + id }
func recordKey(id string) string { return "uploadmeta/" + id }
func claimKey(id string) string  { return "attachmeta/" + id }

// Record is a finished upload, as kept at "uploadmeta/<id>". It is
// written once, when the upload finishes.
type Record struct {
	ID        string `json:"id"`
	Owner     string `json:"owner"`
	Workspace string `json:"workspace"`
	Name      string `json:"name"`
	Type      string `json:"content_type"` // sniffed
	Size      int64  `json:"size"`
	SHA256    string `json:"sha256"` // hex
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Thumb     bool   `json:"thumb,omitempty"`
	CreatedMS int64  `json:"created_ms"`
}

// Expires is when an unattached upload is swept.
func (r *Record) expires(ttl time.Duration) time.Time { return time.UnixMilli(r.CreatedMS).Add(ttl) }

// Claim ties an upload to the message that attaches it.
type Claim struct {
	User        string `json:"user"`
	Workspace   string `json:"workspace"`
	ConvID      string `json:"conv_id"`
	ClientMsgID string `json:"client_msg_id"`
}

// Who is the caller of an attach or download: the verified token's identity.
type Who struct{ Workspace, User string }

func (s *Service) putJSON(ctx context.Context, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	_, err = s.cfg.Store.Put(ctx, key, bytes.NewReader(b), int64(len(b)))
	return err
}

func (s *Service) getJSON(ctx context.Context, key string, v any) error {
	o, err := s.cfg.Store.Open(ctx, key, blob.Whole)
	if err != nil {
		return err
	}
	defer o.Close()
	b, err := io.ReadAll(io.LimitReader(o, 64<<10))
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

func (s *Service) record(ctx context.Context, id string) (*Record, error) {
	if blob.ValidKey(recordKey(id)) != nil {
		return nil, blob.ErrNotFound
	}
	var r Record
	if err := s.getJSON(ctx, recordKey(id), &r); err != nil {
		return nil, err
	}
	return &r, nil
}

func (s *Service) claim(ctx context.Context, id string) (*Claim, error) {
	if blob.ValidKey(claimKey(id)) != nil {
		return nil, blob.ErrNotFound
	}
	var c Claim
	if err := s.getJSON(ctx, claimKey(id), &c); err != nil {
		return nil, err
	}
	return &c, nil
}

// notFound is the one answer for an upload that is missing, expired,
// someone else's, or in a conversation the caller cannot see.
func notFound(what string) error {
	return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such %s", what)
}

// storeErr turns a store failure into the wire's error.
func storeErr(err error, what string) error {
	switch {
	case errors.Is(err, blob.ErrNotFound), errors.Is(err, blob.ErrBadKey):
		return notFound(what)
	case errors.Is(err, context.DeadlineExceeded):
		return syncproto.Errorf(syncpb.Code_CODE_TIMEOUT, "timed out")
	}
	return err
}

// Attach resolves the uploads ids for a send of who's in conv under
// clientMsgID, claims them and calls send with the resolved attachments.
// A retry of the same send finds its own claims and passes; an upload
// that is missing, expired or not who's is NOT_FOUND; one another
// message attached is CONFLICT. When send fails with a definite answer
// (not a timeout or an unavailable core) the new claims are removed.
func (s *Service) Attach(ctx context.Context, who Who, conv, clientMsgID string, ids []string,
	send func([]*syncpb.Attachment) error) error {
	seen := map[string]bool{}
	for _, id := range ids {
		if seen[id] {
			return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "upload %s attached twice", id)
		}
		seen[id] = true
		unlock := s.lock.lock(id)
		defer unlock()
	}
	want := Claim{User: who.User, Workspace: who.Workspace, ConvID: conv, ClientMsgID: clientMsgID}
	atts := make([]*syncpb.Attachment, 0, len(ids))
	var fresh []string
	for _, id := range ids {
		rec, err := s.record(ctx, id)
		if err != nil {
			return storeErr(err, "upload "+id)
		}
		if rec.Owner != who.User || rec.Workspace != who.Workspace {
			return notFound("upload " + id)
		}
		c, err := s.claim(ctx, id)
		switch {
		case err == nil && *c != want:
			return syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "upload %s is already attached to another message", id)
		case err == nil: // a retry of this send
		case !errors.Is(err, blob.ErrNotFound):
			return err
		case !s.now().Before(rec.expires(s.cfg.TTL)):
			return syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "upload %s expired", id)
		default:
			if err := s.putJSON(ctx, claimKey(id), want); err != nil {
				return err
			}
			fresh = append(fresh, id)
		}
		atts = append(atts, rec.attachment())
	}
	err := send(atts)
	if err != nil && definite(err) {
		for _, id := range fresh {
			if derr := s.cfg.Store.Delete(context.WithoutCancel(ctx), claimKey(id)); derr != nil {
				s.log.Warn("attach: undo claim", "upload", id, "err", derr)
			}
		}
	}
	return err
}

// definite reports whether err says the send was not committed.
func definite(err error) bool {
	switch syncproto.AsError(err).Code {
	case syncpb.Code_CODE_TIMEOUT, syncpb.Code_CODE_UNAVAILABLE, syncpb.Code_CODE_INTERNAL:
		return false
	}
	return true
}

func (r *Record) attachment() *syncpb.Attachment {
	sum, _ := hex.DecodeString(r.SHA256)
	return &syncpb.Attachment{Id: r.ID, Name: r.Name, ContentType: r.Type, Size: uint64(r.Size),
		Sha256: sum, Width: uint32(r.Width), Height: uint32(r.Height), Thumbnail: r.Thumb}
}

// Lookup returns an attached upload's record and the conversation that
// holds it: NOT_FOUND for an upload nobody attached. The caller checks
// that who may see the conversation.
func (s *Service) Lookup(ctx context.Context, id string) (*Record, string, error) {
	c, err := s.claim(ctx, id)
	if err != nil {
		return nil, "", storeErr(err, "attachment")
	}
	rec, err := s.record(ctx, id)
	if err != nil {
		return nil, "", storeErr(err, "attachment")
	}
	return rec, c.ConvID, nil
}

// Info returns who's upload id's record once it has finished.
func (s *Service) Info(ctx context.Context, who Who, id string) (*Record, error) {
	rec, err := s.record(ctx, id)
	if err != nil {
		return nil, storeErr(err, "upload")
	}
	if rec.Owner != who.User || rec.Workspace != who.Workspace {
		return nil, notFound("upload")
	}
	return rec, nil
}
