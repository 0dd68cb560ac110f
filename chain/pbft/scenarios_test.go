package pbft

import (
	"testing"
	"time"

	"auditnet/chain"
)

// quietScenario is a seed's scenario without faults, for tests that add
// exactly the ones they are about.
func quietScenario(seed uint64, n int) scenario {
	return scenario{seed: seed, n: n, followers: 1, byz: map[int]byzKind{}, skew: map[int]time.Duration{},
		maxDelay: 5 * time.Millisecond, faultPhase: 3 * time.Second, healPhase: 6 * time.Second, txEvery: 40 * time.Millisecond}
}

func runScenario(t *testing.T, sc scenario) *sim {
	t.Helper()
	s := newSim(t, sc, newWorld(t, sc.n, 2, simParams()))
	if v := s.run(); len(v) > 0 {
		t.Fatalf("%s: %v", sc, v)
	}
	return s
}

// committed returns the blocks an honest node committed.
func (s *sim) committed() []Committed {
	for _, n := range s.nodes {
		if n.honest() {
			return n.blocks
		}
	}
	return nil
}

// TestEquivocationEvidenceCommitted runs a validator that votes for
// everything and requires the chain to hold evidence against it.
func TestEquivocationEvidenceCommitted(t *testing.T) {
	sc := quietScenario(7, 4)
	// A backup of view 0 (the leader never receives proposals to answer).
	ids := newWorld(t, 4, 2, simParams()).nodeIDs[:4]
	byz := 0
	for i, id := range ids {
		if string(id) > string(ids[byz]) {
			byz = i
		}
	}
	sc.byz[byz] = byzVoteAll
	s := runScenario(t, sc)
	for _, cb := range s.committed() {
		for _, tx := range cb.Block.Txs {
			if e := tx.Body.Evidence; e != nil && string(e.A.Signer) == string(s.nodes[byz].id) {
				return
			}
		}
	}
	t.Fatal("no evidence against the equivocating validator was committed")
}

// TestEpochChangeWithViewChange has an admin make a follower a validator
// while the first proposal of every checkpoint height and of the height
// after it is lost: the last block of the epoch and the first of the next
// both commit after a view change, with blocks in flight across the
// boundary. The new validator must sign certificates of the new epoch,
// and every invariant holds.
func TestEpochChangeWithViewChange(t *testing.T) {
	sc := quietScenario(11, 4)
	sc.valChange = true
	sc.faultPhase = 5 * time.Second
	first := map[uint64]uint64{} // height → the first view a proposal for it was seen in
	sc.filter = func(s *sim, from, to int, m *Message) bool {
		if m == nil || m.Proposal == nil {
			return false
		}
		v := m.Proposal.Vote.Vote
		if v.Seq%s.w.genesis.Params.CheckpointInterval > 1 {
			return false
		}
		if _, seen := first[v.Seq]; !seen {
			first[v.Seq] = v.View
		}
		return v.View == first[v.Seq]
	}
	s := runScenario(t, sc)
	newcomer := string(s.w.nodeIDs[sc.n])
	blocks := s.committed()
	signed := false
	boundary := -1
	for i, cb := range blocks {
		if i > 0 && cb.Block.Header.Epoch > blocks[i-1].Block.Header.Epoch && boundary < 0 {
			boundary = i - 1
		}
		for _, v := range cb.Cert.Votes {
			signed = signed || string(v.Signer) == newcomer
		}
	}
	if boundary < 0 || !signed {
		t.Fatalf("no epoch change (boundary %d), or the new validator signed no certificate (%v)", boundary, signed)
	}
	last, next := blocks[boundary], blocks[boundary+1]
	if last.Cert.View <= blocks[boundary-1].Cert.View || next.Cert.View <= last.Cert.View {
		t.Fatalf("no view change across the boundary at height %d: views %d, %d, %d", last.Block.Header.Height,
			blocks[boundary-1].Cert.View, last.Cert.View, next.Cert.View)
	}
	t.Logf("epoch 1 starts after height %d; commit views %d → %d → %d", last.Block.Header.Height,
		blocks[boundary-1].Cert.View, last.Cert.View, next.Cert.View)
}

// TestIdleChainGrowsOnlyForDeadlines checks the leader's batching rules on
// a quiet network: no transaction, no block; an authorised access makes
// the leader propose empty blocks until it falls due (a non-service after
// T blocks); then the chain stops again.
func TestIdleChainGrowsOnlyForDeadlines(t *testing.T) {
	w := newWorld(t, 4, 0, simParams())
	net := newBenchNet(t, w, 4)
	advance := func(ms int64) {
		for i := int64(0); i < ms; i += 10 {
			net.now += 10
			for _, c := range net.cores {
				c.Tick(net.now)
			}
			net.drain()
		}
	}
	advance(5000)
	if h := net.cores[0].Height(); h != 0 {
		t.Fatalf("an idle chain grew to height %d", h)
	}
	anchor := &chain.Tx{Body: chain.TxBody{Chain: simChain, Kind: chain.KindAnchor, Sender: w.agencyIDs[0], Expires: 50, Nonce: 1,
		Anchor: &chain.Anchor{Root: root(1), Size: 1 << 20, Name: "open", Policy: chain.PolicyOpen}}}
	if err := anchor.Sign(w.agencies[0]); err != nil {
		t.Fatal(err)
	}
	submitAndWait(t, net, anchor)
	h := net.cores[0].Height()
	advance(3000)
	if got := net.cores[0].Height(); got != h {
		t.Fatalf("with nothing pending the chain grew from %d to %d", h, got)
	}
	req := &chain.Tx{Body: chain.TxBody{Chain: simChain, Kind: chain.KindAccess, Sender: w.audIDs[0], Expires: h + 50, Nonce: 99,
		Access: &chain.AccessRequest{Dataset: chain.Dataset{Owner: anchor.Body.Sender, Root: anchor.Body.Anchor.Root},
			Provider: anchor.Body.Sender, Nonce: []byte{1}, Purpose: "audit"}}}
	if err := req.Sign(w.auditors[0]); err != nil {
		t.Fatal(err)
	}
	submitAndWait(t, net, req)
	T := w.genesis.Params.AccessWindow
	advance(int64(T+5) * DefaultIdleBlockIntervalMs)
	final := net.cores[0].Height()
	if final < h+1+T {
		t.Fatalf("the chain reached %d, the access falls due at %d", final, h+1+T+1)
	}
	advance(5000)
	if got := net.cores[0].Height(); got != final {
		t.Fatalf("after the deadline the chain kept growing: %d → %d", final, got)
	}
}

func submitAndWait(t *testing.T, net *benchNet, tx *chain.Tx) {
	t.Helper()
	id, _ := tx.ID()
	if err := net.cores[1].Submit(tx); err != nil {
		t.Fatal(err)
	}
	for range 1000 {
		net.now += 10
		for _, c := range net.cores {
			c.Tick(net.now)
		}
		net.drain()
		if net.cores[0].mempool.len() == 0 && !net.cores[0].mempool.has(id) && net.cores[0].Height() > 0 {
			return
		}
	}
	t.Fatal("transaction not committed")
}
