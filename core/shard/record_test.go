package shard

import (
	"reflect"
	"testing"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func TestConvMetaRoundTrip(t *testing.T) {
	for _, m := range []convMeta{
		{},
		{Type: syncpb.ConversationType_CONVERSATION_TYPE_GROUP, WorkspaceID: "w_a", Title: "tïtle", CreatedBy: "u_a",
			CreatedMs: 1_700_000_000_000, LastSeq: 1 << 40, LastMs: -5, Members: 10000, Owners: 2},
	} {
		got, err := unmarshalConvMeta(m.marshal())
		if err != nil || !reflect.DeepEqual(*got, m) {
			t.Fatalf("round trip of %+v: %+v, %v", m, got, err)
		}
	}
	if _, err := unmarshalConvMeta(append((&convMeta{}).marshal(), 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
}

// FuzzConvMeta: decoding never panics, and what decodes re-encodes to a
// record that decodes to the same value.
func FuzzConvMeta(f *testing.F) {
	f.Add((&convMeta{Type: 2, WorkspaceID: "w_a", Title: "t", CreatedBy: "u_a", LastSeq: 9, Members: 3, Owners: 1}).marshal())
	f.Add([]byte{1, 1, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unmarshalConvMeta(b)
		if err != nil {
			return
		}
		again, err := unmarshalConvMeta(m.marshal())
		if err != nil || !reflect.DeepEqual(again, m) {
			t.Fatalf("re-encoded %+v decodes to %+v, %v", m, again, err)
		}
	})
}
