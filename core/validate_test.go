package core_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// TestCoreRunsTheValidator sends the core, straight over NATS, requests an
// edge would refuse: the core refuses them with the same codes, by the
// same validators (syncproto.Requests).
func TestCoreRunsTheValidator(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	users := r.Users("ana")
	conv := r.CreateGroup(users[0], users)
	att := func(name string) []*syncpb.Attachment {
		return []*syncpb.Attachment{{Id: syncproto.NewID("f_"), Name: name, ContentType: "image/png"}}
	}
	many := make([]*syncpb.Attachment, syncproto.MaxAttachments+1)
	for i := range many {
		many[i] = att("a.png")[0]
	}
	for _, tt := range []struct {
		name string
		send *syncpb.SendRequest
		want *syncproto.Error
	}{
		{"attachment name with a control character", &syncpb.SendRequest{ConvId: conv, ClientMsgId: "m1", Attachments: att("a\x07.png")}, syncproto.ErrInvalidArgument},
		{"too many attachments", &syncpb.SendRequest{ConvId: conv, ClientMsgId: "m2", Attachments: many}, syncproto.ErrTooLarge},
		{"empty", &syncpb.SendRequest{ConvId: conv, ClientMsgId: "m3"}, syncproto.ErrInvalidArgument},
	} {
		ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
		_, err := r.Call(ctx, r.ShardSubject(conv), syncproto.NewRequest(users[0], tt.send))
		cancel()
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}
