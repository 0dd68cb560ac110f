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

// PinOrigin says where a pinned DAG came from, which decides whether the
// node may serve and announce it.
type PinOrigin uint8

// Pin origins.
const (
	// PinLocal: added or imported on this node, which is its source.
	PinLocal PinOrigin = iota
	// PinFetched: fetched from another node; kept for this node's own use,
	// never announced or served to others.
	PinFetched
)

func (o PinOrigin) String() string {
	if o == PinFetched {
		return "fetched"
	}
	return "local"
}

type pinRecord struct {
	added  time.Time
	origin PinOrigin
}

func pinKey(root cid.Cid) []byte {
	return append([]byte(prefixPin), root.Bytes()...)
}

func encodePin(r pinRecord) []byte {
	t := r.added
	if t.IsZero() {
		t = time.Now()
	}
	b := binary.AppendVarint(nil, t.UnixNano())
	if r.origin != PinLocal {
		b = append(b, byte(r.origin))
	}
	return b
}

// decodePin reads a pin record; records written before origins existed
// hold only the time and are local.
func decodePin(b []byte) (pinRecord, error) {
	t, n := binary.Varint(b)
	if n <= 0 {
		return pinRecord{}, errors.New("storage: corrupt pin record")
	}
	r := pinRecord{added: time.Unix(0, t)}
	switch rest := b[n:]; {
	case len(rest) == 0:
	case len(rest) == 1 && PinOrigin(rest[0]) == PinFetched:
		r.origin = PinFetched
	default:
		return pinRecord{}, errors.New("storage: corrupt pin record")
	}
	return r, nil
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
// there; the pins are written together, or not at all. A new pin is
// local; a root already pinned keeps its origin. While it walks, it
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
		ok, err := s.db.Has(pinKey(root), nil)
		if err != nil {
			return fmt.Errorf("pin %s: %w", root, err)
		}
		if !ok {
			b.Put(pinKey(root), encodePin(pinRecord{}))
		}
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

// PinOrigin reports whether root is pinned and where its DAG came from.
func (s *Store) PinOrigin(ctx context.Context, root cid.Cid) (PinOrigin, bool, error) {
	if err := s.enter(); err != nil {
		return 0, false, err
	}
	defer s.exit()
	v, err := s.db.Get(pinKey(root), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("read pin %s: %w", root, err)
	}
	r, err := decodePin(v)
	if err != nil {
		return 0, false, fmt.Errorf("pin %s: %w", root, err)
	}
	return r.origin, true, nil
}

// PinsOf lists the roots pinned with the given origin.
func (s *Store) PinsOf(ctx context.Context, origin PinOrigin) ([]cid.Cid, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	return s.pinsWhere(func(r pinRecord) bool { return r.origin == origin })
}

// Pins lists the pinned roots.
func (s *Store) Pins(ctx context.Context) ([]cid.Cid, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	return s.pins()
}

func (s *Store) pins() ([]cid.Cid, error) { return s.pinsWhere(nil) }

// pinsWhere lists the pinned roots whose record keep accepts (all if keep
// is nil).
func (s *Store) pinsWhere(keep func(pinRecord) bool) ([]cid.Cid, error) {
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixPin)), nil)
	defer it.Release()
	var out []cid.Cid
	for it.Next() {
		if keep != nil {
			r, err := decodePin(it.Value())
			if err != nil {
				return nil, fmt.Errorf("pin %x: %w", it.Key(), err)
			}
			if !keep(r) {
				continue
			}
		}
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
