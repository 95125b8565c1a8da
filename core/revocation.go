package core

import (
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// publishRevocations is the directory's OnRevoke hook: every node, leader
// or not, publishes the revocations it applies on the revocation subject.
// Edges may hear one several times (applying it again changes nothing),
// but one committed just before its leader died is still heard at once.
// Revocations older than the retention (a node catching up on an old log)
// are not published: no token they name is still valid.
func (n *Node) publishRevocations(rs []*syncpb.Revocation) {
	cutoff := n.cfg.Now().Add(-syncproto.RevocationRetention).UnixMilli()
	subject := syncproto.RevocationSubject(n.cfg.Region)
	for _, rv := range rs {
		if rv.RevokedUnixMs < cutoff {
			continue
		}
		b, err := syncproto.EncodeRevocation(rv)
		if err == nil {
			err = n.nc.Publish(subject, b)
		}
		if err != nil {
			// Edges that miss it read it at their next catch-up.
			n.log.Warn("publish revocation", "user", rv.UserId, "err", err)
		}
	}
}
