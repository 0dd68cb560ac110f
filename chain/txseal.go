package chain

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"sync/atomic"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// A transaction's canonical encoding is a map of two keys, "body" before
// "sigs" (DAG-CBOR sorts keys of equal length bytewise):
//
//	0xa2 0x64 "body" <body> 0x64 "sigs" <sigs>
//
// so the body's bytes, which the ID and the signatures cover, lie at a
// fixed offset inside the transaction's.
const (
	txHead  = "\xa2\x64body"
	sigsKey = "\x64sigs"
)

// sealed is what a sealed transaction keeps: its canonical encoding and
// what derives from it, each computed once.
type sealed struct {
	raw  []byte // the transaction's canonical encoding
	body []byte // the body's, inside raw
	id   cid.Cid
	hash [32]byte // SHA-256 of raw
	// fields and sigs are the transaction's top-level fields when it was
	// sealed: a Tx whose fields were replaced since (a changed copy's, say)
	// is not sealed any more.
	fields TxBody
	sigs   []Signature
	// verified is set once the signatures (and an Evidence transaction's
	// votes) passed, by VerifySignatures, VerifyTxs or a TxCache: only
	// this package sets it, and it is never encoded.
	verified atomic.Bool
}

// txWire is Tx without its methods: the codec's own struct encoding.
type txWire Tx

// Seal computes t's canonical encoding and ID once and keeps them with t,
// so that ID, EncodeTx, Encoding, Hash and signature checks reuse them;
// DecodeTx, and decoding a block or message, seal their transactions.
// Sealing a sealed Tx does nothing.
//
// A sealed Tx must not be changed. Replacing one of its top-level fields
// (a body field, or Sigs), which is how a changed copy usually differs,
// unseals it, and Sign unseals it; a change made in place deeper down (an
// element of Sigs, a field of Body.Anchor) is not noticed, and the Tx
// would keep the encoding, ID and signature check of its old contents.
// Call Seal again after such a change.
func (t *Tx) Seal() error {
	if t.current() != nil {
		return nil
	}
	t.sealed = nil
	body, err := dagcbor.Marshal(&t.Body)
	if err != nil {
		return err
	}
	sigs, err := dagcbor.Marshal(t.Sigs)
	if err != nil {
		return err
	}
	raw := make([]byte, 0, len(txHead)+len(body)+len(sigsKey)+len(sigs))
	raw = append(append(append(append(raw, txHead...), body...), sigsKey...), sigs...)
	t.seal(raw, len(body))
	return nil
}

// seal keeps raw, t's canonical encoding, whose body takes bodyLen bytes.
func (t *Tx) seal(raw []byte, bodyLen int) {
	s := &sealed{raw: raw, body: raw[len(txHead) : len(txHead)+bodyLen], fields: t.Body, sigs: t.Sigs}
	s.id = cidOf(s.body)
	s.hash = sha256.Sum256(raw)
	t.sealed = s
}

// current returns what t keeps if it is sealed and its top-level fields
// are those it was sealed with, else nil.
func (t *Tx) current() *sealed {
	s := t.sealed
	if s == nil {
		return nil
	}
	a, b := &t.Body, &s.fields
	if a.Chain != b.Chain || a.Kind != b.Kind || a.Expires != b.Expires || a.Nonce != b.Nonce ||
		!sameSlice(a.Sender, b.Sender) || !sameSlice(t.Sigs, s.sigs) ||
		a.Anchor != b.Anchor || a.Grant != b.Grant || a.Revoke != b.Revoke || a.Access != b.Access ||
		a.Served != b.Served || a.Member != b.Member || a.Params != b.Params || a.Evidence != b.Evidence {
		return nil
	}
	return s
}

// sameSlice reports whether a and b are the same slice of memory.
func sameSlice[T any](a, b []T) bool {
	return len(a) == len(b) && (len(a) == 0 || &a[0] == &b[0])
}

// MarshalCBOR implements the codec's Marshaler: a sealed Tx gives the
// encoding it keeps (which the caller must not modify), any other is
// encoded field by field.
func (t *Tx) MarshalCBOR() ([]byte, error) {
	if s := t.current(); s != nil {
		return s.raw, nil
	}
	return dagcbor.Marshal((*txWire)(t))
}

// UnmarshalCBOR implements the codec's Unmarshaler: b must be the
// canonical encoding of a transaction, which t then keeps (t is sealed).
func (t *Tx) UnmarshalCBOR(b []byte) error {
	*t = Tx{}
	if !bytes.HasPrefix(b, []byte(txHead)) {
		return errors.New("chain: tx is not a map of body and sigs")
	}
	rest, err := dagcbor.UnmarshalFirst(b[len(txHead):], &t.Body)
	if err != nil {
		return err
	}
	if !bytes.HasPrefix(rest, []byte(sigsKey)) {
		return errors.New("chain: tx is not a map of body and sigs")
	}
	if err := dagcbor.Unmarshal(rest[len(sigsKey):], &t.Sigs); err != nil {
		return err
	}
	t.seal(bytes.Clone(b), len(b)-len(rest)-len(txHead))
	return nil
}

// Encoding returns t's canonical bytes. For a sealed Tx it is the slice t
// keeps, which the caller must not modify; EncodeTx returns a copy.
func (t *Tx) Encoding() ([]byte, error) {
	if s := t.current(); s != nil {
		return s.raw, nil
	}
	return dagcbor.Marshal((*txWire)(t))
}

// Hash is the SHA-256 of t's canonical encoding, signatures included: two
// transactions with one ID but other signatures have other hashes.
func (t *Tx) Hash() ([32]byte, error) {
	if s := t.current(); s != nil {
		return s.hash, nil
	}
	raw, err := t.Encoding()
	if err != nil {
		return [32]byte{}, err
	}
	return sha256.Sum256(raw), nil
}

// SignaturesVerified reports whether t is sealed and its signatures
// passed already (VerifySignatures, VerifyTxs or a TxCache; nothing else
// can say so, and it is never encoded), so that Machine.Check does not
// verify them again.
func (t *Tx) SignaturesVerified() bool {
	s := t.current()
	return s != nil && s.verified.Load()
}
