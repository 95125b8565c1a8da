package directory

import (
	"unicode"
	"unicode/utf8"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// maxHashLen bounds a stored password hash (argon2id PHC strings are ~100).
const maxHashLen = 512

// Workspace roles of syncpb.User.
const (
	RoleOwner  = "owner"
	RoleMember = "member"
)

// normalizeName lower-cases an ASCII workspace name or username and
// checks it: 1..MaxNameLen of [a-z0-9._-], starting with [a-z0-9].
func normalizeName(s string) (string, bool) {
	if len(s) == 0 || len(s) > maxNameLen {
		return "", false
	}
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
			b[i] = c
		}
		alnum := c >= 'a' && c <= 'z' || c >= '0' && c <= '9'
		if !alnum && (i == 0 || c != '.' && c != '_' && c != '-') {
			return "", false
		}
	}
	return string(b), true
}

// validText accepts up to max bytes of UTF-8 without control characters.
func validText(s string, max int) bool {
	if len(s) > max || !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) {
			return false
		}
	}
	return true
}

// validHash accepts a PHC-style hash: '$' then printable ASCII.
func validHash(s string) bool {
	if len(s) < 2 || len(s) > maxHashLen || s[0] != '$' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= 0x20 || s[i] > 0x7e {
			return false
		}
	}
	return true
}

// normalizeRegister validates req and returns its canonical form: names
// lower-cased, an empty display name replaced by the username.
func normalizeRegister(req *syncpb.RegisterUserRequest) (*syncpb.RegisterUserRequest, error) {
	if req == nil {
		return nil, syncproto.Errorf(syncpb.Code_CODE_MALFORMED, "empty request")
	}
	ws, ok := normalizeName(req.WorkspaceName)
	if !ok {
		return nil, invalid("workspace names are 1-64 characters of a-z, 0-9, '.', '_' and '-'")
	}
	user, ok := normalizeName(req.Username)
	if !ok {
		return nil, invalid("usernames are 1-64 characters of a-z, 0-9, '.', '_' and '-'")
	}
	display := req.DisplayName
	if display == "" {
		display = user
	}
	if !validText(display, maxNameLen) {
		return nil, invalid("invalid display name")
	}
	if !validHash(req.PasswordHash) {
		return nil, invalid("invalid password hash")
	}
	return &syncpb.RegisterUserRequest{WorkspaceName: ws, Username: user, DisplayName: display, PasswordHash: req.PasswordHash}, nil
}

func userResponse(u *syncpb.User) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_User{User: u}}
}

var errUsernameTaken = syncproto.Errorf(syncpb.Code_CODE_CONFLICT, "username already taken in this workspace")

// registered answers a registration whose username exists: the same
// password hash is a retry and gets the user; anything else, and any
// registration of a removed user's name, CONFLICT.
func registered(g kvfsm.Getter, wsID string, r *syncpb.RegisterUserRequest) (*syncpb.CoreResponse, error) {
	id, ok, err := getString(g, usernameKey(wsID, r.Username))
	if err != nil || !ok {
		return nil, err
	}
	c, ok, err := getCredentials(g, id)
	if err != nil {
		return nil, err
	}
	if !ok || c.PasswordHash != r.PasswordHash || c.User.GetRemoved() {
		return nil, errUsernameTaken
	}
	return userResponse(c.User), nil
}

func (f *FSM) prepareRegisterUser(req *syncpb.RegisterUserRequest, now int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	r, err := normalizeRegister(req)
	if err != nil {
		return nil, nil, err
	}
	var resp *syncpb.CoreResponse
	var wsExists bool
	err = f.view(func(v *kvfsm.View) error {
		wsID, ok, err := getString(v, workspaceNameKey(r.WorkspaceName))
		if err != nil || !ok {
			return err
		}
		wsExists = true
		resp, err = registered(v, wsID, r)
		return err
	})
	if err != nil || resp != nil {
		return nil, resp, err
	}
	cmd := &cmdpb.Command{TsUnixMs: now, NewId: syncproto.NewID(syncproto.PrefixUser), Op: &cmdpb.Command_RegisterUser{RegisterUser: r}}
	if !wsExists {
		cmd.NewWorkspaceId = syncproto.NewID(syncproto.PrefixWorkspace)
	}
	return cmd, nil, nil
}

func applyRegisterUser(tx *kvfsm.Tx, cmd *cmdpb.Command, req *syncpb.RegisterUserRequest) (*syncpb.CoreResponse, error) {
	r, err := normalizeRegister(req)
	if err != nil {
		return nil, err
	}
	if err := checkNewID(cmd.NewId, syncproto.PrefixUser); err != nil {
		return nil, err
	}
	role := RoleMember
	wsID, ok, err := getString(tx, workspaceNameKey(r.WorkspaceName))
	if err != nil {
		return nil, err
	}
	if ok {
		if resp, err := registered(tx, wsID, r); err != nil || resp != nil {
			return resp, err
		}
	} else {
		// A concurrent registration may have created the workspace since
		// Prepare; then NewWorkspaceId is unused and this user a member.
		wsID = cmd.NewWorkspaceId
		if err := checkNewID(wsID, syncproto.PrefixWorkspace); err != nil {
			return nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "workspace changed, retry")
		}
		if _, taken, err := tx.Get(workspaceKey(wsID)); err != nil {
			return nil, err
		} else if taken {
			return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "generated workspace id in use")
		}
		b, err := encode(&syncpb.Workspace{Id: wsID, Name: r.WorkspaceName, CreatedUnixMs: cmd.TsUnixMs})
		if err != nil {
			return nil, err
		}
		tx.Set(workspaceKey(wsID), b)
		tx.Set(workspaceNameKey(r.WorkspaceName), []byte(wsID))
		role = RoleOwner
	}
	if _, taken, err := tx.Get(userKey(cmd.NewId)); err != nil {
		return nil, err
	} else if taken {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INTERNAL, "generated user id in use")
	}
	u := &syncpb.User{
		Id: cmd.NewId, WorkspaceId: wsID, Username: r.Username, DisplayName: r.DisplayName,
		CreatedUnixMs: cmd.TsUnixMs, WorkspaceRole: role,
	}
	b, err := encode(&syncpb.Credentials{User: u, PasswordHash: r.PasswordHash})
	if err != nil {
		return nil, err
	}
	tx.Set(userKey(u.Id), b)
	tx.Set(usernameKey(wsID, r.Username), []byte(u.Id))
	return userResponse(u), nil
}

var errNoSuchUser = syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "no such user")

// getCredentials finds a user's credentials by workspace name and
// username (the edge's log-in), or by user id for that user itself.
func (f *FSM) getCredentials(caller *syncpb.Caller, req *syncpb.GetCredentialsRequest) (*syncpb.CoreResponse, error) {
	if id := req.GetUserId(); id != "" {
		return f.credentialsByID(caller, id)
	}
	ws, ok1 := normalizeName(req.GetWorkspaceName())
	name, ok2 := normalizeName(req.GetUsername())
	if !ok1 || !ok2 {
		return nil, errNoSuchUser // such names cannot exist
	}
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		wsID, ok, err := getString(v, workspaceNameKey(ws))
		if err != nil {
			return err
		}
		if !ok {
			return errNoSuchUser
		}
		id, ok, err := getString(v, usernameKey(wsID, name))
		if err != nil {
			return err
		}
		if !ok {
			return errNoSuchUser
		}
		c, ok, err := getCredentials(v, id)
		if err != nil {
			return err
		}
		if !ok {
			return errCorrupt
		}
		if c.User.GetRemoved() {
			return errNoSuchUser // it can no longer log in
		}
		resp = &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Credentials{Credentials: c}}
		return nil
	})
	return resp, err
}

// lookupUsers resolves ids and usernames within the caller's workspace, in
// the order asked, each user once. A removed user is found by id (marked
// removed), not by username. Only the workspace of the caller is
// needed (the shards ask with no user).
func (f *FSM) lookupUsers(caller *syncpb.Caller, req *syncpb.LookupUsersRequest) (*syncpb.CoreResponse, error) {
	if caller == nil || !syncproto.ValidID(caller.WorkspaceId) {
		return nil, errNoCaller
	}
	if len(req.GetUserIds())+len(req.GetUsernames()) > syncproto.MaxConversationMembers {
		return nil, invalid("too many users")
	}
	for _, id := range req.GetUserIds() {
		if !syncproto.ValidID(id) {
			return nil, invalid("invalid user id")
		}
	}
	ws := caller.WorkspaceId
	out := &syncpb.UserList{}
	err := f.view(func(v *kvfsm.View) error {
		seen := map[string]bool{}
		add := func(id string) error {
			if seen[id] {
				return nil
			}
			c, ok, err := getCredentials(v, id)
			if err != nil || !ok || c.User.GetWorkspaceId() != ws {
				return err
			}
			seen[id] = true
			out.Users = append(out.Users, c.User)
			return nil
		}
		for _, id := range req.GetUserIds() {
			if err := add(id); err != nil {
				return err
			}
		}
		for _, n := range req.GetUsernames() {
			name, ok := normalizeName(n)
			if !ok {
				continue
			}
			id, ok, err := getString(v, usernameKey(ws, name))
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if c, found, err := getCredentials(v, id); err != nil || !found || c.User.GetRemoved() {
				if err != nil {
					return err
				}
				continue
			}
			if err := add(id); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Users{Users: out}}, nil
}

func (f *FSM) credentialsByID(caller *syncpb.Caller, id string) (*syncpb.CoreResponse, error) {
	if err := checkCaller(caller); err != nil {
		return nil, err
	}
	if id != caller.UserId {
		return nil, errNoSuchUser
	}
	var resp *syncpb.CoreResponse
	err := f.view(func(v *kvfsm.View) error {
		c, ok, err := getCredentials(v, id)
		if err != nil {
			return err
		}
		if !ok || c.User.GetWorkspaceId() != caller.WorkspaceId {
			return errNoSuchUser
		}
		resp = &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Credentials{Credentials: c}}
		return nil
	})
	return resp, err
}
