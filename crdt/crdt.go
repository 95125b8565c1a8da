// Package crdt holds the merge types of multi-device state: a max-register,
// a device's pair of receipt watermarks, a map of them keyed by device, and
// the user-level view over a user's devices. Every Merge is commutative,
// associative and idempotent, so replicas that see the same updates in any
// order, with duplicates, hold the same state. No dependencies.
package crdt

// Register is a max-register: the larger Value wins. At is when the value
// was first reached (unix ms, 0 when unknown); on equal values the earlier
// known At wins, so the tie rule is deterministic.
type Register struct {
	Value uint64
	At    int64
}

// Merge returns the join of r and o.
func (r Register) Merge(o Register) Register {
	switch {
	case o.Value > r.Value:
		return o
	case o.Value < r.Value:
		return r
	case r.At == 0 || (o.At != 0 && o.At < r.At):
		return o
	}
	return r
}

// Marks are one device's receipt watermarks in one conversation.
type Marks struct {
	Delivered Register
	Read      Register
}

// Merge returns the join of m and o, field by field.
func (m Marks) Merge(o Marks) Marks {
	return Marks{Delivered: m.Delivered.Merge(o.Delivered), Read: m.Read.Merge(o.Read)}
}

// DeliveredUpTo is the delivered watermark: reading implies delivery.
func (m Marks) DeliveredUpTo() Register { return m.Delivered.Merge(m.Read) }

// WithSent joins into m the user's own last message in the conversation
// (sent: its seq and time): a sender has received and read what it sent.
// Like Merge it is commutative, associative and idempotent, so a
// position joined with the sender's messages and device reports in any
// order is the same.
func (m Marks) WithSent(sent Register) Marks {
	return Marks{Delivered: m.Delivered.Merge(sent), Read: m.Read.Merge(sent)}
}

// Devices maps a user's device ids to their marks in one conversation. A
// nil Devices is empty.
type Devices map[string]Marks

// Merge joins o into d (which must be non-nil when o is not empty) and
// reports whether d changed.
func (d Devices) Merge(o Devices) bool {
	changed := false
	for id, m := range o {
		if d.Set(id, m) {
			changed = true
		}
	}
	return changed
}

// Set joins m into the device's marks and reports whether they changed.
func (d Devices) Set(device string, m Marks) bool {
	cur, ok := d[device]
	next := cur.Merge(m)
	if ok && next == cur {
		return false
	}
	if !ok && next == (Marks{}) {
		return false
	}
	d[device] = next
	return true
}

// User is the user-level view: the join over the user's devices, with the
// delivered watermark raised to the read one.
func (d Devices) User() Marks {
	var u Marks
	for _, m := range d {
		u = u.Merge(m)
	}
	u.Delivered = u.DeliveredUpTo()
	return u
}

// Clone returns a copy of d.
func (d Devices) Clone() Devices {
	c := make(Devices, len(d))
	for k, v := range d {
		c[k] = v
	}
	return c
}

// Equal reports whether d and o hold the same marks.
func (d Devices) Equal(o Devices) bool {
	if len(d) != len(o) {
		return false
	}
	for k, v := range d {
		if w, ok := o[k]; !ok || w != v {
			return false
		}
	}
	return true
}
