package chain

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"flag"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	dc "auditnet/internal/dagcbor"
	"auditnet/internal/golden"
)

var update = flag.Bool("update", false, "rewrite the golden vectors in testdata/")

// testKey is a deterministic Ed25519 node key and its peer ID.
func testKey(t testing.TB, seed byte) (Signer, []byte) {
	t.Helper()
	sk := NewSigner(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{seed}, 32)))
	return sk, sk.ID()
}

func testRoot(s string) dc.Link {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return dc.Link{Cid: cid.NewCidV1(cid.DagProtobuf, h)}
}

// sampleTxs is one signed transaction of every kind, made with fixed keys.
func sampleTxs(t testing.TB) map[string]*Tx {
	agencyKey, agency := testKey(t, 1)
	auditorKey, auditor := testKey(t, 2)
	adminA, _ := testKey(t, 3)
	adminB, _ := testKey(t, 4)
	validatorKey, _ := testKey(t, 5)
	ds := Dataset{Owner: agency, Root: testRoot("ledger")}
	node := func(k Kind, sender []byte, sk Signer, fill func(*TxBody)) *Tx {
		tx := &Tx{Body: TxBody{Chain: "auditnet-test", Kind: k, Sender: sender, Expires: 120, Nonce: 7}}
		fill(&tx.Body)
		if err := tx.Sign(sk); err != nil {
			t.Fatal(err)
		}
		return tx
	}
	admin := func(k Kind, fill func(*TxBody)) *Tx {
		tx := &Tx{Body: TxBody{Chain: "auditnet-test", Kind: k, Expires: 120, Nonce: 9}}
		fill(&tx.Body)
		for _, sk := range []Signer{adminA, adminB} {
			if err := tx.Sign(sk); err != nil {
				t.Fatal(err)
			}
		}
		return tx
	}
	access := node(KindAccess, auditor, auditorKey, func(b *TxBody) {
		b.Access = &AccessRequest{Dataset: ds, Scope: Scope{Path: "invoices/2026.csv"}, Provider: agency, Nonce: []byte("0123456789abcdef"), Purpose: "annual audit", Case: "2026-17"}
	})
	accessID, err := access.ID()
	if err != nil {
		t.Fatal(err)
	}
	ack := &Ack{Chain: "auditnet-test", Request: dc.Link{Cid: accessID}, Bytes: 1 << 20, Blocks: 5}
	if err := SignAck(ack, auditorKey); err != nil {
		t.Fatal(err)
	}
	vote := func(block string) SignedVote {
		sv, err := SignVote(Vote{Chain: "auditnet-test", Epoch: 1, View: 2, Seq: 30, Phase: PhaseCommit, Block: testRoot(block)}, validatorKey)
		if err != nil {
			t.Fatal(err)
		}
		return sv
	}
	p := DefaultParams()
	return map[string]*Tx{
		"anchor": node(KindAnchor, agency, agencyKey, func(b *TxBody) {
			b.Anchor = &Anchor{Root: ds.Root, Size: 67122285, Name: "ledger 2026", Policy: PolicyRestricted}
		}),
		"grant": node(KindGrant, agency, agencyKey, func(b *TxBody) {
			b.Grant = &Grant{Dataset: ds, Auditor: auditor, Expires: 1798761600000}
		}),
		"revoke-by-admins": admin(KindRevoke, func(b *TxBody) { b.Revoke = &Revoke{Dataset: ds, Auditor: auditor} }),
		"access":           access,
		"served": node(KindServed, agency, agencyKey, func(b *TxBody) {
			b.Served = &Served{Request: dc.Link{Cid: accessID}, Ack: ack}
		}),
		"member": admin(KindMember, func(b *TxBody) {
			b.Member = &Member{Op: MemberAdd, Peer: auditor, Role: "auditor", Name: "auditor-1"}
		}),
		"params":   admin(KindParams, func(b *TxBody) { b.Params = &p }),
		"evidence": node(KindEvidence, agency, agencyKey, func(b *TxBody) { b.Evidence = &Evidence{A: vote("x"), B: vote("y")} }),
	}
}

type vector struct {
	SigningBytes string `json:"signing_bytes"`
	Encoding     string `json:"encoding"`
	ID           string `json:"id"`
}

// TestGoldenVectors pins the signing bytes, the encoding and the ID of a
// transaction of every kind, a vote and an acknowledgement: a change to
// any of them changes what every signature covers, so it must show in the
// diff of testdata/vectors.json (rewritten with -update).
func TestGoldenVectors(t *testing.T) {
	got := map[string]vector{}
	for name, tx := range sampleTxs(t) {
		sb, err := tx.BodySigningBytes()
		if err != nil {
			t.Fatal(err)
		}
		enc, err := EncodeTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := tx.ID()
		got["tx/"+name] = vector{hex.EncodeToString(sb), hex.EncodeToString(enc), id.String()}
	}
	vk, _ := testKey(t, 5)
	sv, _ := SignVote(Vote{Chain: "auditnet-test", Epoch: 1, View: 2, Seq: 30, Phase: PhasePrepare, Block: testRoot("b")}, vk)
	vsb, _ := signingBytes(TagVote, &sv.Vote)
	venc, vid, _ := Encode(&sv)
	got["vote"] = vector{hex.EncodeToString(vsb), hex.EncodeToString(venc), vid.String()}

	golden.Check(t, filepath.Join("testdata", "vectors.json"), got, *update)
}

// TestIPLDReadsOurEncoding checks that go-ipld-prime's DAG-CBOR codec
// decodes every encoding we make and re-encodes it to the same bytes: any
// IPLD tool reads our transactions, votes and blocks.
func TestIPLDReadsOurEncoding(t *testing.T) {
	var encodings [][]byte
	for _, tx := range sampleTxs(t) {
		b, err := EncodeTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		encodings = append(encodings, b)
	}
	blk := sampleBlock(t)
	b, _, err := Encode(blk)
	if err != nil {
		t.Fatal(err)
	}
	encodings = append(encodings, b)
	g := sampleGenesis(t)
	gb, _, err := Encode(g)
	if err != nil {
		t.Fatal(err)
	}
	encodings = append(encodings, gb)
	golden.IPLDRoundTrip(t, encodings)
}
