package storage

import (
	"hash/maphash"
	"sync"
)

// A Lease keeps blocks from garbage collection while an operation that will
// pin them (an add, a CAR import, a pin of an existing DAG) is under way.
// Every block such an operation writes, or finds already stored and relies
// on, is held from that moment; when the lease is released while a GC runs,
// the GC keeps its blocks too, since the pin it led to may postdate the GC's
// mark phase.
//
// Leases hold 64-bit hashes of multihashes, not the multihashes: a collision
// only keeps a garbage block one GC longer, and an import of a terabyte
// holds about 4 million hashes (tens of MiB), not its CIDs.
type Lease struct {
	t    *leaseTable
	keys map[uint64]struct{}
	done bool
}

// leaseTable is the set of live leases. Its mutex also orders the two
// sides of the GC race: a writer's "hold the key, then see if it is
// stored" and the collector's "see that no lease holds the key, then delete
// it" each happen under mu, so a block a writer relies on is never deleted
// under it.
type leaseTable struct {
	mu     sync.Mutex
	seed   maphash.Seed
	active map[*Lease]struct{}
	// gcKeep collects the keys of leases released while a GC runs; nil
	// when no GC runs.
	gcKeep map[uint64]struct{}
}

func newLeaseTable() *leaseTable {
	return &leaseTable{seed: maphash.MakeSeed(), active: make(map[*Lease]struct{})}
}

func (t *leaseTable) hash(key string) uint64 { return maphash.String(t.seed, key) }

func (t *leaseTable) newLease() *Lease {
	l := &Lease{t: t, keys: make(map[uint64]struct{})}
	t.mu.Lock()
	t.active[l] = struct{}{}
	t.mu.Unlock()
	return l
}

// holdLocked adds key to l; t.mu must be held.
func (l *Lease) holdLocked(key string) {
	l.keys[l.t.hash(key)] = struct{}{}
}

// Release ends the lease. It is safe to call more than once.
func (l *Lease) Release() {
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if l.done {
		return
	}
	l.done = true
	delete(t.active, l)
	if t.gcKeep != nil {
		for k := range l.keys {
			t.gcKeep[k] = struct{}{}
		}
	}
	l.keys = nil
}

// heldLocked reports whether a live lease, or one released during the
// running GC, holds key; t.mu must be held.
func (t *leaseTable) heldLocked(key string) bool {
	h := t.hash(key)
	if _, ok := t.gcKeep[h]; ok {
		return true
	}
	for l := range t.active {
		if _, ok := l.keys[h]; ok {
			return true
		}
	}
	return false
}
