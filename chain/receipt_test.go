package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// rcChain is a small chain built by hand for the receipt tests. Validators
// v0..v5; epoch 0 is {v0..v3}, epoch 1 {v0..v4}, epoch 2 {v1..v5}.
//
//	height 1 (epoch 0): an open anchor and an access request (authorised)
//	height 2 (epoch 0): empty, the last block of epoch 0
//	height 3 (epoch 1): admins add v5 as a validator
//	height 4 (epoch 1): empty, the last block of epoch 1
//	height 5 (epoch 2): a restricted anchor and an access request denied
//	                    (no-grant), after the non-service of height 1's
//	                    request; first proposed in view 1, committed in view 2
//	height 6 (epoch 2): empty
//
// Each certificate holds exactly a quorum of votes, so that any vote
// changed breaks it. The main receipt (denied) proves the last tx and the
// last outcome of its block: headers do not commit to the number of leaves,
// and for the last leaf every other count changes the RFC 6962 path's
// shape, so any changed count is refused.
type rcChain struct {
	id         string
	genesis    *Genesis
	anchor     TrustAnchor // the genesis'
	checkpoint TrustAnchor // epoch 2, after height 4
	vals       []Signer
	agency     Signer
	auditor    Signer
	admins     []Signer
	sets       []ValidatorSet // by epoch
	setKeys    [][]Signer
	blocks     []*Block // by height; blocks[0] is nil
	outcomes   [][]Outcome
	certs      []CommitCert
	changes    []EpochChange // 0→1 at height 2, 1→2 at height 4

	denied     *Receipt // height 5, tx 1: the access request denied, from genesis
	anchored   *Receipt // height 5, tx 0: the restricted anchor, from genesis
	member     *Receipt // height 3, tx 0: the admins' member tx, from genesis
	authorised *Receipt // height 1, tx 1: in epoch 0, no changes
	fromCheck  *Receipt // denied, for the checkpoint: no changes listed
}

// rcKeys generates n Ed25519 keys from a fixed seed, so the chain (and the
// fuzz seeds) are the same on every run.
func rcKeys(t testing.TB, n int) []Signer {
	t.Helper()
	src := mrand.NewChaCha8([32]byte{'r', 'e', 'c', 'e', 'i', 'p', 't'})
	keys := make([]Signer, n)
	for i := range keys {
		_, sk, err := ed25519.GenerateKey(src)
		if err != nil {
			t.Fatal(err)
		}
		keys[i] = NewSigner(sk)
	}
	return keys
}

// rcPeers converts peer ID bytes to peer ID strings.
func rcPeers(ids [][]byte) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = PeerIDString(id)
	}
	return out
}

func rcLink(s string) dagcbor.Link { return dagcbor.Link{Cid: cidOf([]byte(s))} }

func rcHeaderCID(t testing.TB, h *Header) cid.Cid {
	t.Helper()
	_, c, err := Encode(h)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// rcVote signs a COMMIT vote.
func rcVote(t testing.TB, chain string, epoch, view, height uint64, block cid.Cid, sk Signer) SignedVote {
	t.Helper()
	sv, err := SignVote(Vote{Chain: chain, Epoch: epoch, View: view, Seq: height, Phase: PhaseCommit, Block: dagcbor.Link{Cid: block}}, sk)
	if err != nil {
		t.Fatal(err)
	}
	return sv
}

func newRCChain(t testing.TB) *rcChain {
	t.Helper()
	keys := rcKeys(t, 10)
	c := &rcChain{id: "auditnet-receipts", vals: keys[:6], agency: keys[6], auditor: keys[7], admins: keys[8:10]}
	for e, members := range [][]int{{0, 1, 2, 3}, {0, 1, 2, 3, 4}, {1, 2, 3, 4, 5}} {
		var ids [][]byte
		var sks []Signer
		for _, i := range members {
			ids, sks = append(ids, c.vals[i].ID()), append(sks, c.vals[i])
		}
		c.sets = append(c.sets, NewValidatorSet(uint64(e), ids...))
		c.setKeys = append(c.setKeys, sks)
	}
	c.makeGenesis(t)
	c.blocks, c.outcomes, c.certs = []*Block{nil}, [][]Outcome{nil}, []CommitCert{{}}

	budget := Dataset{Owner: c.agency.ID(), Root: rcLink("budget 2026")}
	ledger := Dataset{Owner: c.agency.ID(), Root: rcLink("ledger 2026")}
	open := c.tx(t, c.agency, KindAnchor, func(b *TxBody) {
		b.Anchor = &Anchor{Root: budget.Root, Size: 4096, Name: "budget 2026", Policy: PolicyOpen}
	})
	asked := c.tx(t, c.auditor, KindAccess, func(b *TxBody) {
		b.Access = &AccessRequest{Dataset: budget, Provider: budget.Owner, Nonce: []byte{1}, Purpose: "annual audit", Case: "2026-16"}
	})
	c.addBlock(t, 0, 0, 0, 0, []Tx{open, asked}, []string{OutcomeOK, OutcomeAuthorised}, nil)
	c.addBlock(t, 0, 0, 0, 1, nil, nil, nil)
	v5 := c.vals[5].ID()
	member := Tx{Body: TxBody{Chain: c.id, Kind: KindMember, Expires: 13, Nonce: 3,
		Member: &Member{Op: MemberAdd, Peer: v5, Role: "office", Name: "office-5", Validator: true}}}
	for _, sk := range c.admins {
		if err := member.Sign(sk); err != nil {
			t.Fatal(err)
		}
	}
	c.addBlock(t, 1, 0, 0, 1, []Tx{member}, []string{OutcomeOK}, nil)
	c.addBlock(t, 1, 0, 0, 2, nil, nil, nil)
	restricted := c.tx(t, c.agency, KindAnchor, func(b *TxBody) {
		b.Anchor = &Anchor{Root: ledger.Root, Size: 67122285, Name: "ledger 2026", Policy: PolicyRestricted}
	})
	denied := c.tx(t, c.auditor, KindAccess, func(b *TxBody) {
		b.Access = &AccessRequest{Dataset: ledger, Scope: Scope{Path: "invoices/2026.csv"}, Provider: ledger.Owner,
			Nonce: []byte("0123456789abcdef"), Purpose: "annual audit", Case: "2026-17"}
	})
	askedID, _ := asked.ID()
	nonService := Outcome{Tx: dagcbor.Link{Cid: askedID}, Code: OutcomeNonService}
	c.addBlock(t, 2, 1, 2, 2, []Tx{restricted, denied}, []string{OutcomeOK, OutcomeDenied + "/" + ReasonNoGrant}, &nonService)
	c.addBlock(t, 2, 0, 0, 2, nil, nil, nil)

	for _, h := range []int{2, 4} {
		c.changes = append(c.changes, EpochChange{Header: c.blocks[h].Header, Cert: c.certs[h], Validators: c.sets[c.blocks[h].Header.Epoch+1].IDs()})
	}
	c.checkpoint = TrustAnchor{Chain: c.id, Epoch: 2, Height: 4, Validators: rcPeers(c.sets[2].IDs())}
	c.denied = c.receipt(t, 5, 1, c.changes)
	c.anchored = c.receipt(t, 5, 0, c.changes)
	c.member = c.receipt(t, 3, 0, c.changes[:1])
	c.authorised = c.receipt(t, 1, 1, nil)
	c.fromCheck = c.receipt(t, 5, 1, nil)
	return c
}

func (c *rcChain) makeGenesis(t testing.TB) {
	t.Helper()
	g := &Genesis{ChainID: c.id, Time: 1795000000000, Params: DefaultParams()}
	g.Params.AccessWindow = 3
	for i, sk := range c.setKeys[0] {
		id := PeerIDString(sk.ID())
		g.Validators = append(g.Validators, Validator{PeerID: id, Addrs: []string{"/ip4/127.0.0.1/tcp/4040"}})
		g.Members = append(g.Members, GenesisMember{PeerID: id, Role: "office", Name: fmt.Sprint("office-", i)})
	}
	g.Members = append(g.Members,
		GenesisMember{PeerID: PeerIDString(c.agency.ID()), Role: "agency", Name: "agency"},
		GenesisMember{PeerID: PeerIDString(c.auditor.ID()), Role: "auditor", Name: "auditor"})
	for _, sk := range c.admins {
		g.Admins.Keys = append(g.Admins.Keys, PeerIDString(sk.ID()))
	}
	g.Admins.Threshold = 2
	anchor, err := AnchorFromGenesis(g)
	if err != nil {
		t.Fatal(err)
	}
	c.genesis, c.anchor = g, anchor
}

// tx makes a node transaction for the next block.
func (c *rcChain) tx(t testing.TB, sk Signer, kind Kind, fill func(*TxBody)) Tx {
	t.Helper()
	h := uint64(len(c.blocks))
	tx := Tx{Body: TxBody{Chain: c.id, Kind: kind, Sender: sk.ID(), Expires: h + 10, Nonce: h}}
	fill(&tx.Body)
	if err := tx.Sign(sk); err != nil {
		t.Fatal(err)
	}
	return tx
}

// addBlock appends the next block of epoch, first proposed in view and
// committed in certView, whose NextValidators names the set of epoch
// next. codes are the txs' outcomes ("code/reason"), after the deadline
// outcome first, if any.
func (c *rcChain) addBlock(t testing.TB, epoch, view, certView, next uint64, txs []Tx, codes []string, first *Outcome) {
	t.Helper()
	h := uint64(len(c.blocks))
	var outcomes []Outcome
	if first != nil {
		outcomes = append(outcomes, *first)
	}
	for i, code := range codes {
		id, err := txs[i].ID()
		if err != nil {
			t.Fatal(err)
		}
		o := Outcome{Tx: dagcbor.Link{Cid: id}, Code: code}
		if j := strings.IndexByte(code, '/'); j >= 0 {
			o.Code, o.Reason = code[:j], code[j+1:]
		}
		outcomes = append(outcomes, o)
	}
	txRoot, err := TxRoot(txs)
	if err != nil {
		t.Fatal(err)
	}
	results, err := ResultsRoot(outcomes)
	if err != nil {
		t.Fatal(err)
	}
	prev, err := c.genesis.CID()
	if err != nil {
		t.Fatal(err)
	}
	if h > 1 {
		prev = rcHeaderCID(t, &c.blocks[h-1].Header)
	}
	state := sha256.Sum256(fmt.Appendf(nil, "state after %d", h))
	set := c.sets[epoch]
	hdr := Header{
		Chain: c.id, Epoch: epoch, Height: h, Prev: dagcbor.Link{Cid: prev}, Time: c.genesis.Time + int64(h)*1000,
		TxRoot: txRoot, ResultsRoot: results, StateRoot: state[:], NextValidators: c.sets[next].Hash(),
		TxCount: uint64(len(txs)), ResultCount: uint64(len(outcomes)),
		Proposer: set.IDs()[view%uint64(len(set.Members))], View: view,
	}
	block := rcHeaderCID(t, &hdr)
	cert := CommitCert{Height: h, View: certView, Block: dagcbor.Link{Cid: block}}
	for _, sk := range c.setKeys[epoch][:Quorum(len(set.Members))] {
		cert.Votes = append(cert.Votes, rcVote(t, c.id, epoch, certView, h, block, sk))
	}
	c.blocks = append(c.blocks, &Block{Header: hdr, Txs: txs})
	c.outcomes = append(c.outcomes, outcomes)
	c.certs = append(c.certs, cert)
}

func (c *rcChain) receipt(t testing.TB, height, tx int, epochs []EpochChange) *Receipt {
	t.Helper()
	r, err := NewReceipt(c.blocks[height], c.outcomes[height], tx, c.certs[height], epochs)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rcClone deep-copies a receipt through its encoding.
func rcClone(t testing.TB, r *Receipt) *Receipt {
	t.Helper()
	b, err := EncodeReceipt(r)
	if err != nil {
		t.Fatal(err)
	}
	out, err := DecodeReceipt(b)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func mustVerify(t *testing.T, r *Receipt, a TrustAnchor) *Proven {
	t.Helper()
	p, err := VerifyReceipt(r, a)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestReceiptVerifies checks valid receipts from the genesis anchor and
// from trusted checkpoints, and the facts each proves.
func TestReceiptVerifies(t *testing.T) {
	c := newRCChain(t)
	deniedID, _ := c.blocks[5].Txs[1].ID()
	block5 := rcHeaderCID(t, &c.blocks[5].Header)
	wantDenied := func(t *testing.T, p *Proven) {
		t.Helper()
		a := p.Access
		switch {
		case !p.Tx.Equals(deniedID) || p.Kind != KindAccess || p.Chain != c.id:
			t.Fatalf("tx %s %s on %q", p.Tx, p.Kind, p.Chain)
		case !bytes.Equal(p.Sender, c.auditor.ID()) || len(p.Signers) != 1 || !bytes.Equal(p.Signers[0], p.Sender):
			t.Fatalf("sender %x signers %x", p.Sender, p.Signers)
		case p.Height != 5 || p.Epoch != 2 || p.Time != c.genesis.Time+5000 || !p.Block.Equals(block5):
			t.Fatalf("block %s height %d epoch %d time %d", p.Block, p.Height, p.Epoch, p.Time)
		case p.Code != OutcomeDenied || p.Reason != ReasonNoGrant:
			t.Fatalf("outcome %s/%s", p.Code, p.Reason)
		case a == nil || a.Purpose != "annual audit" || a.Case != "2026-17" || !bytes.Equal(a.Provider, c.agency.ID()) ||
			!a.Dataset.Root.Equals(rcLink("ledger 2026").Cid) || p.Anchor != nil:
			t.Fatalf("access %+v", a)
		}
	}
	t.Run("denied access from genesis, two epoch changes", func(t *testing.T) {
		p := mustVerify(t, c.denied, c.anchor)
		wantDenied(t, p)
		text := p.String()
		for _, want := range []string{deniedID.String(), "height 5", "epoch 2", "denied, reason no-grant",
			PeerIDString(c.auditor.ID()), `case "2026-17"`, "2026-"} {
			if !strings.Contains(text, want) {
				t.Errorf("%q does not say %q", text, want)
			}
		}
	})
	t.Run("denied access from a trusted checkpoint after the last change", func(t *testing.T) {
		wantDenied(t, mustVerify(t, c.fromCheck, c.checkpoint))
	})
	t.Run("denied access from a checkpoint in epoch 1", func(t *testing.T) {
		r := rcClone(t, c.denied)
		r.Epochs = r.Epochs[1:]
		wantDenied(t, mustVerify(t, r, TrustAnchor{Chain: c.id, Epoch: 1, Height: 2, Validators: rcPeers(c.sets[1].IDs())}))
	})
	t.Run("checkpoint read from JSON", func(t *testing.T) {
		b, err := json.Marshal(c.checkpoint)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), c.checkpoint.Validators[0]) {
			t.Fatalf("validators not written as peer IDs: %s", b)
		}
		path := filepath.Join(t.TempDir(), "checkpoint.json")
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatal(err)
		}
		a, err := ReadTrustAnchor(path)
		if err != nil {
			t.Fatal(err)
		}
		wantDenied(t, mustVerify(t, c.fromCheck, a))
	})
	t.Run("admin tx in epoch 1 names its admin signers", func(t *testing.T) {
		p := mustVerify(t, c.member, c.anchor)
		if p.Kind != KindMember || p.Sender != nil || len(p.Signers) != 2 || p.Epoch != 1 || p.Code != OutcomeOK {
			t.Fatalf("%+v", p)
		}
		for i, sk := range c.admins {
			if !bytes.Equal(p.Signers[i], sk.ID()) {
				t.Fatalf("signer %d is %x", i, p.Signers[i])
			}
		}
		if !strings.Contains(p.String(), "signed by admins "+PeerIDString(c.admins[0].ID())) {
			t.Fatal(p.String())
		}
	})
	t.Run("anchor tx names the dataset", func(t *testing.T) {
		p := mustVerify(t, c.anchored, c.anchor)
		if a := p.Anchor; a == nil || a.Size != 67122285 || a.Policy != PolicyRestricted || p.Access != nil {
			t.Fatalf("%+v", p)
		}
		if !strings.Contains(p.String(), "policy restricted") {
			t.Fatal(p.String())
		}
	})
	t.Run("authorised access in epoch 0 with no changes", func(t *testing.T) {
		p := mustVerify(t, c.authorised, c.anchor)
		if p.Code != OutcomeAuthorised || p.Height != 1 || p.Epoch != 0 || p.Reason != "" {
			t.Fatalf("%+v", p)
		}
	})
}

// rcMutation is one change to one field of a receipt.
type rcMutation struct {
	name string
	path []int // struct field and slice indexes from the Receipt
	op   string
}

var rcLinkType = reflect.TypeFor[dagcbor.Link]()

// rcWalk lists a mutation of every field reachable from v: each scalar,
// byte string and link is changed, each list loses its last element and
// repeats it.
func rcWalk(v reflect.Value, name string, path []int, out *[]rcMutation) {
	add := func(op string) {
		*out = append(*out, rcMutation{name: name + " " + op, path: append([]int(nil), path...), op: op})
	}
	switch {
	case v.Type() == rcLinkType:
		add("changed")
	case v.Kind() == reflect.Pointer:
		if !v.IsNil() {
			rcWalk(v.Elem(), name, path, out)
		}
	case v.Kind() == reflect.Struct:
		for i := range v.NumField() {
			if f := v.Type().Field(i); f.IsExported() {
				rcWalk(v.Field(i), name+"."+f.Name, append(path, i), out)
			}
		}
	case v.Kind() == reflect.Slice && v.Type().Elem().Kind() == reflect.Uint8:
		add("changed")
	case v.Kind() == reflect.Slice:
		if v.Len() > 0 {
			add("dropped last")
			add("repeated last")
		}
		for i := range v.Len() {
			rcWalk(v.Index(i), fmt.Sprintf("%s[%d]", name, i), append(path, i), out)
		}
	default:
		add("changed")
	}
}

// apply makes the mutation on r.
func (m rcMutation) apply(t *testing.T, r *Receipt) {
	v := reflect.ValueOf(r).Elem()
	for _, i := range m.path {
		for v.Kind() == reflect.Pointer {
			v = v.Elem()
		}
		if v.Kind() == reflect.Struct {
			v = v.Field(i)
		} else {
			v = v.Index(i)
		}
	}
	for v.Kind() == reflect.Pointer {
		v = v.Elem()
	}
	switch {
	case m.op == "dropped last":
		v.Set(v.Slice(0, v.Len()-1))
	case m.op == "repeated last":
		v.Set(reflect.Append(v, v.Index(v.Len()-1)))
	case v.Type() == rcLinkType:
		l := v.Interface().(dagcbor.Link)
		v.Set(reflect.ValueOf(dagcbor.Link{Cid: cidOf(append(l.Bytes(), 'x'))}))
	case v.Kind() == reflect.Slice:
		b := bytes.Clone(v.Bytes())
		if len(b) == 0 {
			b = []byte{1}
		} else {
			b[len(b)-1] ^= 1
		}
		v.SetBytes(b)
	case v.Kind() == reflect.String:
		v.SetString(v.String() + "x")
	case v.CanUint():
		v.SetUint(v.Uint() + 1)
	case v.CanInt():
		v.SetInt(v.Int() + 1)
	case v.Kind() == reflect.Bool:
		v.SetBool(!v.Bool())
	default:
		t.Fatalf("%s: no mutation for %s", m.name, v.Type())
	}
}

// TestReceiptRefusesEveryMutatedField is one bad vector per field: every
// header field, tx body field, index, count, path element, outcome field,
// certificate and vote field, and every field of each epoch change,
// changed on its own, and every list shortened or given a repeat.
func TestReceiptRefusesEveryMutatedField(t *testing.T) {
	c := newRCChain(t)
	for _, tc := range []struct {
		name   string
		r      *Receipt
		anchor TrustAnchor
	}{
		{"denied access from genesis", c.denied, c.anchor},
		{"admin tx", c.member, c.anchor},
		{"from checkpoint", c.fromCheck, c.checkpoint},
	} {
		var muts []rcMutation
		rcWalk(reflect.ValueOf(tc.r).Elem(), "Receipt", nil, &muts)
		if len(muts) < 50 {
			t.Fatalf("%s: only %d fields found", tc.name, len(muts))
		}
		for _, m := range muts {
			t.Run(tc.name+"/"+m.name, func(t *testing.T) {
				r := rcClone(t, tc.r)
				m.apply(t, r)
				if p, err := VerifyReceipt(r, tc.anchor); !errors.Is(err, ErrBadReceipt) {
					t.Fatalf("accepted (%v): %v", err, p)
				}
			})
		}
	}
}

// TestReceiptRefuses checks the named ways a proof can be partial, mixed
// or forged.
func TestReceiptRefuses(t *testing.T) {
	c := newRCChain(t)
	v := func(i int) Signer { return c.vals[i] }
	headerVote := func(sk Signer, epoch uint64) SignedVote {
		h := &c.denied.Header
		return rcVote(t, c.id, epoch, c.denied.Cert.View, h.Height, rcHeaderCID(t, h), sk)
	}
	changeVote := func(i int, sk Signer) SignedVote {
		h := &c.changes[i].Header
		return rcVote(t, c.id, h.Epoch, c.changes[i].Cert.View, h.Height, rcHeaderCID(t, h), sk)
	}
	for _, tc := range []struct {
		name   string
		mutate func(r *Receipt, a *TrustAnchor)
		want   error // also wrapped, beside ErrBadReceipt
	}{
		{"q-1 signatures on the header", func(r *Receipt, _ *TrustAnchor) { r.Cert.Votes = r.Cert.Votes[:3] }, ErrBadCert},
		{"q-1 signatures on an epoch change", func(r *Receipt, _ *TrustAnchor) { r.Epochs[0].Cert.Votes = r.Epochs[0].Cert.Votes[:2] }, ErrBadCert},
		{"a vote repeated to reach q", func(r *Receipt, _ *TrustAnchor) { r.Cert.Votes[3] = r.Cert.Votes[0] }, ErrBadCert},
		{"an old set's member signs for the new epoch", func(r *Receipt, _ *TrustAnchor) {
			r.Cert.Votes[3] = headerVote(v(0), 2) // v0 left after epoch 1
		}, ErrBadCert},
		{"a member signs with the previous epoch", func(r *Receipt, _ *TrustAnchor) { r.Cert.Votes[3] = headerVote(v(4), 1) }, ErrBadCert},
		{"the next epoch's member signs an epoch change", func(r *Receipt, _ *TrustAnchor) {
			r.Epochs[1].Cert.Votes[3] = changeVote(1, v(5)) // v5 joins in epoch 2
		}, ErrBadCert},
		{"first epoch change omitted", func(r *Receipt, _ *TrustAnchor) { r.Epochs = r.Epochs[1:] }, nil},
		{"last epoch change omitted", func(r *Receipt, _ *TrustAnchor) { r.Epochs = r.Epochs[:1] }, nil},
		{"all epoch changes omitted", func(r *Receipt, _ *TrustAnchor) { r.Epochs = nil }, nil},
		{"epoch changes reordered", func(r *Receipt, _ *TrustAnchor) { r.Epochs[0], r.Epochs[1] = r.Epochs[1], r.Epochs[0] }, nil},
		{"new set listed out of order", func(r *Receipt, _ *TrustAnchor) {
			vs := r.Epochs[0].Validators
			vs[0], vs[1] = vs[1], vs[0]
		}, nil},
		{"new set with a validator listed twice", func(r *Receipt, _ *TrustAnchor) {
			r.Epochs[0].Validators = append(r.Epochs[0].Validators, r.Epochs[0].Validators[4])
		}, nil},
		{"authorised claimed for a request denied for no grant", func(r *Receipt, _ *TrustAnchor) {
			r.Outcome.Code, r.Outcome.Reason = OutcomeAuthorised, ""
		}, ErrBadProof},
		{"another tx's outcome with its proof", func(r *Receipt, _ *TrustAnchor) {
			r.Outcome, r.OutcomeIndex, r.OutcomePath = c.anchored.Outcome, c.anchored.OutcomeIndex, c.anchored.OutcomePath
		}, nil},
		{"a tx swapped from another block", func(r *Receipt, _ *TrustAnchor) { r.Tx = c.authorised.Tx }, ErrBadProof},
		{"a tx and its path swapped from another block", func(r *Receipt, _ *TrustAnchor) {
			r.Tx, r.TxIndex, r.TxCount, r.TxPath = c.authorised.Tx, c.authorised.TxIndex, c.authorised.TxCount, c.authorised.TxPath
			r.Outcome, r.OutcomeIndex, r.OutcomeCount, r.OutcomePath = c.authorised.Outcome, c.authorised.OutcomeIndex, c.authorised.OutcomeCount, c.authorised.OutcomePath
		}, ErrBadProof},
		{"a header with the cert of another block of its epoch", func(r *Receipt, _ *TrustAnchor) { r.Cert = c.certs[6] }, ErrBadCert},
		{"a header with the cert of a block of another epoch", func(r *Receipt, _ *TrustAnchor) { r.Cert = c.certs[3] }, ErrBadCert},
		{"the cert of a header with the header of another", func(r *Receipt, _ *TrustAnchor) { r.Header = c.blocks[6].Header }, ErrBadProof},
		{"tx index out of range", func(r *Receipt, _ *TrustAnchor) { r.TxIndex = r.TxCount }, nil},
		{"outcome count zero", func(r *Receipt, _ *TrustAnchor) { r.OutcomeCount = 0 }, nil},
		{"anchor of another chain", func(_ *Receipt, a *TrustAnchor) { a.Chain = "auditnet-other" }, nil},
		{"anchor with another set", func(_ *Receipt, a *TrustAnchor) { a.Validators = rcPeers(c.sets[2].IDs()) }, ErrBadCert},
		{"anchor of a later epoch", func(_ *Receipt, a *TrustAnchor) { a.Epoch = 1 }, nil},
		{"anchor at the height of the first change", func(_ *Receipt, a *TrustAnchor) { a.Height = 2 }, nil},
		{"anchor of three validators", func(_ *Receipt, a *TrustAnchor) { a.Validators = a.Validators[:3] }, nil},
		{"anchor listing a validator twice", func(_ *Receipt, a *TrustAnchor) { a.Validators[3] = a.Validators[0] }, nil},
		{"checkpoint with the changes before it listed", func(_ *Receipt, a *TrustAnchor) { *a = c.checkpoint }, nil},
		{"checkpoint at the receipt's height", func(r *Receipt, a *TrustAnchor) {
			*a = c.checkpoint
			a.Height, r.Epochs = 5, nil
		}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rcClone(t, c.denied)
			a := c.anchor
			a.Validators = append([]string(nil), a.Validators...)
			tc.mutate(r, &a)
			p, err := VerifyReceipt(r, a)
			if !errors.Is(err, ErrBadReceipt) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("got %v (%v), want %v and %v", err, p, ErrBadReceipt, tc.want)
			}
		})
	}
	if _, err := VerifyReceipt(nil, c.anchor); !errors.Is(err, ErrBadReceipt) {
		t.Fatalf("nil receipt: %v", err)
	}
}

// TestReceiptEncodings round-trips a receipt through CBOR and JSON and
// checks the decoders' limits.
func TestReceiptEncodings(t *testing.T) {
	c := newRCChain(t)
	want := mustVerify(t, rcClone(t, c.denied), c.anchor)
	t.Run("cbor", func(t *testing.T) {
		b, err := EncodeReceipt(c.denied)
		if err != nil {
			t.Fatal(err)
		}
		r, err := DecodeReceipt(b)
		if err != nil {
			t.Fatal(err)
		}
		if again, _ := EncodeReceipt(r); !bytes.Equal(again, b) {
			t.Fatal("re-encoding differs")
		}
		if got := mustVerify(t, r, c.anchor); !reflect.DeepEqual(got, want) {
			t.Fatalf("got %v, want %v", got, want)
		}
	})
	t.Run("json", func(t *testing.T) {
		b, err := json.MarshalIndent(c.denied, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(b), `"/": "`+want.Tx.String()+`"`) {
			t.Fatalf("links are not written as CID strings: %s", b)
		}
		r, err := DecodeReceiptJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if got := mustVerify(t, r, c.anchor); got.String() != want.String() || !got.Tx.Equals(want.Tx) {
			t.Fatalf("got %v, want %v", got, want)
		}
		if _, err := DecodeReceiptJSON(append(b, "{}"...)); err == nil {
			t.Fatal("trailing JSON accepted")
		}
		if _, err := DecodeReceiptJSON([]byte(`{"Chain":"x","Extra":1}`)); err == nil {
			t.Fatal("unknown JSON field accepted")
		}
	})
	t.Run("size limit", func(t *testing.T) {
		if _, err := DecodeReceipt(make([]byte, MaxReceiptSize+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("cbor: %v", err)
		}
		if _, err := DecodeReceiptJSON(make([]byte, MaxReceiptSize+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("json: %v", err)
		}
	})
	t.Run("too many votes", func(t *testing.T) {
		r := rcClone(t, c.denied)
		for len(r.Cert.Votes) <= MaxValidators {
			r.Cert.Votes = append(r.Cert.Votes, r.Cert.Votes[0])
		}
		b, err := EncodeReceipt(r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeReceipt(b); !errors.Is(err, ErrBadReceipt) {
			t.Fatalf("%v", err)
		}
	})
}

// TestReceiptEveryBitMatters flips one bit at every byte position of a
// valid receipt's encoding (bit i mod 8 of byte i): the result never both
// decodes and verifies. The positions are checked in parallel chunks.
func TestReceiptEveryBitMatters(t *testing.T) {
	c := newRCChain(t)
	const chunks = 4
	for _, tc := range []struct {
		name   string
		r      *Receipt
		anchor TrustAnchor
	}{
		{"from genesis", c.denied, c.anchor},
		{"from checkpoint", c.fromCheck, c.checkpoint},
	} {
		enc, err := EncodeReceipt(tc.r)
		if err != nil {
			t.Fatal(err)
		}
		for k := range chunks {
			from, to := len(enc)*k/chunks, len(enc)*(k+1)/chunks
			t.Run(fmt.Sprintf("%s/bytes %d to %d", tc.name, from, to-1), func(t *testing.T) {
				t.Parallel()
				for i := from; i < to; i++ {
					bad := bytes.Clone(enc)
					bad[i] ^= 1 << (i % 8)
					r, err := DecodeReceipt(bad)
					if err != nil {
						continue
					}
					if p, err := VerifyReceipt(r, tc.anchor); err == nil {
						t.Fatalf("bit %d of byte %d flipped: verifies, proving %v", i%8, i, p)
					}
				}
			})
		}
	}
}

// TestNewReceiptRefuses checks the builder's refusals.
func TestNewReceiptRefuses(t *testing.T) {
	c := newRCChain(t)
	blk, outs := c.blocks[5], c.outcomes[5]
	for _, tc := range []struct {
		name     string
		index    int
		outcomes []Outcome
	}{
		{"index past the last tx", 2, outs},
		{"negative index", -1, outs},
		{"no outcome for the tx", 1, outs[:2]},
		{"outcome listed twice", 1, append(append([]Outcome(nil), outs...), outs[2])},
		{"outcomes of another block", 0, c.outcomes[1]},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if r, err := NewReceipt(blk, tc.outcomes, tc.index, c.certs[5], nil); err == nil {
				t.Fatalf("built %+v", r)
			}
		})
	}
	t.Run("txs that do not match the tx root", func(t *testing.T) {
		other := *blk
		other.Txs = other.Txs[:1]
		if _, err := NewReceipt(&other, outs, 0, c.certs[5], nil); err == nil {
			t.Fatal("built")
		}
	})
}

// TestAnchorFromGenesis checks the genesis anchor and that a bad genesis
// gives none.
func TestAnchorFromGenesis(t *testing.T) {
	c := newRCChain(t)
	a := c.anchor
	if a.Chain != c.id || a.Epoch != 0 || a.Height != 0 || len(a.Validators) != 4 {
		t.Fatalf("%+v", a)
	}
	for i, sk := range c.setKeys[0] {
		if got, want := a.Validators[i], PeerIDString(sk.ID()); got != want {
			t.Fatalf("validator %d is %s, want %s", i, got, want)
		}
	}
	g := *c.genesis
	g.Validators = g.Validators[:3]
	if _, err := AnchorFromGenesis(&g); err == nil {
		t.Fatal("anchor from a genesis of 3 validators")
	}
	path := filepath.Join(t.TempDir(), "bad.json")
	good, err := json.Marshal(c.checkpoint)
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{
		"bad peer ID":   `{"Chain":"c","Epoch":0,"Height":0,"Validators":["nope"]}`,
		"unknown field": strings.Replace(string(good), `"Chain"`, `"Extra":1,"Chain"`, 1),
		"no validators": `{"Chain":"c","Epoch":0,"Height":0,"Validators":[]}`,
		"no chain id":   strings.Replace(string(good), c.id, "", 1),
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := ReadTrustAnchor(path); err == nil {
			t.Fatalf("read an anchor with a %s", name)
		}
	}
}
