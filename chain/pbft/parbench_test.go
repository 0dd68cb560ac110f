package pbft

import (
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"auditnet/chain"
)

// parNet runs each validator as a node would: its core in one goroutine,
// fed by a goroutine per peer that decodes the peer's messages
// (Verifier.DecodeMessage, which takes the transactions it met before from
// memory) and checks the signatures of consensus messages
// (Verifier.VerifyMessage) in parallel with the others, and by one worker that checks, in batches,
// the transactions its clients submit (Verifier.VerifyTxs, then
// SubmitBatch) and those other validators forward (VerifyMessage): a
// burst of transactions then takes at most one CPU from a node, and
// never holds up a vote or proposal behind it. Messages travel over
// in-memory queues, encoded once and decoded by each recipient. It uses
// every CPU, unlike benchNet.
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
	verifier  *Verifier
	inbox     parQueue[parItem] // for the core: verified consensus messages, synced blocks
	verified  parQueue[parItem] // for the core: verified transactions, client's or forwarded
	peers     []*parQueue[[]byte]
	txs       parQueue[parItem] // client transactions and forwarded ones, to verify
	committed atomic.Int64      // transactions committed
	stop      chan struct{}
	// blocks are the node's committed blocks, served to peers that sync.
	blocksMu sync.Mutex
	blocks   []Committed
}

type parItem struct {
	from int
	msg  *Message
	txs  []*chain.Tx
	sync []Committed
}

// parQueue is an unbounded queue one goroutine drains.
type parQueue[T any] struct {
	mu    sync.Mutex
	items []T
	wake  chan struct{}
}

func newParQueue[T any]() parQueue[T] { return parQueue[T]{wake: make(chan struct{}, 1)} }

func (q *parQueue[T]) post(items ...T) {
	q.mu.Lock()
	q.items = append(q.items, items...)
	q.mu.Unlock()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

func (q *parQueue[T]) take() []T {
	q.mu.Lock()
	defer q.mu.Unlock()
	items := q.items
	q.items = nil
	return items
}

func newParNet(tb testing.TB, w *world, n int) *parNet {
	net := &parNet{ids: map[string]int{}}
	for i := 0; i < n; i++ {
		c, err := New(Config{Genesis: w.genesis, Signer: w.nodeKeys[i], MempoolTxs: 1 << 20}, time.Now().UnixMilli())
		if err != nil {
			tb.Fatal(err)
		}
		nd := &parNode{net: net, idx: i, core: c, verifier: NewVerifier(VerifierConfig{}), stop: make(chan struct{}),
			inbox: newParQueue[parItem](), verified: newParQueue[parItem](), txs: newParQueue[parItem]()}
		for j := 0; j < n; j++ {
			q := newParQueue[[]byte]()
			nd.peers = append(nd.peers, &q)
		}
		net.nodes = append(net.nodes, nd)
		net.ids[string(c.ID())] = i
	}
	for _, nd := range net.nodes {
		net.wg.Add(2)
		go nd.run(tb)
		go nd.verifyTxs(tb)
		for j := range nd.peers {
			if j != nd.idx {
				net.wg.Add(1)
				go nd.receive(tb, j)
			}
		}
	}
	return net
}

func (net *parNet) close() {
	for _, nd := range net.nodes {
		close(nd.stop)
	}
	net.wg.Wait()
}

// submit hands transactions to a node as its clients would.
func (nd *parNode) submit(txs ...*chain.Tx) { nd.txs.post(parItem{txs: txs}) }

// receive decodes what peer sends; it verifies consensus messages and
// passes them to the core, and passes forwarded transactions to the
// node's transaction worker.
func (nd *parNode) receive(tb testing.TB, peer int) {
	defer nd.net.wg.Done()
	q := nd.peers[peer]
	for {
		select {
		case <-nd.stop:
			return
		case <-q.wake:
		}
		for _, raw := range q.take() {
			m, err := nd.verifier.DecodeMessage(raw)
			if err != nil {
				tb.Error(err)
				return
			}
			if len(m.Txs) > 0 {
				nd.txs.post(parItem{from: peer, msg: m})
				continue
			}
			if err := nd.verifier.VerifyMessage(m); err != nil {
				tb.Error(err)
				return
			}
			nd.inbox.post(parItem{from: peer, msg: m})
		}
	}
}

// verifyTxs is the node's transaction worker: it verifies client
// transactions, in batches, and messages of forwarded ones, for the core.
func (nd *parNode) verifyTxs(tb testing.TB) {
	defer nd.net.wg.Done()
	for {
		select {
		case <-nd.stop:
			return
		case <-nd.txs.wake:
		}
		var clients []*chain.Tx
		for _, it := range nd.txs.take() {
			if it.msg != nil {
				// In slices, yielding between them: the core goes first.
				for k := 0; k < len(it.msg.Txs); k += 1024 {
					var part []*chain.Tx
					for i := k; i < min(k+1024, len(it.msg.Txs)); i++ {
						part = append(part, &it.msg.Txs[i])
					}
					nd.verifier.VerifyTxs(part)
					runtime.Gosched()
				}
				if err := nd.verifier.VerifyMessage(it.msg); err != nil {
					tb.Error(err)
					return
				}
				nd.verified.post(it)
				continue
			}
			clients = append(clients, it.txs...)
		}
		for len(clients) > 0 {
			batch := clients[:min(len(clients), 1024)]
			clients = clients[len(batch):]
			nd.verifier.VerifyTxs(batch)
			nd.verified.post(parItem{txs: batch})
			runtime.Gosched()
		}
	}
}

// run is the node's core loop: it steps what the receivers hand it,
// consensus messages before transactions (a burst of these must not hold
// up a vote), and carries out each Ready at once, as the node does. It
// passes the time between batches of transactions.
func (nd *parNode) run(tb testing.TB) {
	defer nd.net.wg.Done()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	c := nd.core
	var txs []parItem
	for {
		select {
		case <-nd.stop:
			return
		case <-nd.inbox.wake:
		case <-nd.verified.wake:
		case <-tick.C:
		}
		for {
			for _, it := range nd.inbox.take() {
				if it.sync != nil {
					_ = c.StepSync(it.sync)
				} else {
					nd.net.msgs.Add(1)
					_ = c.Step(nd.net.nodes[it.from].core.ID(), it.msg)
				}
				if !nd.ready(tb) {
					return
				}
			}
			c.Tick(time.Now().UnixMilli())
			if !nd.ready(tb) {
				return
			}
			txs = append(txs, nd.verified.take()...)
			if len(txs) == 0 {
				break
			}
			it := txs[0]
			txs = txs[1:]
			if it.msg != nil {
				nd.net.msgs.Add(1)
				_ = c.Step(nd.net.nodes[it.from].core.ID(), it.msg)
			} else {
				c.SubmitBatch(it.txs)
			}
			if !nd.ready(tb) {
				return
			}
		}
	}
}

// ready carries out the core's Ready until it has nothing more.
func (nd *parNode) ready(tb testing.TB) bool {
	c := nd.core
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
			nd.inbox.post(parItem{sync: append(got, Committed{})[:len(got)]})
		}
		for _, out := range rd.Messages {
			raw, err := EncodeMessage(out.Msg)
			if err != nil {
				tb.Error(err)
				return false
			}
			for j, other := range nd.net.nodes {
				if j != nd.idx && (out.To == nil || nd.net.ids[string(out.To)] == j) {
					other.peers[nd.idx].post(raw)
				}
			}
		}
	}
	return true
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
			net.nodes[0].submit(load.setup(10, 900)...)
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
			cpu := cpuTime()
			b.ResetTimer()
			for i, tx := range txs {
				net.nodes[i%4].submit(tx)
			}
			net.waitCommitted(b, int64(30+b.N))
			b.StopTimer()
			b.ReportMetric(float64((cpuTime()-cpu).Nanoseconds())/float64(b.N), "cpu-ns/tx")
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "txs/s")
			b.ReportMetric(float64(net.msgs.Load()-msgs)/b.Elapsed().Seconds(), "msgs/s")
			v, _ := net.nodes[0].core.View()
			b.ReportMetric(float64(v), "views")
		})
	}
}

// cpuTime is the CPU time the process used so far, user and system: with
// the machine shared, a steadier measure of the work per transaction than
// the elapsed time (4 validators on C cores commit at most
// C·1e9/cpu-ns/tx transactions per second).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
