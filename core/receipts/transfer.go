package receipts

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/crdt"
)

// State transfer: the stream keeps deltas for MaxAge only, so a node that
// was down longer (or a new one) cannot replay what it missed. It merges a
// peer's whole state instead (a join of CRDT states is as good as
// replaying their deltas), then consumes the stream from the peer's
// position.

// statePageSize bounds one page of a state transfer.
const statePageSize = 2048

func (s *Service) stateSubject(node string) string {
	return "parley." + s.cfg.Region + ".rcpt-state." + node
}

// serveState answers peers' state requests until the subscription ends.
func (s *Service) serveState() (*nats.Subscription, error) {
	return s.nc.Subscribe(s.stateSubject(s.cfg.NodeID), func(m *nats.Msg) {
		req := &cmdpb.ReceiptStateRequest{}
		if err := proto.Unmarshal(m.Data, req); err != nil {
			return
		}
		page, err := s.page(req.After, int(min(max(req.Limit, 1), statePageSize)))
		if err != nil {
			s.log.Warn("receipt state page", "err", err)
			return
		}
		b, err := proto.Marshal(page)
		if err == nil {
			_ = m.Respond(b)
		}
	})
}

// page reads up to limit entries after key after.
func (s *Service) page(after string, limit int) (*cmdpb.ReceiptStatePage, error) {
	s.mu.Lock()
	page := &cmdpb.ReceiptStatePage{Applied: s.applied}
	s.mu.Unlock()
	prefix := []byte("rc/m/")
	err := s.st.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix, PrefetchValues: true, PrefetchSize: 256})
		defer it.Close()
		start := append(append([]byte(nil), prefix...), after...)
		for it.Seek(start); it.Valid(); it.Next() {
			k := string(it.Item().Key()[len(prefix):])
			if k == after {
				continue
			}
			if len(page.Entries) == limit {
				page.Next = page.Entries[len(page.Entries)-1].ConvId + "/" + page.Entries[len(page.Entries)-1].UserId
				return nil
			}
			conv, user, ok := strings.Cut(k, "/")
			if !ok {
				continue
			}
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			page.Entries = append(page.Entries, &cmdpb.ReceiptStateEntry{ConvId: conv, UserId: user, Devices: v})
		}
		return nil
	})
	return page, err
}

// transfer merges a peer's state and returns the stream position it
// covers (0 when no peer answered).
func (s *Service) transfer(ctx context.Context) (uint64, error) {
	for _, peer := range s.cfg.Peers {
		if peer == s.cfg.NodeID {
			continue
		}
		applied, err := s.transferFrom(ctx, peer)
		if err != nil {
			s.log.Warn("receipt state transfer failed", "peer", peer, "err", err)
			continue
		}
		return applied, nil
	}
	return 0, fmt.Errorf("receipts: no peer could transfer its state")
}

func (s *Service) transferFrom(ctx context.Context, peer string) (uint64, error) {
	var applied uint64
	after := ""
	for first := true; ; first = false {
		b, err := proto.Marshal(&cmdpb.ReceiptStateRequest{After: after, Limit: statePageSize})
		if err != nil {
			return 0, err
		}
		rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		m, err := s.nc.RequestWithContext(rctx, s.stateSubject(peer), b)
		cancel()
		if err != nil {
			return 0, err
		}
		page := &cmdpb.ReceiptStatePage{}
		if err := proto.Unmarshal(m.Data, page); err != nil {
			return 0, fmt.Errorf("receipts: state page from %s: %w", peer, err)
		}
		if first {
			applied = page.Applied
		}
		if err := s.st.join(page.Entries); err != nil {
			return 0, err
		}
		if page.Next == "" {
			return applied, nil
		}
		after = page.Next
	}
}

// join merges whole device maps (a peer's state) into the store.
func (st store) join(entries []*cmdpb.ReceiptStateEntry) error {
	return st.db.Update(func(txn *badger.Txn) error {
		for _, e := range entries {
			in, err := crdt.Decode(e.Devices)
			if err != nil {
				return fmt.Errorf("receipts: peer state %s/%s: %w", e.ConvId, e.UserId, err)
			}
			cur, err := getDevices(txn, e.ConvId, e.UserId)
			if err != nil {
				return err
			}
			if cur.Merge(in) {
				if err := txn.Set(marksKey(e.ConvId, e.UserId), cur.Encode()); err != nil {
					return err
				}
			}
		}
		return nil
	})
}
