package receipts

import "github.com/parley-chat/parley/crdt"

// Positions returns the position in conv of each of users: what its
// devices reported joined with its own last message (sent, from the
// conversation's shard), the rule the shard's read positions follow too
// (crdt.Marks.WithSent).
func (s *Service) Positions(conv string, users []string, sent map[string]crdt.Register) (map[string]crdt.Marks, error) {
	out := make(map[string]crdt.Marks, len(users))
	for _, u := range users {
		out[u] = crdt.Marks{}
	}
	err := s.Scan(conv, func(user string, m crdt.Marks) bool {
		if _, ok := out[user]; ok {
			out[user] = m
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	for u, m := range out {
		out[u] = m.WithSent(sent[u])
	}
	return out, nil
}

// CountAt counts the positions that have read and received seq (none
// when seq is 0: there is nothing to read).
func CountAt(pos map[string]crdt.Marks, seq uint64) (read, delivered uint32) {
	if seq == 0 {
		return 0, 0
	}
	for _, m := range pos {
		if m.Read.Value >= seq {
			read++
		}
		if m.Delivered.Value >= seq {
			delivered++
		}
	}
	return read, delivered
}
