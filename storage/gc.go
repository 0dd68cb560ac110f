package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
)

// GCStats reports what a collection did.
type GCStats struct {
	// BlocksRemoved and BytesRemoved count the blocks dropped from the
	// index (their data bytes).
	BlocksRemoved int
	BytesRemoved  int64
	// PacksPunched had the ranges of dead blocks freed in place;
	// PacksRewritten had their live blocks copied to another pack (where
	// holes cannot be punched); PacksRemoved held nothing live. DiskFreed
	// is the disk space given back.
	PacksPunched   int
	PacksRewritten int
	PacksRemoved   int
	DiskFreed      int64
}

// compactThreshold: a pack is rewritten once more than 1/compactThreshold
// of it is dead, which keeps the packs within ~3% of the live data.
const compactThreshold = 32

// sweepBatch is how many deletions GC makes under the lease lock at once.
const sweepBatch = 256

// GC removes every block that no pin reaches and no lease holds, then gives
// the disk space back (see compact).
//
// It never stops the store: readers and writers go on throughout. Writers
// hold leases (see Lease), so a block an add is relying on is kept even if
// the add's pin lands after GC's mark phase. Pins of DAGs that are
// incomplete or in a codec the store cannot read stop the collection
// before anything is deleted: GC never guesses what a pin keeps.
// A crash at any point leaves a consistent store: deletions are index
// writes, holes are punched only where the index no longer points, and a
// rewritten pack's blocks are re-indexed in one atomic batch before the old
// pack file is removed.
func (s *Store) GC(ctx context.Context) (GCStats, error) {
	s.gcMu.Lock()
	defer s.gcMu.Unlock()
	if err := s.enterWrite(); err != nil {
		return GCStats{}, err
	}
	defer s.exit()

	t := s.leases
	t.mu.Lock()
	t.gcKeep = make(map[uint64]struct{})
	t.mu.Unlock()
	defer func() {
		t.mu.Lock()
		t.gcKeep = nil
		t.mu.Unlock()
	}()

	var st GCStats
	live, err := s.mark(ctx)
	if err != nil {
		return st, err
	}
	if err := s.sweep(ctx, live, &st); err != nil {
		return st, err
	}
	if err := s.compact(ctx, &st); err != nil {
		return st, err
	}
	s.log.Info("gc done", "blocks_removed", st.BlocksRemoved, "bytes_removed", st.BytesRemoved,
		"packs_punched", st.PacksPunched, "packs_rewritten", st.PacksRewritten, "packs_removed", st.PacksRemoved, "disk_freed", st.DiskFreed)
	return st, nil
}

// mark returns the multihashes of every block reachable from a pin.
func (s *Store) mark(ctx context.Context) (map[string]struct{}, error) {
	roots, err := s.pins()
	if err != nil {
		return nil, err
	}
	live := make(map[string]struct{})
	for _, root := range roots {
		err := walk(ctx, root, live, func(c cid.Cid) ([]cid.Cid, error) {
			if c.Type() == cid.Raw {
				return nil, nil
			}
			data, err := s.read(c.Hash())
			if err == nil {
				err = VerifyBlock(c, data)
			}
			if errors.Is(err, ErrNotFound) {
				return nil, fmt.Errorf("gc: pinned %w; nothing was deleted (run repo verify)", &IncompleteError{Root: root, Missing: c})
			}
			if err != nil {
				return nil, fmt.Errorf("gc: pinned DAG %s: %w; nothing was deleted (run repo verify)", root, err)
			}
			links, err := Links(c, data)
			if err != nil {
				return nil, fmt.Errorf("gc: pinned DAG %s: %w; nothing was deleted", root, err)
			}
			return links, nil
		})
		if err != nil {
			return nil, err
		}
	}
	return live, nil
}

// sweep deletes unmarked, unleased blocks in small batches, each under the
// lease lock so that it cannot interleave with a writer's hold-and-check.
func (s *Store) sweep(ctx context.Context, live map[string]struct{}, st *GCStats) error {
	type candidate struct {
		key    string
		length int64
	}
	var batch []candidate
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		t := s.leases
		t.mu.Lock()
		defer t.mu.Unlock()
		b := new(leveldb.Batch)
		n, bytes := 0, int64(0)
		for _, c := range batch {
			if t.heldLocked(c.key) {
				continue
			}
			b.Delete(blockKey([]byte(c.key)))
			n++
			bytes += c.length
		}
		batch = batch[:0]
		if n == 0 {
			return nil
		}
		// Not synced: a lost deletion only leaves garbage behind, and any
		// later synced write makes it durable anyway.
		if err := s.writeIndex(b, false); err != nil {
			return fmt.Errorf("gc: delete blocks: %w", err)
		}
		st.BlocksRemoved += n
		st.BytesRemoved += bytes
		return nil
	}
	err := s.iterateBlocks(ctx, func(hash []byte, loc location) error {
		if _, ok := live[string(hash)]; ok {
			return nil
		}
		batch = append(batch, candidate{key: string(hash), length: loc.length})
		if len(batch) >= sweepBatch {
			return flush()
		}
		return nil
	})
	if err != nil {
		return err
	}
	if err := flush(); err != nil {
		return err
	}
	// Make every deletion durable before any of their bytes are punched
	// out or their packs deleted: a synced write syncs the journal, and
	// with it the unsynced deletions before it. (An empty batch would not
	// do: goleveldb skips it.)
	b := new(leveldb.Batch)
	b.Put([]byte(keyLastGC), binary.AppendVarint(nil, time.Now().UnixNano()))
	if err := s.writeIndex(b, true); err != nil {
		return fmt.Errorf("gc: sync deletions: %w", err)
	}
	return nil
}

// packEntry is a live block found in a pack.
type packEntry struct {
	key string
	loc location
}

// compact gives back the disk space of deleted blocks: a pack with nothing
// live is deleted; a pack more than 1/compactThreshold dead has the dead
// ranges between its live records punched out in place (WiscKey's value
// log GC: nothing is copied and no free space is needed, so it works on a
// full disk), or, where the file system cannot punch holes, its live
// blocks copied into another pack.
func (s *Store) compact(ctx context.Context, st *GCStats) error {
	sizes := s.packs.snapshot()
	liveBytes := make(map[uint32]int64, len(sizes))
	err := s.iterateBlocks(ctx, func(hash []byte, loc location) error {
		liveBytes[loc.pack] += recordSize(string(hash), int(loc.length))
		return nil
	})
	if err != nil {
		return err
	}
	var targets []uint32
	for id, size := range sizes {
		if size == 0 {
			continue
		}
		used := size
		if p := s.packs.acquire(id); p != nil {
			if a, err := allocated(p.f); err == nil && a < used {
				used = a
			}
			s.packs.release(p)
		}
		dead := used - liveBytes[id]
		if liveBytes[id] == 0 || dead*compactThreshold > size {
			targets = append(targets, id)
		}
	}
	if len(targets) == 0 {
		return nil
	}
	// Dead packs first (deleting them needs no space), then the ones with
	// the least live data.
	sort.Slice(targets, func(i, j int) bool {
		a, b := liveBytes[targets[i]], liveBytes[targets[j]]
		return a < b || a == b && targets[i] < targets[j]
	})
	// Claim the targets before listing their blocks: a claimed pack takes
	// no more appends, so the listing is complete.
	claimed := make(map[uint32]*pack, len(targets))
	for _, id := range targets {
		if p := s.packs.claim(id); p != nil {
			claimed[id] = p
		}
	}
	defer func() {
		for _, p := range claimed {
			s.packs.giveBack(p)
		}
	}()
	entries := make(map[uint32][]packEntry)
	err = s.iterateBlocks(ctx, func(hash []byte, loc location) error {
		if claimed[loc.pack] != nil {
			entries[loc.pack] = append(entries[loc.pack], packEntry{key: string(hash), loc: loc})
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range targets {
		p := claimed[id]
		if p == nil {
			continue // a writer holds it; next time
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		live := entries[id]
		if len(live) > 0 && !s.opts.noPunch {
			err := s.punchPack(p, live, st)
			if err == nil {
				continue
			}
			if !errors.Is(err, errPunchUnsupported) {
				return err
			}
		}
		retired, err := s.rewritePack(ctx, p, live, st)
		if err != nil {
			return err
		}
		if retired {
			delete(claimed, id)
		}
	}
	return nil
}

// punchPack frees the bytes between a pack's live records. A reader that
// looked a deleted block up just before GC removed it may read zeros; Get
// then finds the block gone from the index and says so (see getVerified).
func (s *Store) punchPack(p *pack, live []packEntry, st *GCStats) error {
	before, err := allocated(p.f)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	sort.Slice(live, func(i, j int) bool { return live[i].loc.offset < live[j].loc.offset })
	var prev int64
	for _, e := range live {
		start := e.loc.offset - recordHeaderSize - int64(len(e.key))
		if start > prev {
			if err := punchHole(p.f, prev, start-prev); err != nil {
				return err
			}
		}
		prev = e.loc.offset + e.loc.length
	}
	if p.committed > prev {
		if err := punchHole(p.f, prev, p.committed-prev); err != nil {
			return err
		}
	}
	if err := p.f.Sync(); err != nil {
		return fmt.Errorf("gc: sync pack %s: %w", p.name, err)
	}
	after, err := allocated(p.f)
	if err != nil {
		return fmt.Errorf("gc: %w", err)
	}
	st.PacksPunched++
	st.DiskFreed += before - after
	return nil
}

// rewritePack copies a pack's live blocks into other packs, re-points
// their index entries (only those still pointing into this pack) and the
// pack's registration in one synced batch, then deletes the file.
func (s *Store) rewritePack(ctx context.Context, p *pack, live []packEntry, st *GCStats) (retired bool, err error) {
	size := p.committed
	w := &Writer{s: s, lease: s.leases.newLease(), pendingKeys: make(map[string]struct{})}
	defer w.Close()
	var copied int64
	for _, e := range live {
		if err := ctx.Err(); err != nil {
			return false, err
		}
		data := make([]byte, e.loc.length)
		if err := readAt(p.f, data, e.loc.offset); err != nil {
			return false, fmt.Errorf("gc: read pack %s: %w", p.name, err)
		}
		if ok, err := hashMatches([]byte(e.key), data); err != nil || !ok {
			// Copying would launder the corruption into a fresh pack; leave
			// the pack alone for repo verify to report.
			s.log.Error("corrupt block: pack not compacted", "cid", HashCid([]byte(e.key)), "file", p.name)
			return false, nil
		}
		if err := w.append(e.key, data); err != nil {
			return false, fmt.Errorf("gc: rewrite pack %s: %w", p.name, err)
		}
		copied += recordSize(e.key, len(data))
	}
	if err := w.syncPacks(); err != nil {
		return false, fmt.Errorf("gc: rewrite pack %s: %w", p.name, err)
	}
	// Re-point entries under the lease lock, which Delete and the sweep
	// also take, so a block deleted meanwhile is not brought back.
	t := s.leases
	t.mu.Lock()
	b := new(leveldb.Batch)
	for i, e := range live {
		cur, err := s.lookup([]byte(e.key))
		if err != nil && !errors.Is(err, ErrNotFound) {
			t.mu.Unlock()
			return false, err
		}
		if err == nil && cur == e.loc {
			b.Put(blockKey([]byte(e.key)), w.pending[i].loc.encode())
		}
	}
	for _, q := range w.toSync {
		b.Put(packKey(q.id), binary.AppendUvarint(nil, uint64(q.end)))
	}
	b.Delete(packKey(p.id))
	err = s.writeIndex(b, true)
	t.mu.Unlock()
	if err != nil {
		w.indexWriteFailed()
		return false, fmt.Errorf("gc: re-index pack %s: %w", p.name, err)
	}
	w.markCommitted()
	if err := s.packs.retire(p); err != nil {
		return true, fmt.Errorf("gc: %w", err)
	}
	if len(live) == 0 {
		st.PacksRemoved++
	} else {
		st.PacksRewritten++
	}
	st.DiskFreed += size - copied
	return true, nil
}
