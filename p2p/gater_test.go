package p2p

import (
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
)

// TestGaterPartition checks the test switch with two real hosts:
// Partition refuses a member in both directions, Enforce closes the
// connection it had, and Heal lets it connect again; a peer that is not a
// member stays refused after Heal.
func TestGaterPartition(t *testing.T) {
	a, b := newWireHost(t, nil, ""), newWireHost(t, nil, "")
	linkWire(t, a, b)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	a.Gater.Partition(b.ID())
	if n := a.Enforce(); n != 1 {
		t.Fatalf("Enforce closed %d peers, want 1", n)
	}
	waitFor(t, 10*time.Second, "the connection to close on both sides", func() bool {
		return a.Network().Connectedness(b.ID()) != network.Connected && b.Network().Connectedness(a.ID()) != network.Connected
	})
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err == nil {
		t.Fatal("a dialled a partitioned peer")
	}
	// Over TLS the dialer may finish its handshake before a's gater closes
	// the connection: a must never hold it.
	err := b.Connect(ctx, peer.AddrInfo{ID: a.ID(), Addrs: a.Addrs()})
	if a.Network().Connectedness(b.ID()) == network.Connected {
		t.Fatalf("a accepted a partitioned peer (b's Connect: %v)", err)
	}
	waitFor(t, 10*time.Second, "the refused connection to close", func() bool {
		return b.Network().Connectedness(a.ID()) != network.Connected
	})

	a.Gater.Heal()
	if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
		t.Fatalf("connect after Heal: %v", err)
	}

	outsider := newWireHost(t, nil, "")
	a.Gater.Partition(outsider.ID())
	a.Gater.Heal()
	if err := a.Connect(ctx, peer.AddrInfo{ID: outsider.ID(), Addrs: outsider.Addrs()}); err == nil {
		t.Fatal("Heal admitted a non-member")
	}
}

// TestConsensusAcrossPartition: frames sent while the gater partitions
// two validators are lost (the writer cannot redial); after Heal the
// writer redials and frames flow again.
func TestConsensusAcrossPartition(t *testing.T) {
	a, b := newConsensusNode(t, nil, ConsensusConfig{}), newConsensusNode(t, nil, ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	a.c.Send(b.ID(), []byte("before"))
	waitFor(t, 10*time.Second, "the first frame", func() bool { return b.count(a.ID()) == 1 })

	a.Gater.Partition(b.ID())
	a.Enforce()
	waitFor(t, 10*time.Second, "the partition", func() bool { return b.Network().Connectedness(a.ID()) != network.Connected })
	a.c.Send(b.ID(), []byte("during"))
	waitFor(t, 10*time.Second, "a failed redial", func() bool { return a.c.Stats().Redials > 0 })
	if got := b.count(a.ID()); got != 1 {
		t.Fatalf("%d frames crossed the partition", got-1)
	}
	a.Gater.Heal()
	waitFor(t, 20*time.Second, "frames after Heal", func() bool {
		a.c.Send(b.ID(), []byte("after"))
		return b.count(a.ID()) > 1
	})
}
