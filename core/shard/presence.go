package shard

import (
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Contacts adds to into the users who share a conversation of this shard
// with the caller (in the caller's workspace), from local state: a
// follower's copy may lag the leader by a few entries, which presence
// tolerates. With only set, it checks just those users (per conversation
// by lookups or a member scan, whichever is fewer reads); without, it
// skips groups above the large-group size. It stops adding once into
// holds limit users. The caller is never added.
func (f *FSM) Contacts(caller *syncpb.Caller, only map[string]bool, limit int, into map[string]bool) error {
	return f.view(func(v *kvfsm.View) error {
		convs, err := userConvs(v, caller.GetUserId())
		if err != nil {
			return err
		}
		for _, conv := range convs {
			if len(into) >= limit {
				return nil
			}
			meta, ok, err := getMeta(v, conv)
			if err != nil {
				return err
			}
			if !ok || meta.WorkspaceID != caller.GetWorkspaceId() {
				continue
			}
			if only != nil && uint64(len(only)) < meta.Members {
				// Fewer users asked about than members: look each up.
				for u := range only {
					if into[u] || u == caller.GetUserId() {
						continue
					}
					if _, ok, err := getMember(v, conv, u); err != nil {
						return err
					} else if ok {
						into[u] = true
					}
				}
				continue
			}
			if only == nil && f.large > 0 && meta.Members > f.large {
				continue
			}
			prefix := memberPrefix(conv)
			err = v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
				if u := string(k[len(prefix):]); u != caller.GetUserId() && (only == nil || only[u]) {
					into[u] = true
				}
				return len(into) < limit, nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// MembersOf is conv's workspace and member ids from local state ("" and
// none for an unknown conversation).
func (f *FSM) MembersOf(conv string) (workspace string, members []string, err error) {
	err = f.view(func(v *kvfsm.View) error {
		meta, ok, err := getMeta(v, conv)
		if err != nil || !ok {
			return err
		}
		workspace = meta.WorkspaceID
		prefix := memberPrefix(conv)
		return v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
			members = append(members, string(k[len(prefix):]))
			return true, nil
		})
	})
	return workspace, members, err
}
