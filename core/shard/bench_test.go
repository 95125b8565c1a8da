package shard

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// sendLogs builds n proposed sends of 200-byte bodies from index start.
func sendLogs(b *testing.B, conv string, start uint64, n int) []*raft.Log {
	b.Helper()
	body := []byte(strings.Repeat("x", 200))
	logs := make([]*raft.Log, n)
	for i := range logs {
		data, err := proto.Marshal(&cmdpb.Command{
			Caller: caller("bo"), TsUnixMs: 1_700_000_000_000 + int64(i),
			Op: &cmdpb.Command_Send{Send: &syncpb.SendRequest{ConvId: conv, ClientMsgId: fmt.Sprintf("b-%d", i), Body: body}},
		})
		if err != nil {
			b.Fatal(err)
		}
		logs[i] = &raft.Log{Index: start + uint64(i), Term: 1, Type: raft.LogCommand, Data: data}
	}
	return logs
}

func BenchmarkApplySend(b *testing.B) {
	for _, batch := range []int{1, 64} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			h := newHarnessDB(b, 64<<20)
			mustOK(b, h.do(caller("ana"), groupReq("c_bench", "bo")))
			logs := sendLogs(b, "c_bench", h.index+1, b.N)
			b.SetBytes(200)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < len(logs); i += batch {
				out := h.f.ApplyBatch(logs[i:min(i+batch, len(logs))])
				if r := out[0].(*syncpb.CoreResponse); r.GetError() != nil {
					b.Fatal(r.GetError())
				}
			}
		})
	}
}

func BenchmarkHistory(b *testing.B) {
	const n = 10000
	h := newHarnessDB(b, 64<<20)
	mustOK(b, h.do(caller("ana"), groupReq("c_bench", "bo")))
	for _, l := range chunks(sendLogs(b, "c_bench", h.index+1, n), 256) {
		h.f.ApplyBatch(l)
	}
	for _, dir := range []syncpb.Direction{syncpb.Direction_DIRECTION_BACKWARD, syncpb.Direction_DIRECTION_FORWARD} {
		b.Run(dir.String(), func(b *testing.B) {
			rng := rand.New(rand.NewPCG(1, 1))
			b.ReportAllocs()
			for b.Loop() {
				req := historyReq("c_bench", uint64(1+rng.IntN(n)), 50, dir)
				req.Caller = caller("bo")
				_, resp, err := h.f.Prepare(context.Background(), req, h.now)
				if err != nil || resp.GetHistory() == nil {
					b.Fatal(err, resp)
				}
			}
		})
	}
}

func chunks[T any](s []T, n int) [][]T {
	var out [][]T
	for len(s) > 0 {
		k := min(n, len(s))
		out = append(out, s[:k])
		s = s[k:]
	}
	return out
}
