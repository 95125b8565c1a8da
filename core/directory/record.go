package directory

import (
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Keys, relative to the group's prefix "f/<G>/". Names are stored
// lower-cased, so lookups are case-insensitive.
//
//	w/<workspace>          workspace (syncpb.Workspace)
//	n/<workspace name>     workspace id
//	u/<user>               user and password hash (syncpb.Credentials)
//	x/<workspace>/<name>   user id
//	d/<device>             device, with its refresh-token family (syncpb.Device)
//	e/<user>/<device>      the user's devices (empty value)
//	k/<user>               number of the user's devices not revoked (be64)
//	r/<ms>/<index>         a revocation (syncpb.Revocation), see revocation.go
//	p/<device>             the device's push target (syncpb.PushTarget), see push.go
func workspaceKey(ws string) []byte         { return []byte("w/" + ws) }
func workspaceNameKey(name string) []byte   { return []byte("n/" + name) }
func userKey(user string) []byte            { return []byte("u/" + user) }
func usernameKey(ws, name string) []byte    { return []byte("x/" + ws + "/" + name) }
func deviceKey(dev string) []byte           { return []byte("d/" + dev) }
func userDevicePrefix(user string) []byte   { return []byte("e/" + user + "/") }
func userDeviceKey(user, dev string) []byte { return []byte("e/" + user + "/" + dev) }
func deviceCountKey(user string) []byte     { return []byte("k/" + user) }

// errCorrupt is returned (wrapped) when a stored record fails to decode.
var errCorrupt = errors.New("directory: corrupt record")

func getProto(g kvfsm.Getter, key []byte, msg proto.Message) (bool, error) {
	b, ok, err := g.Get(key)
	if err != nil || !ok {
		return false, err
	}
	if err := proto.Unmarshal(b, msg); err != nil {
		return false, fmt.Errorf("%w: %s: %v", errCorrupt, key, err)
	}
	return true, nil
}

var marshalOpts = proto.MarshalOptions{Deterministic: true}

// encode marshals a record. Marshalling fails only on invalid UTF-8, which
// decoding the command already excluded; it is rejected deterministically.
func encode(m proto.Message) ([]byte, error) {
	b, err := marshalOpts.Marshal(m)
	if err != nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "cannot encode record")
	}
	return b, nil
}

func getCredentials(g kvfsm.Getter, user string) (*syncpb.Credentials, bool, error) {
	c := &syncpb.Credentials{}
	ok, err := getProto(g, userKey(user), c)
	if err != nil || !ok {
		return nil, false, err
	}
	return c, true, nil
}

func getDevice(g kvfsm.Getter, dev string) (*syncpb.Device, bool, error) {
	d := &syncpb.Device{}
	ok, err := getProto(g, deviceKey(dev), d)
	if err != nil || !ok {
		return nil, false, err
	}
	return d, true, nil
}

// getString reads an id stored as a raw string.
func getString(g kvfsm.Getter, key []byte) (string, bool, error) {
	b, ok, err := g.Get(key)
	return string(b), ok, err
}

func getCount(g kvfsm.Getter, key []byte) (uint64, error) {
	b, ok, err := g.Get(key)
	if err != nil || !ok {
		return 0, err
	}
	if len(b) != 8 {
		return 0, fmt.Errorf("%w: count", errCorrupt)
	}
	return binary.BigEndian.Uint64(b), nil
}
