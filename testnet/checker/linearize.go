package checker

import (
	"hash/fnv"
	"time"

	"github.com/anishathalye/porcupine"
)

// The conversation as Porcupine sees it: an append-only log. Append(id)
// returns the seq the message got; Read(seq) returns the message at seq.
// A delivery is a read at the instant the app got it; a send is an append
// from the moment it was handed to the SDK until its ack (never, for one
// never acknowledged: then it counts only if some device got it).

type opKind int

const (
	opAppend opKind = iota
	opRead
)

type logOp struct {
	kind      opKind
	id        string
	seq       uint64
	call, ret int64 // ret -1: never returned
	system    bool
}

type logInput struct {
	kind opKind
	id   string // append: the message; read: unused
	seq  uint64 // read: the seq read; append: unused
}

// logState is an immutable log: a length, the last entry (entries link
// back), and a hash of the whole content for Equal.
type logState struct {
	n    uint64
	last *entryNode
	h    uint64
}

type entryNode struct {
	id   string
	prev *entryNode
}

func (s logState) at(seq uint64) (string, bool) {
	if seq == 0 || seq > s.n {
		return "", false
	}
	e := s.last
	for i := s.n; i > seq; i-- {
		e = e.prev
	}
	return e.id, true
}

var logModel = porcupine.Model{
	Init: func() any { return logState{} },
	Step: func(state, input, output any) (bool, any) {
		s, in := state.(logState), input.(logInput)
		switch in.kind {
		case opAppend:
			if output.(uint64) != s.n+1 {
				return false, s
			}
			h := fnv.New64a()
			h.Write([]byte(in.id))
			return true, logState{n: s.n + 1, last: &entryNode{id: in.id, prev: s.last}, h: s.h*1099511628211 ^ h.Sum64()}
		default:
			id, ok := s.at(in.seq)
			return ok && id == output.(string), s
		}
	},
	Equal: func(a, b any) bool {
		x, y := a.(logState), b.(logState)
		return x.n == y.n && x.h == y.h
	},
	Hash: func(s any) uint64 { return s.(logState).h ^ s.(logState).n },
}

// linearizable checks one conversation's operations: "ok", "illegal", or
// "unknown" when the search ran out of time.
func linearizable(ops []logOp, timeout time.Duration) string {
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	var end int64
	firstRead := map[uint64]int64{}
	sysID := map[uint64]string{}
	for _, o := range ops {
		end = max(end, o.call, o.ret)
		if o.kind == opRead {
			if t, ok := firstRead[o.seq]; !ok || o.call < t {
				firstRead[o.seq] = o.call
			}
			if o.system {
				sysID[o.seq] = o.id
			}
		}
	}
	var hist []porcupine.Operation
	// System messages (member joined ...) are appended by the server: an
	// append from the start until the first device read them.
	for seq, id := range sysID {
		hist = append(hist, porcupine.Operation{ClientId: 0, Input: logInput{kind: opAppend, id: id}, Call: 0, Output: seq, Return: firstRead[seq]})
	}
	for i, o := range ops {
		ret := o.ret
		if ret < 0 {
			ret = end + 1
		}
		op := porcupine.Operation{ClientId: i + 1, Call: o.call, Return: ret}
		if o.kind == opAppend {
			op.Input, op.Output = logInput{kind: opAppend, id: o.id}, o.seq
		} else {
			op.Input, op.Output = logInput{kind: opRead, seq: o.seq}, o.id
		}
		hist = append(hist, op)
	}
	switch porcupine.CheckOperationsTimeout(logModel, hist, timeout) {
	case porcupine.Ok:
		return "ok"
	case porcupine.Illegal:
		return "illegal"
	default:
		return "unknown"
	}
}
