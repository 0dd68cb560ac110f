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
	// verifiers, if set, decode and verify each node's messages before
	// Step, as a node does (Verifier.DecodeMessage, VerifyMessage).
	verifiers []*Verifier
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
			msg, err := net.decode(m.to, m.raw)
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

// decode decodes a message for node to, and verifies it if the network
// has verifiers.
func (net *benchNet) decode(to int, raw []byte) (*Message, error) {
	if net.verifiers == nil {
		return DecodeMessage(raw)
	}
	v := net.verifiers[to]
	m, err := v.DecodeMessage(raw)
	if err != nil {
		return nil, err
	}
	return m, v.VerifyMessage(m)
}

// submit hands node i its clients' transactions: verified in one batch
// first if the network has verifiers, as a node does.
func (net *benchNet) submit(i int, txs []*chain.Tx) {
	if net.verifiers != nil {
		net.verifiers[i].VerifyTxs(txs)
	}
	for k, err := range net.cores[i].SubmitBatch(txs) {
		if err != nil {
			net.tb.Fatalf("tx %s: %v", txs[k].Body.Kind, err)
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
// each transaction once, and every vote of every other validator. It runs
// on one goroutine, so ns/op is the CPU time of 4 validators per
// transaction, GC aside.
func BenchmarkCore(b *testing.B) { benchmarkCore(b, false) }

// BenchmarkCoreNode is BenchmarkCore with the node's path: a Verifier per
// validator decodes and verifies messages before Step, and clients'
// transactions in batches before SubmitBatch.
func BenchmarkCoreNode(b *testing.B) { benchmarkCore(b, true) }

func benchmarkCore(b *testing.B, node bool) {
	for _, mix := range []string{"anchor", "mix"} {
		b.Run(mix, func(b *testing.B) {
			b.ReportAllocs()
			w := newWorld(b, 4, 0, benchParams())
			net := newBenchNet(b, w, 4)
			if node {
				for range net.cores {
					net.verifiers = append(net.verifiers, NewVerifier(VerifierConfig{}))
				}
			}
			load := &workload{tb: b, w: w}
			// Datasets for grants and requests to refer to.
			net.submit(0, load.setup(10, 900))
			net.drain()
			txs := make([]*chain.Tx, b.N)
			for i := range txs {
				pick := uint64(i)
				if mix == "anchor" {
					pick = probePick
				}
				// Clients sign over time: one expiry height per block's
				// worth of transactions.
				txs[i] = load.next(pick, 900+uint64(i/2000))
			}
			start := net.cores[0].Height()
			msgs := net.msgs
			b.ResetTimer()
			for i := 0; i < len(txs); i += 4000 {
				chunk := txs[i:min(i+4000, len(txs))]
				for n := range 4 {
					var mine []*chain.Tx
					for k := n; k < len(chunk); k += 4 {
						mine = append(mine, chunk[k])
					}
					net.submit(n, mine)
				}
				net.drain()
			}
			net.drain()
			b.StopTimer()
			for _, c := range net.cores {
				if c.Height() != net.cores[0].Height() {
					b.Fatalf("validators at different heights")
				}
			}
			committed := int(net.cores[0].Height() - start)
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
