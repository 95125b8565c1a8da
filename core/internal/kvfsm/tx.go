package kvfsm

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"strings"

	"github.com/dgraph-io/badger/v4"
)

// Getter reads one key relative to the group's prefix. The value must not
// be modified; ok is false when the key is absent.
type Getter interface {
	Get(key []byte) (val []byte, ok bool, err error)
}

// Reader reads and scans keys relative to the group's prefix.
type Reader interface {
	Getter
	// Scan calls fn for each key under prefix in ascending order
	// (descending when reverse), starting at seek: the first key >= seek,
	// or when reverse the last key <= seek; a nil seek starts at the first
	// (last) key under prefix. key and val are valid only during the call;
	// fn returns false to stop.
	Scan(prefix, seek []byte, reverse bool, fn func(key, val []byte) (bool, error)) error
}

var (
	_ Reader = (*View)(nil)
	_ Reader = (*Tx)(nil)
)

// View is a consistent read-only view of a group's keys. It is valid only
// inside the function it was given to.
type View struct {
	txn    *badger.Txn
	prefix []byte
}

func (v *View) abs(rel []byte) []byte {
	k := make([]byte, 0, len(v.prefix)+len(rel))
	return append(append(k, v.prefix...), rel...)
}

// Get returns a copy of key's value.
func (v *View) Get(key []byte) ([]byte, bool, error) {
	it, err := v.txn.Get(v.abs(key))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	val, err := it.ValueCopy(nil)
	if err != nil {
		return nil, false, err
	}
	return val, true, nil
}

// Scan implements Reader.
func (v *View) Scan(prefix, seek []byte, reverse bool, fn func(key, val []byte) (bool, error)) error {
	absPrefix := v.abs(prefix)
	opts := badger.DefaultIteratorOptions
	if !reverse {
		// With a prefix set, a reverse seek landing just past it would end
		// the iteration; reverse scans check the prefix themselves.
		opts.Prefix = absPrefix
	}
	opts.Reverse = reverse
	opts.PrefetchValues = false
	it := v.txn.NewIterator(opts)
	defer it.Close()
	var start []byte
	switch {
	case seek != nil:
		start = v.abs(seek)
	case reverse:
		start = successor(absPrefix)
	default:
		start = absPrefix
	}
	it.Seek(start)
	// A reverse seek may land on start itself, just past the prefix.
	if reverse && it.Valid() && bytes.Equal(it.Item().Key(), start) && !bytes.HasPrefix(start, absPrefix) {
		it.Next()
	}
	for ; it.ValidForPrefix(absPrefix); it.Next() {
		item := it.Item()
		var more bool
		err := item.Value(func(val []byte) error {
			var err error
			more, err = fn(item.Key()[len(v.prefix):], val)
			return err
		})
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
	}
	return nil
}

// successor is the smallest key greater than every key with prefix p (p
// does not end in 0xff in this package: prefixes end in '/').
func successor(p []byte) []byte {
	s := bytes.Clone(p)
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] != 0xff {
			s[i]++
			return s[:i+1]
		}
	}
	return append(s, 0xff)
}

// op is one buffered write.
type op struct {
	key string
	val []byte
	del bool
}

// Tx is what an ApplyFunc reads and writes through: it sees the state
// before the batch, the writes of earlier entries in the batch, and its own
// writes. Writes are buffered and reach Badger only if the entry is not
// rejected. Values passed to Set must not be modified afterwards.
type Tx struct {
	view  View
	batch map[string]op // writes of earlier entries in this batch
	ops   []op          // this entry's writes, unique keys
	idx   map[string]int
}

func newTx(v View) *Tx {
	return &Tx{view: v, batch: map[string]op{}, idx: map[string]int{}}
}

// Get returns key's value as of the entry's writes so far.
func (t *Tx) Get(key []byte) ([]byte, bool, error) {
	if i, ok := t.idx[string(key)]; ok {
		o := t.ops[i]
		return o.val, !o.del, nil
	}
	if o, ok := t.batch[string(key)]; ok {
		return o.val, !o.del, nil
	}
	return t.view.Get(key)
}

// Set writes key. It panics on a reserved key (a programming error).
func (t *Tx) Set(key, val []byte) {
	t.put(op{key: string(key), val: val})
}

// Delete removes key.
func (t *Tx) Delete(key []byte) {
	t.put(op{key: string(key), del: true})
}

func (t *Tx) put(o op) {
	if o.key == keyApplied || o.key == keyRestoring {
		panic("kvfsm: write to reserved key " + o.key)
	}
	if i, ok := t.idx[o.key]; ok {
		t.ops[i] = o
		return
	}
	t.idx[o.key] = len(t.ops)
	t.ops = append(t.ops, o)
}

// keep ends the entry, making its writes visible to later entries.
func (t *Tx) keep() []op {
	ops := t.ops
	for _, o := range ops {
		t.batch[o.key] = o
	}
	t.ops = nil
	clear(t.idx)
	return ops
}

// drop ends the entry, discarding its writes.
func (t *Tx) drop() {
	t.ops = nil
	clear(t.idx)
}

// Scan implements Reader. It merges the entry's and the batch's writes
// under prefix with the view as it goes, so a scan that stops early reads
// only what it visits.
func (t *Tx) Scan(prefix, seek []byte, reverse bool, fn func(key, val []byte) (bool, error)) error {
	before := func(a, b string) bool { // a comes before b in scan order
		if reverse {
			return a > b
		}
		return a < b
	}
	pend := map[string]op{}
	add := func(o op) {
		if !strings.HasPrefix(o.key, string(prefix)) || (seek != nil && before(o.key, string(seek))) {
			return
		}
		pend[o.key] = o
	}
	for _, o := range t.batch {
		add(o)
	}
	for _, o := range t.ops {
		add(o) // the entry's own writes win over the batch's
	}
	keys := slices.Sorted(maps.Keys(pend))
	if reverse {
		slices.Reverse(keys)
	}
	i := 0
	// emit passes the pending writes that come before upto (all when
	// upto is nil) to fn; false when fn stopped.
	emit := func(upto *string) (bool, error) {
		for i < len(keys) && (upto == nil || before(keys[i], *upto)) {
			o := pend[keys[i]]
			i++
			if o.del {
				continue
			}
			if more, err := fn([]byte(o.key), o.val); err != nil || !more {
				return false, err
			}
		}
		return true, nil
	}
	stopped := false
	err := t.view.Scan(prefix, seek, reverse, func(k, v []byte) (bool, error) {
		ks := string(k)
		more, err := emit(&ks)
		if err == nil && more {
			if o, ok := pend[ks]; ok { // written since: the write wins
				i++
				if o.del {
					return true, nil
				}
				v = o.val
			}
			more, err = fn(k, v)
		}
		stopped = err != nil || !more
		return !stopped, err
	})
	if err != nil || stopped {
		return err
	}
	_, err = emit(nil)
	return err
}
