package directory

import (
	"fmt"
	"strconv"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Revocations: revoke_device and change_password take tokens away. Each
// such command's response carries the syncpb.Revocation (which the node
// publishes, see Config.OnRevoke), and the directory keeps it for
// syncproto.RevocationRetention under r/<revoked ms>/<raft index>, both as
// 16 hex digits, for edges that were not listening (list_revocations).

// pruneBatch bounds the expired revocations one command deletes; each
// command adds one, so the log stays bounded by the retention.
const pruneBatch = 256

const revocationPrefix = "r/"

func revocationKey(ts int64, index uint64) []byte {
	return fmt.Appendf(nil, "%s%016x/%016x", revocationPrefix, uint64(ts), index)
}

// revocationCursor checks a list_revocations cursor: a key without the prefix.
func revocationCursor(s string) bool {
	if len(s) != 33 || s[16] != '/' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; i != 16 && !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

// keyTime is the commit time encoded in a revocation key.
func keyTime(key []byte) (int64, bool) {
	if len(key) < len(revocationPrefix)+16 {
		return 0, false
	}
	v, err := strconv.ParseUint(string(key[len(revocationPrefix):len(revocationPrefix)+16]), 16, 64)
	return int64(v), err == nil
}

// logRevocation stores rv, committed at index, and deletes revocations
// older than the retention (at most pruneBatch of them).
func logRevocation(tx *kvfsm.Tx, index uint64, rv *syncpb.Revocation) error {
	b, err := encode(rv)
	if err != nil {
		return err
	}
	cutoff := rv.RevokedUnixMs - syncproto.RevocationRetention.Milliseconds()
	var old [][]byte
	err = tx.Scan([]byte(revocationPrefix), nil, false, func(k, _ []byte) (bool, error) {
		ts, ok := keyTime(k)
		if ok && ts >= cutoff || len(old) == pruneBatch {
			return false, nil
		}
		old = append(old, append([]byte(nil), k...))
		return true, nil
	})
	if err != nil {
		return err
	}
	for _, k := range old {
		tx.Delete(k)
	}
	tx.Set(revocationKey(rv.RevokedUnixMs, index), b)
	return nil
}

// revokedAt is a command's commit time as a revocation time (positive).
func revokedAt(cmdTs int64) int64 { return max(cmdTs, 1) }

func (f *FSM) listRevocations(req *syncpb.ListRevocationsRequest) (*syncpb.CoreResponse, error) {
	if req.GetAfter() != "" && !revocationCursor(req.GetAfter()) {
		return nil, invalid("invalid cursor")
	}
	since := max(req.GetSinceUnixMs(), 0)
	seek := revocationKey(since, 0)
	if req.GetAfter() != "" {
		seek = append([]byte(revocationPrefix+req.GetAfter()), 0)
	}
	limit := syncproto.RevocationPage(req.GetLimit())
	out := &syncpb.RevocationList{}
	err := f.view(func(v *kvfsm.View) error {
		var last []byte
		return v.Scan([]byte(revocationPrefix), seek, false, func(k, val []byte) (bool, error) {
			if len(out.Revocations) == limit {
				out.Next = string(last[len(revocationPrefix):])
				return false, nil
			}
			rv := &syncpb.Revocation{}
			if err := proto.Unmarshal(val, rv); err != nil {
				return false, fmt.Errorf("%w: %s: %v", errCorrupt, k, err)
			}
			if rv.RevokedUnixMs >= since {
				out.Revocations = append(out.Revocations, rv)
			}
			last = append(last[:0], k...)
			return true, nil
		})
	})
	if err != nil {
		return nil, err
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Revocations{Revocations: out}}, nil
}

// RevocationsSince lists the revocations committed at or after since from
// this node's state (a follower's may lag), oldest first; for tests and
// diagnostics.
func (f *FSM) RevocationsSince(since time.Time) ([]*syncpb.Revocation, error) {
	var all []*syncpb.Revocation
	req := &syncpb.ListRevocationsRequest{SinceUnixMs: since.UnixMilli(), Limit: syncproto.MaxRevocationPage}
	for {
		resp, err := f.listRevocations(req)
		if err != nil {
			return nil, err
		}
		all = append(all, resp.GetRevocations().GetRevocations()...)
		if resp.GetRevocations().GetNext() == "" {
			return all, nil
		}
		req.After = resp.GetRevocations().GetNext()
	}
}

// revokeDevices applies revoke to each device of user not revoked yet
// (but except), lists them in rv and logs it when there is any. It
// answers the user, with rv when it revoked something.
func revokeDevices(tx *kvfsm.Tx, index uint64, user *syncpb.User, except string, rv *syncpb.Revocation,
	revoke func(*syncpb.Device) error) (*syncpb.CoreResponse, error) {
	var ids []string
	prefix := userDevicePrefix(user.Id)
	err := tx.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
		if id := string(k[len(prefix):]); id != except {
			ids = append(ids, id)
		}
		return true, nil
	})
	if err != nil {
		return nil, err
	}
	for _, id := range ids {
		d, ok, err := getDevice(tx, id)
		if err != nil {
			return nil, err
		}
		if !ok || d.Revoked {
			continue
		}
		if err := revoke(d); err != nil {
			return nil, err
		}
		rv.DeviceIds = append(rv.DeviceIds, id)
	}
	resp := userResponse(user)
	if len(rv.DeviceIds) > 0 {
		if err := logRevocation(tx, index, rv); err != nil {
			return nil, err
		}
		resp.Revocation = rv
	}
	return resp, nil
}
