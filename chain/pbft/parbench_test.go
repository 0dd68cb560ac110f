package pbft

import (
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"auditnet/chain"
)

// parNet runs each validator's core in its own goroutine, as separate
// processes would, over in-memory queues: messages are encoded once and
// decoded by each recipient. It uses every CPU, unlike benchNet.
type parNet struct {
	nodes []*parNode
	ids   map[string]int
	wg    sync.WaitGroup
	msgs  atomic.Int64
}

type parNode struct {
	net       *parNet
	idx       int
	core      *Replica
	mu        sync.Mutex
	inbox     []parItem
	wake      chan struct{}
	committed atomic.Int64 // transactions committed
	stop      chan struct{}
	// blocks are the node's committed blocks, served to peers that sync.
	blocksMu sync.Mutex
	blocks   []Committed
}

type parItem struct {
	from int
	raw  []byte
	tx   *chain.Tx
	sync []Committed
}

func newParNet(tb testing.TB, w *world, n int) *parNet {
	net := &parNet{ids: map[string]int{}}
	for i := 0; i < n; i++ {
		c, err := New(Config{Genesis: w.genesis, Signer: w.nodeKeys[i], MempoolTxs: 1 << 20}, time.Now().UnixMilli())
		if err != nil {
			tb.Fatal(err)
		}
		nd := &parNode{net: net, idx: i, core: c, wake: make(chan struct{}, 1), stop: make(chan struct{})}
		net.nodes = append(net.nodes, nd)
		net.ids[string(c.ID())] = i
	}
	for _, nd := range net.nodes {
		net.wg.Add(1)
		go nd.run(tb)
	}
	return net
}

func (net *parNet) close() {
	for _, nd := range net.nodes {
		close(nd.stop)
	}
	net.wg.Wait()
}

func (nd *parNode) post(it parItem) {
	nd.mu.Lock()
	nd.inbox = append(nd.inbox, it)
	nd.mu.Unlock()
	select {
	case nd.wake <- struct{}{}:
	default:
	}
}

func (nd *parNode) run(tb testing.TB) {
	defer nd.net.wg.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-nd.stop:
			return
		case <-nd.wake:
		case <-tick.C:
		}
		nd.mu.Lock()
		items := nd.inbox
		nd.inbox = nil
		nd.mu.Unlock()
		c := nd.core
		for _, it := range items {
			if it.tx != nil {
				_ = c.Submit(it.tx)
				continue
			}
			if it.sync != nil {
				_ = c.StepSync(it.sync)
				continue
			}
			m, err := DecodeMessage(it.raw)
			if err != nil {
				tb.Error(err)
				return
			}
			nd.net.msgs.Add(1)
			_ = c.Step(nd.net.nodes[it.from].core.ID(), m)
		}
		c.Tick(time.Now().UnixMilli())
		for c.HasReady() {
			rd := c.Ready()
			c.Advance()
			for _, cb := range rd.Committed {
				nd.committed.Add(int64(len(cb.Block.Txs)))
			}
			nd.blocksMu.Lock()
			nd.blocks = append(nd.blocks, rd.Committed...)
			nd.blocksMu.Unlock()
			if rd.Sync != nil {
				peer := nd.net.nodes[nd.net.ids[string(rd.Sync.Peer)]]
				peer.blocksMu.Lock()
				var got []Committed
				for _, cb := range peer.blocks {
					if cb.Block.Header.Height >= rd.Sync.From {
						got = append(got, cb)
					}
				}
				peer.blocksMu.Unlock()
				nd.post(parItem{sync: append(got, Committed{})[:len(got)]})
			}
			for _, out := range rd.Messages {
				raw, err := EncodeMessage(out.Msg)
				if err != nil {
					tb.Error(err)
					return
				}
				for j, other := range nd.net.nodes {
					if j != nd.idx && (out.To == nil || nd.net.ids[string(out.To)] == j) {
						other.post(parItem{from: nd.idx, raw: raw})
					}
				}
			}
		}
	}
}

// waitCommitted waits until every node committed n transactions.
func (net *parNet) waitCommitted(tb testing.TB, n int64) {
	deadline := time.Now().Add(5 * time.Minute)
	for _, nd := range net.nodes {
		for nd.committed.Load() < n {
			if time.Now().After(deadline) {
				tb.Fatalf("node %d committed %d of %d transactions", nd.idx, nd.committed.Load(), n)
			}
			select {
			case <-time.After(time.Millisecond):
			case <-nd.stop:
			}
		}
	}
}

// BenchmarkCoreParallel is BenchmarkCore with each validator in its own
// goroutine, so that the 4 validators share the machine's cores as 4
// processes would.
func BenchmarkCoreParallel(b *testing.B) {
	for _, mix := range []string{"anchor", "mix"} {
		b.Run(mix, func(b *testing.B) {
			w := newWorld(b, 4, 0, benchParams())
			net := newParNet(b, w, 4)
			defer net.close()
			load := &workload{tb: b, w: w}
			for _, tx := range load.setup(10, 900) {
				net.nodes[0].post(parItem{tx: tx})
			}
			net.waitCommitted(b, 30)
			txs := make([]*chain.Tx, b.N)
			for i := range txs {
				pick := uint64(i)
				if mix == "anchor" {
					pick = probePick
				}
				txs[i] = load.next(pick, 900)
			}
			msgs := net.msgs.Load()
			b.ResetTimer()
			for i, tx := range txs {
				net.nodes[i%4].post(parItem{tx: tx})
			}
			net.waitCommitted(b, int64(30+b.N))
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txs/s")
			b.ReportMetric(float64(net.msgs.Load()-msgs)/b.Elapsed().Seconds(), "msgs/s")
		})
	}
}
