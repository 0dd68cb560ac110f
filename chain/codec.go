package chain

import (
	"crypto/sha256"
	"errors"
	"fmt"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/internal/dagcbor"
)

// Hard limits on what is decoded, checked before decoding starts.
const (
	MaxTxSize     = 64 << 10
	MaxBlockSize  = 8 << 20
	MaxTxsPerBlk  = 10_000
	MaxVoteSize   = 1 << 10
	MaxCertSize   = 64 << 10
	MaxValidators = 64
	maxNameLength = 256
)

// MaxNameLength bounds names on the chain: a dataset's, a member's, a
// chain id, an access request's case, in bytes.
const MaxNameLength = maxNameLength

// ErrTooLarge is wrapped by decoders for input over its type's limit.
var ErrTooLarge = errors.New("chain: encoding too large")

// cidOf returns the CID (CIDv1, dag-cbor, sha2-256) of canonical bytes.
func cidOf(b []byte) cid.Cid {
	sum := sha256.Sum256(b)
	h, _ := mh.Encode(sum[:], mh.SHA2_256)
	return cid.NewCidV1(cid.DagCBOR, h)
}

// Encode returns the canonical DAG-CBOR bytes of v and their CID.
func Encode(v any) ([]byte, cid.Cid, error) {
	b, err := dagcbor.Marshal(v)
	if err != nil {
		return nil, cid.Undef, err
	}
	return b, cidOf(b), nil
}

// Marshal is Encode without the CID, for callers that need only the
// bytes (hashing them for a CID is most of the cost of a small value).
func Marshal(v any) ([]byte, error) { return dagcbor.Marshal(v) }

// decode decodes canonical bytes of at most limit bytes into v.
func decode(b []byte, limit int, v any) error {
	if len(b) > limit {
		return fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(b), limit)
	}
	return dagcbor.Unmarshal(b, v)
}

// signingBytes is what a signature of the given type covers.
func signingBytes(tag string, v any) ([]byte, error) {
	b, err := dagcbor.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append([]byte(tag), b...), nil
}

// SigningBytes is what a signature of a type with domain tag tag covers:
// the tag, then v's canonical DAG-CBOR bytes (DESIGN.md, "Domain
// separation").
func SigningBytes(tag string, v any) ([]byte, error) { return signingBytes(tag, v) }

// VerifyBy checks sig over msg by the Ed25519 key in the peer ID signer.
func VerifyBy(signer, msg, sig []byte) error { return verifyBy(signer, msg, sig) }

// Decode decodes canonical DAG-CBOR bytes of at most limit bytes into v.
func Decode(b []byte, limit int, v any) error { return decode(b, limit, v) }
