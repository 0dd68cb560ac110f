package p2p

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/p2p/net/connmgr"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
	noise "github.com/libp2p/go-libp2p/p2p/security/noise"
	libp2ptls "github.com/libp2p/go-libp2p/p2p/security/tls"

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
	// It says so at start.
	var log bytes.Buffer
	h, err := NewHost(HostConfig{
		Identity: mustKey(t), SwarmKey: key, Members: members, Logger: slog.New(slog.NewTextHandler(&log, nil)),
		ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0"), ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")},
	})
	if err != nil {
		t.Fatal(err)
	}
	h.Close()
	if !strings.Contains(log.String(), "TCP only") {
		t.Fatalf("start log does not say the host runs TCP only: %q", log.String())
	}
}

func mustKey(t *testing.T) crypto.PrivKey {
	sk, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	return sk
}

// TestHostOptions checks what NewHost turns on and off: the announce
// addresses replace the listen ones; no relay or hole-punching protocol is
// offered; a peer that speaks only Noise and one that speaks only TLS both
// connect.
func TestHostOptions(t *testing.T) {
	members := NewMemberSet()
	announce := ma.StringCast("/ip4/10.1.2.3/tcp/4040")
	h, err := NewHost(HostConfig{
		Identity: mustKey(t), Members: members,
		ListenAddrs:   []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
		AnnounceAddrs: []ma.Multiaddr{announce},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	if addrs := h.Addrs(); len(addrs) != 1 || !addrs[0].Equal(announce) {
		t.Fatalf("announced %v, want %v", addrs, announce)
	}
	cm, ok := h.ConnManager().(*connmgr.BasicConnMgr)
	if !ok {
		t.Fatalf("connection manager %T, want go-libp2p's basic one", h.ConnManager())
	}
	if info := cm.GetInfo(); info.LowWater != 100 || info.HighWater != 400 {
		t.Fatalf("connection manager watermarks %d/%d, want the defaults 100/400", info.LowWater, info.HighWater)
	}
	for _, p := range h.Mux().Protocols() {
		if strings.Contains(string(p), "relay") || strings.Contains(string(p), "dcutr") || strings.Contains(string(p), "autonat") {
			t.Fatalf("host offers %s", p)
		}
	}
	for _, tc := range []struct {
		name string
		sec  libp2p.Option
	}{
		{"noise", libp2p.Security(noise.ID, noise.New)},
		{"tls", libp2p.Security(libp2ptls.ID, libp2ptls.New)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sk := mustKey(t)
			other, err := libp2p.New(libp2p.Identity(sk), tc.sec, libp2p.ListenAddrStrings("/ip4/127.0.0.1/tcp/0"), libp2p.DisableRelay())
			if err != nil {
				t.Fatal(err)
			}
			defer other.Close()
			members.Add(other.ID())
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := other.Connect(ctx, peer.AddrInfo{ID: h.ID(), Addrs: h.Network().ListenAddresses()}); err != nil {
				t.Fatal(err)
			}
			if res := <-ping.Ping(ctx, other, h.ID()); res.Error != nil {
				t.Fatal(res.Error)
			}
		})
	}
}

// TestStreamLimitPerPeer checks that the resource manager enforces the
// configured per-peer stream limit: a peer that keeps opening streams is
// refused past it.
func TestStreamLimitPerPeer(t *testing.T) {
	members := NewMemberSet()
	mk := func() *Host {
		h, err := NewHost(HostConfig{
			Identity: mustKey(t), Members: members,
			ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
			Limits:      Limits{MaxStreamsPerPeer: 16},
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		members.Add(h.ID())
		return h
	}
	server, client := mk(), mk()
	held := make(chan network.Stream, 64)
	server.SetStreamHandler("/test/hold", func(s network.Stream) {
		s.Write([]byte{1}) // accepted: say so, then hold the stream open
		held <- s
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := client.Connect(ctx, peer.AddrInfo{ID: server.ID(), Addrs: server.Addrs()}); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	for i := 0; i < 64; i++ {
		s, err := client.NewStream(ctx, server.ID(), "/test/hold")
		if err != nil {
			break
		}
		s.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := s.Read(make([]byte, 1)); err != nil {
			break
		}
		accepted++
	}
	if accepted > 16 {
		t.Fatalf("%d streams from one peer accepted with a limit of 16", accepted)
	}
	if accepted < 8 {
		t.Fatalf("only %d streams accepted", accepted)
	}
}
