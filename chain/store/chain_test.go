package store

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/internal/dagcbor"
)

// The tests' chain is built as consensus builds it, without the network:
// each block is executed by chain.Machine on a clone of the state before
// it, its header carries the roots that execution gives, and a quorum of
// its epoch's validators sign its commit certificate with test keys.

const (
	testChainID     = "auditnet-store-test"
	testGenesisTime = 1795000000000
	// testValidators sign from genesis; node testValidators (the
	// newcomer) joins the set at the first epoch change.
	testValidators = 4
)

func testKey(label string, i int) chain.Signer {
	var seed [32]byte
	copy(seed[:], label)
	binary.BigEndian.PutUint32(seed[28:], uint32(i))
	return chain.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
}

// testParams are small windows, so that checkpoints, an epoch change,
// access deadlines and replay-set expiries (state deletions) all happen
// within a dozen blocks.
func testParams() chain.Params {
	p := chain.DefaultParams()
	p.CheckpointInterval, p.EpochDelay, p.ReplayWindow, p.AccessWindow = 4, 2, 6, 3
	p.MaxAccessPerWindow = 1 << 20
	return p
}

// testChain is a chain being built, or replayed from stored blocks.
type testChain struct {
	tb       testing.TB
	genesis  *chain.Genesis
	nodes    map[string]chain.Signer // validators and the newcomer, by peer ID
	newcomer chain.Signer
	agencies []chain.Signer
	auditors []chain.Signer
	admins   []chain.Signer

	state  *chain.MemState
	vals   chain.ValidatorSet
	h      uint64
	last   cid.Cid
	time   int64
	blocks []pbft.Committed

	nonce   uint64
	anchors []chain.Dataset
}

func newTestChain(tb testing.TB, params chain.Params) *testChain {
	tb.Helper()
	c := &testChain{tb: tb, nodes: map[string]chain.Signer{}}
	g := &chain.Genesis{ChainID: testChainID, Time: testGenesisTime, Params: params}
	for i := 0; i <= testValidators; i++ {
		sk := testKey("node", i)
		c.nodes[string(sk.ID())] = sk
		if i < testValidators {
			g.Validators = append(g.Validators, chain.Validator{PeerID: chain.PeerIDString(sk.ID())})
		} else {
			c.newcomer = sk
		}
		role := "office"
		if i == 0 {
			role = "datacenter"
		}
		g.Members = append(g.Members, chain.GenesisMember{PeerID: chain.PeerIDString(sk.ID()), Role: role, Name: fmt.Sprint("node-", i)})
	}
	for i := 0; i < 3; i++ {
		ag, au := testKey("agency", i), testKey("auditor", i)
		c.agencies, c.auditors = append(c.agencies, ag), append(c.auditors, au)
		g.Members = append(g.Members,
			chain.GenesisMember{PeerID: chain.PeerIDString(ag.ID()), Role: "agency", Name: fmt.Sprint("agency-", i)},
			chain.GenesisMember{PeerID: chain.PeerIDString(au.ID()), Role: "auditor", Name: fmt.Sprint("auditor-", i)})
		ad := testKey("admin", i)
		c.admins = append(c.admins, ad)
		g.Admins.Keys = append(g.Admins.Keys, chain.PeerIDString(ad.ID()))
	}
	g.Admins.Threshold = 2
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	c.genesis = g
	c.restart(pbft.Snapshot{})
	return c
}

// restart makes the chain continue from a snapshot (from genesis if it is
// the zero one), forgetting the blocks it built.
func (c *testChain) restart(snap pbft.Snapshot) {
	c.blocks, c.h = nil, snap.Header.Height
	if snap.State == nil {
		c.state = chain.NewMemState()
		c.last, _ = c.genesis.CID()
		c.time = c.genesis.Time
	} else {
		c.state = snap.State.(*chain.MemState)
		c.last, _ = (&chain.Block{Header: snap.Header}).CID()
		c.time = snap.Header.Time
	}
	m, err := chain.NewMachine(c.genesis, c.state)
	if err != nil {
		c.tb.Fatal(err)
	}
	if c.vals, err = m.Validators(); err != nil {
		c.tb.Fatal(err)
	}
}

func (c *testChain) height() uint64 { return c.h }

// execute runs txs as block h at time t on a clone of the state.
func (c *testChain) execute(h uint64, t int64, txs []chain.Tx) (*chain.MemState, []chain.Outcome, chain.ValidatorSet) {
	st := c.state.Clone().(*chain.MemState)
	m, err := chain.NewMachine(c.genesis, st)
	if err != nil {
		c.tb.Fatal(err)
	}
	outcomes, err := m.Execute(h, t, txs)
	if err != nil {
		c.tb.Fatalf("block %d: %v", h, err)
	}
	next, err := m.Validators()
	if err != nil {
		c.tb.Fatal(err)
	}
	return st, outcomes, next
}

// add executes txs as the next block, signs its certificate and appends
// it.
func (c *testChain) add(txs []chain.Tx) pbft.Committed {
	h := c.height() + 1
	t := c.time + 1000
	st, outcomes, next := c.execute(h, t, txs)
	raws := make([][]byte, len(txs))
	for i := range txs {
		raw, err := chain.EncodeTx(&txs[i])
		if err != nil {
			c.tb.Fatal(err)
		}
		raws[i] = raw
	}
	results, err := chain.ResultsRoot(outcomes)
	if err != nil {
		c.tb.Fatal(err)
	}
	root := st.Root()
	ids := c.vals.IDs()
	blk := &chain.Block{Header: chain.Header{
		Chain: testChainID, Epoch: c.vals.Epoch, Height: h, Prev: dagcbor.Link{Cid: c.last}, Time: t,
		TxRoot: chain.MerkleRoot(raws), ResultsRoot: results, StateRoot: root[:],
		TxCount: uint64(len(txs)), ResultCount: uint64(len(outcomes)), NextValidators: next.Hash(),
		Proposer: ids[h%uint64(len(ids))],
	}, Txs: txs}
	return c.append(blk, c.sign(blk), st, outcomes, next)
}

// sign returns the commit certificate of a quorum of the block's epoch.
func (c *testChain) sign(blk *chain.Block) *chain.CommitCert {
	bcid, err := blk.CID()
	if err != nil {
		c.tb.Fatal(err)
	}
	cert := &chain.CommitCert{Height: blk.Header.Height, Block: dagcbor.Link{Cid: bcid}}
	ids := c.vals.IDs()
	for _, id := range ids[:chain.Quorum(len(ids))] {
		v := chain.Vote{Chain: testChainID, Epoch: blk.Header.Epoch, Seq: blk.Header.Height, Phase: chain.PhaseCommit, Block: cert.Block}
		sv, err := chain.SignVote(v, c.nodes[string(id)])
		if err != nil {
			c.tb.Fatal(err)
		}
		cert.Votes = append(cert.Votes, sv)
	}
	return cert
}

func (c *testChain) append(blk *chain.Block, cert *chain.CommitCert, st *chain.MemState, outcomes []chain.Outcome, next chain.ValidatorSet) pbft.Committed {
	bcid, err := blk.CID()
	if err != nil {
		c.tb.Fatal(err)
	}
	cb := pbft.Committed{Block: blk, Cert: cert, Outcomes: outcomes, State: st.Clone()}
	c.blocks = append(c.blocks, cb)
	c.state, c.vals, c.last, c.time, c.h = st, next, bcid, blk.Header.Time, blk.Header.Height
	return cb
}

// replay executes a stored block (as a restarted node would receive it)
// on the chain's state and returns it with its state and outcomes.
func (c *testChain) replay(blk *chain.Block, cert *chain.CommitCert) pbft.Committed {
	st, outcomes, next := c.execute(blk.Header.Height, blk.Header.Time, blk.Txs)
	if root := st.Root(); !bytes.Equal(root[:], blk.Header.StateRoot) {
		c.tb.Fatalf("block %d: replayed state root differs from the header's", blk.Header.Height)
	}
	return c.append(blk, cert, st, outcomes, next)
}

func (c *testChain) sign1(tb testing.TB, tx *chain.Tx, sks ...chain.Signer) chain.Tx {
	for _, sk := range sks {
		if err := tx.Sign(sk); err != nil {
			tb.Fatal(err)
		}
	}
	return *tx
}

func testRoot(i uint64) dagcbor.Link {
	h, _ := mh.Sum([]byte(fmt.Sprint("dataset-", i)), mh.SHA2_256, -1)
	return dagcbor.Link{Cid: cid.NewCidV1(cid.DagProtobuf, h)}
}

// txs returns n transactions for the next block: anchors of new
// datasets, grants of them and access requests, which later fall due as
// non-services.
func (c *testChain) txs(n int) []chain.Tx {
	h := c.height() + 1
	expires := h + c.genesis.Params.ReplayWindow
	var out []chain.Tx
	for i := 0; i < n; i++ {
		c.nonce++
		body := chain.TxBody{Chain: testChainID, Expires: expires, Nonce: c.nonce}
		a := int(c.nonce % uint64(len(c.agencies)))
		au := int(c.nonce / 3 % uint64(len(c.auditors)))
		switch {
		case len(c.anchors) < 3 || c.nonce%3 == 0:
			body.Kind, body.Sender = chain.KindAnchor, c.agencies[a].ID()
			policy := chain.PolicyRestricted
			if c.nonce%2 == 0 {
				policy = chain.PolicyOpen
			}
			body.Anchor = &chain.Anchor{Root: testRoot(c.nonce), Size: 1 << 20, Name: fmt.Sprint("ds-", c.nonce), Policy: policy}
			out = append(out, c.sign1(c.tb, &chain.Tx{Body: body}, c.agencies[a]))
			c.anchors = append(c.anchors, chain.Dataset{Owner: c.agencies[a].ID(), Root: body.Anchor.Root})
		case c.nonce%3 == 1:
			ds := c.anchors[int(c.nonce)%len(c.anchors)]
			owner := c.agencyOf(ds)
			body.Kind, body.Sender = chain.KindGrant, owner.ID()
			body.Grant = &chain.Grant{Dataset: ds, Auditor: c.auditors[au].ID()}
			out = append(out, c.sign1(c.tb, &chain.Tx{Body: body}, owner))
		default:
			ds := c.anchors[int(c.nonce/5)%len(c.anchors)]
			body.Kind, body.Sender = chain.KindAccess, c.auditors[au].ID()
			body.Access = &chain.AccessRequest{Dataset: ds, Provider: ds.Owner, Nonce: binary.BigEndian.AppendUint64(nil, c.nonce), Purpose: "audit"}
			out = append(out, c.sign1(c.tb, &chain.Tx{Body: body}, c.auditors[au]))
		}
	}
	return out
}

func (c *testChain) agencyOf(ds chain.Dataset) chain.Signer {
	for _, a := range c.agencies {
		if bytes.Equal(a.ID(), ds.Owner) {
			return a
		}
	}
	c.tb.Fatalf("no agency owns %x", ds.Owner)
	return nil
}

// addValidator is the admins' transaction making the newcomer a
// validator, or no longer one.
func (c *testChain) addValidator() chain.Tx { return c.setValidator(true) }

func (c *testChain) setValidator(in bool) chain.Tx {
	c.nonce++
	tx := &chain.Tx{Body: chain.TxBody{Chain: testChainID, Kind: chain.KindMember, Expires: c.height() + 1 + c.genesis.Params.ReplayWindow, Nonce: c.nonce,
		Member: &chain.Member{Op: chain.MemberRole, Peer: c.newcomer.ID(), Role: "office", Name: "newcomer", Validator: in}}}
	return c.sign1(c.tb, tx, c.admins[:2]...)
}

// buildTestChain builds n blocks of perBlock transactions each. Block 2
// also makes the newcomer a validator and block 5 takes it out again, so
// that epoch 1 starts after block 4 and epoch 2 after block 8 (the first
// checkpoints at least L blocks later).
func buildTestChain(tb testing.TB, n, perBlock int) *testChain {
	tb.Helper()
	c := newTestChain(tb, testParams())
	for i := 1; i <= n; i++ {
		txs := c.txs(perBlock)
		switch i {
		case 2:
			txs = append(txs, c.setValidator(true))
		case 5:
			txs = append(txs, c.setValidator(false))
		}
		c.add(txs)
	}
	return c
}

// anchorTxs returns n anchors of new datasets, valid until expires.
func (c *testChain) anchorTxs(n int, expires uint64) []chain.Tx {
	out := make([]chain.Tx, n)
	for i := range out {
		c.nonce++
		a := c.agencies[c.nonce%uint64(len(c.agencies))]
		out[i] = c.sign1(c.tb, &chain.Tx{Body: chain.TxBody{Chain: testChainID, Kind: chain.KindAnchor, Sender: a.ID(), Expires: expires, Nonce: c.nonce,
			Anchor: &chain.Anchor{Root: testRoot(c.nonce), Size: 1 << 20, Name: fmt.Sprint("ds-", c.nonce), Policy: chain.PolicyOpen}}}, a)
	}
	return out
}
