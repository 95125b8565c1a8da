package syncproto

import (
	"fmt"

	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/parley-chat/parley/syncproto/syncpb"
)

// Route says where an edge sends a request and which group a core runs it
// on.
type Route uint8

const (
	// RouteNone: the region's API subject; the core answers it itself
	// (region_info) or gathers it from every shard (list_conversations,
	// sync, get_presence). Frames the edge answers itself have it too.
	RouteNone Route = iota
	// RouteDirectory: the API subject; the core runs it on the directory
	// group (users, devices, workspaces).
	RouteDirectory
	// RouteConversation: the shard subject of the request's conv_id; the
	// core runs it on that shard's group.
	RouteConversation
)

func (r Route) String() string {
	switch r {
	case RouteNone:
		return "none"
	case RouteDirectory:
		return "directory"
	case RouteConversation:
		return "conversation"
	}
	return fmt.Sprintf("route(%d)", uint8(r))
}

// Request is one request type: a row of the table in requests.go.
// Everything that routes, checks or translates a request reads it from
// here: edge sessions, the /v1 API, the core RPC client and the core's
// dispatch.
type Request struct {
	// Op is the CoreRequest.op field that carries the request
	// ("send"); "" for a frame the edge answers itself (ping, reauth,
	// presence_subscribe).
	Op protoreflect.Name
	// Route is where it goes; RouteConversation requests have a conv_id.
	Route Route
	// Read: it only reads state (a read barrier at the core, not a
	// proposal).
	Read bool
	// NoReply: it is published without a reply (typing).
	NoReply bool
	// NotIdempotent: running it twice has two effects (register_device
	// makes a second device), so a caller repeats it only when it
	// certainly never reached a core.
	NotIdempotent bool
	// Frame is the client Frame body that carries the request ("send"),
	// "" when devices cannot send it.
	Frame protoreflect.Name
	// FrameReply is the Frame body of its answer ("send_ack"); "" for
	// none.
	FrameReply protoreflect.Name
	// Result is the CoreResponse result field of a success ("send_ack");
	// "" when a success carries none.
	Result protoreflect.Name
	// IDOptional: a frame with id 0 is dropped without an answer instead
	// of ending the session (ping).
	IDOptional bool
	// validate is the request's one validator (nil: any body).
	validate func(proto.Message) error

	body                              protoreflect.MessageDescriptor
	op, frame, frameReply, result, cv protoreflect.FieldDescriptor
}

// check adapts a typed validator for a Request row.
func check[T proto.Message](f func(T) error) func(proto.Message) error {
	return func(m proto.Message) error {
		t, ok := m.(T)
		if !ok {
			return Errorf(syncpb.Code_CODE_MALFORMED, "request body has the wrong type")
		}
		return f(t)
	}
}

var (
	coreRequestOp  = (&syncpb.CoreRequest{}).ProtoReflect().Descriptor().Oneofs().ByName("op")
	coreResponseOK = (&syncpb.CoreResponse{}).ProtoReflect().Descriptor().Oneofs().ByName("result")
	frameBody      = (&syncpb.Frame{}).ProtoReflect().Descriptor().Oneofs().ByName("body")
)

// Table indexes Request rows by CoreRequest field, Frame field and body
// message type.
type Table struct {
	byOp    map[protoreflect.Name]*Request
	byFrame map[protoreflect.Name]*Request
	byBody  map[protoreflect.FullName]*Request
	rows    []*Request
}

// NewTable checks rows against the schema and indexes them. It fails on a
// field that does not exist, a field named twice, a body type that differs
// between the CoreRequest and the Frame, or a conversation request without
// a conv_id.
func NewTable(rows []Request) (*Table, error) {
	t := &Table{byOp: map[protoreflect.Name]*Request{}, byFrame: map[protoreflect.Name]*Request{},
		byBody: map[protoreflect.FullName]*Request{}}
	for i := range rows {
		r := rows[i]
		name := r.Op
		if name == "" {
			name = r.Frame
		}
		if r.Op != "" {
			if r.op = coreRequestOp.Fields().ByName(r.Op); r.op == nil {
				return nil, fmt.Errorf("syncproto: request %s: CoreRequest has no op %q", name, r.Op)
			}
			if _, dup := t.byOp[r.Op]; dup {
				return nil, fmt.Errorf("syncproto: request %s: op named twice", name)
			}
			r.body = r.op.Message()
		}
		if r.Frame != "" {
			if r.frame = frameBody.Fields().ByName(r.Frame); r.frame == nil {
				return nil, fmt.Errorf("syncproto: request %s: Frame has no body %q", name, r.Frame)
			}
			if _, dup := t.byFrame[r.Frame]; dup {
				return nil, fmt.Errorf("syncproto: request %s: frame %q named twice", name, r.Frame)
			}
			if r.body != nil && r.body != r.frame.Message() {
				return nil, fmt.Errorf("syncproto: request %s: frame %s carries %s, the op %s", name, r.Frame, r.frame.Message().FullName(), r.body.FullName())
			}
			r.body = r.frame.Message()
		}
		if r.body == nil {
			return nil, fmt.Errorf("syncproto: request row %d names neither an op nor a frame", i)
		}
		if r.FrameReply != "" {
			if r.frameReply = frameBody.Fields().ByName(r.FrameReply); r.frameReply == nil {
				return nil, fmt.Errorf("syncproto: request %s: Frame has no body %q", name, r.FrameReply)
			}
		}
		if r.Result != "" {
			if r.result = coreResponseOK.Fields().ByName(r.Result); r.result == nil {
				return nil, fmt.Errorf("syncproto: request %s: CoreResponse has no result %q", name, r.Result)
			}
			if r.frameReply != nil && r.frameReply.Message() != r.result.Message() {
				return nil, fmt.Errorf("syncproto: request %s: frame reply %s and result %s differ", name, r.FrameReply, r.Result)
			}
		}
		if r.Route == RouteConversation {
			r.cv = r.body.Fields().ByName("conv_id")
			if r.cv == nil || r.cv.Kind() != protoreflect.StringKind || r.cv.IsList() {
				return nil, fmt.Errorf("syncproto: request %s: %s has no conv_id string to route by", name, r.body.FullName())
			}
		}
		if _, dup := t.byBody[r.body.FullName()]; dup {
			return nil, fmt.Errorf("syncproto: request %s: body %s named twice", name, r.body.FullName())
		}
		row := &r
		t.rows = append(t.rows, row)
		t.byBody[r.body.FullName()] = row
		if r.Op != "" {
			t.byOp[r.Op] = row
		}
		if r.Frame != "" {
			t.byFrame[r.Frame] = row
		}
	}
	return t, nil
}

// Rows returns the table's rows in their order.
func (t *Table) Rows() []*Request { return append([]*Request(nil), t.rows...) }

// ByOp returns the row of a CoreRequest op, or nil.
func (t *Table) ByOp(op protoreflect.Name) *Request { return t.byOp[op] }

// ByFrame returns the row of a client Frame body, or nil.
func (t *Table) ByFrame(body protoreflect.Name) *Request { return t.byFrame[body] }

// Of returns the row of req's operation and its body. An error is
// MALFORMED when req has no operation (or one this table does not know:
// a newer peer's) or its op has no body, INVALID_ARGUMENT when its
// conversation id is invalid.
// It does not run the validator (see Check).
func (t *Table) Of(req *syncpb.CoreRequest) (*Request, proto.Message, error) {
	m := req.ProtoReflect()
	fd := m.WhichOneof(coreRequestOp)
	if fd == nil {
		return nil, nil, Errorf(syncpb.Code_CODE_MALFORMED, "request has no operation")
	}
	r := t.byOp[fd.Name()]
	if r == nil {
		return nil, nil, Errorf(syncpb.Code_CODE_MALFORMED, "unknown operation %s", fd.Name())
	}
	bm := m.Get(fd).Message()
	if !bm.IsValid() {
		return nil, nil, Errorf(syncpb.Code_CODE_MALFORMED, "%s request is missing", fd.Name())
	}
	body := bm.Interface()
	if r.Route == RouteConversation && !ValidID(r.Conv(body)) {
		return nil, nil, Errorf(syncpb.Code_CODE_INVALID_ARGUMENT, "invalid conversation id")
	}
	return r, body, nil
}

// Check is Of, then the row's validator on the body.
func (t *Table) Check(req *syncpb.CoreRequest) (*Request, proto.Message, error) {
	r, body, err := t.Of(req)
	if err != nil {
		return nil, nil, err
	}
	if err := r.Validate(body); err != nil {
		return nil, nil, err
	}
	return r, body, nil
}

// FrameOf returns the row of a frame's body and the body, or nil when the
// body is none, unknown to this version, or not a request (a server
// frame, or a client frame without an answer: pong, typing on the
// control stream is a row with NoReply).
func (t *Table) FrameOf(f *syncpb.Frame) (*Request, proto.Message) {
	m := f.ProtoReflect()
	fd := m.WhichOneof(frameBody)
	if fd == nil {
		return nil, nil
	}
	r := t.byFrame[fd.Name()]
	if r == nil {
		return nil, nil
	}
	return r, m.Get(fd).Message().Interface()
}

// Validate runs the request's validator on body: nil, or an *Error whose
// message is safe to show (see validate.go).
func (r *Request) Validate(body proto.Message) error {
	if r.validate == nil {
		return nil
	}
	return r.validate(body)
}

// Name is the request's op, or its frame for an edge-answered one.
func (r *Request) Name() protoreflect.Name {
	if r.Op != "" {
		return r.Op
	}
	return r.Frame
}

// Conv is the conv_id of a RouteConversation request's body ("" for other
// routes).
func (r *Request) Conv(body proto.Message) string {
	if r.cv == nil {
		return ""
	}
	return body.ProtoReflect().Get(r.cv).String()
}

// Wrap returns a CoreRequest carrying body as the row's op, made as
// caller. body must be the row's body type (panics otherwise: a broken
// table invariant, never input).
func (r *Request) Wrap(caller *syncpb.Caller, body proto.Message) *syncpb.CoreRequest {
	req := &syncpb.CoreRequest{Caller: caller}
	req.ProtoReflect().Set(r.op, protoreflect.ValueOfMessage(body.ProtoReflect()))
	return req
}

// Reply returns the answer frame (id) to a successful CoreResponse:
// its Result as the FrameReply body. A response without the result is
// INTERNAL.
func (r *Request) Reply(id uint64, resp *syncpb.CoreResponse) (*syncpb.Frame, error) {
	if r.frameReply == nil || r.result == nil {
		return nil, Errorf(syncpb.Code_CODE_INTERNAL, "internal error")
	}
	m := resp.ProtoReflect()
	if !m.Has(r.result) {
		return nil, Errorf(syncpb.Code_CODE_INTERNAL, "internal error")
	}
	return r.ReplyFrame(id, m.Get(r.result).Message().Interface()), nil
}

// ReplyFrame returns the answer frame (id) carrying body as the FrameReply
// body; body must be of that type.
func (r *Request) ReplyFrame(id uint64, body proto.Message) *syncpb.Frame {
	f := &syncpb.Frame{Id: id}
	f.ProtoReflect().Set(r.frameReply, protoreflect.ValueOfMessage(body.ProtoReflect()))
	return f
}

// Requests is the table every part of parley dispatches through; its rows
// are in requests.go.
var Requests = mustTable(requestRows)

func mustTable(rows []Request) *Table {
	t, err := NewTable(rows)
	if err != nil {
		panic(err) // the table is code: a bad row is a build error
	}
	return t
}

// RequestOf returns the row and body of req's operation (Requests.Of).
func RequestOf(req *syncpb.CoreRequest) (*Request, proto.Message, error) { return Requests.Of(req) }

// CheckRequest returns the row and body of req's operation after its
// validator accepted it (Requests.Check).
func CheckRequest(req *syncpb.CoreRequest) (*Request, proto.Message, error) {
	return Requests.Check(req)
}

// NewRequest returns a CoreRequest carrying body, whose type picks the
// op: NewRequest(caller, &syncpb.SendRequest{...}) is a send. It panics on
// a body type without an op (a programming error).
func NewRequest(caller *syncpb.Caller, body proto.Message) *syncpb.CoreRequest {
	r := Requests.byBody[body.ProtoReflect().Descriptor().FullName()]
	if r == nil || r.op == nil {
		panic(fmt.Sprintf("syncproto: %s is not a CoreRequest op", body.ProtoReflect().Descriptor().FullName()))
	}
	return r.Wrap(caller, body)
}
