package pbft

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// ErrBadViewChange is wrapped by every reason a view change or new view
// is refused.
var ErrBadViewChange = errors.New("pbft: invalid view change")

// maxBackoff caps the doubling of the view-change timeout (2^4 times the
// configured timeout).
const maxBackoff = 4

// viewChangeTimedOut handles a view change that brought no new view in
// time. The node moves on to the next view only if a quorum of validators
// asked for this view or a later one: then this view's leader failed. A
// node that is ahead of the others on its own waits for them instead,
// sending its view change again in case it was lost; without this rule a
// node whose timers ran shorter would run views ahead of everyone and no
// view would ever gather a quorum.
//
// Nor does it move on when f+1 validators' heartbeats say they started
// this view: the view's leader did not fail, this node missed its
// NEW-VIEW (a validator restarted in an earlier view, that joined the
// view change from the others' old view changes, say). Moving on alone,
// it would vote in no lower view, so it would stay out of theirs until
// they changed view again, and one more failure would stall the chain;
// waiting, its heartbeat, which says it is changing to their view, has
// them send it the NEW-VIEW (shareView).
func (c *Replica) viewChangeTimedOut() {
	if c.askedAtLeast(c.view) >= c.quorum() && !c.othersInView(c.view) {
		c.startViewChange(c.view+1, "no new view in time")
		return
	}
	c.viewDeadline = c.now + c.viewChangeTimeout()
	if c.myVC != nil && c.myVC.ViewChange.View == c.view {
		c.broadcast(&Message{ViewChange: c.myVC})
	}
}

// askedAtLeast counts the validators whose view change this node holds
// for view w or a later one.
func (c *Replica) askedAtLeast(w uint64) int {
	n := 0
	for _, svc := range c.vcs {
		if svc.ViewChange.View >= w {
			n++
		}
	}
	return n
}

// viewChangeTimeout is how long a view change may wait for its new view:
// the configured timeout, doubled with each view change that brought no
// progress.
func (c *Replica) viewChangeTimeout() int64 {
	return c.cfg.ViewChangeTimeoutMs << min(max(c.attempts, 1)-1, maxBackoff)
}

// startViewChange moves this node to view w and asks the others to follow.
func (c *Replica) startViewChange(w uint64, why string) {
	if w < c.view || (w == c.view && c.changing) || !c.isValidator() {
		return
	}
	c.log.Info("view change", "from", c.view, "to", w, "height", c.height, "why", why)
	c.view, c.changing = w, true
	c.viewStart, c.viewHeight = c.now, c.height
	c.attempts++
	c.viewDeadline = c.now + c.viewChangeTimeout()
	c.slot = nil
	c.sendViewChange()
	c.pruneViews(w)
	c.tryNewView()
}

// sendViewChange signs this node's view change for its view in the epoch
// in force, from its last commit certificate and its prepared block for
// the next height, and persists and sends it.
func (c *Replica) sendViewChange() {
	vc := ViewChange{Chain: c.chainID, Epoch: c.vals.Epoch, View: c.view, Height: c.height, Cert: c.lastCert}
	var block *chain.Block
	if p := c.prepared; p != nil && p.seq == c.height+1 {
		cert := p.cert
		vc.Prepared, block = &cert, p.block
	}
	vc = c.hooks.tamperViewChange(vc)
	signer, sig, err := sign(TagViewChange, &vc, c.key)
	if err != nil {
		c.log.Error("sign view change", "err", err)
		return
	}
	svc := &SignedViewChange{ViewChange: vc, Signer: signer, Sig: sig, Block: block}
	c.myVC = svc
	c.vcs[string(c.id)] = svc
	c.persist(Record{ViewChange: svc})
	c.broadcast(&Message{ViewChange: svc})
}

// viewChangeInNewEpoch carries a view change under way across the end of
// an epoch: this node committed the epoch's last block while changing to
// its view. A view change signs its epoch, and the new set counts only
// view changes of the new epoch, so the one it sent before is dead:
// without a new one it would wait for ever, short of a quorum that
// counted it. It signs the view change again, for the same view, in the
// new epoch, over the block it just committed. That is safe: it has
// signed nothing in the new epoch yet, and it still never votes in a view
// below the one it asked for. A node that left the set stops changing
// views: it follows the chain.
func (c *Replica) viewChangeInNewEpoch() {
	if !c.changing {
		return
	}
	if !c.isValidator() {
		c.changing, c.myVC = false, nil
		return
	}
	if c.myVC != nil && c.myVC.ViewChange.Epoch == c.vals.Epoch {
		return
	}
	c.log.Info("view change carried into a new epoch", "view", c.view, "epoch", c.vals.Epoch, "height", c.height)
	c.viewDeadline = c.now + c.viewChangeTimeout()
	c.sendViewChange()
	c.tryNewView()
}

// checkViewChange verifies a view change against the current epoch: its
// signer, signature, certificate and prepared certificate.
func (c *Replica) checkViewChange(svc *SignedViewChange, blockRequired bool) error {
	vc := &svc.ViewChange
	if vc.Chain != c.chainID || vc.Epoch != c.vals.Epoch || !c.vals.Members[string(svc.Signer)] {
		return fmt.Errorf("%w: not from a validator of epoch %d", ErrBadViewChange, c.vals.Epoch)
	}
	if err := c.verifySigned(TagViewChange, &svc.ViewChange, svc.Signer, svc.Sig); err != nil {
		return fmt.Errorf("%w: %v", ErrBadViewChange, err)
	}
	if err := c.checkCert(vc.Height, vc.Cert); err != nil {
		return err
	}
	p := vc.Prepared
	if p == nil {
		return nil
	}
	if p.View >= vc.View {
		return fmt.Errorf("%w: prepared in view %d, not before view %d", ErrBadViewChange, p.View, vc.View)
	}
	if err := c.checkPreparedCert(p, vc.Epoch, vc.Height+1); err != nil {
		return err
	}
	if blockRequired {
		if svc.Block == nil {
			return fmt.Errorf("%w: prepared certificate without its block", ErrBadViewChange)
		}
		if bc, err := blockCID(svc.Block); err != nil || !bc.Equals(p.Block.Cid) {
			return fmt.Errorf("%w: prepared block does not match its certificate", ErrBadViewChange)
		}
	}
	return nil
}

// checkCert verifies a commit certificate for height h (none for h = 0)
// against the set of its epoch, which must be the current or the previous
// one.
func (c *Replica) checkCert(h uint64, cert *chain.CommitCert) error {
	if h == 0 {
		if cert != nil {
			return fmt.Errorf("%w: certificate for height 0", ErrBadViewChange)
		}
		return nil
	}
	if cert == nil || len(cert.Votes) == 0 {
		return fmt.Errorf("%w: height %d without its certificate", ErrBadViewChange, h)
	}
	epoch := cert.Votes[0].Vote.Epoch
	set := c.prevOrCurrent(epoch)
	if set.Members == nil {
		return fmt.Errorf("%w: certificate of unknown epoch %d", ErrBadViewChange, epoch)
	}
	if err := c.verifyCert(cert, epoch, h, cert.Block.Cid, set); err != nil {
		return fmt.Errorf("%w: %v", ErrBadViewChange, err)
	}
	return nil
}

// checkPreparedCert verifies a quorum of PREPARE votes of epoch for one
// block at seq in the certificate's view.
func (c *Replica) checkPreparedCert(p *PreparedCert, epoch, seq uint64) error {
	seen := map[string]bool{}
	for i := range p.Votes {
		sv := &p.Votes[i]
		v := sv.Vote
		if v.Chain != c.chainID || v.Epoch != epoch || v.View != p.View || v.Seq != seq || v.Phase != chain.PhasePrepare || !v.Block.Equals(p.Block.Cid) {
			return fmt.Errorf("%w: prepared certificate vote %d is for another slot", ErrBadViewChange, i)
		}
		if !c.vals.Members[string(sv.Signer)] || seen[string(sv.Signer)] {
			return fmt.Errorf("%w: prepared certificate vote %d by a repeated or unknown signer", ErrBadViewChange, i)
		}
		if err := c.verifyVote(sv); err != nil {
			return fmt.Errorf("%w: prepared certificate vote %d: %v", ErrBadViewChange, i, err)
		}
		seen[string(sv.Signer)] = true
	}
	if len(seen) < c.quorum() {
		return fmt.Errorf("%w: prepared certificate with %d votes, quorum %d", ErrBadViewChange, len(seen), c.quorum())
	}
	return nil
}

func (c *Replica) onViewChange(svc *SignedViewChange) error {
	vc := &svc.ViewChange
	if vc.Chain != c.chainID {
		return ErrStale
	}
	if vc.Epoch > c.vals.Epoch {
		// The sender is ahead: catch up first.
		c.requestSync(svc.Signer)
		return ErrStale
	}
	if vc.Epoch < c.vals.Epoch || vc.View < c.view || (vc.View == c.view && !c.changing) {
		// A validator asking for a view this node has started missed its
		// NEW-VIEW: send it.
		if vc.Epoch == c.vals.Epoch && !c.changing && c.vals.Members[string(svc.Signer)] &&
			c.verifySigned(TagViewChange, &svc.ViewChange, svc.Signer, svc.Sig) == nil {
			c.shareView(svc.Signer)
		}
		return ErrStale
	}
	if prev := c.vcs[string(svc.Signer)]; prev != nil && prev.ViewChange.View >= vc.View {
		return nil
	}
	if err := c.checkViewChange(svc, true); err != nil {
		return err
	}
	if vc.Height > c.height {
		c.requestSync(svc.Signer)
	}
	before := c.askedAtLeast(c.view)
	c.vcs[string(svc.Signer)] = svc
	if q := c.quorum(); c.changing && c.isValidator() && before < q && c.askedAtLeast(c.view) >= q {
		// As in PBFT, the new view's leader gets a full timeout from when
		// a quorum asked for its view: a node that asked long before the
		// others (a laggard, or one whose timer runs fast) must not time
		// out at once and go on alone to the next view.
		c.viewDeadline = max(c.viewDeadline, c.now+c.viewChangeTimeout())
	}
	// f+1 validators asking for views above this node's: at least one is
	// honest, so join the smallest of them.
	if c.isValidator() {
		var above []uint64
		for _, o := range c.vcs {
			if v := o.ViewChange.View; v > c.view {
				above = append(above, v)
			}
		}
		if len(above) > c.faults() {
			sort.Slice(above, func(i, j int) bool { return above[i] < above[j] })
			c.startViewChange(above[0], "f+1 validators moved on")
		}
	}
	c.tryNewView()
	return nil
}

// tryNewView, on the leader of the view being changed to, sends the new
// view once a quorum asked for it and this node has caught up with the
// highest block they committed.
func (c *Replica) tryNewView() {
	if !c.changing || !c.isLeader() {
		return
	}
	var chosen []*SignedViewChange
	for _, svc := range c.vcs {
		if svc.ViewChange.View == c.view {
			chosen = append(chosen, svc)
		}
	}
	if len(chosen) < c.quorum() {
		return
	}
	sort.Slice(chosen, func(i, j int) bool { return bytes.Compare(chosen[i].Signer, chosen[j].Signer) < 0 })
	chosen = chosen[:c.quorum()]
	top := uint64(0)
	for _, svc := range chosen {
		if svc.ViewChange.Height > top {
			top = svc.ViewChange.Height
		}
	}
	if c.height < top {
		for _, svc := range chosen {
			if svc.ViewChange.Height == top {
				c.requestSync(svc.Signer)
			}
		}
		return
	}
	block, err := c.newViewBlock(chosen)
	if err != nil {
		c.log.Error("new view block", "err", err)
		return
	}
	block = c.hooks.tamperNewViewBlock(c, block)
	bcid, err := blockCID(block)
	if err != nil {
		return
	}
	if _, err := c.validate(block, bcid, false); err != nil && !c.hooks.skipNewViewCheck {
		c.log.Error("new view block does not execute", "err", err)
		return
	}
	own, _ := c.signVote(chain.PhasePrepare, c.view, c.height+1, bcid, block)
	if own == nil {
		return
	}
	nv := &NewView{View: c.view, Cert: c.lastCert, Proposal: Proposal{Block: *block, Vote: *own}}
	for _, svc := range chosen {
		stripped := *svc
		stripped.Block = nil
		nv.ViewChanges = append(nv.ViewChanges, stripped)
	}
	c.broadcast(&Message{NewView: nv})
	c.enterView(c.view)
	c.installed = nv
	c.slot = &slot{view: c.view, block: block, cid: bcid}
	c.checkPrepared()
}

// newViewBlock is the block a new view must propose at height+1: the
// prepared block of the highest view among the view changes that reached
// this height, byte for byte, or else a fresh one.
func (c *Replica) newViewBlock(vcs []*SignedViewChange) (*chain.Block, error) {
	var best *SignedViewChange
	for _, svc := range vcs {
		vc := &svc.ViewChange
		if vc.Height == c.height && vc.Prepared != nil && svc.Block != nil && (best == nil || vc.Prepared.View > best.ViewChange.Prepared.View) {
			best = svc
		}
	}
	if best != nil {
		return best.Block, nil
	}
	seq := c.height + 1
	if bcid, ok := c.signed[voteSlot{epoch: c.vals.Epoch, view: c.view, seq: seq, phase: chain.PhasePrepare}]; ok {
		if e := c.execs[bcid]; e != nil {
			return e.block, nil
		}
		return nil, errors.New("signed a proposal for this view before a restart and lost its block")
	}
	return c.build(c.view)
}

// enterView ends a view change.
func (c *Replica) enterView(v uint64) {
	c.view, c.changing = v, false
	c.viewStart, c.viewHeight = c.now, c.height
	c.pendingNV, c.installed = nil, nil
	clear(c.shared)
	c.slot = nil
	c.slotStart, c.leaderSeen = c.now, c.now
	for k, svc := range c.vcs {
		if svc.ViewChange.View <= v {
			delete(c.vcs, k)
		}
	}
	c.pruneViews(v)
}

// pruneViews forgets votes of views before v: this node never votes in
// them again, nor counts votes of them.
func (c *Replica) pruneViews(v uint64) {
	for vs := range c.votes {
		if vs.view < v {
			delete(c.votes, vs)
		}
	}
	for vs := range c.signed {
		if vs.view < v {
			delete(c.signed, vs)
		}
	}
}

// onNewView starts the view a valid NEW-VIEW is for, if it is above this
// node's view, or is the view it is changing to: a node never votes in a
// view below one it asked for. That holds for a NEW-VIEW broadcast by the
// view's leader and for one a peer sends a lagging node (shareView); the
// lagging node may even be past the new view's first block, fetched since
// with its certificate: it starts the view without voting on that block.
func (c *Replica) onNewView(nv *NewView) error {
	if nv.View < c.view || (nv.View == c.view && !c.changing) {
		return ErrStale
	}
	p := &nv.Proposal
	v := p.Vote.Vote
	if v.View != nv.View || v.Epoch != c.vals.Epoch || v.Chain != c.chainID {
		return fmt.Errorf("%w: new view proposal for another view or epoch", ErrBadViewChange)
	}
	leader := c.leaderOf(nv.View)
	if string(p.Vote.Signer) != string(leader) {
		return fmt.Errorf("%w: new view not from the view's leader", ErrBadViewChange)
	}
	base := uint64(0)
	if nv.Cert != nil {
		base = nv.Cert.Height
	}
	if c.height < base {
		// Catch up first; the new view is checked in full afterwards.
		c.pendingNV = nv
		c.requestSync(leader)
		return nil
	}
	if err := c.checkCert(base, nv.Cert); err != nil {
		return err
	}
	if v.Seq != base+1 {
		return fmt.Errorf("%w: new view proposes height %d over a base of %d", ErrBadViewChange, v.Seq, base)
	}
	if !c.hooks.skipNewViewCheck {
		if err := c.checkNewView(nv, base); err != nil {
			return err
		}
	}
	if err := c.verifyVote(&p.Vote); err != nil {
		return fmt.Errorf("%w: %v", ErrBadViewChange, err)
	}
	c.enterView(nv.View)
	c.installed = nv
	c.attempts = 0
	var err error
	if c.height > base+1 {
		// The view's first block, and others after it, committed while
		// this node was away; it has them, certificates and all.
		c.log.Info("joined a view started while this node lagged", "view", nv.View, "height", c.height, "base", base)
	} else {
		err = c.onProposal(p, true)
	}
	c.replayFuture()
	return err
}

// shareEveryMs is how often a node sends the NEW-VIEW of its view to one
// lagging validator at most: a node that must fetch blocks before it can
// check the NEW-VIEW keeps it meanwhile (pendingNV).
func (c *Replica) shareEveryMs() int64 { return c.cfg.ViewChangeTimeoutMs / 2 }

// shareView sends the NEW-VIEW that started this node's view to the
// validator to, whose heartbeat or view change showed it in an earlier
// view, or still changing to this one. It missed the NEW-VIEW (it was
// down, paused or cut off when the leader sent it), and without it would
// wait in its view change, not voting, until the others changed view
// again. The NEW-VIEW proves itself (a quorum's view changes and the
// leader's signed proposal, which to checks in full as it would the
// leader's), so any validator in the view may pass it on, and to starts
// the view unless it asked for a later one.
//
// A node that asked for a later view alone (its timer fired with a stale
// quorum of view changes) stays out: its view change promised that it
// would vote in no lower view, and a new view's leader may count on that
// promise (the view change may be among the quorum that decides what the
// new view proposes), so voting here could let a block commit that a
// later view does not know of. It waits for the others to come to its
// view, where its view change counts. Sending the NEW-VIEW to a node
// still changing to this view (Heartbeat.Changing) before its timer
// fires, and restarting that timer when a quorum asks (onViewChange),
// make that rare.
func (c *Replica) shareView(to []byte) {
	nv := c.installed
	if nv == nil || c.changing || nv.View != c.view || nv.Proposal.Vote.Vote.Epoch != c.vals.Epoch ||
		!c.isValidator() || string(to) == string(c.id) {
		return
	}
	if last, ok := c.shared[string(to)]; ok && c.now-last < c.shareEveryMs() {
		return
	}
	c.shared[string(to)] = c.now
	c.out.Messages = append(c.out.Messages, Outbound{To: to, Msg: &Message{NewView: nv}})
}

// checkNewView re-derives what the new view must propose from its view
// changes: a quorum of valid ones for this view, none above the base
// height, and the proposal is the highest-view prepared block at base+1,
// byte for byte, or a fresh block of this view if none prepared.
func (c *Replica) checkNewView(nv *NewView, base uint64) error {
	signers := map[string]bool{}
	var best *PreparedCert
	for i := range nv.ViewChanges {
		svc := &nv.ViewChanges[i]
		vc := &svc.ViewChange
		if vc.View != nv.View || signers[string(svc.Signer)] {
			return fmt.Errorf("%w: new view holds a view change for another view or a repeated signer", ErrBadViewChange)
		}
		if vc.Height > base {
			return fmt.Errorf("%w: a view change reached height %d, above the new view's base %d", ErrBadViewChange, vc.Height, base)
		}
		if err := c.checkViewChange(svc, false); err != nil {
			return err
		}
		signers[string(svc.Signer)] = true
		if vc.Height == base && vc.Prepared != nil && (best == nil || vc.Prepared.View > best.View) {
			best = vc.Prepared
		}
	}
	if len(signers) < c.quorum() {
		return fmt.Errorf("%w: new view with %d view changes, quorum %d", ErrBadViewChange, len(signers), c.quorum())
	}
	bcid, err := blockCID(&nv.Proposal.Block)
	if err != nil {
		return err
	}
	h := &nv.Proposal.Block.Header
	if best != nil {
		if !bcid.Equals(best.Block.Cid) {
			return fmt.Errorf("%w: new view does not re-propose the prepared block", ErrBadViewChange)
		}
		return nil
	}
	if h.View != nv.View || string(h.Proposer) != string(nv.Proposal.Vote.Signer) {
		return fmt.Errorf("%w: nothing prepared, but the proposal is not a fresh block of view %d", ErrBadViewChange, nv.View)
	}
	return nil
}

// StepSync hands the core committed blocks, with their certificates,
// fetched from a peer after a SyncRequest. Each is checked against its
// epoch's validator set and executed in order; the first that does not
// hold stops the rest.
func (c *Replica) StepSync(blocks []Committed) error {
	defer func(prev bool) { c.trusted = prev }(c.trusted)
	c.trusted = false // nothing here went through a Verifier
	c.syncUntil = 0
	for _, cb := range blocks {
		b := cb.Block
		if b == nil || cb.Cert == nil || b.Header.Height <= c.height {
			continue
		}
		if err := c.applySynced(b, cb.Cert); err != nil {
			return err
		}
	}
	if nv := c.pendingNV; nv != nil && nv.Cert != nil && c.height >= nv.Cert.Height {
		c.pendingNV = nil
		_ = c.onNewView(nv)
	}
	if c.changing {
		c.tryNewView()
	}
	c.replayFuture()
	return nil
}

func (c *Replica) applySynced(b *chain.Block, cert *chain.CommitCert) error {
	bcid, err := blockCID(b)
	if err != nil {
		return err
	}
	h := &b.Header
	if h.Height != c.height+1 {
		return fmt.Errorf("pbft: sync: block %d after height %d", h.Height, c.height)
	}
	if err := c.verifyCert(cert, h.Epoch, h.Height, bcid, c.vals); err != nil {
		return fmt.Errorf("pbft: sync: block %d: %w", h.Height, err)
	}
	e, err := c.validate(b, bcid, false)
	if err != nil {
		return fmt.Errorf("pbft: sync: block %d: %w", h.Height, err)
	}
	c.commit(e.block, bcid, e, cert)
	return nil
}

// verifyCert checks a commit certificate with the quorum of set.
func (c *Replica) verifyCert(cert *chain.CommitCert, epoch, h uint64, bcid cid.Cid, set chain.ValidatorSet) error {
	q := chain.Quorum(len(set.Members)) - c.hooks.quorumDelta
	return chain.VerifyCommitCertWith(cert, c.chainID, epoch, h, bcid, set, q, c.verifyVote)
}
