package core_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/internal/poll"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// A revoked device and a changed password are published on the revocation
// subject by every node of the region, and listed by list_revocations.
func TestRevocationsPublishedAndListed(t *testing.T) {
	r := newTestRegion(t, 3, testTiming)
	var mu sync.Mutex
	var heard []*syncpb.Revocation
	sub, err := r.Conn().Subscribe(syncproto.RevocationSubject(syncproto.DefaultRegion), func(m *nats.Msg) {
		rv, err := syncproto.DecodeRevocation(m.Data)
		if err != nil {
			t.Errorf("undecodable revocation: %v", err)
			return
		}
		mu.Lock()
		heard = append(heard, rv)
		mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Unsubscribe()
	if err := r.Conn().Flush(); err != nil {
		t.Fatal(err)
	}
	api := syncproto.APISubject(syncproto.DefaultRegion)
	start := time.Now()
	ana := r.Users("ana")[0]
	tablet := r.MustCall(api, &syncpb.CoreRequest{Caller: ana, Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: "tablet"}}}).GetDevice()
	laptop := r.MustCall(api, &syncpb.CoreRequest{Caller: ana, Op: &syncpb.CoreRequest_RegisterDevice{RegisterDevice: &syncpb.RegisterDeviceRequest{Name: "laptop"}}}).GetDevice()
	revoked := r.MustCall(api, &syncpb.CoreRequest{Caller: ana, Op: &syncpb.CoreRequest_RevokeDevice{RevokeDevice: &syncpb.RevokeDeviceRequest{DeviceId: laptop.Id}}}).GetRevocation()
	creds := r.MustCall(api, &syncpb.CoreRequest{Caller: ana, Op: &syncpb.CoreRequest_GetCredentials{GetCredentials: &syncpb.GetCredentialsRequest{UserId: ana.UserId}}}).GetCredentials()
	changed := r.MustCall(api, &syncpb.CoreRequest{Caller: ana, Op: &syncpb.CoreRequest_ChangePassword{ChangePassword: &syncpb.ChangePasswordRequest{
		PasswordHash: "$argon2id$new", PreviousHash: creds.GetPasswordHash()}}}).GetRevocation()
	if revoked == nil || changed == nil || len(changed.DeviceIds) != 1 || changed.DeviceIds[0] != tablet.Id {
		t.Fatalf("revocations in the answers: %v, %v", revoked, changed)
	}
	// Each node publishes each revocation once.
	poll.NoError(t, 20*time.Second, "revocations heard", func() error {
		mu.Lock()
		defer mu.Unlock()
		if len(heard) < 6 {
			return fmt.Errorf("heard %d, want 2 from each of 3 nodes", len(heard))
		}
		return nil
	})
	mu.Lock()
	for _, rv := range heard {
		if !proto.Equal(rv, revoked) && !proto.Equal(rv, changed) {
			t.Errorf("heard %v", rv)
		}
	}
	mu.Unlock()
	list := r.MustCall(api, &syncpb.CoreRequest{Op: &syncpb.CoreRequest_ListRevocations{ListRevocations: &syncpb.ListRevocationsRequest{
		SinceUnixMs: start.Add(-time.Second).UnixMilli()}}}).GetRevocations()
	if len(list.Revocations) != 2 || !proto.Equal(list.Revocations[0], revoked) || !proto.Equal(list.Revocations[1], changed) || list.Next != "" {
		t.Fatalf("listed %v", list)
	}
}
