package chain

import (
	"crypto/sha256"
	"sync"

	voi "github.com/oasisprotocol/curve25519-voi/primitives/ed25519"
)

// TxCache remembers sealed transactions by the hash of their whole
// encoding, those it decoded and those whose signatures passed, so that a
// node decodes and verifies a transaction once however many messages
// bring it (forwarded by a validator, then in a proposal): DecodeTx
// returns the transaction it holds for the same bytes, and VerifyTxs
// marks a transaction whose bytes passed before without checking it
// again. It keeps at least the last size/2 transactions and at most size,
// and at most size·512 bytes of encodings (transactions over MaxTxSize it
// never keeps); forgetting one costs only a second decoding or
// verification.
//
// It also keeps the public keys of signers it saw more than once in
// expanded form (curve25519-voi's precomputation), which makes verifying
// their next signatures about a third cheaper. It is safe for concurrent
// use.
type TxCache struct {
	mu       sync.Mutex
	size     int
	cur, old map[[32]byte]*Tx
	// curBytes is the size of cur's encodings.
	curBytes int
	// keys holds, per signer seen, its expanded key once seen twice (nil
	// until then).
	keys map[string]*voi.ExpandedPublicKey
	// batches holds batch verifiers for reuse: a batch's entries take
	// hundreds of bytes per signature.
	batches sync.Pool
}

// batch returns an empty batch verifier.
func (c *TxCache) batch(n int) *voi.BatchVerifier {
	if c != nil {
		if bv, ok := c.batches.Get().(*voi.BatchVerifier); ok {
			return bv
		}
	}
	return voi.NewBatchVerifierWithCapacity(n)
}

// release gives back a batch verifier batch returned.
func (c *TxCache) release(bv *voi.BatchVerifier) {
	if c != nil {
		c.batches.Put(bv.Reset())
	}
}

// txCacheBytesPerTx is the encoding size per transaction a TxCache
// budgets for.
const txCacheBytesPerTx = 512

// maxExpandedKeys bounds the signers a TxCache keeps keys of; when full
// it starts again.
const maxExpandedKeys = 4096

// NewTxCache returns a cache of about size transactions (at least 2).
func NewTxCache(size int) *TxCache {
	size = max(size, 2)
	return &TxCache{size: size, cur: map[[32]byte]*Tx{}, keys: map[string]*voi.ExpandedPublicKey{}}
}

// DecodeTx decodes a transaction that is part of a larger value, a block
// or message, as decoding that value would: like the package's DecodeTx,
// but bound by the limit of that value rather than MaxTxSize. For the
// bytes of a transaction the cache holds it returns that one, sealed (and
// verified if it was) without decoding anything; others it decodes and
// keeps. The result is shared: it must not be changed (see Tx.Seal); copy
// it where it goes.
func (c *TxCache) DecodeTx(b []byte) (*Tx, error) {
	h := sha256.Sum256(b)
	if tx := c.lookup(h); tx != nil {
		return tx, nil
	}
	tx, err := decodeTx(b, len(b))
	if err != nil {
		return nil, err
	}
	c.remember([]*Tx{tx})
	return tx, nil
}

// VerifyTxs is the package's VerifyTxs, except that a transaction whose
// bytes passed before is marked without being checked again; it keeps
// those that pass.
func (c *TxCache) VerifyTxs(txs []*Tx) (errs []error) { return verifyTxs(txs, c) }

func (c *TxCache) lookup(h [32]byte) *Tx {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tx := c.cur[h]; tx != nil {
		return tx
	}
	return c.old[h]
}

// verifiedOf reports which of the hashes are of transactions the cache
// holds verified.
func (c *TxCache) verifiedOf(hashes [][32]byte) []bool {
	out := make([]bool, len(hashes))
	if c == nil {
		return out
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for i, h := range hashes {
		tx := c.cur[h]
		if tx == nil {
			tx = c.old[h]
		}
		out[i] = tx != nil && tx.sealed.verified.Load()
	}
	return out
}

// remember keeps sealed transactions, forgetting the older half when the
// cache is full.
func (c *TxCache) remember(txs []*Tx) {
	if c == nil || len(txs) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, tx := range txs {
		n := len(tx.sealed.raw)
		if n > MaxTxSize {
			continue
		}
		c.cur[tx.sealed.hash] = tx
		c.curBytes += n
		if len(c.cur) >= c.size/2 || c.curBytes >= c.size*txCacheBytesPerTx/2 {
			c.old, c.cur, c.curBytes = c.cur, make(map[[32]byte]*Tx, len(c.cur)), 0
		}
	}
}

// expanded returns the expanded keys the cache holds for signers, and
// notes the others as seen; it returns the signers seen before whose keys
// are to be expanded (by the caller, outside the lock, then stored).
func (c *TxCache) expanded(signers map[string]*voi.ExpandedPublicKey) (expand []string) {
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
func (c *TxCache) storeKeys(keys map[string]*voi.ExpandedPublicKey) {
	if c == nil || len(keys) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, k := range keys {
		c.keys[id] = k
	}
}
