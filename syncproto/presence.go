package syncproto

import "github.com/parley-chat/parley/syncproto/syncpb"

// MaxPresenceUsers bounds the users one PresenceSubscribe names, and the
// users a core returns for one GetPresenceRequest.
const MaxPresenceUsers = 5000

// ValidatePresenceSubscribe checks a device's PresenceSubscribe: at most
// MaxPresenceUsers valid user ids. Whether the device may watch them is the
// core's decision.
func ValidatePresenceSubscribe(p *syncpb.PresenceSubscribe) error {
	if len(p.GetUserIds()) > MaxPresenceUsers {
		return Errorf(syncpb.Code_CODE_TOO_LARGE, "at most %d users per presence subscription", MaxPresenceUsers)
	}
	for _, id := range p.GetUserIds() {
		if !ValidID(id) {
			return Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "invalid user id in presence subscription")
		}
	}
	return nil
}
