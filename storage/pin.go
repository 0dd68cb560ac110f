package storage

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/storage/dagpb"
)

// Pins are recursive: a pinned root keeps its whole DAG.

// ErrNotPinned is returned by Unpin for a root that is not pinned.
var ErrNotPinned = errors.New("storage: not pinned")

// ErrUnsupportedCodec is returned for a block whose links the store cannot
// read, so it can neither pin nor keep a DAG through it.
var ErrUnsupportedCodec = errors.New("storage: unsupported codec")

// IncompleteError reports a DAG with a block missing.
type IncompleteError struct {
	Root, Missing cid.Cid
}

func (e *IncompleteError) Error() string {
	return fmt.Sprintf("DAG %s is incomplete: block %s is not stored", e.Root, e.Missing)
}

// Unwrap makes errors.Is(err, ErrNotFound) true.
func (e *IncompleteError) Unwrap() error { return ErrNotFound }

type pinRecord struct {
	added time.Time
}

func pinKey(root cid.Cid) []byte {
	return append([]byte(prefixPin), root.Bytes()...)
}

func encodePin(r pinRecord) []byte {
	t := r.added
	if t.IsZero() {
		t = time.Now()
	}
	return binary.AppendVarint(nil, t.UnixNano())
}

// Links returns the CIDs a block links to. Raw and identity blocks have
// none; dag-pb blocks are decoded; other codecs are ErrUnsupportedCodec.
func Links(c cid.Cid, data []byte) ([]cid.Cid, error) {
	switch c.Type() {
	case cid.Raw:
		return nil, nil
	case cid.DagProtobuf:
		n, err := dagpb.Decode(data)
		if err != nil {
			return nil, fmt.Errorf("decode %s: %w", c, err)
		}
		out := make([]cid.Cid, len(n.Links))
		for i, l := range n.Links {
			out[i] = l.Hash
		}
		return out, nil
	}
	return nil, fmt.Errorf("%w: %s has codec 0x%x", ErrUnsupportedCodec, c, c.Type())
}

// WalkDAG visits every distinct block of root's DAG once, depth first, in
// link order (the order of `ipfs dag export`), calling fn with each
// block's verified bytes. Leaves (raw CIDs) are read too. A missing block
// is an *IncompleteError.
func (s *Store) WalkDAG(ctx context.Context, root cid.Cid, fn func(c cid.Cid, data []byte) error) error {
	return walk(ctx, root, nil, func(c cid.Cid) ([]cid.Cid, error) {
		data, err := s.Get(ctx, c)
		if errors.Is(err, ErrNotFound) {
			return nil, &IncompleteError{Root: root, Missing: c}
		}
		if err != nil {
			return nil, err
		}
		links, err := Links(c, data)
		if err != nil {
			return nil, err
		}
		return links, fn(c, data)
	})
}

// Pin pins already stored DAGs after checking that every block of each is
// there; the pins are written together, or not at all. While it walks, it
// holds each block with a lease, so a GC running at the same time cannot
// take a DAG apart under it.
func (s *Store) Pin(ctx context.Context, roots ...cid.Cid) error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	lease := s.leases.newLease()
	defer lease.Release()
	for _, root := range roots {
		if err := s.walkHeld(ctx, lease, root); err != nil {
			return fmt.Errorf("pin %s: %w", root, err)
		}
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	b := new(leveldb.Batch)
	for _, root := range roots {
		b.Put(pinKey(root), encodePin(pinRecord{}))
	}
	if err := s.writeIndex(b, true); err != nil {
		return fmt.Errorf("write pins: %w", err)
	}
	return nil
}

// walkHeld walks root's DAG, holding every block with lease before
// checking that it is stored; raw leaves are checked by index only, dag-pb
// nodes are read and verified.
func (s *Store) walkHeld(ctx context.Context, lease *Lease, root cid.Cid) error {
	return walk(ctx, root, nil, func(c cid.Cid) ([]cid.Cid, error) {
		present, err := s.holdAndHas(lease, string(c.Hash()))
		if err != nil {
			return nil, err
		}
		if !present {
			return nil, &IncompleteError{Root: root, Missing: c}
		}
		if c.Type() == cid.Raw {
			return nil, nil
		}
		data, err := s.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		return Links(c, data)
	})
}

// Unpin removes a pin; the DAG's blocks go at the next GC unless another
// pin keeps them.
func (s *Store) Unpin(ctx context.Context, root cid.Cid) error {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	ok, err := s.db.Has(pinKey(root), nil)
	if err != nil {
		return fmt.Errorf("unpin %s: %w", root, err)
	}
	if !ok {
		return fmt.Errorf("unpin %s: %w", root, ErrNotPinned)
	}
	b := new(leveldb.Batch)
	b.Delete(pinKey(root))
	if err := s.writeIndex(b, true); err != nil {
		return fmt.Errorf("unpin %s: %w", root, err)
	}
	return nil
}

// IsPinned reports whether root is pinned.
func (s *Store) IsPinned(ctx context.Context, root cid.Cid) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	ok, err := s.db.Has(pinKey(root), nil)
	if err != nil && !errors.Is(err, leveldb.ErrNotFound) {
		return false, fmt.Errorf("read pin %s: %w", root, err)
	}
	return ok, nil
}

// Pins lists the pinned roots.
func (s *Store) Pins(ctx context.Context) ([]cid.Cid, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	return s.pins()
}

func (s *Store) pins() ([]cid.Cid, error) {
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixPin)), nil)
	defer it.Release()
	var out []cid.Cid
	for it.Next() {
		c, err := cid.Cast(it.Key()[len(prefixPin):])
		if err != nil {
			return nil, fmt.Errorf("corrupt pin %x: %w", it.Key(), err)
		}
		out = append(out, c)
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("list pins: %w", err)
	}
	return out, nil
}
