package presence

import (
	"encoding/binary"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// FuzzApply feeds the table any sequence of batches (uvarint-length-
// prefixed protobuf, as edges could send, malformed ones skipped) with
// clock steps, and checks its books balance: each user's device count is
// the number of (edge, device) pairs, never negative, and every reported
// change flips the user's state.
func FuzzApply(f *testing.F) {
	seed := func(bs ...*syncpb.PresenceBatch) []byte {
		var out []byte
		for _, b := range bs {
			data, _ := proto.Marshal(b)
			out = binary.AppendUvarint(out, uint64(len(data)))
			out = append(out, data...)
		}
		return out
	}
	d := func(u, dv string) *syncpb.PresenceDevice {
		return &syncpb.PresenceDevice{WorkspaceId: "w", UserId: u, DeviceId: dv}
	}
	f.Add(seed(
		&syncpb.PresenceBatch{EdgeId: "a", Epoch: 1, Seq: 1, Reset_: true, Snapshot: true, SnapshotDone: true, Connected: []*syncpb.PresenceDevice{d("u1", "p")}},
		&syncpb.PresenceBatch{EdgeId: "b", Epoch: 1, Seq: 1, Connected: []*syncpb.PresenceDevice{d("u1", "l"), d("u2", "p")}},
		&syncpb.PresenceBatch{EdgeId: "a", Epoch: 1, Seq: 3, Disconnected: []*syncpb.PresenceDevice{d("u1", "p")}},
		&syncpb.PresenceBatch{EdgeId: "b", Epoch: 2, Seq: 1, Closing: true},
	))
	f.Add([]byte{0})
	f.Fuzz(func(t *testing.T, in []byte) {
		c := &clock{t: time.Unix(1_700_000_000, 0)}
		tb, err := New(Config{Now: c.now})
		if err != nil {
			t.Fatal(err)
		}
		online := map[string]bool{}
		check := func(cs []Change) {
			for _, ch := range cs {
				if online[ch.UserID] == ch.Online {
					t.Fatalf("change %+v does not flip the state", ch)
				}
				online[ch.UserID] = ch.Online
			}
			count := map[string]int{}
			for _, e := range tb.edges {
				for k := range e.devices {
					count[k.user]++
				}
			}
			for id, u := range tb.users {
				if u.devices < 0 || u.devices != count[id] || (u.devices > 0) != online[id] {
					t.Fatalf("user %s: %d devices, %d on edges, online %v", id, u.devices, count[id], online[id])
				}
			}
		}
		for len(in) > 0 {
			n, k := binary.Uvarint(in)
			if k <= 0 || n > uint64(len(in)-k) {
				return
			}
			msg := in[k : k+int(n)]
			in = in[k+int(n):]
			b := &syncpb.PresenceBatch{}
			if proto.Unmarshal(msg, b) != nil {
				continue
			}
			cs, _ := tb.Apply(b)
			check(cs)
			c.advance(time.Duration(len(msg)) * 50 * time.Millisecond)
			check(tb.Expire())
		}
	})
}
