package chain

import (
	"bytes"
	"testing"
)

// roundTrips is the property every decoder keeps: what it accepts encodes
// back to exactly the input, so one value has one encoding.
func roundTrips(t *testing.T, in []byte, v any) {
	t.Helper()
	out, _, err := Encode(v)
	if err != nil {
		t.Fatalf("accepted %x but cannot encode it: %v", in, err)
	}
	if !bytes.Equal(out, in) {
		t.Fatalf("accepted %x, which encodes to %x", in, out)
	}
}

func FuzzDecodeTx(f *testing.F) {
	for _, tx := range sampleTxs(f) {
		b, _ := EncodeTx(tx)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		tx, err := DecodeTx(in)
		if err != nil {
			return
		}
		roundTrips(t, in, tx)
		// What the decoded tx keeps (its encoding, ID and signature
		// verdict) is what its fields give afresh.
		fields := unsealed(tx)
		roundTrips(t, in, fields)
		id, _ := tx.ID()
		if want, _ := fields.ID(); !id.Equals(want) {
			t.Fatalf("kept ID %s, the fields' %s", id, want)
		}
		if err := tx.Validate(); err != nil {
			t.Fatalf("decoded an invalid tx: %v", err)
		}
		single := fields.VerifySignatures() // must not panic, whatever the signers
		if batch := VerifyTxs([]*Tx{tx, unsealed(tx)}); (batch[0] == nil) != (single == nil) || (batch[1] == nil) != (single == nil) {
			t.Fatalf("one by one %v, in a batch %v", single, batch)
		}
	})
}

// unsealed is a copy of tx that keeps nothing: its encoding and ID come
// from its fields.
func unsealed(tx *Tx) *Tx { return &Tx{Body: tx.Body, Sigs: tx.Sigs} }

func FuzzDecodeAck(f *testing.F) {
	signer, _ := testKey(f, 7)
	ack := Ack{Chain: "auditnet-test", Request: testRoot("request"), Bytes: 1 << 20, Blocks: 5}
	if err := SignAck(&ack, signer); err != nil {
		f.Fatal(err)
	}
	b, _ := Marshal(&ack)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		a, err := DecodeAck(in)
		if err != nil {
			return
		}
		roundTrips(t, in, a)
		VerifyAck(a, signer.ID()) // any verdict, no panic
	})
}

func FuzzDecodeBlock(f *testing.F) {
	b, _, _ := Encode(sampleBlock(f))
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		blk, err := DecodeBlock(in)
		if err != nil {
			return
		}
		roundTrips(t, in, blk)
		fields := *blk
		fields.Txs = make([]Tx, len(blk.Txs))
		for i := range blk.Txs {
			fields.Txs[i] = *unsealed(&blk.Txs[i])
		}
		roundTrips(t, in, &fields)
		blk.CID()
	})
}

func FuzzDecodeVote(f *testing.F) {
	sk, _ := testKey(f, 5)
	sv, _ := SignVote(Vote{Chain: "c", Epoch: 1, View: 2, Seq: 3, Phase: PhaseCommit, Block: testRoot("b")}, sk)
	b, _, _ := Encode(&sv)
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		v, err := DecodeVote(in)
		if err != nil {
			return
		}
		roundTrips(t, in, v)
		v.Verify()
	})
}

func FuzzDecodeCommitCert(f *testing.F) {
	sk, _ := testKey(f, 5)
	sv, _ := SignVote(Vote{Chain: "c", Epoch: 1, View: 2, Seq: 3, Phase: PhaseCommit, Block: testRoot("b")}, sk)
	b, _, _ := Encode(&CommitCert{Height: 3, View: 2, Block: testRoot("b"), Votes: []SignedVote{sv, sv}})
	f.Add(b)
	f.Fuzz(func(t *testing.T, in []byte) {
		c, err := DecodeCommitCert(in)
		if err != nil {
			return
		}
		roundTrips(t, in, c)
	})
}
