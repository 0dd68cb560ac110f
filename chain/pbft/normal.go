package pbft

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

func link(c cid.Cid) dagcbor.Link { return dagcbor.Link{Cid: c} }

// maxViewsAhead bounds how far beyond its view a node buffers messages.
const maxViewsAhead = 4

// maxFuturePerPeer bounds the messages buffered per peer.
const maxFuturePerPeer = 16

// ErrInvalidBlock is wrapped by every reason a proposed block is refused.
var ErrInvalidBlock = errors.New("pbft: invalid block")

// buffer keeps a message for a slot or view just ahead, to replay once
// the node gets there, at most maxFuturePerPeer per peer.
func (c *Replica) buffer(from []byte, m *Message) error {
	m.verified = c.trusted // m wraps a part of the message being stepped
	q := append(c.future[string(from)], m)
	if len(q) > maxFuturePerPeer {
		q = q[len(q)-maxFuturePerPeer:]
	}
	c.future[string(from)] = q
	return nil
}

// replayFuture steps the buffered messages again, now that the height or
// view moved.
func (c *Replica) replayFuture() {
	if len(c.future) == 0 {
		return
	}
	pending := c.future
	c.future = map[string][]*Message{}
	peers := make([]string, 0, len(pending))
	for p := range pending {
		peers = append(peers, p)
	}
	sort.Strings(peers) // deterministic
	for _, p := range peers {
		for _, m := range pending[p] {
			_ = c.Step([]byte(p), m)
		}
	}
}

// ahead reports whether a message for (epoch, view, seq) belongs to the
// near future: buffer it. Messages beyond the window, or about the past,
// are stale.
func (c *Replica) classify(epoch, view, seq uint64) (current, ahead bool) {
	next := c.height + 1
	switch {
	case seq < next || view < c.view || epoch < c.vals.Epoch:
		return false, false
	case seq > next+1 || view > c.view+maxViewsAhead || seq > c.stable+2*c.params.CheckpointInterval+1:
		return false, false // out of window
	case seq == next+1 || view > c.view || epoch > c.vals.Epoch || c.changing:
		return false, true
	}
	return true, false
}

func (c *Replica) onProposal(p *Proposal, fromNewView bool) error {
	v := p.Vote.Vote
	bcid, err := blockCID(&p.Block)
	if err != nil {
		return err
	}
	h := &p.Block.Header
	if v.Chain != c.chainID || v.Phase != chain.PhasePrepare || !v.Block.Equals(bcid) || v.Seq != h.Height || v.Epoch != h.Epoch {
		return fmt.Errorf("%w: proposal vote does not match its block", ErrInvalidBlock)
	}
	if v.Seq == c.height && fromNewView && bcid.Equals(c.last) {
		// A new view re-proposes the block this node committed last; it
		// votes again so that the others can commit it too.
		c.slot = &slot{view: v.View, block: copyBlock(&p.Block), cid: bcid}
		c.addVote(&p.Vote)
		c.voteFor(chain.PhasePrepare, v.View, v.Seq, bcid, nil)
		c.voteFor(chain.PhaseCommit, v.View, v.Seq, bcid, nil)
		return nil
	}
	current, ahead := c.classify(v.Epoch, v.View, v.Seq)
	if ahead && !fromNewView {
		return c.buffer(p.Vote.Signer, &Message{Proposal: p})
	}
	if !current && !fromNewView {
		return ErrStale
	}
	if string(p.Vote.Signer) != string(c.leaderOf(v.View)) {
		return fmt.Errorf("%w: proposal by a validator that does not lead view %d", ErrInvalidBlock, v.View)
	}
	if err := c.verifyVote(&p.Vote); err != nil {
		return err
	}
	if c.slot != nil && c.slot.view == v.View {
		if !c.slot.cid.Equals(bcid) {
			c.addVote(&p.Vote) // the leader's second block for the view: evidence
		}
		return nil
	}
	// A block is fresh in the view it is first proposed in: the time rule
	// applies. A new view re-proposing a prepared block keeps its header.
	fresh := h.View == v.View
	if !fromNewView && (h.View != v.View || string(h.Proposer) != string(p.Vote.Signer)) {
		return fmt.Errorf("%w: a fresh proposal must carry its view and proposer", ErrInvalidBlock)
	}
	if _, err := c.validate(&p.Block, bcid, fresh); err != nil {
		return err
	}
	c.slot = &slot{view: v.View, block: copyBlock(&p.Block), cid: bcid}
	c.slotStart = c.now
	c.leaderSeen = c.now
	c.addVote(&p.Vote)
	c.voteFor(chain.PhasePrepare, v.View, v.Seq, bcid, &p.Block)
	c.checkPrepared()
	return nil
}

// validate checks a proposed block against the committed chain and
// executes it on a clone of the committed state: header fields, the time
// rule for fresh proposals, limits, every transaction valid, and the roots.
func (c *Replica) validate(b *chain.Block, bcid cid.Cid, fresh bool) (*execution, error) {
	h := &b.Header
	if fresh {
		if err := c.checkFreshTime(h.Time); err != nil {
			return nil, err
		}
	}
	if e := c.execs[bcid]; e != nil {
		return e, nil
	}
	switch {
	case h.Chain != c.chainID || h.Epoch != c.vals.Epoch || h.Height != c.height+1 || !h.Prev.Equals(c.last):
		return nil, fmt.Errorf("%w: does not extend this node's chain at height %d", ErrInvalidBlock, c.height)
	case !c.vals.Members[string(h.Proposer)]:
		return nil, fmt.Errorf("%w: proposer is not a validator", ErrInvalidBlock)
	case h.Time <= c.lastTime:
		return nil, fmt.Errorf("%w: block time %d not after the previous block's %d", ErrInvalidBlock, h.Time, c.lastTime)
	case uint64(len(b.Txs)) > c.params.MaxBlockTxs:
		return nil, fmt.Errorf("%w: %d txs, at most %d", ErrInvalidBlock, len(b.Txs), c.params.MaxBlockTxs)
	}
	raws, err := encodeTxs(b.Txs)
	if err != nil {
		return nil, err
	}
	size := 0
	for _, raw := range raws {
		size += len(raw)
	}
	if uint64(size) > c.params.MaxBlockBytes {
		return nil, fmt.Errorf("%w: %d bytes of txs, at most %d", ErrInvalidBlock, size, c.params.MaxBlockBytes)
	}
	e, err := c.execute(b, raws)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrInvalidBlock, err)
	}
	c.execs[bcid] = e
	return e, nil
}

// checkFreshTime is the time rule for a block proposed fresh in the
// current view: its time is within Δ of this node's clock. Ahead, a fast
// leader would run chain time into the future; behind, a slow leader would
// hold it back (prev + 1 ms a block), and expiries and windows would stop
// moving. Refusing it leaves the waiting transactions waiting, so an honest
// quorum replaces that leader by a view change. An honest leader's block
// time, max(prev + 1, now), is never behind its own clock. Re-proposed and
// synced blocks keep their time and are not checked.
func (c *Replica) checkFreshTime(t int64) error {
	now, skew := c.nowMs(), c.params.MaxClockSkewMs
	switch {
	case t > now+skew:
		return fmt.Errorf("%w: block time %d more than Δ ahead of this node's clock %d", ErrInvalidBlock, t, now)
	case t < now-skew:
		return fmt.Errorf("%w: block time %d more than Δ behind this node's clock %d", ErrInvalidBlock, t, now)
	}
	return nil
}

// execute runs a block on a clone of the committed state and checks the
// roots its header claims; raws are its transactions' encodings.
func (c *Replica) execute(b *chain.Block, raws [][]byte) (*execution, error) {
	h := &b.Header
	st := c.state.Clone()
	m, err := c.newMachine(st)
	if err != nil {
		return nil, err
	}
	outcomes, err := m.Execute(h.Height, h.Time, b.Txs)
	if err != nil {
		return nil, err
	}
	e := &execution{block: copyBlock(b), state: st, machine: m, outcomes: outcomes}
	want, err := c.header(b, e, raws)
	if err != nil {
		return nil, err
	}
	switch {
	case !bytes.Equal(want.TxRoot, h.TxRoot):
		return nil, errors.New("tx root does not match")
	case !bytes.Equal(want.ResultsRoot, h.ResultsRoot):
		return nil, errors.New("results root does not match")
	case !bytes.Equal(want.StateRoot, h.StateRoot):
		return nil, errors.New("state root does not match")
	case !bytes.Equal(want.NextValidators, h.NextValidators):
		return nil, errors.New("next validator set does not match")
	case want.TxCount != h.TxCount || want.ResultCount != h.ResultCount:
		return nil, errors.New("transaction or result count does not match")
	}
	for i := range b.Txs {
		c.markVerified(&b.Txs[i])
	}
	return e, nil
}

// header fills in the roots of b's header from its execution; raws are
// its transactions' encodings.
func (c *Replica) header(b *chain.Block, e *execution, raws [][]byte) (chain.Header, error) {
	h := b.Header
	var err error
	h.TxRoot = chain.MerkleRoot(raws)
	if h.ResultsRoot, err = chain.ResultsRoot(e.outcomes); err != nil {
		return h, err
	}
	h.TxCount, h.ResultCount = uint64(len(b.Txs)), uint64(len(e.outcomes))
	root := e.state.Root()
	h.StateRoot = root[:]
	next, err := e.machine.Validators()
	if err != nil {
		return h, err
	}
	h.NextValidators = next.Hash()
	return h, nil
}

// encodeTxs returns the transactions' canonical encodings, the leaves of
// the block's tx root: for sealed transactions the slices they keep, which
// nobody may modify.
func encodeTxs(txs []chain.Tx) ([][]byte, error) {
	raws := make([][]byte, len(txs))
	for i := range txs {
		raw, err := txs[i].Encoding()
		if err != nil {
			return nil, err
		}
		raws[i] = raw
	}
	return raws, nil
}

// isVerified reports whether this node (or, in tests, a simulated peer)
// verified a transaction with these very bytes already, in another Tx.
// newMachine returns the state machine over st, sharing what this node
// keeps for every machine: the signatures it verified and the replay
// set's decoded lists.
func (c *Replica) newMachine(st chain.State) (*chain.Machine, error) {
	m, err := chain.NewMachine(c.cfg.Genesis, st)
	if err != nil {
		return nil, err
	}
	m.SkipVerified(c.isVerified)
	m.ShareReplayCache(c.replayLists)
	return m, nil
}

func (c *Replica) isVerified(tx *chain.Tx) bool {
	k, err := tx.Hash()
	return err == nil && (c.verified[k] || c.hooks.sigCache[k])
}

// markVerified records that tx passed its signature checks.
func (c *Replica) markVerified(tx *chain.Tx) {
	k, err := tx.Hash()
	if err != nil {
		return
	}
	c.verified[k] = true
	if c.hooks.sigCache != nil {
		c.hooks.sigCache[k] = true
	}
}

// voteFor signs and sends this node's vote for a slot, unless it is not
// a validator or already signed another block for that slot. block, for
// a PREPARE, is persisted with the vote.
func (c *Replica) voteFor(phase chain.Phase, view, seq uint64, bcid cid.Cid, block *chain.Block) bool {
	sv, fresh := c.signVote(phase, view, seq, bcid, block)
	if fresh {
		c.broadcast(&Message{Vote: sv})
	}
	return sv != nil
}

// signVote returns this node's vote for a slot and block: signed now and
// persisted (fresh), or the one it signed before; nil if it is not a
// validator or signed another block for that slot. block, for a PREPARE,
// is persisted with the vote.
func (c *Replica) signVote(phase chain.Phase, view, seq uint64, bcid cid.Cid, block *chain.Block) (sv *chain.SignedVote, fresh bool) {
	if !c.isValidator() {
		return nil, false
	}
	vs := voteSlot{epoch: c.vals.Epoch, view: view, seq: seq, phase: phase}
	if prev, ok := c.signed[vs]; ok {
		if !prev.Equals(bcid) {
			return nil, false
		}
		return c.votes[vs][string(c.id)], false
	}
	v, err := chain.SignVote(chain.Vote{Chain: c.chainID, Epoch: vs.epoch, View: view, Seq: seq, Phase: phase, Block: link(bcid)}, c.key)
	if err != nil {
		c.log.Error("sign vote", "err", err)
		return nil, false
	}
	c.signed[vs] = bcid
	c.persist(Record{Vote: &v, Block: block})
	c.addVote(&v)
	return &v, true
}

// addVote records a verified vote; a second vote by the same signer for
// the same slot and another block is evidence.
func (c *Replica) addVote(sv *chain.SignedVote) {
	v := sv.Vote
	vs := voteSlot{epoch: v.Epoch, view: v.View, seq: v.Seq, phase: v.Phase}
	byS := c.votes[vs]
	if byS == nil {
		byS = map[string]*chain.SignedVote{}
		c.votes[vs] = byS
	}
	if prev := byS[string(sv.Signer)]; prev != nil {
		if !prev.Vote.Block.Equals(v.Block.Cid) && string(sv.Signer) != string(c.id) {
			c.reportEquivocation(prev, sv)
		}
		return
	}
	byS[string(sv.Signer)] = sv
}

func (c *Replica) onVote(sv *chain.SignedVote) error {
	v := sv.Vote
	if v.Chain != c.chainID || (v.Phase != chain.PhasePrepare && v.Phase != chain.PhaseCommit) {
		return ErrStale
	}
	current, ahead := c.classify(v.Epoch, v.View, v.Seq)
	if ahead {
		return c.buffer(sv.Signer, &Message{Vote: sv})
	}
	if !current {
		return ErrStale
	}
	if !c.vals.Members[string(sv.Signer)] {
		return fmt.Errorf("pbft: vote by a non-validator")
	}
	if err := c.verifyVote(sv); err != nil {
		return err
	}
	c.addVote(sv)
	if v.Phase == chain.PhasePrepare {
		c.checkPrepared()
	} else {
		c.checkCommitted()
	}
	return nil
}

// votesFor returns the votes of a slot for a block, in signer order.
func (c *Replica) votesFor(vs voteSlot, bcid cid.Cid) []chain.SignedVote {
	var out []chain.SignedVote
	for _, sv := range c.votes[vs] {
		if sv.Vote.Block.Equals(bcid) && c.vals.Members[string(sv.Signer)] {
			out = append(out, *sv)
		}
	}
	sort.Slice(out, func(i, j int) bool { return bytes.Compare(out[i].Signer, out[j].Signer) < 0 })
	return out
}

// checkPrepared sends COMMIT once a quorum prepared the slot's block.
func (c *Replica) checkPrepared() {
	s := c.slot
	if s == nil || s.view != c.view || c.changing {
		return
	}
	seq := c.height + 1
	vs := voteSlot{epoch: c.vals.Epoch, view: s.view, seq: seq, phase: chain.PhasePrepare}
	votes := c.votesFor(vs, s.cid)
	if len(votes) < c.quorum() {
		return
	}
	if c.prepared == nil || c.prepared.seq != seq || c.prepared.cert.View < s.view {
		cert := PreparedCert{View: s.view, Block: link(s.cid), Votes: votes[:c.quorum()]}
		c.prepared = &preparedBlock{cert: cert, block: s.block, seq: seq}
		if c.isValidator() {
			c.persist(Record{Prepared: &cert, Block: s.block})
		}
	}
	c.voteFor(chain.PhaseCommit, s.view, seq, s.cid, nil)
	c.checkCommitted()
}

// checkCommitted commits the next block once a quorum of COMMIT votes in
// one view names a block this node has executed.
func (c *Replica) checkCommitted() {
	seq := c.height + 1
	var slots []voteSlot
	for vs, byS := range c.votes {
		if vs.seq == seq && vs.phase == chain.PhaseCommit && vs.epoch == c.vals.Epoch && len(byS) >= c.quorum() {
			slots = append(slots, vs)
		}
	}
	sort.Slice(slots, func(i, j int) bool { return slots[i].view < slots[j].view })
	for _, vs := range slots {
		byS := c.votes[vs]
		signers := make([]string, 0, len(byS))
		for s := range byS {
			signers = append(signers, s)
		}
		sort.Strings(signers)
		counts := map[cid.Cid]int{}
		for _, s := range signers {
			counts[byS[s].Vote.Block.Cid]++
		}
		for _, s := range signers {
			bcid := byS[s].Vote.Block.Cid
			if counts[bcid] < c.quorum() {
				continue
			}
			e := c.execs[bcid]
			if e == nil {
				// Committed elsewhere, but this node missed the proposal.
				c.requestSync([]byte(s))
				break
			}
			votes := c.votesFor(vs, bcid)[:c.quorum()]
			cert := &chain.CommitCert{Height: seq, View: vs.view, Block: link(bcid), Votes: votes}
			c.commit(e.block, bcid, e, cert)
			return
		}
	}
}

func copyBlock(b *chain.Block) *chain.Block { cb := *b; return &cb }
