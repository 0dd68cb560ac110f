package p2p

import (
	"context"
	"crypto/rand"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"
)

// TestIdentityFile checks the node key file: written 0600, read back to the
// same peer ID, refused when others may read it or when it is not Ed25519,
// and never overwritten.
func TestIdentityFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "identity.key")
	sk, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteIdentity(path, sk); err != nil {
		t.Fatal(err)
	}
	if fi, _ := os.Stat(path); fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", fi.Mode().Perm())
	}
	got, err := ReadIdentity(path)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := PeerIDOf(sk)
	b, _ := PeerIDOf(got)
	if a != b {
		t.Fatalf("peer ID %s read back as %s", a, b)
	}
	if err := WriteIdentity(path, sk); err == nil {
		t.Fatal("WriteIdentity replaced an existing key")
	}
	os.Chmod(path, 0o644)
	if _, err := ReadIdentity(path); !errors.Is(err, ErrKeyExposed) {
		t.Fatalf("readable key: %v", err)
	}
	other := filepath.Join(dir, "secp.key")
	k, _, _ := crypto.GenerateSecp256k1Key(rand.Reader)
	raw, _ := crypto.MarshalPrivateKey(k)
	os.WriteFile(other, raw, 0o600)
	if _, err := ReadIdentity(other); err == nil {
		t.Fatal("accepted a secp256k1 node key")
	}
}

func newPSKHost(t *testing.T, psk pnet.PSK, members *MemberSet) *Host {
	t.Helper()
	sk, _ := NewIdentity()
	h, err := NewHost(HostConfig{
		Identity:    sk,
		ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")},
		SwarmKey:    psk,
		Members:     members,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return h
}

// TestPrivateNetworkRunsTCPOnly checks the swarm key fence: with a key the
// host listens on TCP only (libp2p's PSK does not cover QUIC); hosts with
// the same key connect, hosts with another key cannot.
func TestPrivateNetworkRunsTCPOnly(t *testing.T) {
	key := make(pnet.PSK, 32)
	rand.Read(key)
	other := make(pnet.PSK, 32)
	rand.Read(other)
	members := NewMemberSet()
	a, b, c := newPSKHost(t, key, members), newPSKHost(t, key, members), newPSKHost(t, other, members)
	members.Add(a.ID(), b.ID(), c.ID())
	for _, addr := range a.Addrs() {
		if _, err := addr.ValueForProtocol(ma.P_QUIC_V1); err == nil {
			t.Fatalf("private host listens on QUIC: %s", addr)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("same key: %v", err)
	}
	if err := a.Connect(ctx, peer.AddrInfo{ID: c.ID(), Addrs: c.Addrs()}); err == nil {
		t.Fatal("connected across different swarm keys")
	}
	if _, err := NewHost(HostConfig{Identity: mustKey(t), ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")}, SwarmKey: key, Members: members}); err == nil {
		t.Fatal("a private host with only a QUIC address started")
	}
}

func mustKey(t *testing.T) crypto.PrivKey {
	sk, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return sk
}
