package chain

import (
	"errors"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// world is a chain's state machine with named keys, for tests.
type world struct {
	t       *testing.T
	m       *Machine
	s       *MemState
	h       uint64
	time    int64
	keys    map[string]Signer
	ids     map[string][]byte
	admins  []Signer
	nonce   uint64
	genesis *Genesis
}

func newWorld(t *testing.T, mutate func(*Genesis)) *world {
	w := &world{t: t, keys: map[string]Signer{}, ids: map[string][]byte{}, h: 1, time: 1795000000000}
	g := sampleGenesis(t)
	for i, name := range []string{"agency", "agency2", "auditor", "auditor2", "datacenter"} {
		sk, id := testKey(t, byte(40+i))
		w.keys[name], w.ids[name] = sk, id
		role := name
		if len(role) > 6 && role[:6] == "agency" {
			role = "agency"
		}
		if role == "auditor2" {
			role = "auditor"
		}
		g.Members = append(g.Members, GenesisMember{PeerID: PeerIDString(id), Role: role, Name: name})
	}
	g.Admins.Keys = nil
	for i := byte(60); i < 63; i++ {
		sk, id := testKey(t, i)
		w.admins = append(w.admins, sk)
		g.Admins.Keys = append(g.Admins.Keys, PeerIDString(id))
	}
	g.Admins.Threshold = 2
	if mutate != nil {
		mutate(g)
	}
	w.genesis = g
	w.s = NewMemState()
	m, err := NewMachine(g, w.s)
	if err != nil {
		t.Fatal(err)
	}
	w.m = m
	return w
}

// tx makes a node transaction from sender.
func (w *world) tx(sender string, kind Kind, fill func(*TxBody)) *Tx {
	w.nonce++
	tx := &Tx{Body: TxBody{Chain: "auditnet-test", Kind: kind, Sender: w.ids[sender], Expires: w.h + 10, Nonce: w.nonce}}
	fill(&tx.Body)
	if err := tx.Sign(w.keys[sender]); err != nil {
		w.t.Fatal(err)
	}
	return tx
}

// adminTx makes an admin transaction signed by the first n admins.
func (w *world) adminTx(n int, kind Kind, fill func(*TxBody)) *Tx {
	w.nonce++
	tx := &Tx{Body: TxBody{Chain: "auditnet-test", Kind: kind, Expires: w.h + 10, Nonce: w.nonce}}
	fill(&tx.Body)
	for _, sk := range w.admins[:n] {
		if err := tx.Sign(sk); err != nil {
			w.t.Fatal(err)
		}
	}
	return tx
}

// block executes txs as the next block and returns the outcomes.
func (w *world) block(txs ...*Tx) []Outcome {
	w.t.Helper()
	list := make([]Tx, len(txs))
	for i, tx := range txs {
		list[i] = *tx
	}
	out, err := w.m.Execute(w.h, w.time, list)
	if err != nil {
		w.t.Fatalf("block %d: %v", w.h, err)
	}
	w.h++
	w.time += 1000
	return out
}

// one executes a single tx and returns its outcome.
func (w *world) one(tx *Tx) Outcome {
	w.t.Helper()
	out := w.block(tx)
	return out[len(out)-1]
}

func (w *world) refused(tx *Tx) {
	w.t.Helper()
	if err := w.m.Check(tx, w.h); !errors.Is(err, ErrInvalidTx) {
		w.t.Fatalf("%s from %x passed Check: %v", tx.Body.Kind, tx.Body.Sender, err)
	}
}

func (w *world) dataset(owner string, root string) Dataset {
	return Dataset{Owner: w.ids[owner], Root: testRoot(root)}
}

func (w *world) anchor(owner, root string, policy Policy) Dataset {
	w.t.Helper()
	if o := w.one(w.tx(owner, KindAnchor, func(b *TxBody) {
		b.Anchor = &Anchor{Root: testRoot(root), Size: 1 << 20, Name: root, Policy: policy}
	})); o.Code != OutcomeOK {
		w.t.Fatalf("anchor: %+v", o)
	}
	return w.dataset(owner, root)
}

func (w *world) access(auditor string, ds Dataset, provider string) (*Tx, Outcome) {
	tx := w.tx(auditor, KindAccess, func(b *TxBody) {
		b.Access = &AccessRequest{Dataset: ds, Provider: w.ids[provider], Nonce: []byte{byte(w.nonce)}, Purpose: "audit"}
	})
	return tx, w.one(tx)
}

func wantOutcome(t *testing.T, o Outcome, code, reason string) {
	t.Helper()
	if o.Code != code || o.Reason != reason {
		t.Fatalf("outcome %s/%s, want %s/%s", o.Code, o.Reason, code, reason)
	}
}

// TestAccessDecisions walks the decision of access requests through every
// reason of DESIGN.md: not-auditor, not-anchored, not-holder, no-grant,
// revoked, expired, rate-limited, and authorised through an owner's and
// an admins' grant and for an open dataset.
func TestAccessDecisions(t *testing.T) {
	w := newWorld(t, func(g *Genesis) { g.Params.MaxAccessPerWindow = 7 })
	restricted := w.anchor("agency", "ledger", PolicyRestricted)
	open := w.anchor("agency", "budget", PolicyOpen)

	_, o := w.access("agency2", open, "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonNotAuditor)
	_, o = w.access("auditor", w.dataset("agency", "never"), "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonNotAnchored)
	_, o = w.access("auditor", open, "agency2")
	wantOutcome(t, o, OutcomeDenied, ReasonNotHolder)
	_, o = w.access("auditor", open, "agency")
	wantOutcome(t, o, OutcomeAuthorised, "")
	_, o = w.access("auditor", restricted, "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonNoGrant)

	wantOutcome(t, w.one(w.tx("agency", KindGrant, func(b *TxBody) {
		b.Grant = &Grant{Dataset: restricted, Auditor: w.ids["auditor"]}
	})), OutcomeOK, "")
	_, o = w.access("auditor", restricted, "agency")
	wantOutcome(t, o, OutcomeAuthorised, "")

	wantOutcome(t, w.one(w.tx("agency", KindRevoke, func(b *TxBody) {
		b.Revoke = &Revoke{Dataset: restricted, Auditor: w.ids["auditor"]}
	})), OutcomeOK, "")
	_, o = w.access("auditor", restricted, "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonRevoked)

	// An admins' grant (2 of 3) that expires at the next block's time.
	wantOutcome(t, w.one(w.adminTx(2, KindGrant, func(b *TxBody) {
		b.Grant = &Grant{Dataset: restricted, Auditor: w.ids["auditor2"], Expires: w.time + 1000}
	})), OutcomeOK, "")
	_, o = w.access("auditor2", restricted, "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonExpired)

	// The auditor has sent 5 requests in this window; the cap is 7.
	w.access("auditor", open, "agency")
	w.access("auditor", open, "agency")
	_, o = w.access("auditor", open, "agency")
	wantOutcome(t, o, OutcomeDenied, ReasonRateLimited)
}

// TestWhoMaySendWhat checks the roles table: refusals never reach a block.
func TestWhoMaySendWhat(t *testing.T) {
	w := newWorld(t, nil)
	ds := w.anchor("agency", "ledger", PolicyRestricted)
	w.refused(w.tx("auditor", KindAnchor, func(b *TxBody) {
		b.Anchor = &Anchor{Root: testRoot("x"), Policy: PolicyOpen}
	}))
	w.refused(w.tx("agency2", KindGrant, func(b *TxBody) { // not the owner
		b.Grant = &Grant{Dataset: ds, Auditor: w.ids["auditor"]}
	}))
	w.refused(w.tx("agency", KindGrant, func(b *TxBody) { // not anchored
		b.Grant = &Grant{Dataset: w.dataset("agency", "other"), Auditor: w.ids["auditor"]}
	}))
	w.one(w.adminTx(2, KindGrant, func(b *TxBody) { b.Grant = &Grant{Dataset: ds, Auditor: w.ids["auditor"]} }))
	w.refused(w.tx("agency", KindRevoke, func(b *TxBody) { // admins granted it
		b.Revoke = &Revoke{Dataset: ds, Auditor: w.ids["auditor"]}
	}))
	addMember := func(b *TxBody) {
		b.Member = &Member{Op: MemberAdd, Peer: w.ids["auditor2"], Role: "agency", Name: "renamed"}
	}
	w.refused(w.adminTx(1, KindMember, addMember))
	wantOutcome(t, w.one(w.adminTx(2, KindMember, addMember)), OutcomeOK, "")
	w.refused(w.tx("agency", KindParams, func(b *TxBody) { p := DefaultParams(); b.Params = &p }))
	vk, _ := testKey(t, 10) // a validator
	v := Vote{Chain: "auditnet-test", Epoch: 1, View: 1, Seq: 3, Phase: PhasePrepare, Block: testRoot("a")}
	va, _ := SignVote(v, vk)
	v.Block = testRoot("b")
	vb, _ := SignVote(v, vk)
	evidence := func(b *TxBody) { b.Evidence = &Evidence{A: va, B: vb} }
	w.refused(w.tx("agency", KindEvidence, evidence)) // only the audit office sends evidence
	wantOutcome(t, w.one(w.tx("datacenter", KindEvidence, evidence)), OutcomeOK, "")
	same := func(b *TxBody) { b.Evidence = &Evidence{A: va, B: va} }
	w.refused(w.tx("datacenter", KindEvidence, same)) // no conflict

	// Replay: a committed tx is refused again; so is one outside the window.
	tx := w.tx("agency", KindAnchor, func(b *TxBody) { b.Anchor = &Anchor{Root: testRoot("r"), Policy: PolicyOpen} })
	w.one(tx)
	w.refused(tx)
	late := w.tx("agency", KindAnchor, func(b *TxBody) { b.Anchor = &Anchor{Root: testRoot("s"), Policy: PolicyOpen} })
	late.Body.Expires = w.h + w.genesis.Params.ReplayWindow + 1
	late.Sigs = nil
	late.Sign(w.keys["agency"])
	w.refused(late)
}

// TestServedAndNonService checks Served: one per request, from the named
// provider, within T, with a matching acknowledgement or none; and that an
// authorised request not served within T blocks becomes a non-service.
func TestServedAndNonService(t *testing.T) {
	w := newWorld(t, func(g *Genesis) { g.Params.AccessWindow = 5 })
	ds := w.anchor("agency", "ledger", PolicyOpen)
	req, o := w.access("auditor", ds, "agency")
	wantOutcome(t, o, OutcomeAuthorised, "")
	reqID, _ := req.ID()
	served := func(from string, ack *Ack) *Tx {
		return w.tx(from, KindServed, func(b *TxBody) { b.Served = &Served{Request: dagcbor.Link{Cid: reqID}, Ack: ack} })
	}
	ack := &Ack{Chain: "auditnet-test", Request: dagcbor.Link{Cid: reqID}, Bytes: 1 << 20, Blocks: 5}
	if err := SignAck(ack, w.keys["auditor"]); err != nil {
		t.Fatal(err)
	}
	w.refused(served("agency2", ack)) // not the named provider
	forged := *ack
	forged.Bytes = 2 << 20 // more than anchored, and no longer what was signed
	w.refused(served("agency", &forged))
	wantOutcome(t, w.one(served("agency", ack)), OutcomeServed, "")
	w.refused(served("agency", nil)) // once only

	// A second request, never served: after T blocks it is a non-service.
	req2, _ := w.access("auditor", ds, "agency")
	id2, _ := req2.ID()
	var settled []Outcome
	for i := 0; i < 7 && len(settled) == 0; i++ {
		for _, o := range w.block() {
			if o.Code == OutcomeNonService {
				settled = append(settled, o)
			}
		}
	}
	if len(settled) != 1 || !settled[0].Tx.Equals(id2) {
		t.Fatalf("non-services %+v, want request %s", settled, id2)
	}
	w.refused(w.tx("agency", KindServed, func(b *TxBody) { b.Served = &Served{Request: dagcbor.Link{Cid: id2}} }))

	// Past their deadlines neither record is in the state (the blocks
	// keep the access log), and a Served for either is still refused.
	for _, id := range []cid.Cid{reqID, id2} {
		if _, ok, err := LookupAccess(w.s, id); ok || err != nil {
			t.Fatalf("request %s still in the state past its deadline (%v)", id, err)
		}
	}
	w.refused(served("agency", ack))
	for _, k := range w.s.Keys() {
		if strings.HasPrefix(k, "access/") || strings.HasPrefix(k, "due/") || strings.HasPrefix(k, "accesses/") {
			t.Fatalf("state key %q left behind", k)
		}
	}
	if w.m.DeadlinePending() {
		t.Fatal("a deadline is pending with no open request")
	}
}

// TestExecutionIsDeterministic runs the same blocks on two machines and
// compares state and results roots, and checks that a block holding an
// invalid transaction is refused.
func TestExecutionIsDeterministic(t *testing.T) {
	a, b := newWorld(t, nil), newWorld(t, nil)
	var blocks [][]*Tx
	ds := a.dataset("agency", "ledger")
	blocks = append(blocks, []*Tx{a.tx("agency", KindAnchor, func(x *TxBody) {
		x.Anchor = &Anchor{Root: testRoot("ledger"), Size: 10, Policy: PolicyRestricted}
	})})
	blocks = append(blocks, []*Tx{
		a.tx("agency", KindGrant, func(x *TxBody) { x.Grant = &Grant{Dataset: ds, Auditor: a.ids["auditor"]} }),
		a.tx("auditor", KindAccess, func(x *TxBody) {
			x.Access = &AccessRequest{Dataset: ds, Provider: a.ids["agency"], Nonce: []byte{1}}
		}),
	})
	for _, blk := range blocks {
		ra, rb := a.block(blk...), b.block(blk...)
		rootA, _ := ResultsRoot(ra)
		rootB, _ := ResultsRoot(rb)
		if string(rootA) != string(rootB) || a.s.Root() != b.s.Root() {
			t.Fatal("two machines diverged on the same blocks")
		}
	}
	bad := a.tx("auditor", KindAnchor, func(x *TxBody) { x.Anchor = &Anchor{Root: testRoot("z"), Policy: PolicyOpen} })
	if _, err := a.m.Execute(a.h, a.time, []Tx{*bad}); !errors.Is(err, ErrInvalidTx) {
		t.Fatalf("block with an invalid tx: %v", err)
	}
}

// TestReplaySetExpiry: transactions that expire at one height, committed
// at several, are each refused as replays until that height and forgotten
// after it, with nothing of the replay set left in the state.
func TestReplaySetExpiry(t *testing.T) {
	w := newWorld(t, nil)
	expires := w.h + 5
	var txs []*Tx
	for i := range 3 {
		tx := w.tx("agency", KindAnchor, func(b *TxBody) {
			b.Anchor = &Anchor{Root: testRoot(string(rune('a' + i))), Policy: PolicyOpen}
			b.Expires = expires
		})
		tx.Sigs = nil
		if err := tx.Sign(w.keys["agency"]); err != nil {
			t.Fatal(err)
		}
		txs = append(txs, tx)
	}
	w.block(txs[0], txs[1]) // two at one height
	w.block()
	w.block(txs[2]) // one at another
	replayKeys := func() int {
		n := 0
		for _, k := range w.s.Keys() {
			for _, p := range []string{"expiring/", "expiry/"} {
				if len(k) >= len(p) && k[:len(p)] == p {
					n++
				}
			}
		}
		return n
	}
	if n := replayKeys(); n != 2+1 {
		t.Fatalf("%d replay-set keys, want 2 lists and their index", n)
	}
	for w.h <= expires {
		for _, tx := range txs {
			w.refused(tx)
		}
		w.block()
	}
	w.block() // the block after the expiry height settles it
	if n := replayKeys(); n != 0 {
		t.Fatalf("%d replay-set keys left after the expiry height", n)
	}
}

// TestReplayCacheAcrossForks: machines over two clones of one state, each
// given another block at the same height, share a replay cache and still
// each refuse only the replays of their own block, whatever order they
// are asked in. (Consensus tries blocks on clones and shares the cache.)
func TestReplayCacheAcrossForks(t *testing.T) {
	w := newWorld(t, nil)
	cache := NewReplayCache()
	w.m.ShareReplayCache(cache)
	w.block()
	anchor := func(root string) *Tx {
		return w.tx("agency", KindAnchor, func(b *TxBody) {
			b.Anchor = &Anchor{Root: testRoot(root), Policy: PolicyOpen}
			b.Expires = w.h + 3
		})
	}
	txA, txB := anchor("fork-a"), anchor("fork-b")
	fork := func(tx *Tx) *Machine {
		m, err := NewMachine(w.genesis, w.s.Clone())
		if err != nil {
			t.Fatal(err)
		}
		m.ShareReplayCache(cache)
		if _, err := m.Execute(w.h, w.time, []Tx{*tx}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	a, b := fork(txA), fork(txB)
	for range 2 { // the second round finds the lists cached
		for _, c := range []struct {
			m        *Machine
			own, not *Tx
		}{{a, txA, txB}, {b, txB, txA}, {a, txA, txB}} {
			if err := c.m.Check(c.own, w.h+1); !errors.Is(err, ErrInvalidTx) {
				t.Fatalf("a replay of the fork's own tx passed Check: %v", err)
			}
			if err := c.m.Check(c.not, w.h+1); err != nil {
				t.Fatalf("the other fork's tx refused: %v", err)
			}
		}
	}
	if err := w.m.Check(txA, w.h); err != nil {
		t.Fatalf("the state both forks were cloned from refuses a tx neither committed in it: %v", err)
	}
}

// TestOwnerCannotTakeOverAdminsGrant: an owner's Grant over a grant the
// admins made, still in force, is refused, so that the owner cannot make
// it its own and revoke it; after the admins revoke theirs, the owner may
// grant again.
func TestOwnerCannotTakeOverAdminsGrant(t *testing.T) {
	w := newWorld(t, nil)
	ds := w.anchor("agency", "ledger", PolicyRestricted)
	grant := func(b *TxBody) { b.Grant = &Grant{Dataset: ds, Auditor: w.ids["auditor"]} }
	if o := w.one(w.adminTx(2, KindGrant, grant)); o.Code != OutcomeOK {
		t.Fatalf("admins' grant: %+v", o)
	}
	w.refused(w.tx("agency", KindGrant, grant))
	revoke := func(b *TxBody) { b.Revoke = &Revoke{Dataset: ds, Auditor: w.ids["auditor"]} }
	w.refused(w.tx("agency", KindRevoke, revoke))
	if o := w.one(w.adminTx(2, KindRevoke, revoke)); o.Code != OutcomeOK {
		t.Fatalf("admins' revoke: %+v", o)
	}
	if o := w.one(w.tx("agency", KindGrant, grant)); o.Code != OutcomeOK {
		t.Fatalf("the owner's grant after the admins revoked theirs: %+v", o)
	}
}
