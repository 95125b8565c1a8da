package crdt

import (
	"bytes"
	"math/rand/v2"
	"strconv"
	"testing"
)

func randRegister(r *rand.Rand) Register {
	// Small ranges make equal values (the tie rule) common.
	return Register{Value: uint64(r.IntN(5)), At: int64(r.IntN(4))}
}

func randMarks(r *rand.Rand) Marks { return Marks{Delivered: randRegister(r), Read: randRegister(r)} }

func randDevices(r *rand.Rand) Devices {
	d := Devices{}
	for i := r.IntN(4); i > 0; i-- {
		d.Set("d"+strconv.Itoa(r.IntN(4)), randMarks(r))
	}
	return d
}

func join(a, b Devices) Devices {
	c := a.Clone()
	c.Merge(b)
	return c
}

const rounds = 20000

func TestRegisterLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < rounds; i++ {
		a, b, c := randRegister(r), randRegister(r), randRegister(r)
		if a.Merge(b) != b.Merge(a) {
			t.Fatalf("not commutative: %v %v", a, b)
		}
		if a.Merge(b).Merge(c) != a.Merge(b.Merge(c)) {
			t.Fatalf("not associative: %v %v %v", a, b, c)
		}
		if a.Merge(a) != a {
			t.Fatalf("not idempotent: %v", a)
		}
		if m := a.Merge(b); m.Value < a.Value || m.Value < b.Value {
			t.Fatalf("merge went backwards: %v %v -> %v", a, b, m)
		}
	}
}

func TestRegisterTieRule(t *testing.T) {
	for _, c := range []struct{ a, b, want Register }{
		{Register{5, 10}, Register{5, 7}, Register{5, 7}},  // earlier At wins
		{Register{5, 0}, Register{5, 7}, Register{5, 7}},   // known beats unknown
		{Register{6, 99}, Register{5, 1}, Register{6, 99}}, // value first
	} {
		if got := c.a.Merge(c.b); got != c.want {
			t.Errorf("%v merge %v = %v, want %v", c.a, c.b, got, c.want)
		}
	}
}

func TestMarksLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for i := 0; i < rounds; i++ {
		a, b, c := randMarks(r), randMarks(r), randMarks(r)
		if a.Merge(b) != b.Merge(a) || a.Merge(b).Merge(c) != a.Merge(b.Merge(c)) || a.Merge(a) != a {
			t.Fatalf("marks laws fail: %v %v %v", a, b, c)
		}
		if m := a.Merge(b); m.DeliveredUpTo().Value < m.Read.Value {
			t.Fatalf("read above delivered: %v", m)
		}
	}
}

func TestWithSent(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < rounds; i++ {
		a, b := randMarks(r), randMarks(r)
		s, u := randRegister(r), randRegister(r)
		switch {
		case a.WithSent(s).Merge(b) != a.Merge(b).WithSent(s):
			t.Fatalf("not a join with Merge: %v %v %v", a, b, s)
		case a.WithSent(s).WithSent(u) != a.WithSent(u).WithSent(s) || a.WithSent(s).WithSent(s) != a.WithSent(s):
			t.Fatalf("not commutative or idempotent: %v %v %v", a, s, u)
		}
		m := a.WithSent(s)
		if m.Read.Value < s.Value || m.Delivered.Value < s.Value || m.Read.Value < a.Read.Value || m.Delivered.Value < a.Delivered.Value {
			t.Fatalf("%v with sent %v gave %v", a, s, m)
		}
	}
	// The earlier time of an equal position wins: a user who sent seq 5
	// read it when sending, not when a device reported it later.
	m := Marks{Read: Register{Value: 5, At: 900}}.WithSent(Register{Value: 5, At: 100})
	if m.Read != (Register{Value: 5, At: 100}) || m.Delivered != (Register{Value: 5, At: 100}) {
		t.Fatalf("got %v", m)
	}
}

func TestDevicesLaws(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	for i := 0; i < rounds; i++ {
		a, b, c := randDevices(r), randDevices(r), randDevices(r)
		if !join(a, b).Equal(join(b, a)) {
			t.Fatalf("not commutative: %v %v", a, b)
		}
		if !join(join(a, b), c).Equal(join(a, join(b, c))) {
			t.Fatalf("not associative: %v %v %v", a, b, c)
		}
		if !join(a, a).Equal(a) {
			t.Fatalf("not idempotent: %v", a)
		}
		if join(a, b).User() != a.User().Merge(b.User()) {
			t.Fatalf("user view is not the join of the user views: %v %v", a, b)
		}
	}
}

// A delta is one device's report; replicas see the same deltas in random
// orders, with duplicates, some in two partial batches: same state.
func TestDeltasAnyOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	type delta struct {
		dev string
		m   Marks
	}
	for round := 0; round < 500; round++ {
		var deltas []delta
		for i := r.IntN(40); i > 0; i-- {
			deltas = append(deltas, delta{"d" + strconv.Itoa(r.IntN(5)), randMarks(r)})
		}
		var want Devices
		for replica := 0; replica < 5; replica++ {
			seq := append([]delta(nil), deltas...)
			for i := r.IntN(len(seq) + 1); i > 0; i-- { // duplicates
				seq = append(seq, seq[r.IntN(len(seq))])
			}
			r.Shuffle(len(seq), func(i, j int) { seq[i], seq[j] = seq[j], seq[i] })
			// Partial delivery: a first batch merged into one state, the rest
			// into another, then the two states merged.
			cut := r.IntN(len(seq) + 1)
			s1, s2 := Devices{}, Devices{}
			for _, d := range seq[:cut] {
				s1.Set(d.dev, d.m)
			}
			for _, d := range seq[cut:] {
				s2.Set(d.dev, d.m)
			}
			got := join(s1, s2)
			// Through the encoding, as a persisted state would be.
			back, err := Decode(got.Encode())
			if err != nil {
				t.Fatal(err)
			}
			if replica == 0 {
				want = back
			} else if !back.Equal(want) {
				t.Fatalf("replica %d: %v, want %v", replica, back, want)
			}
		}
	}
}

func TestSetReportsChange(t *testing.T) {
	d := Devices{}
	if d.Set("a", Marks{}) {
		t.Fatal("an empty mark changed the state")
	}
	if !d.Set("a", Marks{Read: Register{3, 1}}) {
		t.Fatal("a raise did not change the state")
	}
	if d.Set("a", Marks{Read: Register{2, 1}}) {
		t.Fatal("a stale report changed the state")
	}
	if got := d["a"].DeliveredUpTo().Value; got != 3 {
		t.Fatalf("delivered up to %d, want 3 (read implies delivered)", got)
	}
}

func TestEncodingDeterministic(t *testing.T) {
	r := rand.New(rand.NewPCG(9, 10))
	for i := 0; i < 2000; i++ {
		d := randDevices(r)
		b := d.Encode()
		back, err := Decode(b)
		if err != nil {
			t.Fatalf("decode %x: %v", b, err)
		}
		if !back.Equal(d) || !bytes.Equal(back.Encode(), b) {
			t.Fatalf("round trip %v -> %x -> %v", d, b, back)
		}
	}
}

func TestDecodeRejects(t *testing.T) {
	good := Devices{"a": {Read: Register{1, 2}}, "b": {}}.Encode()
	for name, b := range map[string][]byte{
		"empty":    nil,
		"version":  append([]byte{2}, good[1:]...),
		"trailing": append(append([]byte(nil), good...), 0),
		"short":    good[:len(good)-1],
		"order":    {1, 2, 1, 'b', 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0},
		"dup":      {1, 2, 1, 'a', 0, 0, 0, 0, 1, 'a', 0, 0, 0, 0},
		"count":    {1, 0xff, 0xff, 0xff, 0xff, 0x0f},
		"noncanon": {1, 0x81, 0x00},
		"emptyid":  {1, 1, 0, 0, 0, 0, 0},
	} {
		if _, err := Decode(b); err == nil {
			t.Errorf("%s: %x decoded", name, b)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Devices{}.Encode())
	f.Add(Devices{"phone": {Delivered: Register{9, 1700000000000}, Read: Register{7, 1700000000001}}, "web": {}}.Encode())
	f.Add([]byte{1, 1, 1, 'a', 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := Decode(b)
		if err != nil {
			return
		}
		// Only canonical encodings decode.
		if enc := d.Encode(); !bytes.Equal(enc, b) {
			t.Fatalf("%x decoded to %v, which encodes as %x", b, d, enc)
		}
	})
}

func BenchmarkMergeEncode(b *testing.B) {
	d := Devices{"phone": {Delivered: Register{90, 1}, Read: Register{80, 2}}, "laptop": {Read: Register{85, 3}}, "web": {}}
	buf := make([]byte, 0, 64)
	for b.Loop() {
		d.Set("phone", Marks{Read: Register{81, 4}})
		buf = d.AppendEncode(buf[:0])
	}
}
