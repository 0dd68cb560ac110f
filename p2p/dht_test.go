package p2p

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	mocknet "github.com/libp2p/go-libp2p/p2p/net/mock"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/multiformats/go-multihash"
)

// dhtProtocol is the DHT's wire name, spelled out so that a change of
// DHTProtocolPrefix fails here.
const dhtProtocol = protocol.ID("/auditnet/kad/1.0.0")

// dhtSetupTimeout bounds building, bootstrapping and refreshing a test DHT.
const dhtSetupTimeout = 2 * time.Minute

// TestDHTProvideFind provides a CID from one node of a 20-server DHT on
// real hosts and finds it from each of the other servers and from a client.
func TestDHTProvideFind(t *testing.T) {
	const servers = 20
	nodes := startDHTs(t, realDHTHosts(t, servers+1), servers)
	prov, client := nodes[servers-1], nodes[servers]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	root := dhtTestCID("provide-find", 0)
	if err := prov.dht.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}
	if client.holds(ctx, root) {
		t.Fatal("the client-mode node stored a provider record")
	}
	for i, n := range nodes {
		if n == prov {
			continue
		}
		got, err := n.dht.FindProviders(ctx, root, 0)
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		if len(got) != 1 || got[0].ID != prov.host.ID() {
			t.Errorf("node %d (server %v): providers %v, want only %s", i, i < servers, got, prov.host.ID())
			continue
		}
		if len(got[0].Addrs) == 0 {
			t.Errorf("node %d (server %v): provider found without addresses", i, i < servers)
		}
	}
}

// TestDHTSpeaksOnlyAuditnetKad checks that a server registers
// /auditnet/kad/1.0.0 and no other Kademlia protocol, and that a peer
// negotiating the public IPFS DHT protocols with it is refused.
func TestDHTSpeaksOnlyAuditnetKad(t *testing.T) {
	nodes := startDHTs(t, realDHTHosts(t, 2), 2)
	a, b := nodes[0], nodes[1]

	protos := a.host.Mux().Protocols()
	if !slices.Contains(protos, dhtProtocol) {
		t.Errorf("protocols %v lack %s", protos, dhtProtocol)
	}
	if slices.Contains(protos, "/ipfs/kad/1.0.0") {
		t.Errorf("protocols %v include /ipfs/kad/1.0.0", protos)
	}
	var kad []protocol.ID
	for _, p := range protos {
		if strings.Contains(string(p), "/kad/") {
			kad = append(kad, p)
		}
	}
	if want := []protocol.ID{dhtProtocol}; !slices.Equal(kad, want) {
		t.Errorf("kad protocols %v, want %v", kad, want)
	}

	tests := []struct {
		name  string
		proto protocol.ID
		want  bool
	}{
		{"auditnet", dhtProtocol, true},
		{"ipfs", "/ipfs/kad/1.0.0", false},
		{"ipfs lan", "/ipfs/lan/kad/1.0.0", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := b.host.NewStream(ctx, a.host.ID(), tc.proto)
			if s != nil {
				s.Reset()
			}
			if got := err == nil; got != tc.want {
				t.Fatalf("open %s: accepted %v (err %v), want %v", tc.proto, got, err, tc.want)
			}
		})
	}
}

// TestDHTClientDoesNotServe checks that a client-mode node registers no
// kad handler, refuses a kad stream, stays out of the servers' routing
// tables and stores no provider record, yet finds providers.
func TestDHTClientDoesNotServe(t *testing.T) {
	const servers = 3
	nodes := startDHTs(t, realDHTHosts(t, servers+1), servers)
	prov, client := nodes[servers-1], nodes[servers]
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	if slices.Contains(client.host.Mux().Protocols(), dhtProtocol) {
		t.Fatalf("client registered %s", dhtProtocol)
	}
	root := dhtTestCID("client", 0)
	if err := prov.dht.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}
	got, err := client.dht.FindProviders(ctx, root, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].ID != prov.host.ID() {
		t.Fatalf("client found providers %v, want only %s", got, prov.host.ID())
	}
	if client.holds(ctx, root) {
		t.Error("client stored a provider record")
	}

	for i, srv := range nodes[:servers] {
		// The bootstrap servers are connected to the client; wait until
		// identify has told them its protocols before judging their
		// routing tables.
		if i < 2 {
			dhtWait(ctx, t, "identify of the client", func() bool {
				ps, _ := srv.host.Peerstore().GetProtocols(client.host.ID())
				return len(ps) > 0
			})
			if ps, _ := srv.host.Peerstore().SupportsProtocols(client.host.ID(), dhtProtocol); len(ps) > 0 {
				t.Errorf("server %d: client advertises %v", i, ps)
			}
		}
		if srv.dht.kad.RoutingTable().Find(client.host.ID()) != "" {
			t.Errorf("server %d has the client in its routing table", i)
		}
		s, err := srv.host.NewStream(ctx, client.host.ID(), dhtProtocol)
		if err == nil {
			s.Reset()
			t.Errorf("server %d opened a kad stream to the client", i)
		}
	}
}

// dhtNode is a host with a DHT on it.
type dhtNode struct {
	host host.Host
	dht  *DHT
}

// holds reports whether n has a provider record for c in its own store.
func (n *dhtNode) holds(ctx context.Context, c cid.Cid) bool {
	provs, err := n.dht.kad.ProviderStore().GetProviders(ctx, c.Hash())
	return err == nil && len(provs) > 0
}

// realDHTHosts starts n hosts on 127.0.0.1 over TCP, all members of one
// MemberSet.
func realDHTHosts(tb testing.TB, n int) []host.Host {
	tb.Helper()
	keys := make([]crypto.PrivKey, n)
	ids := make([]peer.ID, n)
	for i := range n {
		key, err := NewIdentity()
		if err != nil {
			tb.Fatal(err)
		}
		if ids[i], err = PeerIDOf(key); err != nil {
			tb.Fatal(err)
		}
		keys[i] = key
	}
	members := NewMemberSet(ids...)
	hosts := make([]host.Host, n)
	for i, key := range keys {
		h, err := NewHost(HostConfig{
			Identity:    key,
			ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")},
			Members:     members,
		})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { h.Close() })
		hosts[i] = h
	}
	return hosts
}

// mockDHTHosts starts n hosts on a go-libp2p mocknet, every pair linked
// and none connected.
func mockDHTHosts(tb testing.TB, n int) []host.Host {
	tb.Helper()
	mn, err := mocknet.FullMeshLinked(n)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { mn.Close() })
	return mn.Hosts()
}

// startDHTs starts a DHT on each host, in server mode on the first servers
// hosts and in client mode on the rest, all with the first one or two
// servers as bootstrap peers, and waits until every routing table is
// non-empty. The DHTs close before the hosts.
//
// Each node is bootstrapped before the next DHT starts. A DHT dials its
// bootstrap peers as it starts, and go-libp2p's TCP transport dials from
// its listen port (reuseport): were the two bootstrap nodes started
// together, their dials to each other could cross as one TCP simultaneous
// open, where both ends send a TLS ClientHello and both dials fail.
func startDHTs(tb testing.TB, hosts []host.Host, servers int) []*dhtNode {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dhtSetupTimeout)
	defer cancel()
	var boot []peer.AddrInfo
	for _, h := range hosts[:min(2, servers)] {
		boot = append(boot, peer.AddrInfo{ID: h.ID(), Addrs: h.Addrs()})
	}
	nodes := make([]*dhtNode, len(hosts))
	for i, h := range hosts {
		d, err := NewDHT(h, DHTConfig{Server: i < servers, Bootstrap: boot})
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { d.Close() })
		if err := d.Bootstrap(ctx, boot); err != nil {
			tb.Fatalf("bootstrap node %d: %v", i, err)
		}
		nodes[i] = &dhtNode{host: h, dht: d}
	}
	dhtWait(ctx, tb, "non-empty routing tables", func() bool {
		for _, n := range nodes {
			if n.dht.RoutingTableSize() == 0 {
				return false
			}
		}
		return true
	})
	return nodes
}

// dhtWait polls cond until it holds, failing tb when ctx ends first.
func dhtWait(ctx context.Context, tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			tb.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// dhtTestCID is a raw CIDv1 unique to (tag, i).
func dhtTestCID(tag string, i int) cid.Cid {
	mh, err := multihash.Sum(fmt.Appendf(nil, "auditnet dht test %s %d", tag, i), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, mh)
}
