package client

import (
	"os"
	"path/filepath"
	"testing"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

func sendReq(id string) *syncpb.SendRequest {
	return &syncpb.SendRequest{ConvId: "c_1", ClientMsgId: id, Body: []byte("body " + id)}
}

func ids(reqs []*syncpb.SendRequest) []string {
	var out []string
	for _, r := range reqs {
		out = append(out, r.ClientMsgId)
	}
	return out
}

func TestOutboxFileKeepsWhatIsUnanswered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	o, pending, err := openOutbox(path)
	if err != nil || len(pending) != 0 {
		t.Fatalf("new outbox: %v %v", pending, err)
	}
	for _, id := range []string{"a", "b", "c", "d"} {
		if err := o.add(sendReq(id)); err != nil {
			t.Fatal(err)
		}
	}
	if err := o.done("b", []*syncpb.SendRequest{sendReq("a"), sendReq("c"), sendReq("d")}); err != nil {
		t.Fatal(err)
	}
	if err := o.done("a", []*syncpb.SendRequest{sendReq("c"), sendReq("d")}); err != nil {
		t.Fatal(err)
	}
	o.close()
	// A crash mid-write leaves a torn record: it is ignored.
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := proto.Marshal(sendReq("e"))
	if _, err := f.Write(appendRecord(nil, recAdd, b)[:5]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	o, pending, err = openOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	if got := ids(pending); len(got) != 2 || got[0] != "c" || got[1] != "d" {
		t.Fatalf("after reopening: %v, want [c d]", got)
	}
	if !proto.Equal(pending[0], sendReq("c")) {
		t.Fatalf("restored %v", pending[0])
	}
}

func TestOutboxFileCompacts(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	o, _, err := openOutbox(path)
	if err != nil {
		t.Fatal(err)
	}
	defer o.close()
	for i := range 200 {
		id := string(rune('a'+i%26)) + string(rune('a'+i/26))
		if err := o.add(sendReq(id)); err != nil {
			t.Fatal(err)
		}
		if err := o.done(id, nil); err != nil {
			t.Fatal(err)
		}
	}
	if o.records > 64 {
		t.Fatalf("%d records after 200 answered sends: not compacted", o.records)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Size() > 64*64 {
		t.Fatalf("outbox file %v bytes (%v)", fi.Size(), err)
	}
}

func TestOutboxFileRejectsGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "outbox")
	if err := os.WriteFile(path, []byte{9, 1, 0}, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, _, err := openOutbox(path); err == nil {
		t.Fatal("an unknown record kind was accepted")
	}
}

func FuzzReplayOutbox(f *testing.F) {
	b, _ := proto.Marshal(sendReq("x"))
	f.Add(appendRecord(appendRecord(nil, recAdd, b), recDone, []byte("x")))
	f.Add(appendRecord(nil, recAdd, b)[:4])
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		reqs, err := replayOutbox(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, r := range reqs {
			if r.ClientMsgId == "" || seen[r.ClientMsgId] {
				t.Fatalf("replay returned a send twice or without id: %v", r)
			}
			seen[r.ClientMsgId] = true
		}
	})
}
