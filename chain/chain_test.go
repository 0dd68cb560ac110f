package chain

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/internal/dagcbor"
)

func sampleBlock(t testing.TB) *Block {
	t.Helper()
	_, proposer := testKey(t, 5)
	var txs []Tx
	for _, name := range []string{"anchor", "grant", "access"} {
		txs = append(txs, *sampleTxs(t)[name])
	}
	return &Block{
		Header: Header{
			Chain: "auditnet-test", Epoch: 1, Height: 31, Prev: testRoot("prev"), Time: 1795000000000,
			TxRoot: make([]byte, 32), ResultsRoot: make([]byte, 32), StateRoot: make([]byte, 32),
			NextValidators: make([]byte, 32), Proposer: proposer, View: 2,
		},
		Txs: txs,
	}
}

func sampleGenesis(t testing.TB) *Genesis {
	t.Helper()
	g := &Genesis{ChainID: "auditnet-test", Time: 1795000000000, Params: DefaultParams()}
	for i := byte(10); i < 14; i++ {
		_, id := testKey(t, i)
		g.Validators = append(g.Validators, Validator{PeerID: PeerIDString(id), Addrs: []string{"/ip4/127.0.0.1/tcp/4040"}})
		g.Members = append(g.Members, GenesisMember{PeerID: PeerIDString(id), Role: "office", Name: fmt.Sprint("office-", i)})
	}
	_, a := testKey(t, 3)
	_, b := testKey(t, 4)
	g.Admins = Admins{Keys: []string{PeerIDString(a), PeerIDString(b)}, Threshold: 2}
	return g
}

// TestTxRoundTripAndSignatures encodes, decodes and verifies a transaction
// of every kind, and checks that a changed body, a signature from another
// key and a repeated signer are refused.
func TestTxRoundTripAndSignatures(t *testing.T) {
	for name, tx := range sampleTxs(t) {
		t.Run(name, func(t *testing.T) {
			b, err := EncodeTx(tx)
			if err != nil {
				t.Fatal(err)
			}
			got, err := DecodeTx(b)
			if err != nil {
				t.Fatal(err)
			}
			if err := got.VerifySignatures(); err != nil {
				t.Fatal(err)
			}
			again, _ := EncodeTx(got)
			if string(again) != string(b) {
				t.Fatal("re-encoding differs")
			}
			tampered := *got
			tampered.Body.Nonce++
			if err := tampered.VerifySignatures(); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("changed body: %v", err)
			}
			twice := *got
			twice.Sigs = append(append([]Signature(nil), got.Sigs...), got.Sigs[0])
			if err := twice.VerifySignatures(); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("repeated signer: %v", err)
			}
		})
	}
}

// TestTxValidateRefuses lists the shapes Validate refuses.
func TestTxValidateRefuses(t *testing.T) {
	txs := sampleTxs(t)
	_, other := testKey(t, 9)
	for _, tc := range []struct {
		name   string
		mutate func(*Tx)
		want   string
	}{
		{"no chain id", func(tx *Tx) { tx.Body.Chain = "" }, "chain id"},
		{"unknown kind", func(tx *Tx) { tx.Body.Kind = "mint" }, "unknown tx kind"},
		{"second body", func(tx *Tx) { tx.Body.Grant = txs["grant"].Body.Grant }, "body"},
		{"no signature", func(tx *Tx) { tx.Sigs = nil }, "0 signatures"},
		{"sender is not the signer", func(tx *Tx) { tx.Body.Sender = other }, "exactly its sender's signature"},
		{"bad policy", func(tx *Tx) { a := *tx.Body.Anchor; a.Policy = "public"; tx.Body.Anchor = &a }, "policy"},
		{"no sender", func(tx *Tx) { tx.Body.Sender = nil }, "no sender"},
		{"sender a hashed peer ID", func(tx *Tx) { tx.Body.Sender = testRoot("key").Cid.Hash() }, "not an Ed25519 peer ID"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := *txs["anchor"]
			tc.mutate(&tx)
			if err := tx.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want an error saying %q", err, tc.want)
			}
		})
	}
	member := *txs["member"]
	member.Body.Sender = other
	if err := member.Validate(); err == nil {
		t.Fatal("an admin tx with a sender passed")
	}
}

// TestDecodeRefusesNonCanonicalAndOversized checks the decoders' hard
// edges: bytes over the limit, trailing bytes, and a non-canonical integer.
func TestDecodeRefusesNonCanonicalAndOversized(t *testing.T) {
	b, _ := EncodeTx(sampleTxs(t)["anchor"])
	if _, err := DecodeTx(append(b, 0)); err == nil {
		t.Fatal("trailing byte accepted")
	}
	if _, err := DecodeTx(make([]byte, MaxTxSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized: %v", err)
	}
	v := Vote{Chain: "c", Epoch: 1, Phase: PhaseCommit, Block: testRoot("b")}
	enc, _ := dagcbor.Marshal(SignedVote{Vote: v, Signer: []byte{1}, Sig: []byte{2}})
	// Epoch 1 is the byte 0x01; write it as the two-byte form 0x18 0x01.
	i := strings.Index(string(enc), "epoch") + len("epoch")
	bad := append(append(append([]byte{}, enc[:i]...), 0x18), enc[i:]...)
	if _, err := DecodeVote(bad); err == nil {
		t.Fatal("non-minimal integer accepted")
	}
}

// TestVotesConflict checks equivocation detection: the same slot, two
// blocks, one signer.
func TestVotesConflict(t *testing.T) {
	sk, _ := testKey(t, 5)
	v := Vote{Chain: "c", Epoch: 1, View: 3, Seq: 9, Phase: PhasePrepare, Block: testRoot("a")}
	a, _ := SignVote(v, sk)
	v.Block = testRoot("b")
	b, _ := SignVote(v, sk)
	if err := a.Verify(); err != nil {
		t.Fatal(err)
	}
	if !Conflicts(&a, &b) {
		t.Fatal("two blocks for one slot do not conflict")
	}
	v.View = 4
	c, _ := SignVote(v, sk)
	if Conflicts(&a, &c) {
		t.Fatal("votes in different views conflict")
	}
	b.Vote.Seq = 10
	if b.Verify() == nil {
		t.Fatal("a changed vote verifies")
	}
}

// TestGenesisValidate checks the genesis rules.
func TestGenesisValidate(t *testing.T) {
	if err := sampleGenesis(t).Validate(); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		mutate func(*Genesis)
	}{
		{"three validators", func(g *Genesis) { g.Validators = g.Validators[:3] }},
		{"duplicate validator", func(g *Genesis) { g.Validators[1] = g.Validators[0] }},
		{"threshold above m", func(g *Genesis) { g.Admins.Threshold = 3 }},
		{"threshold zero", func(g *Genesis) { g.Admins.Threshold = 0 }},
		{"duplicate validator, once as a CID", func(g *Genesis) {
			id, _ := ParsePeerID(g.Validators[0].PeerID)
			g.Validators[1].PeerID = cid.NewCidV1(cid.Libp2pKey, mh.Multihash(id)).String()
		}},
		{"bad peer", func(g *Genesis) { g.Validators[0].PeerID = "nope" }},
		{"hashed peer ID", func(g *Genesis) { g.Admins.Keys[0] = PeerIDString(testRoot("key").Cid.Hash()) }},
		{"validator not a member", func(g *Genesis) { g.Members = g.Members[1:] }},
		{"auditor validator", func(g *Genesis) { g.Members[0].Role = "auditor" }},
		{"zero window", func(g *Genesis) { g.Params.ReplayWindow = 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g := sampleGenesis(t)
			tc.mutate(g)
			if g.Validate() == nil {
				t.Fatal("accepted")
			}
		})
	}
}
