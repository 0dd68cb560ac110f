package chain

import (
	"crypto/sha256"
	"fmt"
	"sync"

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
// its signatures hold. It is safe for concurrent use on distinct
// transactions.
func VerifyTxs(txs []*Tx) (errs []error) { return verifyTxs(txs, nil) }

// SigCache remembers the transactions whose signatures passed, by the hash
// of their whole encoding, so that a node verifies and decodes a
// transaction once however many messages bring it (forwarded by a
// validator, then in a proposal). It keeps at least the last size/2 and at
// most size of them: forgetting one costs only a second verification. It
// is safe for concurrent use.
//
// It also keeps the public keys of signers it saw more than once in
// expanded form (curve25519-voi's precomputation), which makes verifying
// their next signatures about a third cheaper.
type SigCache struct {
	mu       sync.Mutex
	size     int
	cur, old map[[32]byte]*Tx
	// keys holds, per signer seen, its expanded key once seen twice (nil
	// until then).
	keys map[string]*voi.ExpandedPublicKey
}

// maxExpandedKeys bounds the signers a SigCache keeps keys of; when full
// it starts again.
const maxExpandedKeys = 4096

// NewSigCache returns a cache of about size transactions (at least 2).
func NewSigCache(size int) *SigCache {
	size = max(size, 2)
	return &SigCache{size: size, cur: make(map[[32]byte]*Tx, size/2), keys: map[string]*voi.ExpandedPublicKey{}}
}

// expanded returns the expanded keys the cache holds for signers, and
// notes the others as seen; it returns the signers seen before whose keys
// are to be expanded (by the caller, outside the lock, then stored).
func (c *SigCache) expanded(signers map[string]*voi.ExpandedPublicKey) (expand []string) {
	if c == nil {
		return nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.keys)+len(signers) > maxExpandedKeys {
		clear(c.keys)
	}
	for id := range signers {
		k, seen := c.keys[id]
		switch {
		case k != nil:
			signers[id] = k
		case seen:
			expand = append(expand, id)
		default:
			c.keys[id] = nil
		}
	}
	return expand
}

// storeKeys keeps expanded keys.
func (c *SigCache) storeKeys(keys map[string]*voi.ExpandedPublicKey) {
	if c == nil || len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range keys {
		c.keys[id] = k
	}
}

// VerifyTxs is the package's VerifyTxs, which first marks the transactions
// the cache remembers without checking them again, and then remembers
// those that pass.
func (c *SigCache) VerifyTxs(txs []*Tx) (errs []error) { return verifyTxs(txs, c) }

// DecodeTx decodes a transaction that is part of a larger value, a block
// or message, as decoding that value would: like the package's DecodeTx,
// but bound by the limit of that value rather than MaxTxSize. For the
// bytes of a transaction the cache remembers it returns that one, sealed
// and verified, without decoding anything. The result is shared: it must
// not be changed (see Tx.Seal); copy it where it goes.
func (c *SigCache) DecodeTx(b []byte) (*Tx, error) {
	if tx := c.lookup(sha256.Sum256(b)); tx != nil {
		return tx, nil
	}
	return decodeTx(b, len(b))
}

func (c *SigCache) lookup(h [32]byte) *Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx := c.cur[h]; tx != nil {
		return tx
	}
	return c.old[h]
}

// known reports which of the hashes the cache holds.
func (c *SigCache) known(hashes [][32]byte) []bool {
	out := make([]bool, len(hashes))
	if c == nil {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hashes {
		out[i] = c.cur[h] != nil || c.old[h] != nil
	}
	return out
}

// remember adds verified transactions, forgetting the older half when the
// cache is full.
func (c *SigCache) remember(txs []*Tx) {
	if c == nil || len(txs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tx := range txs {
		c.cur[tx.sealed.hash] = tx
		if len(c.cur) >= c.size/2 {
			c.old, c.cur = c.cur, make(map[[32]byte]*Tx, c.size/2)
		}
	}
}

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

func verifyTxs(txs []*Tx, cache *SigCache) []error {
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
	for i, ok := range cache.known(hashes) {
		if ok && todo[i] {
			txs[i].sealed.verified.Store(true)
			todo[i] = false
		}
	}
	keys := expandedKeys(txs, todo, cache)
	bv := voi.NewBatchVerifierWithCapacity(len(txs))
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
func expandedKeys(txs []*Tx, todo []bool, cache *SigCache) map[string]*voi.ExpandedPublicKey {
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
