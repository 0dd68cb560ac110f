package pbft

import (
	"bytes"
	"errors"
	"fmt"

	"auditnet/chain"
)

// Snapshot is the committed chain at a height as a store keeps it: the
// last block's header and certificate, the state after it, and what the
// core remembers of the blocks before it. RestoreSnapshot resumes from it
// as Restore would after re-executing every block up to it.
type Snapshot struct {
	// Header is the header of the last committed block; zero at height 0.
	Header chain.Header
	// Cert is that block's commit certificate; nil at height 0.
	Cert *chain.CommitCert
	// State is the committed state after the block, whose root is
	// Header.StateRoot; nil at height 0 (the genesis state). The core
	// takes it over: the caller must not write to it afterwards.
	State chain.State
	// PrevValidators is the set of the epoch before the one in force
	// after the block (zero while that is epoch 0): the core checks
	// certificates and checkpoints of the previous epoch with it.
	PrevValidators chain.ValidatorSet
}

// Restore rebuilds the core of a node that stopped: it re-executes the
// committed blocks the node stored, then reads back the records it
// persisted, so that it resumes in the view it was in and never signs a
// second block for a slot it voted in. What it had signed for the open
// slot is sent again.
func Restore(cfg Config, now int64, blocks []Committed, wal []Record) (*Replica, error) {
	c, err := New(cfg, now)
	if err != nil {
		return nil, err
	}
	c.restoring = true
	for i, cb := range blocks {
		if cb.Block == nil || cb.Cert == nil {
			return nil, fmt.Errorf("pbft: restore: stored block %d is incomplete", i)
		}
		if err := c.applySynced(cb.Block, cb.Cert); err != nil {
			return nil, fmt.Errorf("pbft: restore: %w", err)
		}
	}
	c.restoring = false
	c.replay(wal)
	return c, nil
}

// RestoreSnapshot is Restore from the committed state at a height instead
// of every block since genesis: it resumes at snap (from genesis if
// snap.Header.Height is 0), then reads back the records the node
// persisted. It checks that the snapshot holds together: the state's root
// is the header's, the certificate is the header's and holds for its
// epoch, and the previous validator set is that of the epoch before.
func RestoreSnapshot(cfg Config, now int64, snap Snapshot, wal []Record) (*Replica, error) {
	c, err := New(cfg, now)
	if err != nil {
		return nil, err
	}
	if snap.Header.Height > 0 || snap.Cert != nil || snap.State != nil {
		if err := c.resume(&snap); err != nil {
			return nil, fmt.Errorf("pbft: restore snapshot at height %d: %w", snap.Header.Height, err)
		}
	}
	c.replay(wal)
	return c, nil
}

// resume makes a new core's committed chain that of a snapshot.
func (c *Replica) resume(snap *Snapshot) error {
	h := &snap.Header
	switch {
	case h.Height == 0 || snap.Cert == nil || snap.State == nil:
		return errors.New("a snapshot needs a height, a certificate and a state")
	case h.Chain != c.chainID:
		return fmt.Errorf("snapshot of chain %q", h.Chain)
	}
	if root := snap.State.Root(); !bytes.Equal(root[:], h.StateRoot) {
		return fmt.Errorf("state root %x is not the header's %x", root, h.StateRoot)
	}
	bcid, err := blockCID(&chain.Block{Header: *h})
	if err != nil {
		return err
	}
	m, err := c.newMachine(snap.State)
	if err != nil {
		return err
	}
	c.state, c.machine = snap.State, m
	c.height, c.last, c.lastTime, c.lastCert = h.Height, bcid, h.Time, snap.Cert
	c.vals = chain.ValidatorSet{}
	if err := c.loadEpoch(); err != nil {
		return err
	}
	if !bytes.Equal(c.vals.Hash(), h.NextValidators) {
		return errors.New("the state's validator set is not the header's next set")
	}
	prev := snap.PrevValidators
	switch {
	case c.vals.Epoch == 0 && len(prev.Members) > 0:
		return fmt.Errorf("a previous validator set (epoch %d) in epoch 0", prev.Epoch)
	case c.vals.Epoch > 0 && (prev.Epoch != c.vals.Epoch-1 || len(prev.Members) == 0):
		return fmt.Errorf("previous validator set of epoch %d (%d members) in epoch %d", prev.Epoch, len(prev.Members), c.vals.Epoch)
	}
	if len(prev.Members) > 0 {
		c.prevVals = prev
	}
	set := c.prevOrCurrent(h.Epoch)
	if set.Members == nil {
		return fmt.Errorf("block of epoch %d in epoch %d", h.Epoch, c.vals.Epoch)
	}
	if err := c.verifyCert(snap.Cert, h.Epoch, h.Height, bcid, set); err != nil {
		return err
	}
	// The last stable checkpoint: every committed checkpoint height is
	// stable at once (commit).
	c.stable = h.Height - h.Height%c.params.CheckpointInterval
	if c.stable == h.Height {
		c.cpBlocks[h.Height] = bcid
	}
	return nil
}

// replay reads back the records a node persisted before it stopped, on a
// core at its last committed height: the votes it signed, its prepared
// certificate and its view change. The core resumes in the view it was
// in, in a view change if it was in one, and sends again what it had
// signed for the open slot.
func (c *Replica) replay(wal []Record) {
	c.out = Ready{}
	c.attempts = 0
	next := c.height + 1
	var view uint64
	var inView bool // a vote signed in the highest view: the node was past its view change
	for _, r := range wal {
		switch {
		case r.Vote != nil:
			v := r.Vote.Vote
			if v.Seq < c.height {
				continue
			}
			c.signed[voteSlot{epoch: v.Epoch, view: v.View, seq: v.Seq, phase: v.Phase}] = v.Block.Cid
			if v.View > view {
				view, inView = v.View, false
			}
			if v.View == view {
				inView = true
			}
			if v.Seq == next && v.Epoch == c.vals.Epoch {
				if r.Block != nil {
					c.restoreBlock(r.Block)
				}
				sv := *r.Vote
				c.addVote(&sv)
			}
		case r.Prepared != nil:
			p := r.Prepared
			if len(p.Votes) > 0 && p.Votes[0].Vote.Seq == next && r.Block != nil &&
				(c.prepared == nil || p.View > c.prepared.cert.View) {
				c.prepared = &preparedBlock{cert: *p, block: r.Block, seq: next}
			}
		case r.ViewChange != nil:
			vc := &r.ViewChange.ViewChange
			if vc.View > view {
				view, inView = vc.View, false
			}
			if vc.View == view {
				c.myVC = r.ViewChange
			}
		}
	}
	c.view = view
	if c.myVC != nil && c.myVC.ViewChange.View == view && !inView && c.myVC.ViewChange.Epoch == c.vals.Epoch {
		c.changing = true
		c.attempts = 1
		c.viewDeadline = c.now + c.cfg.ViewChangeTimeoutMs
		c.vcs[string(c.id)] = c.myVC
		c.broadcast(&Message{ViewChange: c.myVC})
		return
	}
	if c.myVC != nil && c.myVC.ViewChange.View == view && !inView && c.myVC.ViewChange.Epoch < c.vals.Epoch && c.isValidator() {
		// It stopped after committing the block that ended the epoch of
		// its view change, before it signed that view change again.
		c.changing, c.attempts = true, 1
		c.viewChangeInNewEpoch()
		return
	}
	c.myVC = nil
	c.resendSlot()
}

// resendSlot sends again what this node signed for the open slot in its
// view before it stopped: the proposal if it leads, and its votes.
func (c *Replica) resendSlot() {
	seq := c.height + 1
	prep := voteSlot{epoch: c.vals.Epoch, view: c.view, seq: seq, phase: chain.PhasePrepare}
	bcid, ok := c.signed[prep]
	if !ok {
		return
	}
	e := c.execs[bcid]
	own := c.votes[prep][string(c.id)]
	if e == nil || own == nil {
		return
	}
	c.slot = &slot{view: c.view, block: e.block, cid: bcid}
	c.slotStart = c.now
	if c.isLeader() {
		c.broadcast(&Message{Proposal: &Proposal{Block: *e.block, Vote: *own}})
	} else {
		c.broadcast(&Message{Vote: own})
	}
	commit := prep
	commit.phase = chain.PhaseCommit
	if cv := c.votes[commit][string(c.id)]; cv != nil {
		c.broadcast(&Message{Vote: cv})
	}
}

// restoreBlock executes a block this node voted for before it stopped, so
// that it can propose or commit it again.
func (c *Replica) restoreBlock(b *chain.Block) {
	if bcid, err := blockCID(b); err == nil {
		_, _ = c.validate(b, bcid, false)
	}
}
