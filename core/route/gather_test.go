package route

import (
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestTrimDeltasKeepsPrefixesWithinBudget(t *testing.T) {
	body := make([]byte, 1000)
	var ds []*syncpb.ConversationDelta
	for c := 0; c < 5; c++ {
		d := &syncpb.ConversationDelta{ConvId: string(rune('a' + c)), LastSeq: 10}
		for s := uint64(1); s <= 10; s++ {
			d.Messages = append(d.Messages, &syncpb.Message{ConvId: d.ConvId, Seq: s, Body: body})
		}
		ds = append(ds, d)
	}
	trimDeltas(ds, 25_000)
	total, kept := 0, 0
	for i, d := range ds {
		for j, m := range d.Messages {
			if m.Seq != uint64(j+1) {
				t.Fatalf("delta %d: message %d has seq %d: not a prefix", i, j, m.Seq)
			}
			total += proto.Size(m)
		}
		kept += len(d.Messages)
		if want := len(d.Messages) < 10; d.Truncated != want {
			t.Fatalf("delta %d: truncated %v with %d messages", i, d.Truncated, len(d.Messages))
		}
	}
	if total > 25_000 || kept < 20 {
		t.Fatalf("kept %d messages, %d bytes", kept, total)
	}
	if len(ds[4].Messages) != 0 {
		t.Fatalf("the budget ran out before the last delta, yet it kept %d", len(ds[4].Messages))
	}
}
