package raftstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
)

// gcLoop collects old segments each time the WAL starts a new one.
func (w *WAL) gcLoop() {
	defer w.wg.Done()
	for {
		select {
		case <-w.stop:
			return
		case <-w.gcKick:
		}
		if err := w.collect(); err != nil && !errors.Is(err, ErrWALClosed) {
			w.log.Error("wal segment collection failed", "err", err)
		}
	}
}

// liveBytesLocked is the live bytes in all segments; imu held.
func (w *WAL) liveBytesLocked() int64 {
	var live int64
	for _, s := range w.segs {
		live += s.live
	}
	return live
}

// collect deletes the oldest segment while it holds nothing live. While
// the segments add up to more than twice the live bytes plus two
// segments, it first copies the oldest one's live entries and stable
// values forward to the head (a group that stopped compacting would pin
// it for ever otherwise).
func (w *WAL) collect() error {
	for {
		select {
		case <-w.stop:
			return nil
		default:
		}
		w.imu.RLock()
		n := len(w.segs)
		var oldest *segment
		var oldestLive int64
		if n >= 2 {
			oldest, oldestLive = w.segs[0], w.segs[0].live
		}
		live := w.liveBytesLocked()
		w.imu.RUnlock()
		if oldest == nil {
			return nil
		}
		if oldestLive > 0 {
			if int64(n)*w.cfg.SegmentSize <= 2*live+2*w.cfg.SegmentSize {
				return nil
			}
			if err := w.copyForward(oldest); err != nil {
				return err
			}
		}
		// What was copied, and every delete that emptied the segment,
		// must be durable before the segment goes.
		if err := w.Sync(); err != nil {
			return err
		}
		if err := w.dropOldest(oldest); err != nil {
			return err
		}
	}
}

func (w *WAL) dropOldest(seg *segment) error {
	w.imu.Lock()
	if len(w.segs) < 2 || w.segs[0] != seg || seg.live != 0 {
		live := seg.live
		w.imu.Unlock()
		return fmt.Errorf("raftstore: wal: segment %d still holds %d live bytes", seg.num, live)
	}
	w.segs = w.segs[1:]
	w.imu.Unlock()
	seg.f.Close()
	if err := os.Remove(filepath.Join(w.cfg.Dir, segName(seg.num))); err != nil {
		return fmt.Errorf("raftstore: wal: %w", err)
	}
	return w.dir.Sync()
}

// copyForward rewrites seg's live entries and stable values at the head.
func (w *WAL) copyForward(seg *segment) error {
	w.imu.RLock()
	names := make([]string, 0, len(w.groups))
	for name := range w.groups {
		names = append(names, name)
	}
	w.imu.RUnlock()
	slices.Sort(names)
	for _, name := range names {
		for {
			n, err := w.copyEntries(seg, name)
			if err != nil {
				return err
			}
			if n == 0 {
				break
			}
		}
		if err := w.copyStable(seg, name); err != nil {
			return err
		}
	}
	return nil
}

// copyMax bounds one copied entries record.
const copyMax = 1 << 20

// copyEntries copies up to copyMax bytes of group name's entries in seg
// to the head and returns how many it copied.
func (w *WAL) copyEntries(seg *segment, name string) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	limit := min(copyMax, w.maxPayload())
	e := newEntriesRecord(name, 64<<10)
	w.imu.RLock()
	for _, ie := range w.groups[name].ents {
		if ie.loc.seg != seg.num {
			continue
		}
		if !e.fits(int(ie.loc.n), limit) && len(e.ents) > 0 {
			break
		}
		b, err := w.readLocked(ie.loc)
		if err != nil {
			w.imu.RUnlock()
			return 0, err
		}
		e.add(ie.index, b)
	}
	w.imu.RUnlock()
	if len(e.ents) == 0 {
		return 0, nil
	}
	_, err := w.appendLocked(e.rec, recEntries, func(s *segment, off int64) {
		w.applyEntries(name, s, off, e.ents)
	})
	return len(e.ents), err
}

// copyStable copies group name's stable values in seg to the head.
func (w *WAL) copyStable(seg *segment, name string) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	type kv struct{ k, v []byte }
	var move []kv
	w.imu.RLock()
	for k, v := range w.groups[name].stable {
		if v.loc.seg == seg.num {
			move = append(move, kv{[]byte(k), v.val})
		}
	}
	w.imu.RUnlock()
	for _, m := range move {
		if _, err := w.setStableLocked(name, m.k, m.v); err != nil {
			return err
		}
	}
	return nil
}

// setStableLocked writes a stable record and returns its LSN; mu held.
func (w *WAL) setStableLocked(group string, key, val []byte) (uint64, error) {
	rec := newStableRecord(group, key, val)
	return w.appendLocked(rec, recStable, func(s *segment, off int64) {
		w.applyStable(group, key, val, walLoc{seg: s.num, off: uint32(off), n: uint32(len(rec))})
	})
}
