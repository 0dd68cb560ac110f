package pbft

import (
	"crypto/sha256"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// byzKind is how a simulated validator misbehaves.
type byzKind int

const (
	honestNode byzKind = iota
	// byzTwins: two nodes run with one key, each hearing half the network.
	byzTwins
	// byzEquivocate: as leader, proposes two blocks, one to each half.
	byzEquivocate
	// byzForgeVC: sends view changes with forged or insufficient
	// certificates.
	byzForgeVC
	// byzForgeNV: as a new view's leader, ignores the prepared block or
	// sends too few view changes.
	byzForgeNV
	// byzWindow: sends votes and checkpoints far out of the window.
	byzWindow
	// byzInvalidTx: as leader, puts invalid transactions in its blocks.
	byzInvalidTx
	// byzCensor: as leader, never includes a transaction.
	byzCensor
	// byzVoteAll: votes for every proposal it sees, and for made-up
	// blocks too.
	byzVoteAll
	// byzTime: as leader, stamps blocks in the past or the far future.
	byzTime
	// byzSilent: sends nothing.
	byzSilent
	numByzKinds
)

func (k byzKind) String() string {
	return [...]string{"honest", "twins", "equivocate", "forge-vc", "forge-nv", "window", "invalid-tx", "censor",
		"vote-all", "time", "silent"}[k]
}

// hooksFor sets the test-only switches of a node: the broken-core
// switches on honest nodes when a scenario asks, the misbehaviours that
// live inside the core on Byzantine ones.
func (s *sim) hooksFor(n *simNode) testHooks {
	var h testHooks
	switch n.kind {
	case honestNode:
		if s.sc.brokenQuorum {
			h.quorumDelta = 1
		}
		h.skipNewViewCheck = s.sc.skipNewViewCheck
	case byzForgeNV:
		h.newViewBlock = func(c *Replica, b *chain.Block) *chain.Block {
			fresh, err := c.build(c.view)
			if err != nil {
				return b
			}
			return fresh
		}
	case byzInvalidTx:
		flip := 0
		h.txs = func(txs []chain.Tx) []chain.Tx {
			flip++
			if flip%2 == 0 && len(txs) > 0 {
				return append(txs, txs[0]) // the same tx twice
			}
			stranger := s.load.next(uint64(flip), 1)
			sk, id := key(s.tb, "stranger", flip)
			stranger.Body.Sender = id
			stranger.Sigs = nil
			if err := stranger.Sign(sk); err != nil {
				s.tb.Fatal(err)
			}
			return append(txs, *stranger)
		}
	case byzCensor:
		h.txs = func([]chain.Tx) []chain.Tx { return nil }
	case byzTime:
		flip := 0
		h.stamp = func(t, last int64) int64 {
			flip++
			if flip%2 == 0 {
				return last
			}
			return t + 60_000
		}
	case byzForgeVC:
		flip := 0
		h.viewChange = func(vc ViewChange) ViewChange {
			flip++
			switch {
			case vc.Prepared != nil && flip%2 == 0:
				p := *vc.Prepared
				p.Votes = p.Votes[:len(p.Votes)-1] // one short of a quorum
				vc.Prepared = &p
			case vc.Prepared != nil:
				p := *vc.Prepared
				p.Votes = append([]chain.SignedVote(nil), p.Votes...)
				p.Votes[0].Sig = append([]byte{}, p.Votes[0].Sig...)
				p.Votes[0].Sig[0] ^= 1 // a forged signature
				vc.Prepared = &p
			case flip%3 == 0:
				vc.Height += 3 // a height it cannot prove
			default:
				// A prepared certificate for a block nobody proposed,
				// with made-up signatures.
				fake := fakeCID(flip)
				p := &PreparedCert{View: vc.View - min(vc.View, 1), Block: dagcbor.Link{Cid: fake}}
				for _, id := range s.w.nodeIDs[:s.sc.n] {
					p.Votes = append(p.Votes, chain.SignedVote{Vote: chain.Vote{Chain: simChain, Epoch: vc.Epoch, View: p.View,
						Seq: vc.Height + 1, Phase: chain.PhasePrepare, Block: p.Block}, Signer: id, Sig: make([]byte, 64)})
				}
				vc.Prepared = p
			}
			return vc
		}
	}
	return h
}

func fakeCID(i int) cid.Cid {
	sum := sha256.Sum256([]byte(fmt.Sprint("fake-", i)))
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.DagCBOR, h)
}

// byzOutgoing turns one message a node's core wants to send into what the
// node actually sends.
func (s *sim) byzOutgoing(n *simNode, out Outbound) []Outbound {
	m := out.Msg
	switch n.kind {
	case byzSilent:
		return nil
	case byzEquivocate:
		if m.Proposal != nil && out.To == nil {
			return s.equivocate(n, m.Proposal)
		}
	case byzForgeNV:
		if m.Vote != nil && m.Vote.Vote.Phase == chain.PhaseCommit && out.To == nil {
			// Its commit goes to one node only, so that one commits
			// and the others may not: the prepared block must then
			// survive the view change.
			for _, other := range s.nodes {
				if string(other.id) != string(n.id) {
					return []Outbound{{To: other.id, Msg: m}}
				}
			}
		}
		if m.NewView != nil && len(m.NewView.ViewChanges) > 0 && s.r.IntN(2) == 0 {
			nv := *m.NewView
			nv.ViewChanges = nv.ViewChanges[1:]
			return []Outbound{{Msg: &Message{NewView: &nv}}}
		}
	case byzWindow:
		extra := []Outbound{out}
		h, v := n.core.Height(), n.core.view
		for _, far := range []struct{ view, seq uint64 }{{v, h + 50}, {v + 40, h + 1}, {v, h + 1 + 3*s.w.genesis.Params.CheckpointInterval}} {
			sv, err := chain.SignVote(chain.Vote{Chain: simChain, Epoch: n.core.vals.Epoch, View: far.view, Seq: far.seq,
				Phase: chain.PhaseCommit, Block: dagcbor.Link{Cid: fakeCID(int(far.seq))}}, n.key)
			if err == nil {
				extra = append(extra, Outbound{Msg: &Message{Vote: &sv}})
			}
		}
		cp := Checkpoint{Chain: simChain, Epoch: n.core.vals.Epoch, Height: h + 1000, Block: dagcbor.Link{Cid: fakeCID(7)}}
		if signer, sig, err := sign(TagCheckpoint, &cp, n.key); err == nil {
			extra = append(extra, Outbound{Msg: &Message{Checkpoint: &SignedCheckpoint{Checkpoint: cp, Signer: signer, Sig: sig}}})
		}
		return extra
	}
	return []Outbound{out}
}

// equivocate sends the proposal to one half of the nodes and another
// valid block for the same slot, signed too, to the other half.
func (s *sim) equivocate(n *simNode, p *Proposal) []Outbound {
	c := n.core
	saved := c.hooks.stamp
	c.hooks.stamp = func(t, last int64) int64 { return t + 1 }
	alt, err := c.build(p.Vote.Vote.View)
	c.hooks.stamp = saved
	if err != nil {
		return []Outbound{{Msg: &Message{Proposal: p}}}
	}
	altCID, _ := blockCID(alt)
	v := p.Vote.Vote
	v.Block = dagcbor.Link{Cid: altCID}
	sv, err := chain.SignVote(v, n.key)
	if err != nil {
		return []Outbound{{Msg: &Message{Proposal: p}}}
	}
	altProp := &Proposal{Block: *alt, Vote: sv}
	var outs []Outbound
	for j, other := range s.nodes {
		if string(other.id) == string(n.id) {
			continue
		}
		msg := &Message{Proposal: p}
		if j%2 == 1 {
			msg = &Message{Proposal: altProp}
		}
		outs = append(outs, Outbound{To: other.id, Msg: msg})
	}
	return outs
}

// byzAfterStep lets a vote-for-everything node answer a proposal it got
// with votes for it and for a block nobody proposed.
func (s *sim) byzAfterStep(n *simNode, m *Message) {
	if n.kind != byzVoteAll || n.crashed {
		return
	}
	var p *Proposal
	switch {
	case m.Proposal != nil:
		p = m.Proposal
	case m.NewView != nil:
		p = &m.NewView.Proposal
	default:
		return
	}
	v := p.Vote.Vote
	for _, phase := range []chain.Phase{chain.PhasePrepare, chain.PhaseCommit} {
		for _, b := range []cid.Cid{v.Block.Cid, fakeCID(int(v.Seq))} {
			sv, err := chain.SignVote(chain.Vote{Chain: simChain, Epoch: v.Epoch, View: v.View, Seq: v.Seq, Phase: phase, Block: dagcbor.Link{Cid: b}}, n.key)
			if err == nil {
				s.route(n, Outbound{Msg: &Message{Vote: &sv}})
			}
		}
	}
}
