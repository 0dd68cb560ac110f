package pbft

import (
	"fmt"

	"auditnet/chain"
)

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
		c.viewDeadline = now + c.cfg.ViewChangeTimeoutMs
		c.vcs[string(c.id)] = c.myVC
		c.broadcast(&Message{ViewChange: c.myVC})
		return c, nil
	}
	c.myVC = nil
	c.resendSlot()
	return c, nil
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
