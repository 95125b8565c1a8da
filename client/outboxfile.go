package client

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// The outbox file is a log of records, each a kind byte, a uvarint length
// and a payload: recAdd carries a SendRequest queued by Send, recDone the
// client_msg_id of one that got its answer. Replaying it gives the sends
// still waiting, in order. A torn last record (a crash mid-write) is
// ignored: an add that did not reach the disk was never acknowledged to
// the app as queued.
const (
	recAdd  byte = 1
	recDone byte = 2
	// maxOutboxRecord bounds one record (a SendRequest is at most a few
	// hundred KiB: a 64 KiB body and attachment metadata).
	maxOutboxRecord = 1 << 20
)

// errBadOutbox is returned (wrapped) for an outbox file that is not one.
var errBadOutbox = errors.New("client: bad outbox file")

// outboxFile keeps the outbox on disk.
type outboxFile struct {
	path    string
	f       *os.File
	records int // in the file now
}

// openOutbox replays path (creating it if missing) and returns the sends
// still waiting, oldest first. The file is rewritten with just those.
func openOutbox(path string) (*outboxFile, []*syncpb.SendRequest, error) {
	var pending []*syncpb.SendRequest
	if b, err := os.ReadFile(path); err == nil {
		if pending, err = replayOutbox(b); err != nil {
			return nil, nil, fmt.Errorf("%w %s: %v", errBadOutbox, path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, nil, fmt.Errorf("client: outbox: %w", err)
	}
	o := &outboxFile{path: path}
	if err := o.rewrite(pending); err != nil {
		return nil, nil, err
	}
	return o, pending, nil
}

// replayOutbox decodes a file's records into the sends still waiting.
func replayOutbox(b []byte) ([]*syncpb.SendRequest, error) {
	var order []string
	waiting := map[string]*syncpb.SendRequest{}
	for len(b) > 0 {
		kind := b[0]
		n, k := binary.Uvarint(b[1:])
		if k <= 0 || n > maxOutboxRecord || uint64(len(b)-1-k) < n {
			break // torn tail
		}
		payload := b[1+k : 1+k+int(n)]
		b = b[1+k+int(n):]
		switch kind {
		case recAdd:
			req := &syncpb.SendRequest{}
			if err := proto.Unmarshal(payload, req); err != nil {
				return nil, fmt.Errorf("record: %v", err)
			}
			if req.ClientMsgId == "" {
				return nil, errors.New("a send without client_msg_id")
			}
			if _, dup := waiting[req.ClientMsgId]; !dup {
				order = append(order, req.ClientMsgId)
			}
			waiting[req.ClientMsgId] = req
		case recDone:
			delete(waiting, string(payload))
		default:
			return nil, fmt.Errorf("unknown record kind %d", kind)
		}
	}
	var out []*syncpb.SendRequest
	for _, id := range order {
		if req, ok := waiting[id]; ok {
			out = append(out, req)
			delete(waiting, id) // an id added twice is sent once
		}
	}
	return out, nil
}

func appendRecord(dst []byte, kind byte, payload []byte) []byte {
	dst = append(dst, kind)
	dst = binary.AppendUvarint(dst, uint64(len(payload)))
	return append(dst, payload...)
}

// rewrite replaces the file with add records of pending, atomically.
func (o *outboxFile) rewrite(pending []*syncpb.SendRequest) error {
	tmp := o.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	w := bufio.NewWriter(f)
	var buf []byte
	for _, req := range pending {
		b, err := proto.Marshal(req)
		if err != nil {
			f.Close()
			return fmt.Errorf("client: outbox: %w", err)
		}
		buf = appendRecord(buf[:0], recAdd, b)
		if _, err := w.Write(buf); err != nil {
			f.Close()
			return fmt.Errorf("client: outbox: %w", err)
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	if err := os.Rename(tmp, o.path); err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	if d, err := os.Open(filepath.Dir(o.path)); err == nil {
		_ = d.Sync()
		d.Close()
	}
	if o.f != nil {
		o.f.Close()
	}
	o.f, err = os.OpenFile(o.path, os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	o.records = len(pending)
	return nil
}

// add records a queued send durably (fsync) before Send goes on.
func (o *outboxFile) add(req *syncpb.SendRequest) error {
	b, err := proto.Marshal(req)
	if err != nil {
		return err
	}
	if _, err := o.f.Write(appendRecord(nil, recAdd, b)); err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	o.records++
	if err := o.f.Sync(); err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	return nil
}

// done records that a send got its answer, and compacts the file when it
// is mostly answered sends. Not synced: a done lost to a crash only makes
// the send go again, which the server answers from its dedupe record.
func (o *outboxFile) done(cmid string, pending []*syncpb.SendRequest) error {
	if _, err := o.f.Write(appendRecord(nil, recDone, []byte(cmid))); err != nil {
		return fmt.Errorf("client: outbox: %w", err)
	}
	o.records++
	if o.records > 64 && o.records > 4*len(pending) {
		return o.rewrite(pending)
	}
	return nil
}

func (o *outboxFile) close() error {
	if o.f == nil {
		return nil
	}
	return o.f.Close()
}
