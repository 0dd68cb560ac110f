package p2p

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io/fs"
	"os"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
)

// NewIdentity makes a node key: Ed25519, the key of the node's peer ID,
// its txs and its votes.
func NewIdentity() (crypto.PrivKey, error) {
	sk, _, err := crypto.GenerateEd25519Key(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generate node key: %w", err)
	}
	return sk, nil
}

// WriteIdentity stores a node key in path (libp2p's protobuf key format),
// readable by its owner only. It refuses to replace an existing key.
func WriteIdentity(path string, sk crypto.PrivKey) error {
	if _, err := os.Stat(path); err == nil {
		return fmt.Errorf("write node key: %s exists", path)
	}
	raw, err := crypto.MarshalPrivateKey(sk)
	if err != nil {
		return fmt.Errorf("encode node key: %w", err)
	}
	if err := storage.WriteFileAtomic(storage.OSFS{}, path, raw, 0o600); err != nil {
		return fmt.Errorf("write node key: %w", err)
	}
	return nil
}

// ErrKeyExposed is returned by ReadIdentity for a key file that others
// than its owner may read: a node key is its whole identity on the chain.
var ErrKeyExposed = errors.New("node key file is readable by others than its owner (chmod 600 it)")

// ReadIdentity loads the node key from path. The key must be Ed25519 and
// the file private to its owner.
func ReadIdentity(path string) (crypto.PrivKey, error) {
	info, err := os.Stat(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("read node key: %s is missing", path)
		}
		return nil, fmt.Errorf("read node key: %w", err)
	}
	if info.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("%s: %w", path, ErrKeyExposed)
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read node key: %w", err)
	}
	sk, err := crypto.UnmarshalPrivateKey(raw)
	if err != nil {
		return nil, fmt.Errorf("read node key %s: %w", path, err)
	}
	if sk.Type() != crypto.Ed25519 {
		return nil, fmt.Errorf("read node key %s: key type %s, want Ed25519", path, sk.Type())
	}
	return sk, nil
}

// PeerIDOf returns the peer ID of a node key.
func PeerIDOf(sk crypto.PrivKey) (peer.ID, error) {
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		return "", fmt.Errorf("peer ID of node key: %w", err)
	}
	return id, nil
}
