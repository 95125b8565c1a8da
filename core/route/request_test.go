package route

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// An error without a wire code is logged with the request's shard,
// conversation and user before the caller is told INTERNAL; a wire error
// is answered as it is, unlogged.
func TestFailLogsNonWireErrors(t *testing.T) {
	var buf bytes.Buffer
	r := &Router{log: slog.New(slog.NewTextHandler(&buf, nil))}
	caller := &syncpb.Caller{WorkspaceId: "w_1", UserId: "u_ana"}
	req := syncproto.NewRequest(caller, &syncpb.HistoryRequest{ConvId: "c_team"})

	resp := r.Fail("s3", req, fmt.Errorf("store: read shard s3: %w", errors.New("disk on fire")))
	if c := resp.GetError().GetCode(); c != syncpb.Code_CODE_INTERNAL {
		t.Fatalf("code %v, want INTERNAL", c)
	}
	if strings.Contains(resp.GetError().GetMessage(), "disk") {
		t.Errorf("the caller is shown internal detail: %q", resp.GetError().GetMessage())
	}
	line := buf.String()
	for _, want := range []string{"shard=s3", "conv=c_team", "user=u_ana", "op=history", "disk on fire"} {
		if !strings.Contains(line, want) {
			t.Errorf("log %q lacks %s", line, want)
		}
	}

	buf.Reset()
	resp = r.Fail("s3", req, syncproto.Errorf(syncpb.Code_CODE_NOT_MEMBER, "not a member"))
	if c := resp.GetError().GetCode(); c != syncpb.Code_CODE_NOT_MEMBER || buf.Len() != 0 {
		t.Errorf("wire error: code %v, log %q; want NOT_MEMBER unlogged", c, buf.String())
	}
}
