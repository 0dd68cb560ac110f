package wal

import (
	"bytes"
	"crypto/ed25519"
	"encoding/binary"
	"errors"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/internal/dagcbor"
)

const testChain = "auditnet-wal-test"

// testGenesisTime is the genesis time of the tests' chain (ms).
const testGenesisTime = 1795000000000

// testKey derives an Ed25519 key from a label and a number.
func testKey(label string, i int) chain.Signer {
	var seed [32]byte
	copy(seed[:], label)
	binary.BigEndian.PutUint32(seed[28:], uint32(i))
	return chain.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
}

func link(s string) dagcbor.Link {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return dagcbor.Link{Cid: cid.NewCidV1(cid.DagProtobuf, h)}
}

// testTx is an agency's signed anchor.
func testTx(tb testing.TB, nonce uint64) *chain.Tx {
	tb.Helper()
	agency := testKey("agency", 0)
	tx := &chain.Tx{Body: chain.TxBody{Chain: testChain, Kind: chain.KindAnchor, Sender: agency.ID(), Expires: 50, Nonce: nonce,
		Anchor: &chain.Anchor{Root: link(fmt.Sprint("dataset-", nonce)), Size: 1 << 20, Name: "ledger-2026", Policy: chain.PolicyRestricted}}}
	if err := tx.Sign(agency); err != nil {
		tb.Fatal(err)
	}
	return tx
}

// sampleRecords is one record of every kind a validator persists, signed
// by real keys: a PREPARE with its block, a COMMIT, a prepared
// certificate with its block, a view change carrying a commit
// certificate, a prepared certificate and the block, and a checkpoint.
func sampleRecords(tb testing.TB) map[string]pbft.Record {
	tb.Helper()
	var vals []chain.Signer
	for i := range 4 {
		vals = append(vals, testKey("validator", i))
	}
	block := &chain.Block{
		Header: chain.Header{Chain: testChain, Epoch: 1, Height: 7, Prev: link("block-6"), Time: testGenesisTime + 7000,
			TxRoot: make([]byte, 32), ResultsRoot: make([]byte, 32), StateRoot: make([]byte, 32), TxCount: 2, ResultCount: 2,
			NextValidators: make([]byte, 32), Proposer: vals[2].ID(), View: 2},
		Txs: []chain.Tx{*testTx(tb, 1), *testTx(tb, 2)},
	}
	bcid, err := block.CID()
	if err != nil {
		tb.Fatal(err)
	}
	vote := func(s chain.Signer, seq uint64, phase chain.Phase, view uint64, b dagcbor.Link) chain.SignedVote {
		sv, err := chain.SignVote(chain.Vote{Chain: testChain, Epoch: 1, View: view, Seq: seq, Phase: phase, Block: b}, s)
		if err != nil {
			tb.Fatal(err)
		}
		return sv
	}
	sign := func(tag string, v any, s chain.Signer) []byte {
		msg, err := chain.SigningBytes(tag, v)
		if err != nil {
			tb.Fatal(err)
		}
		sig, err := s.Sign(msg)
		if err != nil {
			tb.Fatal(err)
		}
		return sig
	}
	blk := dagcbor.Link{Cid: bcid}
	prepare, commit := vote(vals[0], 7, chain.PhasePrepare, 2, blk), vote(vals[0], 7, chain.PhaseCommit, 2, blk)
	prepared := &pbft.PreparedCert{View: 2, Block: blk}
	cert := &chain.CommitCert{Height: 6, View: 1, Block: link("block-6")}
	for _, s := range vals[:3] {
		prepared.Votes = append(prepared.Votes, vote(s, 7, chain.PhasePrepare, 2, blk))
		cert.Votes = append(cert.Votes, vote(s, 6, chain.PhaseCommit, 1, link("block-6")))
	}
	vc := pbft.ViewChange{Chain: testChain, Epoch: 1, View: 3, Height: 6, Cert: cert, Prepared: prepared}
	cp := pbft.Checkpoint{Chain: testChain, Epoch: 1, Height: 8, Block: link("block-8")}
	return map[string]pbft.Record{
		"prepare":    {Vote: &prepare, Block: block},
		"commit":     {Vote: &commit},
		"prepared":   {Prepared: prepared, Block: block},
		"viewchange": {ViewChange: &pbft.SignedViewChange{ViewChange: vc, Signer: vals[0].ID(), Sig: sign(pbft.TagViewChange, &vc, vals[0]), Block: block}},
		"checkpoint": {Checkpoint: &pbft.SignedCheckpoint{Checkpoint: cp, Signer: vals[0].ID(), Sig: sign(pbft.TagCheckpoint, &cp, vals[0])}},
	}
}

// TestRecordRoundTrip encodes a record of every kind, stores it in a log,
// reads it back and decodes it to the same record, tagged with the
// height it is about.
func TestRecordRoundTrip(t *testing.T) {
	heights := map[string]uint64{"prepare": 7, "commit": 7, "prepared": 7, "viewchange": 7, "checkpoint": 8}
	recs := sampleRecords(t)
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	var order []string
	for name, r := range recs {
		e, err := EncodeRecord(r)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if e.Height != heights[name] {
			t.Fatalf("%s: tagged height %d, want %d", name, e.Height, heights[name])
		}
		if err := w.Append(e); err != nil {
			t.Fatal(err)
		}
		order = append(order, name)
	}
	if err := w.Sync(); err != nil {
		t.Fatal(err)
	}
	mustClose(t, w)
	_, es := mustOpen(t, Config{Dir: dir})
	if len(es) != len(order) {
		t.Fatalf("%d entries, want %d", len(es), len(order))
	}
	for i, name := range order {
		got, err := DecodeRecord(es[i])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		// Decoded transactions keep their encoding (chain.Tx.Seal), so
		// records are compared by theirs.
		gotEnc, _, err := chain.Encode(got)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		wantEnc, _, err := chain.Encode(recs[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if !bytes.Equal(gotEnc, wantEnc) {
			t.Fatalf("%s: decoded %+v, want %+v", name, got, recs[name])
		}
		if v := got.Vote; v != nil {
			if err := v.Verify(); err != nil {
				t.Fatalf("%s: the decoded vote's signature: %v", name, err)
			}
		}
	}
}

// TestDecodeRecordRefuses: malformed records, a wrong height tag,
// non-canonical bytes and oversized entries are refused, and
// EncodeRecord refuses the malformed records too.
func TestDecodeRecordRefuses(t *testing.T) {
	recs := sampleRecords(t)
	vote, cp, prep, vc := recs["commit"].Vote, recs["checkpoint"].Checkpoint, recs["prepared"].Prepared, recs["viewchange"].ViewChange
	block := recs["prepare"].Block
	badBlock := *block
	badBlock.Txs = append([]chain.Tx(nil), block.Txs...)
	badBlock.Txs[1].Sigs = nil
	mixed := *prep
	mixed.Votes = append([]chain.SignedVote(nil), prep.Votes...)
	mixed.Votes[1].Vote.Seq++
	empty := *prep
	empty.Votes = nil
	malformed := map[string]pbft.Record{
		"no kind":                       {},
		"no kind, a block":              {Block: block},
		"two kinds":                     {Vote: vote, Checkpoint: cp},
		"block beside a checkpoint":     {Checkpoint: cp, Block: block},
		"block beside a view change":    {ViewChange: vc, Block: block},
		"block with an unsigned tx":     {Vote: vote, Block: &badBlock},
		"prepared without votes":        {Prepared: &empty},
		"prepared for two sequences":    {Prepared: &mixed},
		"view change with a bad block":  {ViewChange: &pbft.SignedViewChange{ViewChange: vc.ViewChange, Signer: vc.Signer, Sig: vc.Sig, Block: &badBlock}},
		"view change at the last slot":  {ViewChange: &pbft.SignedViewChange{ViewChange: pbft.ViewChange{Chain: testChain, Height: 1<<64 - 1}}},
		"view change, unsigned prepare": {ViewChange: &pbft.SignedViewChange{ViewChange: pbft.ViewChange{Chain: testChain, Prepared: &empty}}},
	}
	for name, r := range malformed {
		if _, err := EncodeRecord(r); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: EncodeRecord: %v", name, err)
		}
		b, _, err := chain.Encode(&r)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := DecodeRecord(Entry{Height: 7, Data: b}); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: DecodeRecord: %v", name, err)
		}
	}
	good, err := EncodeRecord(recs["checkpoint"])
	if err != nil {
		t.Fatal(err)
	}
	unknown, _, err := chain.Encode(&struct {
		Checkpoint *pbft.SignedCheckpoint `cbor:"checkpoint"`
		Extra      int                    `cbor:"extra"`
	}{cp, 1})
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string]Entry{
		"wrong height":    {Height: good.Height + 1, Data: good.Data},
		"trailing byte":   {Height: good.Height, Data: append(bytes.Clone(good.Data), 0)},
		"unknown field":   {Height: good.Height, Data: unknown},
		"empty":           {Height: good.Height},
		"over the limit":  {Height: good.Height, Data: append(bytes.Clone(good.Data), make([]byte, MaxEntrySize)...)},
		"truncated bytes": {Height: good.Height, Data: good.Data[:len(good.Data)-1]},
	}
	for name, e := range bad {
		if _, err := DecodeRecord(e); !errors.Is(err, ErrBadRecord) {
			t.Errorf("%s: DecodeRecord: %v", name, err)
		}
	}
}

// TestRestoreFromLog drives a real core: the leader of four validators
// proposes a block (a PREPARE with its block), its view then times out
// (a view change); the records go through a log, and the core restored
// from what the log gives back is in the view change it was in.
func TestRestoreFromLog(t *testing.T) {
	g := &chain.Genesis{ChainID: testChain, Time: testGenesisTime, Params: chain.DefaultParams()}
	for i := range 4 {
		id := chain.PeerIDString(testKey("validator", i).ID())
		role := "office"
		if i == 0 {
			role = "datacenter"
		}
		g.Validators = append(g.Validators, chain.Validator{PeerID: id})
		g.Members = append(g.Members, chain.GenesisMember{PeerID: id, Role: role, Name: fmt.Sprint("node-", i)})
	}
	g.Members = append(g.Members, chain.GenesisMember{PeerID: chain.PeerIDString(testKey("agency", 0).ID()), Role: "agency", Name: "agency"})
	for i := range 2 {
		g.Admins.Keys = append(g.Admins.Keys, chain.PeerIDString(testKey("admin", i).ID()))
	}
	g.Admins.Threshold = 2
	if err := g.Validate(); err != nil {
		t.Fatal(err)
	}
	now := int64(testGenesisTime + 1000)
	var cfg pbft.Config
	var core *pbft.Replica
	for i := 0; core == nil && i < 4; i++ { // the leader of view 0
		cfg = pbft.Config{Genesis: g, Signer: testKey("validator", i)}
		c, err := pbft.New(cfg, now)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(c.Leader(), c.ID()) {
			core = c
		}
	}
	if err := core.Submit(testTx(t, 1)); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	w, _ := mustOpen(t, Config{Dir: dir})
	kinds := map[string]int{}
	persist := func() {
		for core.HasReady() {
			rd := core.Ready()
			for _, r := range rd.Persist {
				e, err := EncodeRecord(r)
				if err != nil {
					t.Fatal(err)
				}
				if err := w.Append(e); err != nil {
					t.Fatal(err)
				}
				switch {
				case r.Vote != nil && r.Block != nil:
					kinds["prepare"]++
				case r.ViewChange != nil:
					kinds["viewchange"]++
				}
			}
			if err := w.Sync(); err != nil {
				t.Fatal(err)
			}
			core.Advance()
		}
	}
	core.Tick(now + 10)
	persist()
	// Time passes in ticks shorter than the timeout (a single long gap
	// would read as a paused node, which restarts its timers instead).
	for ms := int64(100); ms <= 2*pbft.DefaultViewChangeTimeoutMs; ms += 100 {
		core.Tick(now + 10 + ms)
		persist()
	}
	if kinds["prepare"] != 1 || kinds["viewchange"] != 1 {
		t.Fatalf("the core persisted %v, want a PREPARE with its block and a view change", kinds)
	}
	wantView, wantChanging := core.View()
	mustClose(t, w)

	_, es := mustOpen(t, Config{Dir: dir})
	var recs []pbft.Record
	for _, e := range es {
		r, err := DecodeRecord(e)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, r)
	}
	restored, err := pbft.Restore(cfg, now+5000, nil, recs)
	if err != nil {
		t.Fatal(err)
	}
	if view, changing := restored.View(); view != wantView || changing != wantChanging || !changing {
		t.Fatalf("restored in view %d (changing %v), the core was in %d (changing %v)", view, changing, wantView, wantChanging)
	}
}
