package syncproto

import "strconv"

// NATS subjects of the region-internal RPC. Requests and replies are
// protobuf CoreRequest / CoreResponse.

// APISubject receives requests that are not tied to one conversation:
// directory (accounts, devices), region info, listing a user's conversations.
func APISubject(region string) string { return "parley." + region + ".api" }

// ShardSubject receives requests for conversations of one shard.
func ShardSubject(region string, shard uint32) string {
	return "parley." + region + ".shard." + strconv.FormatUint(uint64(shard), 10)
}

// CoreQueue is the queue group every core node subscribes with, so one node
// answers each request.
const CoreQueue = "parley-core"

// HeaderNode on a core's reply names the core node that answered. Core
// nodes name their embedded NATS server after themselves, so an edge
// connected to every server can send the next request for the same shard
// to the server of the node that leads it, saving the hop between servers.
const HeaderNode = "Parley-Node"

// UserSubject carries live deliveries for one user: the shard leader
// publishes a Deliver for each committed message to the subject of every
// member, and edges subscribe for the users connected to them.
func UserSubject(region, userID string) string { return "parley." + region + ".user." + userID }

// ConvSubject carries live deliveries of one large group: the leader
// publishes once, and edges with a connected member subscribe.
func ConvSubject(region, convID string) string { return "parley." + region + ".conv." + convID }

// Headers of deliveries on a user subject that tell the user's edge to
// start or stop listening on a large group's ConvSubject for that user
// (the user joined or left it). Their value is the conversation id.
const (
	HeaderConvJoin  = "Parley-Conv-Join"
	HeaderConvLeave = "Parley-Conv-Leave"
	// HeaderResync on an empty delivery says live deliveries of the named
	// conversation were dropped before publishing: devices must sync.
	HeaderResync = "Parley-Resync"
)

// Presence subjects. Edges publish PresenceBatch on PresenceSubject, which
// every core node subscribes to (no queue group: each node keeps the whole
// table). A core that misses part of an edge's batches asks it for a
// snapshot on PresenceSnapshotSubject. On a user's online/offline change,
// one core (the leader of the shard ShardOf(userID)) publishes a Deliver
// carrying the PresenceUpdate on PresenceUserSubject, which edges
// subscribe to while a connected user watches that user.
func PresenceSubject(region string) string { return "parley." + region + ".presence" }

// PresenceSnapshotSubject receives an edge's snapshot requests (empty
// messages, no reply: the snapshot goes out as batches).
func PresenceSnapshotSubject(region, edgeID string) string {
	return "parley." + region + ".presence.snapshot." + edgeID
}

// PresenceUserSubject carries one user's presence changes to watchers.
func PresenceUserSubject(region, userID string) string {
	return "parley." + region + ".presence.user." + userID
}

// RevocationSubject carries a protobuf Revocation (DecodeRevocation) each
// time the directory commits a change that revokes tokens (a device
// revoked, a password changed). Every core node publishes what it applies
// (an edge may hear one revocation several times: applying it again is a
// no-op), and every edge subscribes without a queue group.
func RevocationSubject(region string) string { return "parley." + region + ".revocations" }
