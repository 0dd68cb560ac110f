package p2p

import (
	"context"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/routing"
	"golang.org/x/sync/errgroup"
)

// BenchmarkProviderLookup measures FindProviders (max 20, as node calls it)
// in DHTs of n servers plus one client. Each op provides a fresh CID from a
// random server (not timed), then looks it up from a random node that holds
// no record of it: the client, or a server the provider did not store the
// record on. With n ≤ 20 every server holds every record, so the client
// looks up. The lookup runs its course (one provider, max 20), so the time is
// that of a full query. real-n are hosts on 127.0.0.1 over TCP; mock-n are
// go-libp2p mocknet hosts with zero link latency, the same DHT code.
// Metrics: p50-ms and p99-ms of the lookups; rpcs/op the queries sent
// (the follow-up phase may ask a peer again); dials/op the peers the
// lookup had to connect to first (connections accumulate over the run).
func BenchmarkProviderLookup(b *testing.B) {
	if testing.Short() {
		b.Skip("builds DHTs of up to 200 nodes")
	}
	cases := []struct {
		name  string
		n     int
		hosts func(testing.TB, int) []host.Host
	}{
		{"real-10", 10, realDHTHosts},
		{"real-50", 50, realDHTHosts},
		{"mock-10", 10, mockDHTHosts},
		{"mock-50", 50, mockDHTHosts},
		{"mock-200", 200, mockDHTHosts},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			start := time.Now()
			nodes := startDHTs(b, bc.hosts(b, bc.n+1), bc.n)
			dhtRefreshAll(b, nodes)
			b.Logf("setup %v, mean routing table %.1f", time.Since(start).Round(time.Millisecond), dhtMeanRoutingTable(nodes))
			dhtBenchLookups(b, nodes, bc.n)
		})
	}
}

// dhtBenchLookups runs the timed loop on nodes, whose first servers are DHT
// servers.
func dhtBenchLookups(b *testing.B, nodes []*dhtNode, servers int) {
	ctx := context.Background()
	r := rand.New(rand.NewPCG(uint64(len(nodes)), 1))
	var lat []time.Duration
	rpcs, dials := 0, 0
	for b.Loop() {
		b.StopTimer()
		c := dhtTestCID(b.Name(), len(lat))
		prov := nodes[r.IntN(servers)]
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := prov.dht.Provide(pctx, c)
		cancel()
		if err != nil {
			b.Fatal(err)
		}
		// ADD_PROVIDER is one-way, so a server may store the record just
		// after this check; the lookup still asks the network, as it
		// wants up to 20 providers and there is one.
		var lookers []*dhtNode
		for _, n := range nodes {
			if !n.holds(ctx, c) {
				lookers = append(lookers, n)
			}
		}
		if len(lookers) == 0 {
			b.Fatal("every node holds the record")
		}
		looker := lookers[r.IntN(len(lookers))]
		qctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		qctx, events := routing.RegisterForQueryEvents(qctx)
		counted := make(chan [2]int)
		go func() {
			var n [2]int // queries sent, dials
			for ev := range events {
				switch ev.Type {
				case routing.SendingQuery:
					n[0]++
				case routing.DialingPeer:
					n[1]++
				}
			}
			counted <- n
		}()
		b.StartTimer()

		t0 := time.Now()
		got, err := looker.dht.FindProviders(qctx, c, 20)
		lat = append(lat, time.Since(t0))

		cancel()
		n := <-counted
		rpcs, dials = rpcs+n[0], dials+n[1]
		if err != nil || len(got) != 1 || got[0].ID != prov.host.ID() {
			b.Fatalf("lookup %d: providers %v (err %v), want %s", len(lat), got, err, prov.host.ID())
		}
	}
	slices.Sort(lat)
	b.ReportMetric(dhtMillis(dhtPercentile(lat, 0.50)), "p50-ms")
	b.ReportMetric(dhtMillis(dhtPercentile(lat, 0.99)), "p99-ms")
	b.ReportMetric(float64(rpcs)/float64(len(lat)), "rpcs/op")
	b.ReportMetric(float64(dials)/float64(len(lat)), "dials/op")
}

// dhtRefreshAll refreshes every routing table once all nodes have
// bootstrapped, so that the early ones know the late ones.
func dhtRefreshAll(tb testing.TB, nodes []*dhtNode) {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), dhtSetupTimeout)
	defer cancel()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, n := range nodes {
		g.Go(func() error { return n.dht.RefreshRoutingTable(gctx) })
	}
	if err := g.Wait(); err != nil {
		tb.Fatalf("refresh routing tables: %v", err)
	}
}

func dhtMeanRoutingTable(nodes []*dhtNode) float64 {
	sum := 0
	for _, n := range nodes {
		sum += n.dht.RoutingTableSize()
	}
	return float64(sum) / float64(len(nodes))
}

// dhtPercentile is the nearest-rank p-quantile of sorted.
func dhtPercentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(sorted)))) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

func dhtMillis(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
