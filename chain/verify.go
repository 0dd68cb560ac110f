package chain

import (
	"fmt"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// verifyOptions is the chain's one Ed25519 rule, for single and batch
// verification alike: RFC 8032's cofactored equation [8][S]B = [8]R +
// [8][k]A, canonical encodings of A and R, and no public key of small
// order (curve25519-voi's default). A batch can only check the cofactored
// equation; were single verification cofactorless, as crypto/ed25519's is,
// a signature made with a small-order component on purpose could pass in a
// batch and fail alone, and validators could disagree about a block. An
// honestly made signature passes both.
var verifyOptions = &voi.Options{Verify: &voi.VerifyOptions{AllowSmallOrderR: true}}

// verifyBy checks sig over msg by the key in the peer ID signer.
func verifyBy(signer, msg, sig []byte) error {
	if err := checkPeerID(signer); err != nil {
		return fmt.Errorf("%w: signer: %v", ErrBadSignature, err)
	}
	if !voi.VerifyWithOptions(voi.PublicKey(signer[len(peerIDPrefix):]), msg, sig, verifyOptions) {
		return fmt.Errorf("%w: by %s", ErrBadSignature, PeerIDString(signer))
	}
	return nil
}

// VerifyTxs checks the signatures of txs as VerifySignatures does, all
// in one batch (about 2.7 times the throughput of checking them one by
// one, for a block's worth), and marks each transaction that passes so
// that neither VerifySignatures nor Machine.Check verifies it again. It
// seals every transaction (see Tx.Seal). errs[i] is tx i's error, nil if
// its signatures hold. Calls may run concurrently, as long as an unsealed
// Tx is in one call at a time.
func VerifyTxs(txs []*Tx) (errs []error) { return verifyTxs(txs, nil) }

// sigEntry is one signature of a batch: which transaction it belongs to,
// and which of its signatures it is (or, below 0, which evidence vote).
type sigEntry struct {
	tx, sig int
	signer  []byte
}

func (e sigEntry) err() error {
	bad := fmt.Errorf("%w: by %s", ErrBadSignature, PeerIDString(e.signer))
	if e.sig < 0 {
		return fmt.Errorf("evidence vote: %w", bad)
	}
	return fmt.Errorf("signature %d: %w", e.sig, bad)
}

func verifyTxs(txs []*Tx, cache *TxCache) []error {
	errs := make([]error, len(txs))
	hashes := make([][32]byte, len(txs))
	todo := make([]bool, len(txs))
	for i, t := range txs {
		if err := t.Seal(); err != nil {
			errs[i] = err
			continue
		}
		hashes[i] = t.sealed.hash
		todo[i] = !t.sealed.verified.Load()
	}
	for i, ok := range cache.verifiedOf(hashes) {
		if ok && todo[i] {
			txs[i].sealed.verified.Store(true)
			todo[i] = false
		}
	}
	keys := expandedKeys(txs, todo, cache)
	bv := cache.batch(len(txs))
	defer cache.release(bv)
	var entries []sigEntry
	var last lastSig // the one signature, if there is only one
	add := func(e sigEntry, msg, sig []byte) {
		if err := checkPeerID(e.signer); err != nil {
			errs[e.tx] = fmt.Errorf("%w: signer: %v", ErrBadSignature, err)
			return
		}
		last = lastSig{voi.PublicKey(e.signer[len(peerIDPrefix):]), keys[string(e.signer)], msg, sig}
		if last.key != nil {
			bv.AddExpandedWithOptions(last.key, msg, sig, verifyOptions)
		} else {
			bv.AddWithOptions(last.pub, msg, sig, verifyOptions)
		}
		entries = append(entries, e)
	}
	for i, t := range txs {
		if !todo[i] {
			continue
		}
		msg := append([]byte(TagTx), t.sealed.body...)
		for j, s := range t.Sigs {
			for _, o := range t.Sigs[:j] {
				if string(o.Signer) == string(s.Signer) {
					errs[i] = fmt.Errorf("%w: signer %d signs twice", ErrBadSignature, j)
				}
			}
			if errs[i] == nil {
				add(sigEntry{tx: i, sig: j, signer: s.Signer}, msg, s.Sig)
			}
		}
		if e := t.Body.Evidence; e != nil && errs[i] == nil {
			for k, sv := range []*SignedVote{&e.A, &e.B} {
				vmsg, err := signingBytes(TagVote, &sv.Vote)
				if err != nil {
					errs[i] = err
					break
				}
				add(sigEntry{tx: i, sig: -1 - k, signer: sv.Signer}, vmsg, sv.Sig)
			}
		}
	}
	if len(entries) > 0 {
		var valid []bool
		if len(entries) == 1 {
			valid = []bool{last.verify()} // a batch of one costs more than one verification
		} else {
			_, valid = bv.Verify(nil)
		}
		for k, ok := range valid {
			if e := entries[k]; !ok && errs[e.tx] == nil {
				errs[e.tx] = e.err()
			}
		}
	}
	var passed []*Tx
	for i, t := range txs {
		if todo[i] && errs[i] == nil {
			t.sealed.verified.Store(true)
			passed = append(passed, t)
		}
	}
	cache.remember(passed)
	return errs
}

// lastSig is a signature to verify, with its signer's expanded key if
// there is one.
type lastSig struct {
	pub      voi.PublicKey
	key      *voi.ExpandedPublicKey
	msg, sig []byte
}

func (l lastSig) verify() bool {
	if l.key != nil {
		return voi.VerifyExpandedWithOptions(l.key, l.msg, l.sig, verifyOptions)
	}
	return voi.VerifyWithOptions(l.pub, l.msg, l.sig, verifyOptions)
}

// expandedKeys returns, for the signers of the transactions to verify,
// the expanded keys cache holds or expands now (nil for the others).
func expandedKeys(txs []*Tx, todo []bool, cache *TxCache) map[string]*voi.ExpandedPublicKey {
	if cache == nil {
		return nil
	}
	signers := map[string]*voi.ExpandedPublicKey{}
	for i, t := range txs {
		if todo[i] {
			for _, s := range t.Sigs {
				if checkPeerID(s.Signer) == nil {
					signers[string(s.Signer)] = nil
				}
			}
		}
	}
	expand := cache.expanded(signers)
	fresh := map[string]*voi.ExpandedPublicKey{}
	for _, id := range expand {
		k, err := voi.NewExpandedPublicKey(voi.PublicKey(id[len(peerIDPrefix):]))
		if err == nil {
			signers[id], fresh[id] = k, k
		}
	}
	cache.storeKeys(fresh)
	return signers
}
