package chain

import (
	"bytes"
	"crypto/ed25519"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/ipfs/go-cid"
	"github.com/mr-tron/base58"
)

// Keys and peer IDs without libp2p. Every key on the chain is Ed25519, and
// its libp2p peer ID is the identity multihash of the key's protobuf
// encoding, so the key can be read back from the ID:
//
//	0x00 0x24            identity multihash, 36 bytes of digest
//	0x08 0x01            PublicKey.Type (field 1, varint) = Ed25519
//	0x12 0x20 <32 bytes> PublicKey.Data (field 2, bytes)
//
// The tests check these functions against go-libp2p's core/peer.

// peerIDPrefix is what comes before the key in an Ed25519 peer ID.
var peerIDPrefix = []byte{0x00, 0x24, 0x08, 0x01, 0x12, 0x20}

// peerIDSize is the length of an Ed25519 peer ID.
const peerIDSize = 6 + ed25519.PublicKeySize

// ErrBadPeerID is wrapped by every refusal of a peer ID: anything but the
// identity peer ID of an Ed25519 key.
var ErrBadPeerID = errors.New("chain: not an Ed25519 peer ID")

// Signer is a node's or an admin's Ed25519 key. ID is the libp2p peer ID
// (bytes) of its public key; Sign signs msg as it is, with no prefix or
// hashing.
type Signer interface {
	ID() []byte
	Sign(msg []byte) ([]byte, error)
}

// edSigner is the Signer of an Ed25519 private key.
type edSigner struct {
	key ed25519.PrivateKey
	id  []byte
}

// NewSigner returns the Signer of key. Ed25519 signatures are
// deterministic, so the same key signs the same message the same way. It
// panics if key is not ed25519.PrivateKeySize bytes.
func NewSigner(key ed25519.PrivateKey) Signer {
	if len(key) != ed25519.PrivateKeySize {
		panic(fmt.Sprintf("chain: Ed25519 private key of %d bytes", len(key)))
	}
	key = bytes.Clone(key)
	return &edSigner{key: key, id: PeerIDFromPublicKey(key.Public().(ed25519.PublicKey))}
}

// ErrNotAKey is returned by ParseHexKey for text that is not an Ed25519
// private key in hex.
var ErrNotAKey = errors.New("not an Ed25519 private key in hex")

// ParseHexKey returns the Signer of an Ed25519 private key written in hex
// (the form of admin key files and the testnet's bench keys); surrounding
// white space is ignored.
func ParseHexKey(s string) (Signer, error) {
	key, err := hex.DecodeString(strings.TrimSpace(s))
	if err != nil || len(key) != ed25519.PrivateKeySize {
		return nil, ErrNotAKey
	}
	return NewSigner(ed25519.PrivateKey(key)), nil
}

func (s *edSigner) ID() []byte { return bytes.Clone(s.id) }

func (s *edSigner) Sign(msg []byte) ([]byte, error) { return ed25519.Sign(s.key, msg), nil }

// PeerIDFromPublicKey returns the libp2p peer ID bytes of an Ed25519 key.
// It panics if pub is not ed25519.PublicKeySize bytes.
func PeerIDFromPublicKey(pub ed25519.PublicKey) []byte {
	if len(pub) != ed25519.PublicKeySize {
		panic(fmt.Sprintf("chain: Ed25519 public key of %d bytes", len(pub)))
	}
	id := make([]byte, 0, peerIDSize)
	id = append(id, peerIDPrefix...)
	return append(id, pub...)
}

// PublicKeyFromPeerID returns the Ed25519 key a peer ID holds. Anything
// else is an error wrapping ErrBadPeerID: other key types, hashed IDs,
// other lengths.
func PublicKeyFromPeerID(id []byte) (ed25519.PublicKey, error) {
	if err := checkPeerID(id); err != nil {
		return nil, err
	}
	return ed25519.PublicKey(bytes.Clone(id[len(peerIDPrefix):])), nil
}

// checkPeerID is PublicKeyFromPeerID's check, without the copy of the key.
func checkPeerID(id []byte) error {
	if len(id) != peerIDSize {
		return fmt.Errorf("%w: %d bytes, want %d", ErrBadPeerID, len(id), peerIDSize)
	}
	if !bytes.HasPrefix(id, peerIDPrefix) {
		return fmt.Errorf("%w: prefix %x, want %x", ErrBadPeerID, id[:len(peerIDPrefix)], peerIDPrefix)
	}
	return nil
}

// ParsePeerID decodes a peer ID string: base58btc ("12D3KooW…") or a
// CIDv1 with the libp2p-key codec, as libp2p prints and parses them. The
// ID must hold an Ed25519 key.
func ParsePeerID(s string) ([]byte, error) {
	var id []byte
	if strings.HasPrefix(s, "1") || strings.HasPrefix(s, "Qm") {
		b, err := base58.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadPeerID, s, err)
		}
		id = b
	} else {
		c, err := cid.Decode(s)
		if err != nil {
			return nil, fmt.Errorf("%w: %q: %v", ErrBadPeerID, s, err)
		}
		if c.Type() != cid.Libp2pKey {
			return nil, fmt.Errorf("%w: %q: CID codec %#x, want libp2p-key", ErrBadPeerID, s, c.Type())
		}
		id = c.Hash()
	}
	if _, err := PublicKeyFromPeerID(id); err != nil {
		return nil, fmt.Errorf("%q: %w", s, err)
	}
	return id, nil
}

// PeerIDString returns a peer ID's base58btc string, as libp2p prints it.
func PeerIDString(id []byte) string { return base58.Encode(id) }
