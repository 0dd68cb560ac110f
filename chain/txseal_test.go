package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"testing"

	"github.com/oasisprotocol/curve25519-voi/curve"
	"github.com/oasisprotocol/curve25519-voi/curve/scalar"

	"auditnet/internal/dagcbor"
)

// TestSealedMatchesCodec checks that what a sealed transaction keeps is
// what the codec makes of its fields: the encoding, its body's CID (the
// ID) and its hash, whether sealed by Seal or by decoding, and that
// EncodeTx hands out a copy.
func TestSealedMatchesCodec(t *testing.T) {
	for name, tx := range sampleTxs(t) {
		t.Run(name, func(t *testing.T) {
			want, err := dagcbor.Marshal((*txWire)(tx))
			if err != nil {
				t.Fatal(err)
			}
			_, wantID, err := Encode(&tx.Body)
			if err != nil {
				t.Fatal(err)
			}
			decoded, err := DecodeTx(want)
			if err != nil {
				t.Fatal(err)
			}
			sealed := *tx
			if err := sealed.Seal(); err != nil {
				t.Fatal(err)
			}
			for how, got := range map[string]*Tx{"sealed": &sealed, "decoded": decoded} {
				if got.current() == nil {
					t.Fatalf("%s: not sealed", how)
				}
				raw, _ := got.Encoding()
				id, _ := got.ID()
				h, _ := got.Hash()
				sb, _ := got.BodySigningBytes()
				wantSB, _ := signingBytes(TagTx, &tx.Body)
				if !bytes.Equal(raw, want) || !id.Equals(wantID) || h != sha256.Sum256(want) || !bytes.Equal(sb, wantSB) {
					t.Fatalf("%s: kept encoding, ID, hash or signing bytes differ from the codec's", how)
				}
				again, err := dagcbor.Marshal(got) // through MarshalCBOR
				if err != nil || !bytes.Equal(again, want) {
					t.Fatalf("%s: MarshalCBOR gives %x, %v", how, again, err)
				}
			}
			out, _ := EncodeTx(decoded)
			out[0] ^= 0xff
			if raw, _ := decoded.Encoding(); !bytes.Equal(raw, want) {
				t.Fatal("changing EncodeTx's result changed the kept encoding")
			}
		})
	}
}

// TestChangedCopyIsUnsealed: replacing a top-level field of a sealed
// transaction, or of a copy of it, or signing it, unseals it, so its ID,
// encoding and signature check follow the new fields; the original keeps
// its own.
func TestChangedCopyIsUnsealed(t *testing.T) {
	raw, err := EncodeTx(sampleTxs(t)["anchor"])
	if err != nil {
		t.Fatal(err)
	}
	orig, err := DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	if err := orig.VerifySignatures(); err != nil || !orig.SignaturesVerified() {
		t.Fatalf("verified %v, marked %v", err, orig.SignaturesVerified())
	}
	origID, _ := orig.ID()
	other, _ := testKey(t, 9)
	for name, change := range map[string]func(*Tx){
		"nonce":     func(tx *Tx) { tx.Body.Nonce++ },
		"anchor":    func(tx *Tx) { a := *tx.Body.Anchor; a.Name = "other"; tx.Body.Anchor = &a },
		"sigs":      func(tx *Tx) { tx.Sigs = append([]Signature{}, tx.Sigs...) },
		"re-signed": func(tx *Tx) { tx.Sigs = nil; _ = tx.Sign(other) },
	} {
		t.Run(name, func(t *testing.T) {
			cp := *orig
			change(&cp)
			if cp.current() != nil || cp.SignaturesVerified() {
				t.Fatal("the changed copy is still sealed")
			}
			want, _ := dagcbor.Marshal((*txWire)(&cp))
			if got, _ := cp.Encoding(); !bytes.Equal(got, want) {
				t.Fatal("the changed copy has its old encoding")
			}
			_, wantID, _ := Encode(&cp.Body)
			if id, _ := cp.ID(); !id.Equals(wantID) {
				t.Fatal("the changed copy has its old ID")
			}
			if (name == "nonce" || name == "anchor") && cp.VerifySignatures() == nil {
				t.Fatal("the changed copy's signature still passes")
			}
			if id, _ := orig.ID(); !id.Equals(origID) || orig.current() == nil {
				t.Fatal("the original changed with its copy")
			}
		})
	}
}

// TestVerifyTxs checks a batch against VerifySignatures one by one: the
// same verdicts, errors that wrap ErrBadSignature at the right indexes,
// and marks on the transactions that passed only.
func TestVerifyTxs(t *testing.T) {
	samples := sampleTxs(t)
	var txs []*Tx
	var names []string
	add := func(name string, tx *Tx) {
		raw, err := EncodeTx(tx)
		if err != nil {
			t.Fatal(err)
		}
		d, err := DecodeTx(raw)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		txs, names = append(txs, d), append(names, name)
	}
	for _, name := range []string{"anchor", "grant", "access", "member", "evidence", "served"} {
		add(name, samples[name])
	}
	bad := *samples["anchor"]
	bad.Sigs = []Signature{{Signer: bad.Sigs[0].Signer, Sig: bytes.Clone(bad.Sigs[0].Sig)}}
	bad.Sigs[0].Sig[10] ^= 1
	add("bad signature", &bad)
	twice := *samples["member"]
	twice.Sigs = []Signature{twice.Sigs[0], twice.Sigs[0]}
	add("signer twice", &twice)
	badVote := *samples["evidence"]
	ev := *badVote.Body.Evidence
	ev.B.Sig = bytes.Clone(ev.B.Sig)
	ev.B.Sig[3] ^= 1
	badVote.Body.Evidence = &ev
	if err := reSign(t, &badVote); err != nil {
		t.Fatal(err)
	}
	add("bad evidence vote", &badVote)

	wantBad := map[string]bool{"bad signature": true, "signer twice": true, "bad evidence vote": true}
	for i, err := range VerifyTxs(txs) {
		single := (&Tx{Body: txs[i].Body, Sigs: txs[i].Sigs}).VerifySignatures()
		switch {
		case wantBad[names[i]] != (err != nil):
			t.Errorf("%s: %v", names[i], err)
		case err != nil && !errors.Is(err, ErrBadSignature):
			t.Errorf("%s: %v does not wrap ErrBadSignature", names[i], err)
		case (err == nil) != (single == nil):
			t.Errorf("%s: batch says %v, one by one %v", names[i], err, single)
		case txs[i].SignaturesVerified() != (err == nil):
			t.Errorf("%s: marked %v after %v", names[i], txs[i].SignaturesVerified(), err)
		}
	}
}

// reSign replaces an evidence transaction's signature by its sender's
// over the changed body.
func reSign(t *testing.T, tx *Tx) error {
	t.Helper()
	sk, _ := testKey(t, 1) // the agency sends the sample evidence
	tx.Sigs = nil
	return tx.Sign(sk)
}

// TestVerifiedMarkIsNotEncoded: the mark is no part of the encoding, so
// bytes can never carry it: the same transaction decoded again is
// unverified until checked.
func TestVerifiedMarkIsNotEncoded(t *testing.T) {
	raw, _ := EncodeTx(sampleTxs(t)["grant"])
	tx, err := DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	if errs := VerifyTxs([]*Tx{tx}); errs[0] != nil || !tx.SignaturesVerified() {
		t.Fatalf("%v, marked %v", errs[0], tx.SignaturesVerified())
	}
	again, _ := EncodeTx(tx)
	if !bytes.Equal(again, raw) {
		t.Fatal("a verified tx encodes differently")
	}
	back, err := DecodeTx(again)
	if err != nil {
		t.Fatal(err)
	}
	if back.SignaturesVerified() {
		t.Fatal("a decoded tx arrived verified")
	}
}

// TestTxCache: a cache decodes the bytes of a transaction it holds to
// that transaction, shared, so verifying one copy marks all; it marks a
// transaction with the bytes of one that passed without checking it again,
// never one with other bytes; and it forgets the oldest when full.
func TestTxCache(t *testing.T) {
	c := NewTxCache(4)
	samples := sampleTxs(t)
	rawOf := func(name string) []byte {
		raw, err := EncodeTx(samples[name])
		if err != nil {
			t.Fatal(err)
		}
		return raw
	}
	first, err := c.DecodeTx(rawOf("anchor"))
	if err != nil || first.SignaturesVerified() {
		t.Fatalf("decoded %v, verified %v", err, first.SignaturesVerified())
	}
	again, err := c.DecodeTx(rawOf("anchor"))
	if err != nil || again != first {
		t.Fatalf("the same bytes decoded to %p, %v; want %p", again, err, first)
	}
	inMessage := *again // as a message holds it
	if errs := c.VerifyTxs([]*Tx{&inMessage}); errs[0] != nil || !first.SignaturesVerified() {
		t.Fatalf("verified %v; the shared transaction marked %v", errs[0], first.SignaturesVerified())
	}
	h, _ := first.Hash()
	if !c.verifiedOf([][32]byte{h})[0] {
		t.Fatal("not remembered as verified")
	}
	second, err := DecodeTx(rawOf("anchor"))
	if err != nil || second.SignaturesVerified() {
		t.Fatalf("decoded apart: %v, verified %v", err, second.SignaturesVerified())
	}
	c.VerifyTxs([]*Tx{second})
	if !second.SignaturesVerified() {
		t.Fatal("the same bytes were not marked")
	}
	forged := *samples["anchor"]
	forged.Sigs = []Signature{{Signer: forged.Sigs[0].Signer, Sig: bytes.Clone(forged.Sigs[0].Sig)}}
	forged.Sigs[0].Sig[0] ^= 1
	forgedRaw, _ := EncodeTx(&forged)
	ft, err := c.DecodeTx(forgedRaw)
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.VerifyTxs([]*Tx{ft}); !errors.Is(errs[0], ErrBadSignature) || ft.SignaturesVerified() {
		t.Fatalf("forged: %v, marked %v", errs[0], ft.SignaturesVerified())
	}
	for _, name := range []string{"grant", "access", "revoke-by-admins", "member", "served"} {
		if _, err := c.DecodeTx(rawOf(name)); err != nil {
			t.Fatal(err)
		}
	}
	if c.verifiedOf([][32]byte{h})[0] || c.lookup(h) != nil {
		t.Fatal("a full cache still holds its oldest entry")
	}
}

// torsionSigner signs the Ed25519 way, except that it adds a point of
// order 8 to R: the cofactored equation holds, the cofactorless one does
// not. Only the key's owner can make such a signature.
type torsionSigner struct{ seed []byte }

func (s torsionSigner) ID() []byte {
	return PeerIDFromPublicKey(ed25519.NewKeyFromSeed(s.seed).Public().(ed25519.PublicKey))
}

func (s torsionSigner) Sign(msg []byte) ([]byte, error) {
	h := sha512.Sum512(s.seed)
	h[0] &= 248
	h[31] &= 127
	h[31] |= 64
	a, err := scalar.NewFromBytesModOrder(h[:32])
	if err != nil {
		return nil, err
	}
	r, err := scalar.NewFromBytesModOrderWide(bytes.Repeat([]byte{7}, 64))
	if err != nil {
		return nil, err
	}
	var R curve.EdwardsPoint
	R.MulBasepoint(curve.ED25519_BASEPOINT_TABLE, r)
	R.Add(&R, curve.EIGHT_TORSION[1])
	var rc curve.CompressedEdwardsY
	rc.SetEdwardsPoint(&R)
	pub := s.ID()[len(peerIDPrefix):]
	kh := sha512.New()
	kh.Write(rc[:])
	kh.Write(pub)
	kh.Write(msg)
	k, err := scalar.NewFromBytesModOrderWide(kh.Sum(nil))
	if err != nil {
		return nil, err
	}
	var sum scalar.Scalar
	sum.Mul(k, a)
	sum.Add(&sum, r)
	sig := append([]byte{}, rc[:]...)
	sb := make([]byte, 32)
	if err := sum.ToBytes(sb); err != nil {
		return nil, err
	}
	return append(sig, sb...), nil
}

// TestOneRuleForBatchAndSingle: a signature whose R carries a small-order
// component passes the chain's rule (cofactored) one by one and in a
// batch alike, though crypto/ed25519 (cofactorless) refuses it; a key of
// small order fails both ways. Validators must never disagree about a
// signature because one checked it in a batch.
func TestOneRuleForBatchAndSingle(t *testing.T) {
	ts := torsionSigner{seed: bytes.Repeat([]byte{42}, 32)}
	msg := []byte("auditnet/tx/v1 torsion")
	sig, err := ts.Sign(msg)
	if err != nil {
		t.Fatal(err)
	}
	if ed25519.Verify(ed25519.NewKeyFromSeed(ts.seed).Public().(ed25519.PublicKey), msg, sig) {
		t.Fatal("crypto/ed25519 accepts the torsioned signature: the test signs wrongly")
	}
	if err := VerifyBy(ts.ID(), msg, sig); err != nil {
		t.Fatalf("single: %v", err)
	}
	samples := sampleTxs(t)
	torsioned := &Tx{Body: samples["anchor"].Body}
	torsioned.Body.Sender = ts.ID()
	if err := torsioned.Sign(ts); err != nil {
		t.Fatal(err)
	}
	var small curve.CompressedEdwardsY
	small.SetEdwardsPoint(curve.EIGHT_TORSION[1])
	smallID := PeerIDFromPublicKey(small[:])
	smallKey := &Tx{Body: samples["anchor"].Body, Sigs: []Signature{{Signer: smallID, Sig: make([]byte, 64)}}}
	smallKey.Body.Sender = smallID
	if err := VerifyBy(smallID, msg, make([]byte, 64)); err == nil {
		t.Fatal("single: a small-order key passed")
	}
	fresh := func(tx *Tx) *Tx { return &Tx{Body: tx.Body, Sigs: tx.Sigs} }
	for _, n := range []int{1, 2, 64} {
		for _, c := range []struct {
			tx   *Tx
			pass bool
		}{{torsioned, true}, {smallKey, false}} {
			batch := []*Tx{fresh(c.tx)}
			for len(batch) < n {
				batch = append(batch, fresh(samples["grant"]))
			}
			for i, err := range VerifyTxs(batch) {
				if want := i > 0 || c.pass; (err == nil) != want {
					t.Fatalf("batch of %d: tx %d: %v", n, i, err)
				}
			}
			if err := fresh(c.tx).VerifySignatures(); (err == nil) != c.pass {
				t.Fatalf("one by one: %v", err)
			}
		}
	}
}

// TestTxCacheLargeTx: a transaction over MaxTxSize, which a block or
// message may hold, decodes through a cache as it would in the block,
// but the cache does not keep it.
func TestTxCacheLargeTx(t *testing.T) {
	big := *sampleTxs(t)["access"]
	a := *big.Body.Access
	for range 4096 {
		a.Scope.Links = append(a.Scope.Links, []int{1000, 1001, 1002, 1003, 1004, 1005, 1006, 1007, 1008, 1009})
	}
	big.Body.Access = &a
	sk, _ := testKey(t, 2) // the sample auditor
	big.Sigs = nil
	if err := big.Sign(sk); err != nil {
		t.Fatal(err)
	}
	raw, err := EncodeTx(&big)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) <= MaxTxSize {
		t.Fatalf("the large tx takes only %d bytes", len(raw))
	}
	if _, err := DecodeTx(raw); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("DecodeTx: %v", err)
	}
	c := NewTxCache(100)
	tx, err := c.DecodeTx(raw)
	if err != nil {
		t.Fatal(err)
	}
	if errs := c.VerifyTxs([]*Tx{tx}); errs[0] != nil {
		t.Fatal(errs[0])
	}
	h, _ := tx.Hash()
	if c.lookup(h) != nil {
		t.Fatal("the cache kept a transaction over MaxTxSize")
	}
}
