package pbft

import (
	"bytes"
	"reflect"
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

// TestViewChangeAcrossEpochBoundary has an admin make a follower a
// validator (4 validators, quorum 3, then 5, quorum 4) and keeps two
// validators from committing the last block of epoch 0: they prepare it
// but hear no COMMIT and cannot sync, so they time out and sign a view
// change in epoch 0. Then they get the block, while the others, in epoch
// 1, change to the same view and count only view changes of epoch 1 (3,
// short of 4 without the two). The two must sign their view change again
// in the new epoch for the chain to go on. A restart from a log that lost
// that second view change signs it again, byte for byte.
func TestViewChangeAcrossEpochBoundary(t *testing.T) {
	sc := quietScenario(5, 4)
	sc.valChange = true
	sc.faultPhase = 6 * time.Second
	late := map[int]bool{1: true, 2: true}
	var last uint64 // the last block of epoch 0, once proposed
	type disk struct {
		blocks []Committed
		wal    []Record
	}
	var saved *disk // a late validator's disk once it signed again
	sc.filter = func(s *sim, from, to int, m *Message) bool {
		if m != nil && m.Proposal != nil && last == 0 {
			if h := m.Proposal.Block.Header; !bytes.Equal(h.NextValidators, s.nodes[from].core.vals.Hash()) {
				last = h.Height
			}
		}
		if m != nil && m.ViewChange != nil && late[from] && m.ViewChange.ViewChange.Epoch == 1 && saved == nil {
			n := s.nodes[from]
			saved = &disk{blocks: append([]Committed(nil), n.blocks...), wal: append([]Record(nil), n.wal...)}
		}
		c := s.nodes[to].core
		if last == 0 || !late[to] || c == nil || c.height >= last {
			return false
		}
		// Hold the block back until it signed a view change in epoch 0.
		if vc := c.myVC; c.changing && vc != nil && vc.ViewChange.Epoch == 0 && vc.ViewChange.Height == last-1 {
			return false
		}
		return m == nil || (m.Vote != nil && m.Vote.Vote.Seq == last && m.Vote.Vote.Phase == chain.PhaseCommit)
	}
	s := runScenario(t, sc)
	if last == 0 || saved == nil {
		t.Fatalf("no epoch change (last block of epoch 0: %d), or no late validator signed a view change in epoch 1", last)
	}
	// Which view changes the late validators signed around the boundary.
	var old, again *SignedViewChange
	for i := range late {
		for _, r := range s.nodes[i].wal {
			if svc := r.ViewChange; svc != nil {
				switch vc := svc.ViewChange; {
				case vc.Epoch == 0 && vc.Height == last-1:
					old = svc
				case vc.Epoch == 1 && vc.Height == last && old != nil && vc.View == old.ViewChange.View && string(svc.Signer) == string(old.Signer):
					again = svc
				}
			}
		}
		if again != nil {
			break
		}
		old = nil
	}
	if again == nil {
		t.Fatalf("no late validator signed a view change for one view in epoch 0 at height %d and again in epoch 1 at height %d", last-1, last)
	}
	if c := s.committed(); uint64(len(c)) <= last+1 || c[last].Cert.View < again.ViewChange.View {
		t.Fatalf("epoch 1 did not move to view %d", again.ViewChange.View)
	}
	t.Logf("view %d asked for in epoch 0 at height %d and again in epoch 1 at height %d", again.ViewChange.View, last-1, last)

	// Restarts of a late validator from its disk just after it signed
	// again: with that view change, and without it.
	at := -1
	for i, r := range saved.wal {
		if r.ViewChange != nil && r.ViewChange.ViewChange.Epoch == 1 {
			at = i
		}
	}
	if at < 0 {
		t.Fatal("the saved log holds no view change of epoch 1")
	}
	signed := saved.wal[at].ViewChange
	cfg := s.config(s.nodes[s.byID[string(signed.Signer)][0]])
	full, err := Restore(cfg, 0, saved.blocks, saved.wal)
	if err != nil {
		t.Fatal(err)
	}
	if !full.changing || !reflect.DeepEqual(full.myVC, signed) || len(full.out.Persist) != 0 {
		t.Fatalf("restored with its view change of epoch 1: changing %v, view change %+v, %d new records", full.changing, full.myVC, len(full.out.Persist))
	}
	lost, err := Restore(cfg, 0, saved.blocks, append(saved.wal[:at:at], saved.wal[at+1:]...))
	if err != nil {
		t.Fatal(err)
	}
	rd := lost.Ready()
	if !lost.changing || lost.view != signed.ViewChange.View || len(rd.Persist) != 1 || !reflect.DeepEqual(rd.Persist[0].ViewChange, signed) {
		t.Fatalf("restored without its view change of epoch 1: changing %v in view %d, records %+v; want it signed again: %+v", lost.changing, lost.view, rd.Persist, signed)
	}
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

// TestSlowClockLeaderReplaced runs the leader of view 0 with a clock 5
// minutes behind the others. Its block times, prev + 1 ms each, soon lag
// the honest clocks by more than Δ; the backups refuse them, and a view
// change hands the chain to an honest leader. From the first block
// committed after that view change on, every block time is within Δ of
// the honest clocks when the block commits, and chain time keeps up.
func TestSlowClockLeaderReplaced(t *testing.T) {
	sc := quietScenario(23, 4)
	ids := newWorld(t, 4, 2, simParams()).nodeIDs[:4]
	slow := 0
	for i, id := range ids {
		if string(id) < string(ids[slow]) {
			slow = i // the leader of view 0: the lowest ID
		}
	}
	sc.skew[slow] = -5 * time.Minute
	sc.faultPhase, sc.healPhase = 4*time.Second, 8*time.Second
	s := runScenario(t, sc)
	if got := string(s.nodes[slow].core.leaderOf(0)); got != string(ids[slow]) {
		t.Fatalf("node %d does not lead view 0", slow)
	}
	delta := s.w.genesis.Params.MaxClockSkewMs
	honestClock := func(at time.Duration) int64 { return simGenesisTime + (time.Second + at).Milliseconds() }
	blocks := s.committed()
	changed, checked := false, 0
	for _, cb := range blocks {
		h := cb.Block.Header.Height
		changed = changed || cb.Cert.View > 0
		if !changed {
			continue
		}
		checked++
		if lag := honestClock(s.check.committedAt[h]) - cb.Block.Header.Time; lag > delta || lag < -delta {
			t.Errorf("block %d (view %d, proposer %x) committed with time %d ms off the honest clocks (Δ %d)",
				h, cb.Cert.View, cb.Block.Header.Proposer, -lag, delta)
		}
	}
	if checked < 10 {
		t.Fatalf("%d blocks committed after a view change, of %d", checked, len(blocks))
	}
	// Clients submit until halfway through the heal phase; the chain is
	// idle after that, so its time keeps up until then.
	loadEnd := honestClock(sc.faultPhase + sc.healPhase/2)
	if last := blocks[len(blocks)-1].Block.Header.Time; loadEnd-last > 2*delta {
		t.Fatalf("chain time %d ms behind the honest clocks when the load stopped", loadEnd-last)
	}
	t.Logf("%d blocks, %d after the first view change, last commit view %d", len(blocks), checked, blocks[len(blocks)-1].Cert.View)
}
