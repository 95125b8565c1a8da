package shard

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"io"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// The files testdata/legacy.* were written by the shard of parley 38282e0,
// whose commands carry no rules (rules 0):
//
//   - legacy.log.gz: its log. It starts in c_legacy (members ana, bo, cy):
//     ana sends "same-id" ("ana's message", seq 1); bo ("bo's message")
//     and then ana ("ana's other message") reuse that id and get ana's
//     answer; cy sends "cy-1" (seq 2); bo sends "bo-att" with one
//     attachment (seq 3). determinism_test.go's workload follows (400
//     requests, seed 21). Records: uvarint index, uvarint term, type
//     byte, uvarint length, data.
//   - legacy.snap.gz: its snapshot after the first snapshot_after entries.
//   - legacy.sum: the SHA-256 of its key space after every entry
//     (dumpGroup) and of its answers (each deterministic protobuf
//     prefixed by its uvarint length; a 0 byte for an entry that is not
//     a command).

func readGzip(t *testing.T, path string) []byte {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func readLegacyLog(t *testing.T) []*raft.Log {
	t.Helper()
	b := readGzip(t, "testdata/legacy.log.gz")
	var logs []*raft.Log
	uv := func() uint64 {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			t.Fatal("legacy log: bad uvarint")
		}
		b = b[n:]
		return v
	}
	for len(b) > 0 {
		l := &raft.Log{Index: uv(), Term: uv()}
		l.Type, b = raft.LogType(b[0]), b[1:]
		n := uv()
		if n > uint64(len(b)) {
			t.Fatal("legacy log: truncated")
		}
		l.Data, b = b[:n], b[n:]
		logs = append(logs, l)
	}
	return logs
}

func readLegacySum(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile("testdata/legacy.sum")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), " ")
		out[k] = v
	}
	return out
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// A log from before rules were numbered replays, one entry at a time, to
// the key space and the answers its own version produced; so does its
// snapshot with the entries after it.
func TestLegacyLogReplaysIdentically(t *testing.T) {
	logs := readLegacyLog(t)
	sum := readLegacySum(t)
	if n, _ := strconv.Atoi(sum["entries"]); n != len(logs) || n == 0 {
		t.Fatalf("legacy log has %d entries, legacy.sum says %s", len(logs), sum["entries"])
	}
	db := openDB(t, 16<<20)
	f := newFSM(t, db, newFakeDir())
	answers := sha256.New()
	for _, l := range logs {
		cr, ok := f.Apply(l).(*syncpb.CoreResponse)
		if !ok {
			answers.Write([]byte{0})
			continue
		}
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(cr)
		if err != nil {
			t.Fatal(err)
		}
		answers.Write(binary.AppendUvarint(nil, uint64(len(b))))
		answers.Write(b)
	}
	if got := hex.EncodeToString(answers.Sum(nil)); got != sum["responses"] {
		t.Errorf("answers to the legacy log differ from its version's: %s, want %s", got, sum["responses"])
	}
	if got := sumHex(dumpGroup(t, db, group)); got != sum["state"] {
		t.Errorf("key space after the legacy log differs from its version's: %s, want %s", got, sum["state"])
	}

	half, _ := strconv.Atoi(sum["snapshot_after"])
	restored := openDB(t, 16<<20)
	fr := newFSM(t, restored, newFakeDir())
	if err := fr.Restore(io.NopCloser(bytes.NewReader(readGzip(t, "testdata/legacy.snap.gz")))); err != nil {
		t.Fatal(err)
	}
	if idx, err := fr.AppliedIndex(); err != nil || idx != logs[half-1].Index {
		t.Fatalf("legacy snapshot restored at index %d, %v; want %d", idx, err, logs[half-1].Index)
	}
	fr.ApplyBatch(logs[half-5:])
	if got := sumHex(dumpGroup(t, restored, group)); got != sum["state"] {
		t.Errorf("legacy snapshot plus the rest of the log: key space %s, want %s", got, sum["state"])
	}
}

// After the upgrade, the ids the legacy log recorded dedupe their senders'
// retries, conflict on other content, and are free for everyone else.
func TestLegacyIDsAfterUpgrade(t *testing.T) {
	logs := readLegacyLog(t)
	h := newHarness(t)
	h.f.ApplyBatch(logs)
	h.index = logs[len(logs)-1].Index
	h.now = time.UnixMilli(1_800_000_000_000)
	last := mustOK(t, h.do(caller("ana"), getReq("c_legacy"))).GetConversation().LastSeq

	att := sendReq("c_legacy", "bo-att", "")
	att.GetSend().Attachments = []*syncpb.Attachment{{Id: "a_1", Name: "f.png", ContentType: "image/png", Size: 10, Meta: []byte{1, 2}}}
	for _, tc := range []struct {
		by  string
		req *syncpb.CoreRequest
		seq uint64
	}{
		{"ana", sendReq("c_legacy", "same-id", "ana's message"), 1},
		{"cy", sendReq("c_legacy", "cy-1", "cy's message"), 2},
		{"bo", att, 3},
	} {
		if ack := sendOK(t, h, tc.by, tc.req); !ack.Duplicate || ack.Seq != tc.seq {
			t.Fatalf("%s's retry of %s answered %v, want the duplicate of seq %d", tc.by, tc.req.GetSend().ClientMsgId, ack, tc.seq)
		}
	}
	wantCode(t, h.do(caller("ana"), sendReq("c_legacy", "same-id", "ana's other message")), syncpb.Code_CODE_CONFLICT)
	bo := sendOK(t, h, "bo", sendReq("c_legacy", "same-id", "bo's message"))
	if bo.Duplicate || bo.Seq != last+1 {
		t.Fatalf("bo's send under ana's legacy id answered %v, want seq %d", bo, last+1)
	}
	msgs := mustOK(t, h.do(caller("cy"), historyReq("c_legacy", last, 10, syncpb.Direction_DIRECTION_FORWARD))).GetHistory().GetMessages()
	if len(msgs) != 1 || string(msgs[0].Body) != "bo's message" || msgs[0].SenderUserId != "u_bo" {
		t.Fatalf("after the upgrade: %v", msgs)
	}
}
