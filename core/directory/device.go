package directory

import (
	"cmp"
	"encoding/binary"
	"slices"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

var (
	errNoSuchDevice = syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such device")
	errTooMany      = syncproto.Errorf(syncpb.Code_CODE_FORBIDDEN, "too many devices: revoke one first")
)

func deviceResponse(d *syncpb.Device) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: d}}
}

// deviceOwner checks that the caller is a user of its workspace, not
// removed from it, and returns its number of devices not revoked.
func deviceOwner(g kvfsm.Getter, caller *syncpb.Caller) (uint64, error) {
	if err := checkCaller(caller); err != nil {
		return 0, err
	}
	c, ok, err := getCredentials(g, caller.UserId)
	if err != nil {
		return 0, err
	}
	if !ok || c.User.GetWorkspaceId() != caller.WorkspaceId {
		return 0, errNoSuchUser
	}
	if c.User.GetRemoved() {
		return 0, errUserRemoved
	}
	return getCount(g, deviceCountKey(caller.UserId))
}

func checkRegisterDevice(req *syncpb.RegisterDeviceRequest) error {
	if req == nil {
		return syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	if !validText(req.Name, maxNameLen) || !validText(req.Platform, maxNameLen) {
		return invalid("invalid device name or platform")
	}
	return nil
}

func (f *FSM) prepareRegisterDevice(caller *syncpb.Caller, req *syncpb.RegisterDeviceRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkRegisterDevice(req); err != nil {
		return nil, nil, err
	}
	err := f.view(func(v *kvfsm.View) error {
		n, err := deviceOwner(v, caller)
		if err == nil && n >= MaxDevices {
			err = errTooMany
		}
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return &cmdpb.Command{
		Caller: caller, TsUnixMs: now, NewId: syncproto.NewID(syncproto.PrefixDevice),
		Op: &cmdpb.Command_RegisterDevice{RegisterDevice: req},
	}, nil, nil
}

func putCount(tx *kvfsm.Tx, user string, n uint64) {
	tx.Set(deviceCountKey(user), binary.BigEndian.AppendUint64(nil, n))
}

func applyRegisterDevice(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.RegisterDeviceRequest) (*syncpb.CoreResponse, error) {
	if err := checkRegisterDevice(req); err != nil {
		return nil, err
	}
	n, err := deviceOwner(tx, cmd.Caller)
	if err != nil {
		return nil, err
	}
	if n >= MaxDevices {
		return nil, errTooMany
	}
	if err := checkNewID(cmd.NewId, syncproto.PrefixDevice); err != nil {
		return nil, err
	}
	if _, taken, err := tx.Get(deviceKey(cmd.NewId)); err != nil {
		return nil, err
	} else if taken {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "generated device id in use")
	}
	d := &syncpb.Device{Id: cmd.NewId, UserId: cmd.Caller.UserId, Name: req.Name, Platform: req.Platform, CreatedUnixMs: cmd.TsUnixMs}
	b, err := encode(d)
	if err != nil {
		return nil, err
	}
	tx.Set(deviceKey(d.Id), b)
	tx.Set(userDeviceKey(d.UserId, d.Id), nil)
	putCount(tx, d.UserId, n+1)
	return deviceResponse(d), nil
}

// listDevices returns the caller's devices, revoked ones included, oldest
// first.
func (f *FSM) listDevices(caller *syncpb.Caller) (*syncpb.CoreResponse, error) {
	out := &syncpb.DeviceList{}
	err := f.view(func(v *kvfsm.View) error {
		if _, err := deviceOwner(v, caller); err != nil {
			return err
		}
		var ids []string
		prefix := userDevicePrefix(caller.UserId)
		err := v.Scan(prefix, nil, false, func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(prefix):]))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			d, ok, err := getDevice(v, id)
			if err != nil {
				return err
			}
			if ok {
				out.Devices = append(out.Devices, d)
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out.Devices, func(a, b *syncpb.Device) int {
		if c := cmp.Compare(a.CreatedUnixMs, b.CreatedUnixMs); c != 0 {
			return c
		}
		return cmp.Compare(a.Id, b.Id)
	})
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Devices{Devices: out}}, nil
}

// ownDevice loads a device for caller: with no caller (no user id), any
// device; otherwise only the caller's own.
func ownDevice(g kvfsm.Getter, caller *syncpb.Caller, id string) (*syncpb.Device, error) {
	if !syncproto.ValidID(id) {
		return nil, invalid("invalid device id")
	}
	d, ok, err := getDevice(g, id)
	if err != nil {
		return nil, err
	}
	if !ok || (caller.GetUserId() != "" && d.UserId != caller.GetUserId()) {
		return nil, errNoSuchDevice
	}
	return d, nil
}

// getDevice serves a user asking about its own device, and (with no
// caller) any device.
func (f *FSM) getDevice(caller *syncpb.Caller, req *syncpb.GetDeviceRequest) (*syncpb.CoreResponse, error) {
	var d *syncpb.Device
	err := f.view(func(v *kvfsm.View) error {
		var err error
		d, err = ownDevice(v, caller, req.GetDeviceId())
		return err
	})
	if err != nil {
		return nil, err
	}
	return deviceResponse(d), nil
}

// prepareRevokeDevice answers a device already revoked at once.
func (f *FSM) prepareRevokeDevice(caller *syncpb.Caller, req *syncpb.RevokeDeviceRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	var d *syncpb.Device
	err := f.view(func(v *kvfsm.View) error {
		var err error
		d, err = ownDevice(v, caller, req.GetDeviceId())
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	if d.Revoked {
		return nil, deviceResponse(d), nil
	}
	return &cmdpb.Command{Caller: caller, TsUnixMs: now, Op: &cmdpb.Command_RevokeDevice{RevokeDevice: req}}, nil, nil
}

// applyRevokeDevice revokes the device and every token it holds.
func applyRevokeDevice(tx *kvfsm.Tx, index uint64, cmd *cmdpb.Command, req *syncpb.RevokeDeviceRequest) (*syncpb.CoreResponse, error) {
	if err := checkCaller(cmd.Caller); err != nil {
		return nil, err
	}
	d, err := ownDevice(tx, cmd.Caller, req.GetDeviceId())
	if err != nil {
		return nil, err
	}
	if d.Revoked {
		return deviceResponse(d), nil
	}
	if err := markRevoked(tx, d); err != nil {
		return nil, err
	}
	ts := revokedAt(cmd.TsUnixMs)
	rv := &syncpb.Revocation{WorkspaceId: cmd.Caller.WorkspaceId, UserId: d.UserId, DeviceIds: []string{d.Id},
		NotBeforeUnixMs: syncproto.NotBeforeAll, Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: ts}
	if err := logRevocation(tx, index, rv); err != nil {
		return nil, err
	}
	resp := deviceResponse(d)
	resp.Revocation = rv
	return resp, nil
}

// markRevoked stores d revoked and no longer counted against its user's
// MaxDevices.
func markRevoked(tx *kvfsm.Tx, d *syncpb.Device) error {
	d.Revoked = true
	tx.Delete(pushTargetKey(d.Id)) // a device logged out is never pushed
	if err := putDevice(tx, d); err != nil {
		return err
	}
	n, err := getCount(tx, deviceCountKey(d.UserId))
	if err != nil {
		return err
	}
	if n > 0 {
		putCount(tx, d.UserId, n-1)
	}
	return nil
}
