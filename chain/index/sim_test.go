package index

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

const (
	testChain = "auditnet-index-test"
	// baseTime is block 1's time; each block is a second later.
	baseTime = int64(1_795_000_000_000)
)

// blockTime is the time sim gives the block at height h.
func blockTime(h uint64) int64 { return baseTime + int64(h-1)*1000 }

// committed is a block and the outcomes the machine executed it to.
type committed struct {
	blk      *chain.Block
	outcomes []chain.Outcome
}

// sim is a chain with a real state machine and named keys: it builds
// signed transactions, executes blocks, and keeps them for the index.
type sim struct {
	t      testing.TB
	m      *chain.Machine
	h      uint64
	keys   map[string]chain.Signer
	ids    map[string][]byte
	admins []chain.Signer
	nonce  uint64
	blocks []committed
}

func newKey(t testing.TB) (chain.Signer, []byte) {
	t.Helper()
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sk := chain.NewSigner(key)
	return sk, sk.ID()
}

func peerString(id []byte) string { return chain.PeerIDString(id) }

// newSim starts a chain whose members are four office validators, a
// datacenter, and the agencies and auditors named, with three admins of
// whom two sign.
func newSim(t testing.TB, agencies, auditors []string, mutate func(*chain.Genesis)) *sim {
	t.Helper()
	s := &sim{t: t, h: 1, keys: map[string]chain.Signer{}, ids: map[string][]byte{}}
	g := &chain.Genesis{ChainID: testChain, Time: baseTime - 1000, Params: chain.DefaultParams()}
	add := func(name, role string) {
		sk, id := newKey(t)
		s.keys[name], s.ids[name] = sk, id
		g.Members = append(g.Members, chain.GenesisMember{PeerID: peerString(id), Role: role, Name: name})
	}
	for i := range 4 {
		name := fmt.Sprint("office", i)
		add(name, "office")
		g.Validators = append(g.Validators, chain.Validator{PeerID: peerString(s.ids[name]), Addrs: []string{"/ip4/127.0.0.1/tcp/4040"}})
	}
	add("datacenter", "datacenter")
	for _, name := range agencies {
		add(name, "agency")
	}
	for _, name := range auditors {
		add(name, "auditor")
	}
	for range 3 {
		sk, id := newKey(t)
		s.admins = append(s.admins, sk)
		g.Admins.Keys = append(g.Admins.Keys, peerString(id))
	}
	g.Admins.Threshold = 2
	if mutate != nil {
		mutate(g)
	}
	m, err := chain.NewMachine(g, chain.NewMemState())
	if err != nil {
		t.Fatal(err)
	}
	s.m = m
	return s
}

func testRoot(name string) dagcbor.Link {
	h, _ := mh.Sum([]byte(name), mh.SHA2_256, -1)
	return dagcbor.Link{Cid: cid.NewCidV1(cid.DagProtobuf, h)}
}

// tx is a transaction sent and signed by the node named sender.
func (s *sim) tx(sender string, kind chain.Kind, fill func(*chain.TxBody)) *chain.Tx {
	s.t.Helper()
	s.nonce++
	tx := &chain.Tx{Body: chain.TxBody{Chain: testChain, Kind: kind, Sender: s.ids[sender], Expires: s.h + 10, Nonce: s.nonce}}
	fill(&tx.Body)
	if err := tx.Sign(s.keys[sender]); err != nil {
		s.t.Fatal(err)
	}
	return tx
}

// adminTx is a transaction signed by two admins.
func (s *sim) adminTx(kind chain.Kind, fill func(*chain.TxBody)) *chain.Tx {
	s.t.Helper()
	s.nonce++
	tx := &chain.Tx{Body: chain.TxBody{Chain: testChain, Kind: kind, Expires: s.h + 10, Nonce: s.nonce}}
	fill(&tx.Body)
	for _, sk := range s.admins[:2] {
		if err := tx.Sign(sk); err != nil {
			s.t.Fatal(err)
		}
	}
	return tx
}

func (s *sim) dataset(owner, root string) chain.Dataset {
	return chain.Dataset{Owner: s.ids[owner], Root: testRoot(root)}
}

func (s *sim) anchor(owner, root string, policy chain.Policy) *chain.Tx {
	return s.tx(owner, chain.KindAnchor, func(b *chain.TxBody) {
		b.Anchor = &chain.Anchor{Root: testRoot(root), Size: 1 << 20, Name: root, Policy: policy}
	})
}

func (s *sim) grant(from string, ds chain.Dataset, auditor string) *chain.Tx {
	fill := func(b *chain.TxBody) { b.Grant = &chain.Grant{Dataset: ds, Auditor: s.ids[auditor]} }
	if from == "admins" {
		return s.adminTx(chain.KindGrant, fill)
	}
	return s.tx(from, chain.KindGrant, fill)
}

func (s *sim) access(auditor string, ds chain.Dataset, provider, purpose, caseID string) *chain.Tx {
	return s.tx(auditor, chain.KindAccess, func(b *chain.TxBody) {
		b.Access = &chain.AccessRequest{Dataset: ds, Provider: s.ids[provider], Nonce: []byte(fmt.Sprint(s.nonce)), Purpose: purpose, Case: caseID}
	})
}

// served is the provider's Served for req, acknowledged for n bytes by
// the auditor named, or unacknowledged when auditor is "".
func (s *sim) served(provider string, req *chain.Tx, auditor string, n uint64) *chain.Tx {
	id := txID(s.t, req)
	var ack *chain.Ack
	if auditor != "" {
		ack = &chain.Ack{Chain: testChain, Request: dagcbor.Link{Cid: id}, Bytes: n, Blocks: 3}
		if err := chain.SignAck(ack, s.keys[auditor]); err != nil {
			s.t.Fatal(err)
		}
	}
	return s.tx(provider, chain.KindServed, func(b *chain.TxBody) {
		b.Served = &chain.Served{Request: dagcbor.Link{Cid: id}, Ack: ack}
	})
}

// evidence is two conflicting votes signed by the validator named.
func (s *sim) evidence(sender, validator string) *chain.Tx {
	v := chain.Vote{Chain: testChain, Epoch: 1, View: 1, Seq: 3, Phase: chain.PhasePrepare, Block: testRoot("a")}
	a, err := chain.SignVote(v, s.keys[validator])
	if err != nil {
		s.t.Fatal(err)
	}
	v.Block = testRoot("b")
	b, err := chain.SignVote(v, s.keys[validator])
	if err != nil {
		s.t.Fatal(err)
	}
	return s.tx(sender, chain.KindEvidence, func(body *chain.TxBody) { body.Evidence = &chain.Evidence{A: a, B: b} })
}

// block executes txs as the next block and keeps it with its outcomes.
func (s *sim) block(txs ...*chain.Tx) committed {
	s.t.Helper()
	list := make([]chain.Tx, len(txs))
	for i, tx := range txs {
		list[i] = *tx
	}
	t := blockTime(s.h)
	outcomes, err := s.m.Execute(s.h, t, list)
	if err != nil {
		s.t.Fatalf("execute block %d: %v", s.h, err)
	}
	c := committed{blk: &chain.Block{Header: header(s.t, s.h, outcomes), Txs: list}, outcomes: outcomes}
	s.blocks = append(s.blocks, c)
	s.h++
	return c
}

// applyAll indexes every block sim has executed that ix lacks.
func (s *sim) applyAll(ix *Index) {
	s.t.Helper()
	for _, c := range s.blocks {
		if err := ix.Apply(c.blk.Header.Height, c.blk, c.outcomes); err != nil {
			s.t.Fatalf("apply block %d: %v", c.blk.Header.Height, err)
		}
	}
}

// header is the header of the block at height h with these outcomes.
func header(t testing.TB, h uint64, outcomes []chain.Outcome) chain.Header {
	t.Helper()
	root, err := chain.ResultsRoot(outcomes)
	if err != nil {
		t.Fatal(err)
	}
	return chain.Header{Chain: testChain, Height: h, Time: blockTime(h), ResultsRoot: root}
}

func txID(t testing.TB, tx *chain.Tx) cid.Cid {
	t.Helper()
	id, err := tx.ID()
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func openIndex(t testing.TB, dir string) *Index {
	t.Helper()
	ix, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ix.Close() })
	return ix
}
