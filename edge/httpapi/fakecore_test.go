package httpapi

// fakeCore is a TEST DOUBLE of the core: a small in-memory responder on
// the real NATS subjects, enough to exercise the edge. It is not the core
// (no Raft, no storage) and only approximates its rules; end-to-end tests
// against the real core live with the core.

import (
	"bytes"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go"
	"google.golang.org/protobuf/proto"

	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

const fakeShards = 4

type fakeConv struct {
	conv     *syncpb.Conversation
	msgs     []*syncpb.Message
	byClient map[string]*syncpb.SendAck // sender/client_msg_id
	receipts map[string]uint64          // device/type -> seq
}

type fakeCore struct {
	t   *testing.T
	sub *nats.Subscription

	mu         sync.Mutex
	now        int64
	workspaces map[string]string // name -> id
	users      map[string]*syncpb.User
	hashes     map[string]string // user id -> hash
	devices    map[string]*syncpb.Device
	convs      map[string]*fakeConv
	callers    []*syncpb.Caller // of every authenticated request, in order
	dropSends  int              // commit the next n sends but send no reply
	dropRotate int              // apply the next n rotate_refresh but send no reply
	sends      int              // send requests seen
	leaderless map[int]bool     // shards region_info names no leader for (-1: the directory)
	vapid      string           // region_info's VAPID public key
	pushTo     map[string]*syncpb.PushTarget
	levels     map[string]syncpb.NotifyLevel // conv/user
}

func newFakeCore(t *testing.T, nc *nats.Conn) *fakeCore {
	t.Helper()
	f := &fakeCore{t: t, now: 1_700_000_000_000, workspaces: map[string]string{}, users: map[string]*syncpb.User{},
		hashes: map[string]string{}, devices: map[string]*syncpb.Device{}, convs: map[string]*fakeConv{}}
	f.start(nc)
	t.Cleanup(f.stop)
	return f
}

func (f *fakeCore) start(nc *nats.Conn) {
	f.t.Helper()
	sub, err := nc.QueueSubscribe("parley.local.>", syncproto.CoreQueue, f.serve)
	if err != nil {
		f.t.Fatal(err)
	}
	if err := nc.Flush(); err != nil {
		f.t.Fatal(err)
	}
	f.mu.Lock()
	f.sub = sub
	f.mu.Unlock()
}

func (f *fakeCore) stop() {
	f.mu.Lock()
	sub := f.sub
	f.sub = nil
	f.mu.Unlock()
	if sub != nil {
		_ = sub.Unsubscribe()
	}
}

func (f *fakeCore) serve(m *nats.Msg) {
	req := &syncpb.CoreRequest{}
	var resp *syncpb.CoreResponse
	if err := proto.Unmarshal(m.Data, req); err != nil {
		resp = fail(syncpb.Code_CODE_MALFORMED, "bad request")
	} else {
		resp = f.handle(m.Subject, req)
	}
	if resp == nil {
		return // a lost reply
	}
	b, err := proto.Marshal(resp)
	if err != nil {
		f.t.Errorf("fake core: %v", err)
		return
	}
	_ = m.Respond(b)
}

func fail(code syncpb.Code, msg string) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Error: &syncpb.Error{Code: code, Message: msg}}
}

func convOfReq(req *syncpb.CoreRequest) string {
	switch op := req.Op.(type) {
	case *syncpb.CoreRequest_CreateConversation:
		return op.CreateConversation.ConvId
	case *syncpb.CoreRequest_GetConversation:
		return op.GetConversation.ConvId
	case *syncpb.CoreRequest_ChangeMembers:
		return op.ChangeMembers.ConvId
	case *syncpb.CoreRequest_Send:
		return op.Send.ConvId
	case *syncpb.CoreRequest_History:
		return op.History.ConvId
	case *syncpb.CoreRequest_Receipt:
		return op.Receipt.ConvId
	case *syncpb.CoreRequest_SetNotifyLevel:
		return op.SetNotifyLevel.ConvId
	}
	return ""
}

func (f *fakeCore) handle(subject string, req *syncpb.CoreRequest) *syncpb.CoreResponse {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now++
	// The routing contract: conversation ops on their shard, others on api.
	if conv := convOfReq(req); conv != "" {
		if want := syncproto.ShardSubject("local", syncproto.ShardOf(conv, fakeShards)); subject != want {
			f.t.Errorf("fake core: %T for %s on %s, want %s", req.Op, conv, subject, want)
			return fail(syncpb.Code_CODE_INVALID_ARGUMENT, "wrong shard")
		}
	} else if subject != syncproto.APISubject("local") {
		f.t.Errorf("fake core: %T on %s", req.Op, subject)
		return fail(syncpb.Code_CODE_INVALID_ARGUMENT, "wrong subject")
	}
	if req.DeadlineUnixMs == 0 {
		f.t.Errorf("fake core: %T without a deadline", req.Op)
	}
	c := req.Caller
	if c != nil {
		f.callers = append(f.callers, c)
	}
	needCaller := func() *syncpb.CoreResponse {
		if c == nil || f.users[c.UserId] == nil || f.users[c.UserId].WorkspaceId != c.WorkspaceId {
			return fail(syncpb.Code_CODE_UNAUTHENTICATED, "no caller")
		}
		return nil
	}
	switch op := req.Op.(type) {
	case *syncpb.CoreRequest_RegionInfo:
		info := &syncpb.RegionInfo{Region: "local", ShardCount: fakeShards, Nodes: []string{"fake"},
			ShardLeaders: slices.Repeat([]string{"fake"}, fakeShards), DirectoryLeader: "fake", VapidPublicKey: f.vapid}
		for i := range f.leaderless {
			if i < 0 {
				info.DirectoryLeader = ""
			} else {
				info.ShardLeaders[i] = ""
			}
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RegionInfo{RegionInfo: info}}

	case *syncpb.CoreRequest_RegisterUser:
		r := op.RegisterUser
		if !strings.HasPrefix(r.PasswordHash, "$argon2id$") {
			f.t.Errorf("fake core: register_user without an argon2id hash: %q", r.PasswordHash)
		}
		role := "member"
		ws, ok := f.workspaces[r.WorkspaceName]
		if !ok {
			ws = syncproto.NewID(syncproto.PrefixWorkspace)
			f.workspaces[r.WorkspaceName] = ws
			role = "owner"
		}
		if u := f.userByName(ws, r.Username); u != nil {
			if f.hashes[u.Id] == r.PasswordHash { // a retry
				return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_User{User: u}}
			}
			return fail(syncpb.Code_CODE_CONFLICT, "username taken")
		}
		u := &syncpb.User{Id: syncproto.NewID(syncproto.PrefixUser), WorkspaceId: ws, Username: r.Username,
			DisplayName: r.DisplayName, CreatedUnixMs: f.now, WorkspaceRole: role}
		f.users[u.Id], f.hashes[u.Id] = u, r.PasswordHash
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_User{User: u}}

	case *syncpb.CoreRequest_GetCredentials:
		if id := op.GetCredentials.UserId; id != "" {
			if e := needCaller(); e != nil {
				return e
			}
			if id != c.UserId {
				return fail(syncpb.Code_CODE_NOT_FOUND, "no such user")
			}
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Credentials{Credentials: &syncpb.Credentials{User: f.users[id], PasswordHash: f.hashes[id]}}}
		}
		u := f.userByName(f.workspaces[op.GetCredentials.WorkspaceName], op.GetCredentials.Username)
		if u == nil {
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such user")
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Credentials{Credentials: &syncpb.Credentials{User: u, PasswordHash: f.hashes[u.Id]}}}

	case *syncpb.CoreRequest_LookupUsers:
		if e := needCaller(); e != nil {
			return e
		}
		var out []*syncpb.User
		for _, id := range op.LookupUsers.UserIds {
			if u := f.users[id]; u != nil && u.WorkspaceId == c.WorkspaceId {
				out = append(out, u)
			}
		}
		for _, n := range op.LookupUsers.Usernames {
			if u := f.userByName(c.WorkspaceId, n); u != nil {
				out = append(out, u)
			}
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Users{Users: &syncpb.UserList{Users: out}}}

	case *syncpb.CoreRequest_RegisterDevice:
		if e := needCaller(); e != nil {
			return e
		}
		d := &syncpb.Device{Id: syncproto.NewID(syncproto.PrefixDevice), UserId: c.UserId, Name: op.RegisterDevice.Name,
			Platform: op.RegisterDevice.Platform, CreatedUnixMs: f.now}
		f.devices[d.Id] = d
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: d}}

	case *syncpb.CoreRequest_ListDevices:
		if e := needCaller(); e != nil {
			return e
		}
		var out []*syncpb.Device
		for _, d := range f.devices {
			if d.UserId == c.UserId {
				out = append(out, d)
			}
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Devices{Devices: &syncpb.DeviceList{Devices: out}}}

	case *syncpb.CoreRequest_GetDevice:
		d := f.devices[op.GetDevice.DeviceId]
		if d == nil || (c != nil && d.UserId != c.UserId) {
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such device")
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: d}}

	case *syncpb.CoreRequest_SetPushTarget:
		if e := needCaller(); e != nil {
			return e
		}
		d := f.devices[op.SetPushTarget.DeviceId]
		if d == nil || d.UserId != c.UserId {
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such device")
		}
		if f.pushTo == nil {
			f.pushTo = map[string]*syncpb.PushTarget{}
		}
		if op.SetPushTarget.Target == nil {
			delete(f.pushTo, d.Id)
		} else {
			f.pushTo[d.Id] = op.SetPushTarget.Target
		}
		return &syncpb.CoreResponse{}

	case *syncpb.CoreRequest_RevokeDevice:
		if e := needCaller(); e != nil {
			return e
		}
		d := f.devices[op.RevokeDevice.DeviceId]
		if d == nil || d.UserId != c.UserId {
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such device")
		}
		d.Revoked = true
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: d}, Revocation: &syncpb.Revocation{
			WorkspaceId: c.WorkspaceId, UserId: c.UserId, DeviceIds: []string{d.Id}, NotBeforeUnixMs: syncproto.NotBeforeAll,
			Reason: syncpb.RevocationReason_REVOCATION_REASON_DEVICE_REVOKED, RevokedUnixMs: f.now}}

	case *syncpb.CoreRequest_ChangePassword:
		if e := needCaller(); e != nil {
			return e
		}
		if f.hashes[c.UserId] != op.ChangePassword.PreviousHash {
			return fail(syncpb.Code_CODE_CONFLICT, "the password was changed meanwhile")
		}
		f.hashes[c.UserId] = op.ChangePassword.PasswordHash
		ts := f.now
		rv := &syncpb.Revocation{WorkspaceId: c.WorkspaceId, UserId: c.UserId, NotBeforeUnixMs: ts,
			Reason: syncpb.RevocationReason_REVOCATION_REASON_PASSWORD_CHANGED, RevokedUnixMs: ts}
		for _, d := range f.devices {
			if d.UserId == c.UserId && d.Id != c.DeviceId && !d.Revoked {
				d.TokensNotBeforeUnixMs = ts
				rv.DeviceIds = append(rv.DeviceIds, d.Id)
			}
		}
		resp := &syncpb.CoreResponse{Result: &syncpb.CoreResponse_User{User: f.users[c.UserId]}}
		if len(rv.DeviceIds) > 0 {
			resp.Revocation = rv
		}
		return resp

	case *syncpb.CoreRequest_StartTokenFamily:
		if e := needCaller(); e != nil {
			return e
		}
		d := f.devices[op.StartTokenFamily.DeviceId]
		switch {
		case d == nil || d.UserId != c.UserId:
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such device")
		case d.Revoked:
			return fail(syncpb.Code_CODE_FORBIDDEN, "device has been revoked")
		}
		d.Refresh = &syncpb.TokenFamily{Id: syncproto.NewTokenFamilyID(), Generation: 1, IssuedUnixMs: f.now}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Device{Device: d}}

	case *syncpb.CoreRequest_RotateRefresh:
		if e := needCaller(); e != nil {
			return e
		}
		r := op.RotateRefresh
		d := f.devices[r.DeviceId]
		switch {
		case d == nil || d.UserId != c.UserId:
			return fail(syncpb.Code_CODE_NOT_FOUND, "no such device")
		case d.Revoked:
			return fail(syncpb.Code_CODE_UNAUTHENTICATED, "device has been revoked")
		case d.Refresh == nil || d.Refresh.Id != r.Family || r.Generation > d.Refresh.Generation:
			return fail(syncpb.Code_CODE_UNAUTHENTICATED, "not this device's refresh token")
		}
		fam := d.Refresh
		var lost bool
		if f.dropRotate > 0 {
			f.dropRotate--
			lost = true
		}
		outcome := syncpb.RefreshOutcome_REFRESH_OUTCOME_REUSED
		switch {
		case fam.Reused:
		case r.Generation == fam.Generation:
			fam.Generation, fam.IssuedUnixMs, fam.RotationId = fam.Generation+1, f.now, r.RotationId
			outcome = syncpb.RefreshOutcome_REFRESH_OUTCOME_ROTATED
		case r.Generation+1 == fam.Generation && (r.RotationId == fam.RotationId || f.now-fam.IssuedUnixMs <= int64(r.GraceMs)):
			outcome = syncpb.RefreshOutcome_REFRESH_OUTCOME_REPEATED
		default:
			fam.Reused = true
		}
		if lost {
			return nil
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_RefreshRotation{RefreshRotation: &syncpb.RefreshRotation{Outcome: outcome, Device: d}}}

	case *syncpb.CoreRequest_ListConversations:
		if e := needCaller(); e != nil {
			return e
		}
		var out []*syncpb.Conversation
		for _, cv := range f.convs {
			if member(cv.conv, c.UserId) != nil {
				out = append(out, cv.conv)
			}
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversations{Conversations: &syncpb.ConversationList{Conversations: out}}}

	case *syncpb.CoreRequest_CreateConversation:
		if e := needCaller(); e != nil {
			return e
		}
		r := op.CreateConversation
		if cv := f.convs[r.ConvId]; cv != nil {
			// Like the core: an existing direct conversation (or a group's
			// creator retrying) gets it back, anyone else CONFLICT.
			ok := cv.conv.WorkspaceId == c.WorkspaceId && cv.conv.Type == r.Type &&
				(r.Type == syncpb.ConversationType_CONVERSATION_TYPE_DIRECT || cv.conv.CreatedBy == c.UserId)
			if !ok {
				return fail(syncpb.Code_CODE_CONFLICT, "conversation exists")
			}
			if member(cv.conv, c.UserId) == nil {
				return fail(syncpb.Code_CODE_NOT_MEMBER, "not a member")
			}
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: cv.conv}}
		}
		cv := &syncpb.Conversation{Id: r.ConvId, WorkspaceId: c.WorkspaceId, Type: r.Type, Title: r.Title, CreatedBy: c.UserId, CreatedUnixMs: f.now}
		ownerRole := syncpb.Role_ROLE_OWNER
		if r.Type == syncpb.ConversationType_CONVERSATION_TYPE_DIRECT {
			ownerRole = syncpb.Role_ROLE_MEMBER
		}
		cv.Members = append(cv.Members, &syncpb.Member{UserId: c.UserId, Role: ownerRole, JoinedUnixMs: f.now})
		for _, id := range r.MemberUserIds {
			if u := f.users[id]; u == nil || u.WorkspaceId != c.WorkspaceId {
				return fail(syncpb.Code_CODE_NOT_FOUND, "no such user")
			}
			cv.Members = append(cv.Members, &syncpb.Member{UserId: id, Role: syncpb.Role_ROLE_MEMBER, JoinedUnixMs: f.now})
		}
		f.convs[r.ConvId] = &fakeConv{conv: cv, byClient: map[string]*syncpb.SendAck{}, receipts: map[string]uint64{}}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: cv}}
	}

	// The remaining operations need a conversation the caller belongs to.
	if e := needCaller(); e != nil {
		return e
	}
	cv := f.convs[convOfReq(req)]
	if cv == nil {
		return fail(syncpb.Code_CODE_NOT_FOUND, "no such conversation")
	}
	me := member(cv.conv, c.UserId)
	if me == nil {
		return fail(syncpb.Code_CODE_NOT_MEMBER, "not a member of this conversation")
	}
	switch op := req.Op.(type) {
	case *syncpb.CoreRequest_GetConversation:
		out := proto.Clone(cv.conv).(*syncpb.Conversation)
		out.ReadSeq = cv.receipts[c.DeviceId+"/read"]
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: out}}

	case *syncpb.CoreRequest_ChangeMembers:
		r := op.ChangeMembers
		if r.Leave {
			removeMember(cv.conv, c.UserId)
			left := &syncpb.Conversation{Id: cv.conv.Id, WorkspaceId: cv.conv.WorkspaceId, Type: cv.conv.Type, LastSeq: cv.conv.LastSeq}
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: left}}
		}
		if me.Role < syncpb.Role_ROLE_ADMIN {
			return fail(syncpb.Code_CODE_FORBIDDEN, "only admins change members")
		}
		for _, id := range r.AddUserIds {
			if u := f.users[id]; u == nil || u.WorkspaceId != c.WorkspaceId {
				return fail(syncpb.Code_CODE_NOT_FOUND, "no such user")
			}
			if member(cv.conv, id) == nil {
				cv.conv.Members = append(cv.conv.Members, &syncpb.Member{UserId: id, Role: syncpb.Role_ROLE_MEMBER, JoinedUnixMs: f.now})
			}
		}
		for _, id := range r.RemoveUserIds {
			removeMember(cv.conv, id)
		}
		for id, role := range r.SetRoles {
			m := member(cv.conv, id)
			if m == nil {
				return fail(syncpb.Code_CODE_NOT_FOUND, "not a member")
			}
			m.Role = role
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: cv.conv}}

	case *syncpb.CoreRequest_Send:
		r := op.Send
		f.sends++
		// Ids are the sender's; the same id with another body is CONFLICT
		// (the core also compares content type and attachments).
		key := c.UserId + "/" + r.ClientMsgId
		if ack, ok := cv.byClient[key]; ok {
			if !bytes.Equal(cv.msgs[ack.Seq-1].Body, r.Body) {
				return fail(syncpb.Code_CODE_CONFLICT, "client_msg_id already used for a different message")
			}
			dup := proto.Clone(ack).(*syncpb.SendAck)
			dup.Duplicate = true
			return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: dup}}
		}
		seq := uint64(len(cv.msgs) + 1)
		msg := &syncpb.Message{ConvId: r.ConvId, Seq: seq, MsgId: syncproto.MessageID(r.ConvId, seq), ClientMsgId: r.ClientMsgId,
			SenderUserId: c.UserId, SenderDeviceId: c.DeviceId, TsUnixMs: f.now, Body: r.Body, ContentType: r.ContentType, Attachments: r.Attachments}
		cv.msgs = append(cv.msgs, msg)
		cv.conv.LastSeq = seq
		ack := &syncpb.SendAck{ConvId: r.ConvId, Seq: seq, MsgId: msg.MsgId, TsUnixMs: f.now, ClientMsgId: r.ClientMsgId}
		cv.byClient[key] = ack
		if f.dropSends > 0 {
			f.dropSends--
			return nil
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_SendAck{SendAck: ack}}

	case *syncpb.CoreRequest_History:
		// Like the core: pages in ascending seq order; next_cursor is the
		// lowest (backward) or highest (forward) seq returned, 0 at the end.
		r := op.History
		h := &syncpb.HistoryResponse{ConvId: r.ConvId, LastSeq: cv.conv.LastSeq}
		if r.Direction == syncpb.Direction_DIRECTION_FORWARD {
			for _, m := range cv.msgs {
				if m.Seq > r.Cursor && len(h.Messages) < int(r.Limit) {
					h.Messages = append(h.Messages, m)
				}
			}
			if n := len(h.Messages); n > 0 && h.Messages[n-1].Seq < cv.conv.LastSeq {
				h.NextCursor = h.Messages[n-1].Seq
			}
		} else {
			start := len(cv.msgs)
			if r.Cursor > 0 {
				start = min(start, int(r.Cursor)-1)
			}
			h.Messages = cv.msgs[max(0, start-int(r.Limit)):start]
			if len(h.Messages) > 0 && h.Messages[0].Seq > 1 {
				h.NextCursor = h.Messages[0].Seq
			}
		}
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_History{History: h}}

	case *syncpb.CoreRequest_Receipt:
		r := op.Receipt
		key := c.DeviceId + "/" + receiptTypeName(r.Type)
		cv.receipts[key] = max(cv.receipts[key], min(r.Seq, cv.conv.LastSeq))
		return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_ReceiptAck{ReceiptAck: &syncpb.ReceiptAck{ConvId: r.ConvId, Type: r.Type, Seq: cv.receipts[key]}}}

	case *syncpb.CoreRequest_SetNotifyLevel:
		if f.levels == nil {
			f.levels = map[string]syncpb.NotifyLevel{}
		}
		f.levels[op.SetNotifyLevel.ConvId+"/"+c.UserId] = op.SetNotifyLevel.Level
		return &syncpb.CoreResponse{}
	}
	return fail(syncpb.Code_CODE_INVALID_ARGUMENT, "unknown op")
}

func (f *fakeCore) userByName(ws, name string) *syncpb.User {
	for _, u := range f.users {
		if u.WorkspaceId == ws && strings.EqualFold(u.Username, name) {
			return u
		}
	}
	return nil
}

func member(c *syncpb.Conversation, user string) *syncpb.Member {
	for _, m := range c.Members {
		if m.UserId == user {
			return m
		}
	}
	return nil
}

func removeMember(c *syncpb.Conversation, user string) {
	out := c.Members[:0]
	for _, m := range c.Members {
		if m.UserId != user {
			out = append(out, m)
		}
	}
	c.Members = out
}

// lastCaller is the caller of the latest authenticated request.
func (f *fakeCore) lastCaller() *syncpb.Caller {
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.callers) == 0 {
		return nil
	}
	return f.callers[len(f.callers)-1]
}

func (f *fakeCore) messageCount(conv string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	if cv := f.convs[conv]; cv != nil {
		return len(cv.msgs)
	}
	return 0
}
