// Package checker verifies what the testnet's client devices recorded,
// independently of the code under test (it shares nothing with the
// delivery path but syncproto's ids): every acknowledged message reached
// every member device exactly once, in gapless seq order; no message was
// delivered twice; read positions converged; and each conversation's
// history is linearizable as an append-only log (Porcupine).
package checker

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
)

// Event kinds a device records.
const (
	KindSend  = "send"  // a message handed to the SDK (ID, Conv)
	KindAck   = "ack"   // its ack (ID, Conv, Seq)
	KindFail  = "fail"  // a send that ended without an ack (ID, Err)
	KindRecv  = "recv"  // a message the SDK handed the app (Conv, Seq, ID)
	KindConn  = "conn"  // the session went up or down (Up)
	KindFinal = "final" // the device's view of read positions at the end (Reads)
	// KindPresence is a presence state the SDK handed the app (User,
	// Up: online, LastSeen), from a push or a connect's catch-up.
	KindPresence = "presence"
)

// Event is one line of a device's record (JSON lines). T is Unix
// nanoseconds from the machine's clock, which every process shares.
type Event struct {
	Kind   string            `json:"k"`
	Device string            `json:"d"`
	Conv   string            `json:"c,omitempty"`
	ID     string            `json:"id,omitempty"` // client_msg_id
	Seq    uint64            `json:"s,omitempty"`
	System bool              `json:"sys,omitempty"` // a system message (member joined ...)
	Up     bool              `json:"up,omitempty"`
	Err    string            `json:"err,omitempty"`
	T      int64             `json:"t"`
	Reads  map[string]uint64 `json:"reads,omitempty"` // KindFinal: user id -> read seq, as this device saw it
	// ReadTook is, for KindFinal, how long the reads took to converge as
	// seen from this device (ns; -1: they did not).
	ReadTook int64 `json:"read_took,omitempty"`
	// User and LastSeen (Unix ms) are a KindPresence's user id and last
	// seen time.
	User     string `json:"u,omitempty"`
	LastSeen int64  `json:"ls,omitempty"`
}

// Writer appends events as JSON lines. Not safe for concurrent use; the
// agent serializes calls.
type Writer struct {
	w   *bufio.Writer
	enc *json.Encoder
}

// NewWriter writes to w.
func NewWriter(w io.Writer) *Writer {
	bw := bufio.NewWriter(w)
	return &Writer{w: bw, enc: json.NewEncoder(bw)}
}

// Write appends e.
func (w *Writer) Write(e Event) error { return w.enc.Encode(e) }

// Flush writes buffered events out.
func (w *Writer) Flush() error { return w.w.Flush() }

// ReadFile reads a device's events.
func ReadFile(path string) ([]Event, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("checker: read events: %w", err)
	}
	defer f.Close()
	var out []Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var e Event
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return out, fmt.Errorf("checker: %s: %w", path, err)
		}
		out = append(out, e)
	}
	return out, sc.Err()
}
