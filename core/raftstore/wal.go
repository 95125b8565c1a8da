package raftstore

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"
)

var (
	// ErrWALClosed is returned by WAL operations after Close.
	ErrWALClosed = errors.New("raftstore: wal closed")
	// ErrWALFailed is returned (wrapping the cause) by every write after a
	// write or fdatasync of the WAL failed: what reached the disk is then
	// unknown, so the node must stop and restart from what is there.
	ErrWALFailed = errors.New("raftstore: wal write failed")
	// ErrTooLarge is returned for an entry or value that cannot fit in a
	// WAL segment.
	ErrTooLarge = errors.New("raftstore: entry too large for a wal segment")
)

// WALConfig configures OpenWAL.
type WALConfig struct {
	Dir string
	// SegmentSize is the size of each preallocated segment file
	// (default 8 MiB, 64 KiB to 1 GiB). Larger entries are refused.
	SegmentSize int64
	Logger      *slog.Logger
	// Metrics receives the WAL's series (see metrics.go); nil: none are
	// registered.
	Metrics prometheus.Registerer
}

// DefaultSegmentSize is WALConfig.SegmentSize's default.
const DefaultSegmentSize = 8 << 20

func (c *WALConfig) setDefaults() {
	if c.SegmentSize == 0 {
		c.SegmentSize = DefaultSegmentSize
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a config OpenWAL would refuse.
func (c WALConfig) Validate() error {
	if c.Dir == "" {
		return errors.New("raftstore: wal needs a Dir")
	}
	if c.SegmentSize != 0 && (c.SegmentSize < 64<<10 || c.SegmentSize > 1<<30) {
		return fmt.Errorf("raftstore: wal SegmentSize %d outside 64 KiB..1 GiB", c.SegmentSize)
	}
	return nil
}

// WAL is a node's Raft write-ahead log: the log entries and stable values
// of all its raft groups in one sequence of segment files, so that one
// fdatasync makes every group's pending writes durable (group commit).
//
// Segments are preallocated and zero-filled before use, so an fdatasync
// flushes data only, never file metadata. Each group's entry locations and
// stable values are kept in memory and rebuilt by replaying the segments
// at open. A write is acknowledged only after an fdatasync that covers it
// and every record before it, so replay stops at the first record that
// fails its checksum, does not continue the LSN sequence, or has an
// older epoch than the one before it (a leftover from before a crash,
// past the point where the next run continued writing): all acknowledged
// writes are before that point. A background collector deletes the oldest
// segment once it holds nothing live, copying forward the live entries of
// groups that stopped compacting their logs when segments pile up.
type WAL struct {
	cfg WALConfig
	log *slog.Logger
	dir *os.File
	// datasync is fdatasync; tests replace it.
	datasync func(*os.File) error

	mu       sync.Mutex
	cond     *sync.Cond
	head     *segment
	off      int64 // next write offset in head
	nextLSN  uint64
	epoch    uint32
	written  uint64 // last LSN written
	synced   uint64 // last LSN durable
	syncing  bool
	err      error // sticky failure
	closed   bool
	prepping bool           // a segment is being preallocated
	prepped  chan error     // the preallocation's result
	fsyncs   uint64         // fdatasyncs run, for stats
	waits    uint64         // durability waits, for stats
	served   uint64         // waits counted into a started fdatasync
	gcKick   chan struct{}  // wakes the collector
	stop     chan struct{}  // closed by Close
	wg       sync.WaitGroup // the collector

	m      *walMetrics
	imu    sync.RWMutex // guards segs, groups and every walGroup
	segs   []*segment   // by number, contiguous; the last is head
	groups map[string]*walGroup
}

type segment struct {
	num  uint64
	f    *os.File
	size int64
	live int64 // bytes of entries and stable records still in use
}

func segName(num uint64) string { return fmt.Sprintf("%016x.seg", num) }

const prepName = "next.seg.tmp"

// OpenWAL opens (creating if needed) the WAL in cfg.Dir and replays it.
func OpenWAL(cfg WALConfig) (_ *WAL, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("raftstore: wal dir: %w", err)
	}
	dir, err := os.Open(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("raftstore: wal dir: %w", err)
	}
	w := &WAL{cfg: cfg, log: cfg.Logger.With("component", "raftwal"), dir: dir, datasync: fdatasync,
		groups: map[string]*walGroup{}, gcKick: make(chan struct{}, 1), stop: make(chan struct{})}
	w.cond = sync.NewCond(&w.mu)
	defer func() {
		if err != nil {
			w.closeFiles()
		}
	}()
	if err := w.replay(); err != nil {
		return nil, err
	}
	if err := w.begin(); err != nil {
		return nil, err
	}
	if w.m, err = newWALMetrics(w, cfg.Metrics); err != nil {
		return nil, fmt.Errorf("raftstore: wal metrics: %w", err)
	}
	w.wg.Add(1)
	go w.gcLoop()
	return w, nil
}

// replay reads every segment in order and rebuilds the groups' state.
func (w *WAL) replay() error {
	_ = os.Remove(filepath.Join(w.cfg.Dir, prepName))
	names, err := os.ReadDir(w.cfg.Dir)
	if err != nil {
		return fmt.Errorf("raftstore: wal dir: %w", err)
	}
	var nums []uint64
	for _, e := range names {
		name, ok := strings.CutSuffix(e.Name(), ".seg")
		if !ok {
			continue
		}
		num, err := strconv.ParseUint(name, 16, 64)
		if err != nil || segName(num) != e.Name() {
			return fmt.Errorf("raftstore: wal: unexpected file %s", e.Name())
		}
		nums = append(nums, num)
	}
	slices.Sort(nums)
	var epoch uint32
	for i, num := range nums {
		if i > 0 && num != nums[i-1]+1 {
			return fmt.Errorf("raftstore: wal: %w: segment %d missing", ErrCorrupt, nums[i-1]+1)
		}
		last := i == len(nums)-1
		if err := w.replaySegment(num, last, &epoch); err != nil {
			return err
		}
	}
	w.epoch = epoch + 1
	return nil
}

// replaySegment replays segment num; epoch carries the last record's epoch
// from segment to segment. It sets head, off and nextLSN.
func (w *WAL) replaySegment(num uint64, last bool, epoch *uint32) error {
	path := filepath.Join(w.cfg.Dir, segName(num))
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("raftstore: wal: %w", err)
	}
	h, err := decodeSegHeader(data)
	if err == nil && h.num != num {
		err = fmt.Errorf("%w: segment %s says number %d", ErrCorrupt, segName(num), h.num)
	}
	if err == nil && w.head != nil && h.firstLSN != w.nextLSN {
		err = fmt.Errorf("%w: segment %s starts at LSN %d, the one before ends at %d", ErrCorrupt, segName(num), h.firstLSN, w.nextLSN-1)
	}
	if err != nil {
		if !last {
			return fmt.Errorf("raftstore: wal: %w", err)
		}
		// A segment's header is made durable with its first record, so a
		// last segment without one never held an acknowledged write.
		w.log.Warn("dropping the last wal segment: no valid header", "segment", segName(num), "err", err)
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("raftstore: wal: %w", err)
		}
		return nil
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return fmt.Errorf("raftstore: wal: %w", err)
	}
	seg := &segment{num: num, f: f, size: int64(len(data))}
	w.segs = append(w.segs, seg)
	off, lsn, err := w.replayRecords(seg, data, h.firstLSN, epoch)
	if err != nil {
		return err
	}
	w.head, w.off, w.nextLSN = seg, off, lsn
	w.written, w.synced = lsn-1, lsn-1
	return nil
}

// replayRecords applies the records in seg's data, which starts with
// LSN firstLSN, and returns where they end and the next LSN.
func (w *WAL) replayRecords(seg *segment, data []byte, firstLSN uint64, epoch *uint32) (end int64, next uint64, err error) {
	off, lsn := int64(segHeaderSize), firstLSN
	for off < int64(len(data)) {
		r, size, ok := decodeRecord(data[off:], maxPayload(seg.size))
		if !ok || r.lsn != lsn || r.epoch < *epoch {
			break
		}
		if err := w.apply(seg, off, r); err != nil {
			return 0, 0, fmt.Errorf("raftstore: wal: segment %s offset %d: %w", segName(seg.num), off, err)
		}
		*epoch = r.epoch
		off += int64(size)
		lsn++
	}
	return off, lsn, nil
}

// begin starts writing: a first segment for a new WAL, then a record of
// the new epoch, made durable before anything else is written.
func (w *WAL) begin() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.head == nil {
		if w.nextLSN == 0 {
			w.nextLSN = 1
		}
		num := uint64(1)
		if n := len(w.segs); n > 0 {
			num = w.segs[n-1].num + 1
		}
		if err := w.addSegmentLocked(num); err != nil {
			return err
		}
	}
	rec := newRecord(0)
	if _, err := w.appendLocked(rec, recOpen, nil); err != nil {
		return err
	}
	return w.syncLocked()
}

// addSegmentLocked makes a preallocated file segment num, starting at
// nextLSN, and the head. Its failures (a full disk, say) are not sticky:
// nothing was written to the new segment, the head stays where it was and
// the next write tries again.
func (w *WAL) addSegmentLocked(num uint64) error {
	if err := w.newSegmentLocked(num); err != nil {
		w.log.Warn("cannot start a new wal segment", "segment", segName(num), "err", err)
		return fmt.Errorf("raftstore: wal: new segment %s: %w", segName(num), err)
	}
	return nil
}

func (w *WAL) newSegmentLocked(num uint64) error {
	var err error
	if w.prepping {
		err = <-w.prepped
		w.prepping = false
	} else {
		err = w.prealloc()
	}
	if err != nil {
		return fmt.Errorf("preallocate: %w", err)
	}
	path := filepath.Join(w.cfg.Dir, segName(num))
	if err := os.Rename(filepath.Join(w.cfg.Dir, prepName), path); err != nil {
		return err
	}
	if err := w.dir.Sync(); err != nil {
		return err
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(appendSegHeader(nil, segHeader{num: num, firstLSN: w.nextLSN}), 0); err != nil {
		f.Close()
		return err
	}
	seg := &segment{num: num, f: f, size: w.cfg.SegmentSize}
	w.imu.Lock()
	w.segs = append(w.segs, seg)
	w.imu.Unlock()
	w.head, w.off = seg, segHeaderSize
	return nil
}

// prealloc writes a zero-filled segment file to prepName and syncs it.
func (w *WAL) prealloc() error {
	f, err := os.OpenFile(filepath.Join(w.cfg.Dir, prepName), os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	zeros := make([]byte, min(w.cfg.SegmentSize, 1<<20))
	for off := int64(0); off < w.cfg.SegmentSize; off += int64(len(zeros)) {
		if _, err := f.WriteAt(zeros[:min(int64(len(zeros)), w.cfg.SegmentSize-off)], off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// maxPayload is the largest record payload a segment of size bytes takes.
func maxPayload(size int64) int { return int(size) - segHeaderSize - recHeaderSize }

// maxPayload is the largest record payload a new segment takes.
func (w *WAL) maxPayload() int { return maxPayload(w.cfg.SegmentSize) }

// appendRecord writes rec (from newRecord, payload appended) as the next
// record and, in the same order as the writes, calls apply with the
// segment and offset it went to, under the index lock. It returns the
// record's LSN.
func (w *WAL) appendRecord(rec []byte, typ byte, apply func(*segment, int64)) (uint64, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.appendLocked(rec, typ, apply)
}

func (w *WAL) appendLocked(rec []byte, typ byte, apply func(*segment, int64)) (uint64, error) {
	if w.err != nil {
		return 0, w.err
	}
	if w.closed {
		return 0, ErrWALClosed
	}
	if len(rec)-recHeaderSize > w.maxPayload() {
		return 0, ErrTooLarge
	}
	if w.off+int64(len(rec)) > w.head.size {
		if err := w.rotateLocked(); err != nil {
			return 0, err
		}
	}
	lsn := w.nextLSN
	sealRecord(rec, lsn, w.epoch, typ)
	if _, err := w.head.f.WriteAt(rec, w.off); err != nil {
		return 0, w.failLocked(err)
	}
	w.nextLSN++
	w.written = lsn
	if apply != nil {
		w.imu.Lock()
		apply(w.head, w.off)
		w.imu.Unlock()
	}
	w.off += int64(len(rec))
	if !w.prepping && w.off > w.head.size/2 {
		w.prepping = true
		w.prepped = make(chan error, 1)
		go func(ch chan<- error) { ch <- w.prealloc() }(w.prepped)
	}
	return lsn, nil
}

// rotateLocked makes everything in the head durable and starts the next
// segment.
func (w *WAL) rotateLocked() error {
	if err := w.syncLocked(); err != nil {
		return err
	}
	if err := w.addSegmentLocked(w.head.num + 1); err != nil {
		return err
	}
	select {
	case w.gcKick <- struct{}{}:
	default:
	}
	return nil
}

func (w *WAL) failLocked(err error) error {
	if w.err == nil {
		w.err = fmt.Errorf("%w: %w", ErrWALFailed, err)
		w.log.Error("wal failed; the node must restart", "err", err)
	}
	w.cond.Broadcast()
	return w.err
}

// waitDurable returns once the record with LSN lsn, and all before it, are
// durable. Callers that arrive while an fdatasync runs share the next one.
func (w *WAL) waitDurable(lsn uint64) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.waits++
	for w.synced < lsn {
		switch {
		case w.err != nil:
			return w.err
		case w.closed:
			return ErrWALClosed
		case !w.syncing:
			w.syncing = true
			target, f := w.written, w.head.f
			waiting := w.waits - w.served
			w.served = w.waits
			w.mu.Unlock()
			start := time.Now()
			err := w.datasync(f)
			w.m.fsync.Observe(time.Since(start).Seconds())
			w.m.batch.Observe(float64(waiting))
			w.mu.Lock()
			w.syncing = false
			w.fsyncs++
			if err != nil {
				w.failLocked(err)
			} else {
				w.synced = max(w.synced, target)
			}
			w.cond.Broadcast()
		default:
			w.cond.Wait()
		}
	}
	return nil
}

// syncLocked makes everything written so far durable, holding mu.
func (w *WAL) syncLocked() error {
	if w.synced == w.written {
		return nil
	}
	if err := w.datasync(w.head.f); err != nil {
		return w.failLocked(err)
	}
	w.fsyncs++
	w.synced = w.written
	w.cond.Broadcast()
	return nil
}

// Sync returns once every write made before it is durable.
func (w *WAL) Sync() error {
	w.mu.Lock()
	lsn := w.written
	w.mu.Unlock()
	return w.waitDurable(lsn)
}

func fdatasync(f *os.File) error {
	for {
		err := unix.Fdatasync(int(f.Fd()))
		if err != unix.EINTR {
			return err
		}
	}
}

// Close syncs and closes the WAL. Writes and waits still running return
// ErrWALClosed. Idempotent.
func (w *WAL) Close() error {
	w.mu.Lock()
	if w.closed {
		w.mu.Unlock()
		return nil
	}
	w.closed = true
	close(w.stop)
	for w.syncing {
		w.cond.Wait()
	}
	var err error
	if w.err == nil && w.head != nil {
		if e := w.datasync(w.head.f); e != nil {
			err = fmt.Errorf("raftstore: wal close: %w", e)
		}
	}
	w.cond.Broadcast()
	prepping, prepped := w.prepping, w.prepped
	w.prepping = false
	w.mu.Unlock()
	w.wg.Wait()
	if prepping {
		<-prepped
	}
	w.m.unregister()
	_ = os.Remove(filepath.Join(w.cfg.Dir, prepName))
	w.closeFiles()
	return err
}

func (w *WAL) closeFiles() {
	w.imu.Lock()
	defer w.imu.Unlock()
	for _, s := range w.segs {
		s.f.Close()
	}
	w.segs = nil
	if w.dir != nil {
		w.dir.Close()
		w.dir = nil
	}
}

// segLocked returns segment num; imu held.
func (w *WAL) segLocked(num uint64) *segment {
	if len(w.segs) == 0 || num < w.segs[0].num || num-w.segs[0].num >= uint64(len(w.segs)) {
		return nil
	}
	return w.segs[num-w.segs[0].num]
}

// readLocked reads the n bytes at loc; imu held (read or write).
func (w *WAL) readLocked(loc walLoc) ([]byte, error) {
	s := w.segLocked(loc.seg)
	if s == nil {
		if w.segs == nil {
			return nil, ErrWALClosed
		}
		return nil, fmt.Errorf("%w: segment %d is gone", ErrCorrupt, loc.seg)
	}
	b := make([]byte, loc.n)
	if _, err := s.f.ReadAt(b, int64(loc.off)); err != nil {
		return nil, fmt.Errorf("raftstore: wal read: %w", err)
	}
	return b, nil
}

func (w *WAL) addLive(loc walLoc) {
	if s := w.segLocked(loc.seg); s != nil {
		s.live += int64(loc.n)
	}
}

func (w *WAL) dropLive(loc walLoc) {
	if s := w.segLocked(loc.seg); s != nil {
		s.live -= int64(loc.n)
	}
}

func (w *WAL) groupLocked(name string) *walGroup {
	g := w.groups[name]
	if g == nil {
		g = newWALGroup(name)
		w.groups[name] = g
	}
	return g
}

// apply replays record r found at off in seg into the groups' state.
func (w *WAL) apply(seg *segment, off int64, r record) error {
	switch r.typ {
	case recOpen:
		if len(r.payload) != 0 {
			return fmt.Errorf("%w: open record with a payload", ErrCorrupt)
		}
	case recEntries:
		group, ents, err := decodeEntries(r.payload)
		if err != nil {
			return err
		}
		w.applyEntries(group, seg, off, ents)
	case recDelete:
		group, lo, hi, err := decodeDelete(r.payload)
		if err != nil {
			return err
		}
		w.applyDelete(group, lo, hi)
	case recStable:
		group, key, val, err := decodeStable(r.payload)
		if err != nil {
			return err
		}
		w.applyStable(group, key, val, walLoc{seg: seg.num, off: uint32(off), n: uint32(recHeaderSize + len(r.payload))})
	default:
		return fmt.Errorf("%w: record type %d", ErrCorrupt, r.typ)
	}
	return nil
}

func (w *WAL) applyEntries(group string, seg *segment, off int64, ents []walEntry) {
	g := w.groupLocked(group)
	for _, e := range ents {
		loc := walLoc{seg: seg.num, off: uint32(off + recHeaderSize + int64(e.off)), n: uint32(e.len)}
		if old, ok := g.put(e.index, loc); ok {
			w.dropLive(old)
		}
		w.addLive(loc)
	}
}

func (w *WAL) applyDelete(group string, lo, hi uint64) {
	w.groupLocked(group).deleteRange(lo, hi, w.dropLive)
}

func (w *WAL) applyStable(group string, key, val []byte, loc walLoc) {
	g := w.groupLocked(group)
	if old, ok := g.stable[string(key)]; ok {
		w.dropLive(old.loc)
	}
	g.stable[string(key)] = walStable{val: slices.Clone(val), loc: loc}
	w.addLive(loc)
}

// walStats is what tests and benchmarks read about a WAL.
type walStats struct {
	segments      int
	live          int64
	fsyncs, waits uint64
}

func (w *WAL) stats() walStats {
	w.mu.Lock()
	st := walStats{fsyncs: w.fsyncs, waits: w.waits}
	w.mu.Unlock()
	w.imu.RLock()
	defer w.imu.RUnlock()
	st.segments = len(w.segs)
	for _, s := range w.segs {
		st.live += s.live
	}
	return st
}
