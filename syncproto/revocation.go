package syncproto

import (
	"fmt"
	"math"
	"time"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Revocations: the directory publishes a Revocation on RevocationSubject
// for every change it commits that takes tokens away, and keeps it for
// RevocationRetention, so that an edge that starts, or comes back from a
// NATS outage, can read what it missed (ListRevocationsRequest). Edges
// refuse the tokens it names until they would have expired anyway.
const (
	// RevocationRetention is how long the directory keeps revocations for
	// list_revocations. An edge's access tokens must not live longer, or
	// an edge could miss a revocation of a token still valid.
	RevocationRetention = 24 * time.Hour
	// NotBeforeAll is Revocation.not_before_unix_ms of a revoked device:
	// every token it holds, whenever issued, is refused.
	NotBeforeAll = math.MaxInt64
	// MaxRevocationDevices bounds Revocation.device_ids.
	MaxRevocationDevices = 1000
	// DefaultRevocationPage and MaxRevocationPage bound a page of
	// list_revocations.
	DefaultRevocationPage = 100
	MaxRevocationPage     = 500
)

// ValidateRevocation checks a Revocation: valid workspace and user ids,
// 1..MaxRevocationDevices valid device ids, a positive not_before and
// revoke time. Errors are INVALID_ARGUMENT (MALFORMED for nil).
func ValidateRevocation(r *syncpb.Revocation) error {
	switch {
	case r == nil:
		return Errorf(syncpb.Code_CODE_MALFORMED, "revocation is missing")
	case !ValidID(r.WorkspaceId) || !ValidID(r.UserId):
		return invalid("revocation: workspace_id and user_id must be valid ids")
	case len(r.DeviceIds) == 0 || len(r.DeviceIds) > MaxRevocationDevices:
		return invalid("revocation: 1 to %d device ids", MaxRevocationDevices)
	case r.NotBeforeUnixMs <= 0 || r.RevokedUnixMs <= 0:
		return invalid("revocation: not_before_unix_ms and revoked_unix_ms must be positive")
	}
	for i, d := range r.DeviceIds {
		if !ValidID(d) {
			return invalid("revocation: device_ids[%d] is not a valid id", i)
		}
	}
	return nil
}

// DecodeRevocation decodes and checks a message of RevocationSubject
// (plain protobuf, as NATS carries it). Unknown fields are dropped. Errors
// are MALFORMED for bytes that are not a Revocation and those of
// ValidateRevocation, wrapped.
func DecodeRevocation(b []byte) (*syncpb.Revocation, error) {
	r := new(syncpb.Revocation)
	if err := unmarshalOptions.Unmarshal(b, r); err != nil {
		return nil, fmt.Errorf("decode revocation: %w: %w", Errorf(syncpb.Code_CODE_MALFORMED, "not a protobuf Revocation"), err)
	}
	if err := ValidateRevocation(r); err != nil {
		return nil, fmt.Errorf("decode revocation: %w", err)
	}
	return r, nil
}

// EncodeRevocation is the deterministic encoding of r, for publishing.
func EncodeRevocation(r *syncpb.Revocation) ([]byte, error) {
	b, err := marshalOptions.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encode revocation: %w", err)
	}
	return b, nil
}

// RevocationPage is the page size a list_revocations limit asks for:
// DefaultRevocationPage for 0, at most MaxRevocationPage.
func RevocationPage(limit uint32) int {
	switch {
	case limit == 0:
		return DefaultRevocationPage
	case limit > MaxRevocationPage:
		return MaxRevocationPage
	}
	return int(limit)
}
