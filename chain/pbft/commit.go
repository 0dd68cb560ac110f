package pbft

import (
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// commit makes an executed block the new head: its state becomes the
// committed state, the node learns the next epoch's set, and the next
// sequence number opens.
func (c *Replica) commit(b *chain.Block, bcid cid.Cid, e *execution, cert *chain.CommitCert) {
	c.state, c.machine = e.state, e.machine
	c.height = b.Header.Height
	c.last, c.lastTime, c.lastCert = bcid, b.Header.Time, cert
	c.out.Committed = append(c.out.Committed, Committed{Block: b, Cert: cert, Outcomes: e.outcomes, State: e.state.Clone()})
	epoch := c.vals.Epoch
	if err := c.loadEpoch(); err != nil {
		// The state machine executed this block; its records are there.
		panic(fmt.Sprintf("pbft: state after block %d: %v", c.height, err))
	}
	for i := range b.Txs {
		if id, err := b.Txs[i].ID(); err == nil {
			c.mempool.remove(id)
		}
		if k, err := b.Txs[i].Hash(); err == nil {
			delete(c.verified, k)
		}
	}
	c.mempool.expire(c.height+1, c.verified)
	c.slot = nil
	c.execs = map[cid.Cid]*execution{}
	if c.prepared != nil && c.prepared.seq <= c.height {
		c.prepared = nil
	}
	for vs := range c.votes {
		if vs.seq <= c.height || vs.epoch < c.vals.Epoch {
			delete(c.votes, vs)
		}
	}
	for vs := range c.signed {
		if vs.seq+1 < c.height {
			delete(c.signed, vs)
		}
	}
	for k := range c.evidence {
		if k.seq+c.params.ReplayWindow < c.height {
			delete(c.evidence, k)
		}
	}
	c.slotStart, c.leaderSeen = c.now, c.now
	if !c.changing {
		c.attempts = 0
	}
	if c.height%c.params.CheckpointInterval == 0 {
		// The commit certificate is a quorum's signature over a header
		// that carries the state root, and every one of them executed the
		// block before voting: the checkpoint is stable. The checkpoint
		// messages tell followers and lagging nodes the same.
		c.cpBlocks[c.height] = bcid
		c.setStable(c.height)
		if !c.restoring {
			c.sendCheckpoint(epoch)
		}
	}
	if c.restoring {
		return // replaying the node's own blocks: nothing to sign or send
	}
	if c.vals.Epoch != epoch {
		c.viewChangeInNewEpoch()
	}
	c.replayFuture()
	if c.isLeader() && !c.changing {
		c.maybePropose()
	}
}

func (c *Replica) sendCheckpoint(epoch uint64) {
	if !c.prevOrCurrent(epoch).Members[string(c.id)] {
		return
	}
	cp := Checkpoint{Chain: c.chainID, Epoch: epoch, Height: c.height, Block: link(c.last)}
	signer, sig, err := sign(TagCheckpoint, &cp, c.key)
	if err != nil {
		c.log.Error("sign checkpoint", "err", err)
		return
	}
	sc := &SignedCheckpoint{Checkpoint: cp, Signer: signer, Sig: sig}
	c.persist(Record{Checkpoint: sc})
	c.broadcast(&Message{Checkpoint: sc})
	_ = c.onCheckpoint(sc)
}

// prevOrCurrent returns the validator set of an epoch this node knows:
// the current one or the one before.
func (c *Replica) prevOrCurrent(epoch uint64) chain.ValidatorSet {
	if epoch == c.vals.Epoch {
		return c.vals
	}
	if c.prevVals.Members != nil && epoch == c.prevVals.Epoch {
		return c.prevVals
	}
	return chain.ValidatorSet{}
}

func (c *Replica) onCheckpoint(sc *SignedCheckpoint) error {
	cp := &sc.Checkpoint
	set := c.prevOrCurrent(cp.Epoch)
	if cp.Chain != c.chainID || !set.Members[string(sc.Signer)] || cp.Height <= c.stable ||
		cp.Height > c.height+2*c.params.CheckpointInterval {
		return ErrStale
	}
	if err := c.verifySigned(TagCheckpoint, &sc.Checkpoint, sc.Signer, sc.Sig); err != nil {
		return err
	}
	by := c.checkpoints[cp.Height]
	if by == nil {
		by = map[string]cid.Cid{}
		c.checkpoints[cp.Height] = by
	}
	if _, ok := by[string(sc.Signer)]; ok {
		return nil
	}
	by[string(sc.Signer)] = cp.Block.Cid
	n := 0
	for _, b := range by {
		if b.Equals(cp.Block.Cid) {
			n++
		}
	}
	if n >= chain.Quorum(len(set.Members))-c.hooks.quorumDelta && cp.Height <= c.height && cp.Block.Equals(c.blockAt(cp.Height)) {
		c.setStable(cp.Height)
	}
	return nil
}

// setStable moves the low watermark to a stable checkpoint and collects
// the logs below it.
func (c *Replica) setStable(h uint64) {
	if h <= c.stable {
		return
	}
	c.stable = h
	c.out.StableCheckpoint = h
	for x := range c.checkpoints {
		if x <= h {
			delete(c.checkpoints, x)
		}
	}
	for x := range c.cpBlocks {
		if x < h {
			delete(c.cpBlocks, x)
		}
	}
}

// blockAt returns the CID of the committed block at h if this node still
// knows it (the last one), else cid.Undef.
func (c *Replica) blockAt(h uint64) cid.Cid {
	if h == c.height {
		return c.last
	}
	if b, ok := c.cpBlocks[h]; ok {
		return b
	}
	return cid.Undef
}

// maybePropose has the leader propose the next block as soon as the last
// one committed and transactions wait, or an empty block when a deadline
// counted in blocks is pending on an idle chain.
func (c *Replica) maybePropose() {
	if !c.isLeader() || c.changing || c.slot != nil {
		return
	}
	seq := c.height + 1
	if bcid, ok := c.signed[voteSlot{epoch: c.vals.Epoch, view: c.view, seq: seq, phase: chain.PhasePrepare}]; ok {
		// Proposed before a restart: only that block, and it is re-sent by
		// Restore.
		_ = bcid
		return
	}
	idleDue := c.machine.DeadlinePending() && (c.now-c.lastPropose) >= c.cfg.IdleBlockIntervalMs
	if c.mempool.len() == 0 && !idleDue {
		return
	}
	b, err := c.build(c.view)
	if err != nil {
		c.log.Error("build block", "height", seq, "err", err)
		return
	}
	if len(b.Txs) == 0 && !idleDue {
		return
	}
	c.propose(b)
}

// propose signs and sends a block as the leader's proposal.
func (c *Replica) propose(b *chain.Block) {
	bcid, err := blockCID(b)
	if err != nil {
		c.log.Error("block cid", "err", err)
		return
	}
	own, _ := c.signVote(chain.PhasePrepare, c.view, b.Header.Height, bcid, b)
	if own == nil {
		return
	}
	c.broadcast(&Message{Proposal: &Proposal{Block: *b, Vote: *own}})
	c.slot = &slot{view: c.view, block: b, cid: bcid}
	c.slotStart, c.lastPropose = c.now, c.now
	c.checkPrepared()
}

// build makes a block for the next height in view: the waiting
// transactions that are still valid, in arrival order, within the block
// limits, executed on a clone of the committed state.
func (c *Replica) build(view uint64) (*chain.Block, error) {
	seq := c.height + 1
	t := max(c.lastTime+1, c.nowMs())
	t = c.hooks.stampTime(t, c.lastTime)
	candidates := c.mempool.take(int(c.params.MaxBlockTxs), int(c.params.MaxBlockBytes))
	st := c.state.Clone()
	m, err := c.newMachine(st)
	if err != nil {
		return nil, err
	}
	txs, outcomes, err := m.Build(seq, t, candidates)
	if err != nil {
		return nil, err
	}
	if len(txs) < len(candidates) {
		c.mempool.dropInvalid(candidates, txs)
	}
	txs = c.hooks.tamperTxs(txs)
	b := &chain.Block{Header: chain.Header{
		Chain: c.chainID, Epoch: c.vals.Epoch, Height: seq, Prev: link(c.last), Time: t,
		Proposer: c.id, View: view,
	}, Txs: txs}
	e := &execution{block: b, state: st, machine: m, outcomes: outcomes}
	raws, err := encodeTxs(txs)
	if err != nil {
		return nil, err
	}
	if b.Header, err = c.header(b, e, raws); err != nil {
		return nil, err
	}
	bcid, err := blockCID(b)
	if err != nil {
		return nil, err
	}
	c.execs[bcid] = e
	return b, nil
}

// reportEquivocation turns two conflicting votes into an Evidence
// transaction, once per signer and slot, if this node may send evidence.
func (c *Replica) reportEquivocation(a, b *chain.SignedVote) {
	v := a.Vote
	k := voteSlotBy{voteSlot: voteSlot{epoch: v.Epoch, view: v.View, seq: v.Seq, phase: v.Phase}, signer: string(a.Signer)}
	if c.evidence[k] || !chain.Conflicts(a, b) {
		return
	}
	c.evidence[k] = true
	c.log.Warn("equivocation", "signer", chain.PeerIDString(a.Signer), "view", v.View, "seq", v.Seq, "phase", v.Phase)
	// One piece of evidence per equivocating validator and epoch is
	// enough to prove it; a validator that equivocates in every slot
	// must not fill the blocks with evidence.
	if !c.isValidator() || c.accused[string(a.Signer)] == v.Epoch+1 {
		return
	}
	c.accused[string(a.Signer)] = v.Epoch + 1
	c.nonce++
	tx := &chain.Tx{Body: chain.TxBody{
		Chain: c.chainID, Kind: chain.KindEvidence, Sender: c.id,
		Expires: c.height + c.params.ReplayWindow, Nonce: uint64(c.nowMs())<<16 | c.nonce&0xffff,
		Evidence: &chain.Evidence{A: *a, B: *b},
	}}
	if err := tx.Sign(c.key); err != nil {
		c.log.Error("sign evidence", "err", err)
		return
	}
	// Whether this node's role may send evidence is the state machine's
	// roles table to say (Check, in admit).
	if err := c.admit(tx, true); err != nil {
		c.log.Debug("evidence not admitted", "err", err)
	}
	c.maybePropose()
}

// admit puts a valid transaction in the mempool, sealed; one from a
// client is forwarded to every validator (with the others of its Ready),
// so a leader that leaves it out is suspected by all of them. The caller
// lets a leader propose once it admitted what it has.
func (c *Replica) admit(tx *chain.Tx, fromClient bool) error {
	if err := tx.Seal(); err != nil {
		return err
	}
	id, err := tx.ID()
	if err != nil {
		return err
	}
	if c.mempool.has(id) {
		return nil
	}
	peers := 1
	if !fromClient {
		peers = len(c.vals.Members)
	}
	if err := c.mempool.room(tx, peers); err != nil {
		return err
	}
	if err := c.machine.Check(tx, c.height+1); err != nil {
		return err
	}
	raw, err := tx.Encoding()
	if err != nil {
		return err
	}
	c.markVerified(tx)
	c.mempool.add(tx, id, len(raw), c.now, c.height)
	if fromClient {
		c.forward = append(c.forward, tx)
	}
	return nil
}
