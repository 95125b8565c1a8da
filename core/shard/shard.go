// Package shard is the replicated state machine of one conversation shard:
// conversations, membership, messages and receipts, applied from a Raft
// log into the group's keys of the node's Badger DB.
//
// Access rules, checked against the caller the edge verified:
//   - A conversation that does not exist, or belongs to another workspace,
//     is NOT_FOUND; one in the caller's workspace that the caller is not a
//     member of is NOT_MEMBER, for every request (get, send, history,
//     receipt, change_members).
//   - Direct conversations have exactly two members, an id equal to
//     syncproto.DirectConversationID, and fixed membership. Creating one
//     that exists returns it.
//   - Groups: the creator is owner. Owners and admins add and remove
//     members; only an owner adds, removes or sets admins and owners.
//     Anyone may leave. A group with members always keeps an owner: a
//     change that would leave none (last owner leaving, demoted or removed)
//     is FORBIDDEN. Membership changes append SYSTEM messages.
//   - Creating a group whose id exists is CONFLICT, unless the caller
//     created it and is a member (a retry): then it is returned.
//
// History pages are always in ascending seq order; next_cursor continues in
// the requested direction (see FSM.history). Creating a conversation appends
// no message: the first send gets seq 1.
package shard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/core/internal/cmdpb"
	"github.com/parley-chat/parley/core/internal/kvfsm"
	"github.com/parley-chat/parley/syncproto"
	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Rules of the state machine. Each command the shard proposes carries the
// rules it was prepared under (cmdpb.Command.rules), and applies by them,
// so an old log replays as it first applied.
const (
	// rulesLegacy (0): a send's client_msg_id is unique per conversation,
	// whoever sends it; any reuse answers the first result.
	rulesLegacy = 0
	// rulesSenderIDs (1): a client_msg_id is unique per conversation and
	// sender (user). The sender's reuse with the same content (body,
	// content type, attachments) answers the first result, with other
	// content CONFLICT; another user's is a new message. An id recorded
	// under rules 0 counts as its message's sender's. A send records the
	// time of the sender's last message besides its seq (o/ values).
	rulesSenderIDs = 1
	// currentRules are the rules Prepare proposes under.
	currentRules = rulesSenderIDs
)

// Directory resolves users for membership checks. The node implements it
// with a leader read of the directory group.
type Directory interface {
	// LookupUsers returns the users among userIDs that exist in the
	// workspace; unknown ids are left out. Errors are wire errors.
	LookupUsers(ctx context.Context, workspaceID string, userIDs []string) ([]*syncpb.User, error)
}

// Config of a shard state machine.
type Config struct {
	// Group is the raft group's name ("s0".."s<N-1>"); it names the keys.
	Group     string
	Directory Directory
	// Sync makes the DB's writes durable; called before snapshots and after
	// restores. Nil skips it.
	Sync func() error
	// OnCommit, when set, is called from the apply goroutine after each
	// batch of entries is stored, with the messages they appended and the
	// membership they changed, in log order. It must not block: the node
	// queues them for delivery.
	OnCommit func([]Committed)
	// OnRestore, when set, is called after a snapshot replaced the
	// shard's state (no OnCommit tells of what it brought).
	OnRestore func()
	// LargeGroup is the member count above which a conversation's live
	// deliveries go on its conversation subject (sync lists such groups
	// for the edge); 0 means never.
	LargeGroup int
	// Reads gives read positions for unread counts; nil counts only the
	// user's own messages as read.
	Reads  ReadPositions
	Logger *slog.Logger
}

// Committed is what one applied command changed that devices must hear
// of: the messages it appended (in seq order) and, for a membership
// change, the users it removed (they are told of their removal once).
type Committed struct {
	Index          uint64 // raft index of the command
	Term           uint64 // raft term it was proposed in
	ConvID         string
	Messages       []*syncpb.Message
	MembersChanged bool
	Added          []string
	Removed        []string
}

// Validate reports the first bad field.
func (c *Config) Validate() error {
	switch {
	case c.Group == "":
		return errors.New("shard: Config.Group is required")
	case c.Directory == nil:
		return errors.New("shard: Config.Directory is required")
	}
	return nil
}

// FSM is a shard's state machine. Raft calls Apply, ApplyBatch, Snapshot
// and Restore from one goroutine; Prepare and AppliedIndex may run
// concurrently with them.
type FSM struct {
	m         *kvfsm.Machine
	dir       Directory
	log       *slog.Logger
	onCommit  func([]Committed)
	onRestore func()
	large     uint64 // Config.LargeGroup; 0: none
	reads     ReadPositions
	batch     []Committed // of the ApplyBatch under way
}

var _ raft.BatchingFSM = (*FSM)(nil)

// New returns the state machine of cfg.Group over db.
func New(db *badger.DB, cfg Config) (*FSM, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	f := &FSM{dir: cfg.Directory, log: log.With("shard", cfg.Group), onCommit: cfg.OnCommit, onRestore: cfg.OnRestore, large: uint64(max(cfg.LargeGroup, 0)), reads: cfg.Reads}
	m, err := kvfsm.New(db, kvfsm.Config{Group: cfg.Group, Apply: f.apply, Sync: cfg.Sync, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("shard: %w", err)
	}
	f.m = m
	return f, nil
}

// Apply applies one committed entry; it returns a *syncpb.CoreResponse.
func (f *FSM) Apply(l *raft.Log) any { return f.ApplyBatch([]*raft.Log{l})[0] }

// ApplyBatch applies committed entries in one transaction where they fit,
// then hands what they committed to Config.OnCommit.
func (f *FSM) ApplyBatch(logs []*raft.Log) []any {
	f.batch = f.batch[:0]
	out := f.m.ApplyBatch(logs)
	if f.onCommit == nil || len(f.batch) == 0 {
		return out
	}
	done := make([]Committed, 0, len(f.batch))
	i := 0
	for _, c := range f.batch {
		for i < len(logs) && logs[i].Index < c.Index {
			i++
		}
		// An entry the batch failed to store reports an error instead.
		if r, ok := out[i].(*syncpb.CoreResponse); ok && r.GetError() == nil {
			c.Term = logs[i].Term
			done = append(done, c)
		}
	}
	if len(done) > 0 {
		f.onCommit(done)
	}
	return out
}

// Snapshot captures the shard's keys; see kvfsm.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) { return f.m.Snapshot() }

// Restore replaces the shard's keys with a snapshot's; see kvfsm.
func (f *FSM) Restore(rc io.ReadCloser) error {
	if err := f.m.Restore(rc); err != nil {
		return err
	}
	if f.onRestore != nil {
		f.onRestore()
	}
	return nil
}

// AppliedIndex is the last raft index whose effects are in the DB.
func (f *FSM) AppliedIndex() (uint64, error) { return f.m.AppliedIndex() }

// Prepare answers reads from local state (resp) and validates writes,
// returning the command to propose (cmd). err is a *syncproto.Error for a
// rejection, or a storage error. now is the leader's clock, carried in the
// command.
func (f *FSM) Prepare(ctx context.Context, req *syncpb.CoreRequest, now time.Time) (cmd *cmdpb.Command, resp *syncpb.CoreResponse, err error) {
	if err := f.m.Err(); err != nil {
		f.log.Warn("prepare on a failed state machine", "err", err)
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_UNAVAILABLE, "shard unavailable, retry")
	}
	caller := req.GetCaller()
	if err := checkCaller(caller); err != nil {
		return nil, nil, err
	}
	cmd, resp, err = f.prepare(ctx, caller, req, now.UnixMilli())
	if cmd != nil {
		cmd.Rules = currentRules
	}
	return cmd, resp, err
}

func (f *FSM) prepare(ctx context.Context, caller *syncpb.Caller, req *syncpb.CoreRequest, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
	r, body, err := syncproto.RequestOf(req)
	if err != nil {
		return nil, nil, err
	}
	h, ok := prepares[r.Op]
	if !ok {
		return nil, nil, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a conversation request")
	}
	return h(f, ctx, caller, body, ms)
}

// prepareFunc prepares one request: a read's answer, or a write's command.
type prepareFunc func(f *FSM, ctx context.Context, caller *syncpb.Caller, body proto.Message, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error)

// prepares are the shard's handlers, by CoreRequest op: the requests whose
// row in syncproto.Requests is RouteConversation, and the ones the node
// asks every shard (list_conversations, sync).
var prepares = map[protoreflect.Name]prepareFunc{
	"create_conversation": writeOp((*FSM).prepareCreate),
	"get_conversation":    readOp((*FSM).getConversation),
	"list_conversations":  readOp((*FSM).listConversations),
	"change_members":      writeOp((*FSM).prepareChange),
	"send": writeOp(func(f *FSM, _ context.Context, c *syncpb.Caller, req *syncpb.SendRequest, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		return f.prepareSend(c, req, ms)
	}),
	"history": readOp((*FSM).history),
	"receipt": readOp(func(*FSM, *syncpb.Caller, *syncpb.ReceiptReport) (*syncpb.CoreResponse, error) {
		return nil, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "receipts are not shard commands (see CheckReceipt)")
	}),
	"sync":             readOp((*FSM).sync),
	"set_notify_level": writeOp((*FSM).prepareSetNotifyLevel),
}

// writeOp adapts a write's typed handler.
func writeOp[T proto.Message](h func(f *FSM, ctx context.Context, caller *syncpb.Caller, req T, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error)) prepareFunc {
	return func(f *FSM, ctx context.Context, caller *syncpb.Caller, body proto.Message, ms int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		return h(f, ctx, caller, body.(T), ms)
	}
}

// readOp adapts a read's typed handler.
func readOp[T proto.Message](h func(f *FSM, caller *syncpb.Caller, req T) (*syncpb.CoreResponse, error)) prepareFunc {
	return func(f *FSM, _ context.Context, caller *syncpb.Caller, body proto.Message, _ int64) (*cmdpb.Command, *syncpb.CoreResponse, error) {
		resp, err := h(f, caller, body.(T))
		return nil, resp, err
	}
}

// apply is the kvfsm.ApplyFunc: it re-validates everything, since state
// may have changed since Prepare.
func (f *FSM) apply(tx *kvfsm.Tx, index uint64, cmd *cmdpb.Command) (*syncpb.CoreResponse, error) {
	c := Committed{Index: index}
	resp, err := f.applyCommand(tx, &c, cmd)
	var werr *syncproto.Error
	if errors.As(err, &werr) {
		return &syncpb.CoreResponse{Error: werr.Proto()}, nil
	}
	if err == nil && resp.GetError() == nil && c.ConvID != "" {
		f.batch = append(f.batch, c)
	}
	return resp, err
}

func (f *FSM) applyCommand(tx *kvfsm.Tx, c *Committed, cmd *cmdpb.Command) (*syncpb.CoreResponse, error) {
	caller := cmd.GetCaller()
	if err := checkCaller(caller); err != nil {
		return nil, err
	}
	switch op := cmd.GetOp().(type) {
	case *cmdpb.Command_CreateConversation:
		return applyCreate(tx, c, cmd, op.CreateConversation)
	case *cmdpb.Command_ChangeMembers:
		return applyChange(tx, c, cmd, op.ChangeMembers)
	case *cmdpb.Command_Send:
		return applySend(tx, c, cmd, op.Send)
	case *cmdpb.Command_SetNotifyLevel:
		return applySetNotifyLevel(tx, cmd, op.SetNotifyLevel)
	case *cmdpb.Command_Receipt:
		// Receipts are kept by core/receipts, not the shard: a receipt
		// command in a shard log applies as a no-op.
		return &syncpb.CoreResponse{}, nil
	default:
		return nil, syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "not a shard command")
	}
}

// view runs fn on a consistent view of the shard.
func (f *FSM) view(fn func(v *kvfsm.View) error) error { return f.m.View(fn) }

// checkCaller rejects a request without a verified identity.
func checkCaller(c *syncpb.Caller) error {
	if c == nil || !syncproto.ValidID(c.WorkspaceId) || !syncproto.ValidID(c.UserId) {
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "request has no verified caller")
	}
	if c.DeviceId != "" && !syncproto.ValidID(c.DeviceId) {
		return syncproto.Errorf(syncpb.Code_CODE_UNAUTHENTICATED, "invalid caller device")
	}
	return nil
}

func checkConvID(conv string) error {
	if !syncproto.ValidID(conv) {
		return syncproto.Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "invalid conversation id")
	}
	return nil
}

var (
	errNotFound  = syncproto.Errorf(syncpb.Code_CODE_NOT_FOUND, "conversation not found")
	errNotMember = syncproto.Errorf(syncpb.Code_CODE_NOT_MEMBER, "not a member of this conversation")
)

// access loads conv for caller: NOT_FOUND when it does not exist in the
// caller's workspace, NOT_MEMBER when the caller is not a member.
func access(g kvfsm.Getter, caller *syncpb.Caller, conv string) (*convMeta, *syncpb.Member, error) {
	if err := checkConvID(conv); err != nil {
		return nil, nil, err
	}
	meta, ok, err := getMeta(g, conv)
	if err != nil {
		return nil, nil, err
	}
	if !ok || meta.WorkspaceID != caller.WorkspaceId {
		return nil, nil, errNotFound
	}
	mem, ok, err := getMember(g, conv, caller.UserId)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		return nil, nil, errNotMember
	}
	return meta, mem, nil
}

func conversationResponse(c *syncpb.Conversation) *syncpb.CoreResponse {
	return &syncpb.CoreResponse{Result: &syncpb.CoreResponse_Conversation{Conversation: c}}
}
