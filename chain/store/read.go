package store

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/chain"
	"auditnet/chain/pbft"
)

// Committed returns the block at height h with its certificate and
// outcomes (State is nil); ErrNotFound past Height.
func (s *Store) Committed(h uint64) (pbft.Committed, error) {
	if err := s.enter(); err != nil {
		return pbft.Committed{}, err
	}
	defer s.exit()
	if h == 0 || h > s.Height() {
		return pbft.Committed{}, fmt.Errorf("%w: block %d (height %d)", ErrNotFound, h, s.Height())
	}
	blk, cert, outcomes, err := s.read(h)
	if err != nil {
		return pbft.Committed{}, fmt.Errorf("store: %w", err)
	}
	return pbft.Committed{Block: blk, Cert: cert, Outcomes: outcomes}, nil
}

// Outcomes returns the outcomes of the block at height h, read without
// its block; ErrNotFound past Height.
func (s *Store) Outcomes(h uint64) ([]chain.Outcome, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	if h == 0 || h > s.Height() {
		return nil, fmt.Errorf("%w: block %d (height %d)", ErrNotFound, h, s.Height())
	}
	raw, err := s.get(heightKey(prefixOutcomes, h), "outcomes", h)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	outcomes, err := decodeOutcomes(raw)
	if err != nil {
		return nil, fmt.Errorf("store: block %d: %w", h, err)
	}
	return outcomes, nil
}

// RawCommitted returns the stored bytes of the block at height h and of
// its certificate, their canonical DAG-CBOR, to serve a peer's sync
// without decoding and encoding them again.
func (s *Store) RawCommitted(h uint64) (block, cert []byte, err error) {
	if err := s.enter(); err != nil {
		return nil, nil, err
	}
	defer s.exit()
	if h == 0 || h > s.Height() {
		return nil, nil, fmt.Errorf("%w: block %d (height %d)", ErrNotFound, h, s.Height())
	}
	if block, err = s.get(heightKey(prefixBlock, h), "block", h); err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	if cert, err = s.get(heightKey(prefixCert, h), "certificate", h); err != nil {
		return nil, nil, fmt.Errorf("store: %w", err)
	}
	return block, cert, nil
}

// read reads and decodes block h, its certificate and its outcomes.
func (s *Store) read(h uint64) (*chain.Block, *chain.CommitCert, []chain.Outcome, error) {
	raw, err := s.get(heightKey(prefixBlock, h), "block", h)
	if err != nil {
		return nil, nil, nil, err
	}
	blk, err := chain.DecodeBlock(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("block %d: %w", h, err)
	}
	if raw, err = s.get(heightKey(prefixCert, h), "certificate", h); err != nil {
		return nil, nil, nil, err
	}
	cert, err := chain.DecodeCommitCert(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("certificate %d: %w", h, err)
	}
	if raw, err = s.get(heightKey(prefixOutcomes, h), "outcomes", h); err != nil {
		return nil, nil, nil, err
	}
	outcomes, err := decodeOutcomes(raw)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("block %d: %w", h, err)
	}
	return blk, cert, outcomes, nil
}

// get reads one value of block h; a missing one is damage, not
// ErrNotFound, since every block up to Height is stored whole.
func (s *Store) get(key []byte, what string, h uint64) ([]byte, error) {
	v, err := s.db.Get(key, nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, fmt.Errorf("%s %d is missing", what, h)
	}
	if err != nil {
		return nil, fmt.Errorf("read %s %d: %w", what, h, err)
	}
	return v, nil
}

// Tx returns the height of the block holding transaction id and its
// index among the block's transactions; ErrNotFound if no stored block
// holds it.
func (s *Store) Tx(id cid.Cid) (height uint64, index int, err error) {
	if err := s.enter(); err != nil {
		return 0, 0, err
	}
	defer s.exit()
	v, err := s.db.Get(txKey(id), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return 0, 0, fmt.Errorf("%w: tx %s", ErrNotFound, id)
	}
	if err != nil {
		return 0, 0, fmt.Errorf("store: read tx %s: %w", id, err)
	}
	if height, index, err = decodePlace(v); err != nil {
		return 0, 0, fmt.Errorf("store: tx %s: %w", id, err)
	}
	return height, index, nil
}

// Snapshot returns the committed chain at Height for pbft.RestoreSnapshot:
// the last block's header and certificate, the state after it (loaded
// from disk by Open, or kept from the last Commit) and the previous
// epoch's validator set. At height 0 it is the zero Snapshot: the core
// starts from genesis.
func (s *Store) Snapshot() (pbft.Snapshot, error) {
	if err := s.enter(); err != nil {
		return pbft.Snapshot{}, err
	}
	defer s.exit()
	s.headMu.RLock()
	defer s.headMu.RUnlock()
	if s.head.height == 0 {
		return pbft.Snapshot{}, nil
	}
	return pbft.Snapshot{Header: s.header, Cert: s.cert, State: s.state.Clone(), PrevValidators: s.prevVals}, nil
}

// EpochChanges returns the validator-set changes from genesis to epoch
// e, in order (one per epoch before e), for receipts (chain.NewReceipt);
// ErrNotFound if the store has not reached epoch e. The changes share
// memory with the store's: callers must not modify them.
func (s *Store) EpochChanges(e uint64) ([]chain.EpochChange, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	s.headMu.RLock()
	defer s.headMu.RUnlock()
	if e > uint64(len(s.epochs)) {
		return nil, fmt.Errorf("%w: epoch %d (the store is in epoch %d)", ErrNotFound, e, len(s.epochs))
	}
	return append([]chain.EpochChange(nil), s.epochs[:e]...), nil
}

// DiskUsage returns the bytes of the store's files.
func (s *Store) DiskUsage() (int64, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	var n int64
	err := filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil // a file goleveldb removed meanwhile
			}
			return err
		}
		if d.IsDir() {
			return nil
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		n += info.Size()
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("store: disk usage of %s: %w", s.dir, err)
	}
	return n, nil
}

// StateRange calls fn with every stored state key that begins with prefix
// and its value, in key order, as of one stored height; fn must not keep
// them. An error from fn stops the walk and is returned.
func (s *Store) StateRange(prefix string, fn func(key, value []byte) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	it := s.db.NewIterator(util.BytesPrefix(stateKey(prefix)), nil)
	defer it.Release()
	for it.Next() {
		if err := fn(it.Key()[len(prefixState):], it.Value()); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("store: read state: %w", err)
	}
	return nil
}
