// Package syncproto is parley's wire contract: the protobuf schema (in
// syncpb), length-prefixed framing for client transports, protocol version
// negotiation, error codes, ids, limits, validation shared by edges and
// cores, and the NATS subjects of the region-internal RPC.
//
// README.md in this directory is the protocol's manual.
package syncproto
