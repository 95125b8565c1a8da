package raftstore

import "sort"

// walLoc is where a value sits in the WAL: segment, byte offset, length.
type walLoc struct {
	seg uint64
	off uint32
	n   uint32
}

type walIndexed struct {
	index uint64
	loc   walLoc
}

// walGroup is one group's state in memory: its log entries' locations,
// sorted by index (raft can leave gaps after installing a snapshot), and
// its stable values.
type walGroup struct {
	name   string
	ents   []walIndexed
	stable map[string]walStable
}

type walStable struct {
	val []byte
	loc walLoc
}

func newWALGroup(name string) *walGroup {
	return &walGroup{name: name, stable: map[string]walStable{}}
}

func (g *walGroup) bounds() (first, last uint64) {
	if len(g.ents) == 0 {
		return 0, 0
	}
	return g.ents[0].index, g.ents[len(g.ents)-1].index
}

// search returns the position of the first entry with an index >= index.
func (g *walGroup) search(index uint64) int {
	if n := len(g.ents); n > 0 {
		// Fast path: no gaps between the first entry and index.
		if d := index - g.ents[0].index; index >= g.ents[0].index && d < uint64(n) && g.ents[d].index == index {
			return int(d)
		}
	}
	return sort.Search(len(g.ents), func(i int) bool { return g.ents[i].index >= index })
}

func (g *walGroup) get(index uint64) (walLoc, bool) {
	i := g.search(index)
	if i < len(g.ents) && g.ents[i].index == index {
		return g.ents[i].loc, true
	}
	return walLoc{}, false
}

// put records entry index at loc and returns the location it replaces.
func (g *walGroup) put(index uint64, loc walLoc) (old walLoc, replaced bool) {
	if n := len(g.ents); n == 0 || index > g.ents[n-1].index {
		g.ents = append(g.ents, walIndexed{index, loc})
		return walLoc{}, false
	}
	i := g.search(index)
	if i < len(g.ents) && g.ents[i].index == index {
		old = g.ents[i].loc
		g.ents[i].loc = loc
		return old, true
	}
	g.ents = append(g.ents, walIndexed{})
	copy(g.ents[i+1:], g.ents[i:])
	g.ents[i] = walIndexed{index, loc}
	return walLoc{}, false
}

// deleteRange removes the entries in [lo, hi] and calls gone for each.
func (g *walGroup) deleteRange(lo, hi uint64, gone func(walLoc)) {
	if lo > hi {
		return
	}
	i := g.search(lo)
	j := i
	for j < len(g.ents) && g.ents[j].index <= hi {
		gone(g.ents[j].loc)
		j++
	}
	switch {
	case i == j:
	case i == 0:
		g.ents = g.ents[j:]
		// Let a long-compacted head be collected.
		if cap(g.ents) > 1024 && len(g.ents) < cap(g.ents)/4 {
			g.ents = append([]walIndexed(nil), g.ents...)
		}
	case j == len(g.ents):
		g.ents = g.ents[:i]
	default:
		g.ents = append(g.ents[:i], g.ents[j:]...)
	}
}
