package storage

import (
	"context"
	"errors"
	"fmt"
	"path"
	"runtime"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"golang.org/x/sync/errgroup"
)

// ProblemKind says what is wrong with a block.
type ProblemKind string

// Kinds of problems Verify reports.
const (
	// ProblemCorrupt: the stored bytes do not hash to the block's CID.
	ProblemCorrupt ProblemKind = "corrupt"
	// ProblemUnreadable: the index names bytes the pack does not have.
	ProblemUnreadable ProblemKind = "unreadable"
	// ProblemMissing: a pinned DAG links to a block that is not stored.
	ProblemMissing ProblemKind = "missing"
	// ProblemMalformed: a pinned DAG holds a node whose links cannot be read.
	ProblemMalformed ProblemKind = "malformed"
)

// Problem is one finding of Verify.
type Problem struct {
	Kind ProblemKind
	// Cid names the block (for corrupt and unreadable blocks, found by
	// multihash, the raw-codec CID of that multihash).
	Cid cid.Cid
	// Root is the pinned DAG a missing or malformed block belongs to.
	Root   cid.Cid
	Detail string
}

func (p Problem) String() string {
	s := fmt.Sprintf("%s %s", p.Kind, p.Cid)
	if p.Root.Defined() {
		s += " (in pinned DAG " + p.Root.String() + ")"
	}
	if p.Detail != "" {
		s += ": " + p.Detail
	}
	return s
}

// VerifyStats summarises a Verify run.
type VerifyStats struct {
	Blocks   int
	Bytes    int64
	Pins     int
	Problems int
}

// Verify re-hashes every stored block and walks every pinned DAG, calling
// report for each corrupt, unreadable, missing or malformed block. It
// changes nothing. The error is for failures to run, not for findings.
func (s *Store) Verify(ctx context.Context, report func(Problem)) (VerifyStats, error) {
	if err := s.enter(); err != nil {
		return VerifyStats{}, err
	}
	defer s.exit()
	return s.verify(ctx, report)
}

// Repair runs Verify and then drops the index entries of the corrupt and
// unreadable blocks it found, so that adding or fetching their data again
// stores them afresh (a Writer skips blocks the index already has). The
// bad bytes stay in their pack until GC frees them. It returns how many
// entries it dropped; the DAGs those blocks belonged to are incomplete
// until the data comes back, and a later Verify lists them as missing.
func (s *Store) Repair(ctx context.Context, report func(Problem)) (VerifyStats, int, error) {
	if err := s.enterWrite(); err != nil {
		return VerifyStats{}, 0, err
	}
	defer s.exit()
	var bad []cid.Cid
	st, err := s.verify(ctx, func(p Problem) {
		if p.Kind == ProblemCorrupt || p.Kind == ProblemUnreadable {
			bad = append(bad, p.Cid)
		}
		if report != nil {
			report(p)
		}
	})
	if err != nil || len(bad) == 0 {
		return st, 0, err
	}
	t := s.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	b := new(leveldb.Batch)
	dropped := 0
	for _, c := range bad {
		if t.heldLocked(string(c.Hash())) {
			continue // an add in flight relies on it; the next repair gets it
		}
		b.Delete(blockKey(c.Hash()))
		dropped++
	}
	if err := s.writeIndex(b, true); err != nil {
		return st, 0, fmt.Errorf("repair: %w", err)
	}
	return st, dropped, nil
}

func (s *Store) verify(ctx context.Context, report func(Problem)) (VerifyStats, error) {
	var st VerifyStats
	var mu sync.Mutex
	add := func(p Problem) {
		mu.Lock()
		defer mu.Unlock()
		st.Problems++
		if report != nil {
			report(p)
		}
	}

	type job struct {
		hash []byte
		loc  location
	}
	jobs := make(chan job, 64)
	g, gctx := errgroup.WithContext(ctx)
	for range runtime.GOMAXPROCS(0) {
		g.Go(func() error {
			for j := range jobs {
				c := HashCid(j.hash)
				data, err := s.readLocation(j.loc, nil)
				if err != nil {
					if now, lerr := s.lookup(j.hash); lerr != nil || now != j.loc {
						continue // deleted or moved since the snapshot
					}
					add(Problem{Kind: ProblemUnreadable, Cid: c, Detail: err.Error()})
					continue
				}
				if ok, err := hashMatches(j.hash, data); err != nil || !ok {
					if now, lerr := s.lookup(j.hash); lerr != nil || now != j.loc {
						continue // deleted or moved since the snapshot
					}
					detail := "hash mismatch"
					if err != nil {
						detail = err.Error()
					}
					add(Problem{Kind: ProblemCorrupt, Cid: c, Detail: detail})
				}
			}
			return nil
		})
	}
	g.Go(func() error {
		defer close(jobs)
		return s.iterateBlocks(gctx, func(hash []byte, loc location) error {
			st.Blocks++
			st.Bytes += loc.length
			select {
			case jobs <- job{hash: append([]byte(nil), hash...), loc: loc}:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
	})
	if err := g.Wait(); err != nil {
		return st, fmt.Errorf("verify: %w", err)
	}

	roots, err := s.pins()
	if err != nil {
		return st, err
	}
	st.Pins = len(roots)
	for _, root := range roots {
		if err := s.verifyDAG(ctx, root, add); err != nil {
			return st, err
		}
	}
	return st, nil
}

// verifyDAG walks a pinned DAG reporting missing and unreadable nodes
// instead of stopping at the first.
func (s *Store) verifyDAG(ctx context.Context, root cid.Cid, add func(Problem)) error {
	return walk(ctx, root, nil, func(c cid.Cid) ([]cid.Cid, error) {
		if c.Type() == cid.Raw {
			ok, err := s.db.Has(blockKey(c.Hash()), nil)
			if err != nil {
				return nil, fmt.Errorf("verify: %w", err)
			}
			if !ok {
				add(Problem{Kind: ProblemMissing, Cid: c, Root: root})
			}
			return nil, nil
		}
		data, err := s.read(c.Hash())
		switch {
		case errors.Is(err, ErrNotFound):
			add(Problem{Kind: ProblemMissing, Cid: c, Root: root})
			return nil, nil
		case err != nil:
			return nil, nil // reported as unreadable by the block pass
		}
		if ok, _ := hashMatches(c.Hash(), data); !ok {
			return nil, nil // reported as corrupt by the block pass
		}
		links, err := Links(c, data)
		if err != nil {
			add(Problem{Kind: ProblemMalformed, Cid: c, Root: root, Detail: err.Error()})
			return nil, nil
		}
		return links, nil
	})
}

// Stat summarises the store.
type Stat struct {
	Blocks     int
	BlockBytes int64
	Pins       []cid.Cid
	Packs      int
	// DiskBytes is the disk space the pack files and the index take
	// (allocated blocks, as du counts them).
	DiskBytes int64
}

// Stat counts the blocks and their bytes, lists the pins and measures the
// store on disk.
func (s *Store) Stat(ctx context.Context) (Stat, error) {
	if err := s.enter(); err != nil {
		return Stat{}, err
	}
	defer s.exit()
	var st Stat
	err := s.iterateBlocks(ctx, func(_ []byte, loc location) error {
		st.Blocks++
		st.BlockBytes += loc.length
		return nil
	})
	if err != nil {
		return st, err
	}
	if st.Pins, err = s.pins(); err != nil {
		return st, err
	}
	for _, dir := range []string{s.packs.dir, path.Join(s.dir, "index")} {
		n, files, err := dirSize(s.fs, dir)
		if err != nil {
			return st, fmt.Errorf("stat %s: %w", dir, err)
		}
		st.DiskBytes += n
		if dir == s.packs.dir {
			st.Packs = files
		}
	}
	return st, nil
}

func dirSize(fsys FS, dir string) (int64, int, error) {
	names, err := fsys.ReadDir(dir)
	if err != nil {
		return 0, 0, err
	}
	var total int64
	for _, name := range names {
		f, err := fsys.OpenFile(path.Join(dir, name), 0, 0)
		if err != nil {
			if isNotExist(err) {
				continue // removed meanwhile
			}
			return 0, 0, err
		}
		n, err := allocated(f)
		f.Close()
		if err != nil {
			return 0, 0, err
		}
		total += n
	}
	return total, len(names), nil
}

// DAGCheck is what CheckDAG read.
type DAGCheck struct {
	Blocks int
	Bytes  int64
}

// CheckDAG reads every block of root's DAG and re-hashes it against its
// CID; the first missing, corrupt or malformed block is an error wrapping
// ErrNotFound, ErrCorrupt or the decoder's error.
func (s *Store) CheckDAG(ctx context.Context, root cid.Cid) (DAGCheck, error) {
	var st DAGCheck
	err := walk(ctx, root, nil, func(c cid.Cid) ([]cid.Cid, error) {
		data, err := s.read(c.Hash())
		if err != nil {
			return nil, fmt.Errorf("block %s of %s: %w", c, root, err)
		}
		if ok, err := hashMatches(c.Hash(), data); err != nil || !ok {
			return nil, fmt.Errorf("block %s of %s: %w", c, root, ErrCorrupt)
		}
		st.Blocks++
		st.Bytes += int64(len(data))
		links, err := Links(c, data)
		if err != nil {
			return nil, fmt.Errorf("block %s of %s: %w", c, root, err)
		}
		return links, nil
	})
	return st, err
}
