package pbft

import (
	"crypto/ed25519"
	"fmt"
	"testing"

	"auditnet/chain"
)

// benchNet is 4 validators in one process over a lossless, instant
// network: every message is encoded once and decoded by each recipient,
// as on the wire, and nothing else is simulated. Each node verifies every
// signature itself (no shared cache), with real Ed25519.
type benchNet struct {
	tb    testing.TB
	cores []*Replica
	ids   map[string]int
	queue []benchMsg
	now   int64
	msgs  int
}

type benchMsg struct {
	to, from int
	raw      []byte
}

func newBenchNet(tb testing.TB, w *world, n int) *benchNet {
	net := &benchNet{tb: tb, ids: map[string]int{}, now: simGenesisTime + 1000}
	for i := 0; i < n; i++ {
		c, err := New(Config{Genesis: w.genesis, Signer: w.nodeKeys[i], MempoolTxs: 1 << 20}, net.now)
		if err != nil {
			tb.Fatal(err)
		}
		net.cores = append(net.cores, c)
		net.ids[string(c.ID())] = i
	}
	return net
}

// drain carries out every Ready and delivers every message until the
// network is quiet.
func (net *benchNet) drain() {
	for {
		progressed := false
		for i, c := range net.cores {
			for c.HasReady() {
				rd := c.Ready()
				c.Advance()
				progressed = true
				for _, out := range rd.Messages {
					raw, err := EncodeMessage(out.Msg)
					if err != nil {
						net.tb.Fatal(err)
					}
					for j := range net.cores {
						if j != i && (out.To == nil || net.ids[string(out.To)] == j) {
							net.queue = append(net.queue, benchMsg{to: j, from: i, raw: raw})
						}
					}
				}
			}
		}
		if len(net.queue) == 0 && !progressed {
			return
		}
		q := net.queue
		net.queue = nil
		for _, m := range q {
			msg, err := DecodeMessage(m.raw)
			if err != nil {
				net.tb.Fatal(err)
			}
			net.msgs++
			_ = net.cores[m.to].Step(net.cores[m.from].ID(), msg)
		}
		net.now++
		for _, c := range net.cores {
			c.Tick(net.now)
		}
	}
}

// benchParams lift the per-sender caps so that a few senders can load the
// chain.
func benchParams() chain.Params {
	p := chain.DefaultParams()
	p.MaxPendingPerSender, p.MaxAccessPerWindow, p.ReplayWindow = 1<<20, 1<<20, 1000
	return p
}

// BenchmarkCore measures committed transactions per second of the core
// alone: 4 validators in one process, real Ed25519 signing and verifying,
// realistic transactions (a mix of Anchor, Grant and AccessRequest, or
// Anchors only). Clients sign outside the timer; each validator verifies
// each transaction once, and every vote of every other validator.
func BenchmarkCore(b *testing.B) {
	for _, mix := range []string{"anchor", "mix"} {
		b.Run(mix, func(b *testing.B) {
			w := newWorld(b, 4, 0, benchParams())
			net := newBenchNet(b, w, 4)
			load := &workload{tb: b, w: w}
			// Datasets for grants and requests to refer to.
			for _, tx := range load.setup(10, 900) {
				if err := net.cores[0].Submit(tx); err != nil {
					b.Fatal(err)
				}
			}
			net.drain()
			txs := make([]*chain.Tx, b.N)
			for i := range txs {
				pick := uint64(i)
				if mix == "anchor" {
					pick = probePick
				}
				txs[i] = load.next(pick, 900)
			}
			start := net.cores[0].Height()
			msgs := net.msgs
			b.ResetTimer()
			for i, tx := range txs {
				if err := net.cores[i%4].Submit(tx); err != nil {
					b.Fatalf("tx %d (%s): %v", i, tx.Body.Kind, err)
				}
				if i%4000 == 3999 {
					net.drain()
				}
			}
			net.drain()
			b.StopTimer()
			committed := 0
			for _, c := range net.cores {
				if c.Height() != net.cores[0].Height() {
					b.Fatalf("validators at different heights")
				}
			}
			for h := start + 1; h <= net.cores[0].Height(); h++ {
				committed++
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txs/s")
			b.ReportMetric(float64(net.msgs-msgs)/b.Elapsed().Seconds(), "msgs/s")
			b.ReportMetric(float64(b.N)/float64(max(committed, 1)), "txs/block")
			if net.cores[0].MempoolSize() != 0 {
				b.Fatalf("%d transactions left uncommitted", net.cores[0].MempoolSize())
			}
		})
	}
}

// BenchmarkEd25519 measures one signature and one verification, the
// costs the core's throughput is compared with.
func BenchmarkEd25519(b *testing.B) {
	seed := make([]byte, 32)
	sk := ed25519.NewKeyFromSeed(seed)
	pk := sk.Public().(ed25519.PublicKey)
	msg := make([]byte, 300)
	sig := ed25519.Sign(sk, msg)
	b.Run("sign", func(b *testing.B) {
		for b.Loop() {
			ed25519.Sign(sk, msg)
		}
	})
	b.Run("verify", func(b *testing.B) {
		for b.Loop() {
			if !ed25519.Verify(pk, msg, sig) {
				b.Fatal("bad signature")
			}
		}
	})
}

func ExampleQuorum() {
	for _, n := range []int{4, 5, 7, 10} {
		fmt.Println(n, chain.Quorum(n))
	}
	// Output:
	// 4 3
	// 5 4
	// 7 5
	// 10 7
}
