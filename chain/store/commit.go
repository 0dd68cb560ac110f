package store

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/internal/failpoint"
)

// Failpoints around the write of a block (internal/failpoint).
const (
	FailBeforeCommit = "store/before-commit"
	FailAfterCommit  = "store/after-commit"
)

// Commit stores a committed block, the one after Height, in one synced
// goleveldb batch: the block, its certificate and outcomes, its
// transactions in the index, the state changes since the last Commit
// (c.State diffed against the state it kept from then), the epoch change
// if the block ends its epoch, and the new head.
// A crash leaves the store at a block boundary.
//
// A block that does not extend the stored chain, or whose certificate,
// outcomes or state do not match its header, is refused and changes
// nothing. Any other failure (goleveldb's, a full disk) is sticky: every
// later Commit fails with it, and the node must stop and reopen the
// store.
func (s *Store) Commit(c pbft.Committed) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	s.commitMu.Lock()
	defer s.commitMu.Unlock()
	if s.failed != nil {
		return fmt.Errorf("store: an earlier commit failed, reopen the store: %w", s.failed)
	}
	nb, err := s.check(&c)
	if err != nil {
		return err
	}
	h := nb.header.Height
	batch, err := s.batch(&c, nb)
	if err != nil {
		s.failed = err
		return fmt.Errorf("store: block %d: %w", h, err)
	}
	failpoint.Hit(FailBeforeCommit)
	if err := s.db.Write(batch, &opt.WriteOptions{Sync: true}); err != nil {
		s.failed = err
		s.log.Error("chain store write failed", "height", h, "err", err)
		return fmt.Errorf("store: write block %d: %w", h, err)
	}
	failpoint.Hit(FailAfterCommit)
	s.headMu.Lock()
	defer s.headMu.Unlock()
	s.head = head{height: h, time: nb.header.Time, block: nb.cid}
	s.header, s.cert = nb.header, c.Cert
	s.state = nb.state
	if nb.epoch != nil {
		s.epochs = append(s.epochs, *nb.epoch)
		s.prevVals, s.vals = s.vals, nb.vals
	}
	s.height.Store(h)
	return nil
}

// nextBlock is a block Commit checked.
type nextBlock struct {
	header chain.Header
	cid    cid.Cid
	state  *chain.MemState
	// vals is the validator set the block puts in force and epoch the
	// change, when it ends an epoch.
	vals  chain.ValidatorSet
	epoch *chain.EpochChange
}

// check refuses a block that does not extend the stored chain or does
// not hold together.
func (s *Store) check(c *pbft.Committed) (*nextBlock, error) {
	if c.Block == nil || c.Cert == nil || c.State == nil {
		return nil, errors.New("store: a committed block needs its certificate and state")
	}
	hd := &c.Block.Header
	want := s.head.height + 1
	if hd.Height != want {
		return nil, fmt.Errorf("store: block %d, the next is %d", hd.Height, want)
	}
	if !hd.Prev.Equals(s.head.block) {
		return nil, fmt.Errorf("store: block %d does not follow block %d (%s)", want, s.head.height, s.head.block)
	}
	st, ok := c.State.(*chain.MemState)
	if !ok {
		return nil, fmt.Errorf("store: block %d: state of type %T, want *chain.MemState", want, c.State)
	}
	if root := st.Root(); !bytes.Equal(root[:], hd.StateRoot) {
		return nil, fmt.Errorf("store: block %d: the state given is not the header's", want)
	}
	bcid, err := c.Block.CID()
	if err != nil {
		return nil, fmt.Errorf("store: block %d: %w", want, err)
	}
	if c.Cert.Height != want || !c.Cert.Block.Equals(bcid) {
		return nil, fmt.Errorf("store: block %d: the certificate is for another block", want)
	}
	root, err := chain.ResultsRoot(c.Outcomes)
	if err != nil {
		return nil, fmt.Errorf("store: block %d: results root: %w", want, err)
	}
	if !bytes.Equal(root, hd.ResultsRoot) {
		return nil, fmt.Errorf("store: block %d: the outcomes given are not those of its results root", want)
	}
	if hd.Epoch != s.vals.Epoch {
		return nil, fmt.Errorf("store: block %d of epoch %d, the store is in epoch %d", want, hd.Epoch, s.vals.Epoch)
	}
	nb := &nextBlock{header: *hd, cid: bcid, state: st.Clone().(*chain.MemState)}
	if !bytes.Equal(hd.NextValidators, s.vals.Hash()) {
		// The block ends its epoch and names the next set.
		m, err := chain.NewMachine(s.genesis, nb.state)
		if err != nil {
			return nil, err
		}
		if nb.vals, err = m.Validators(); err != nil {
			return nil, err
		}
		if !bytes.Equal(nb.vals.Hash(), hd.NextValidators) || nb.vals.Epoch != s.vals.Epoch+1 {
			return nil, fmt.Errorf("store: block %d: its next validator set is not the state's epoch %d set", want, s.vals.Epoch+1)
		}
		nb.epoch = &chain.EpochChange{Header: *hd, Cert: *c.Cert, Validators: nb.vals.IDs()}
	}
	return nb, nil
}

// batch is the write of one block.
func (s *Store) batch(c *pbft.Committed, nb *nextBlock) (*leveldb.Batch, error) {
	h := nb.header.Height
	blk, err := chain.Marshal(c.Block)
	if err != nil {
		return nil, fmt.Errorf("encode block: %w", err)
	}
	cert, err := chain.Marshal(c.Cert)
	if err != nil {
		return nil, fmt.Errorf("encode certificate: %w", err)
	}
	outcomes, err := encodeOutcomes(c.Outcomes)
	if err != nil {
		return nil, fmt.Errorf("encode outcomes: %w", err)
	}
	b := &s.wb // Commit holds commitMu
	b.Reset()
	b.Put(heightKey(prefixBlock, h), blk)
	b.Put(heightKey(prefixCert, h), cert)
	b.Put(heightKey(prefixOutcomes, h), outcomes)
	for i := range c.Block.Txs {
		id, err := c.Block.Txs[i].ID()
		if err != nil {
			return nil, fmt.Errorf("tx %d: %w", i, err)
		}
		b.Put(txKey(id), encodePlace(h, i))
	}
	set, deleted := nb.state.Diff(s.state)
	for k, v := range set {
		b.Put(stateKey(k), v)
	}
	for _, k := range deleted {
		b.Delete(stateKey(k))
	}
	b.Put(keyHead, encodeHead(head{height: h, time: nb.header.Time, block: nb.cid}))
	if nb.epoch != nil {
		ec, err := encodeEpochChange(nb.epoch)
		if err != nil {
			return nil, fmt.Errorf("encode epoch change: %w", err)
		}
		b.Put(epochKey(nb.header.Epoch), ec)
	}
	return b, nil
}
