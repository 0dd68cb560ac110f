package store

import (
	"slices"
	"testing"

	"auditnet/chain"
	"auditnet/chain/pbft"
)

// coreNode is a validator of coreNet: its consensus core, its store and
// the records it persisted (its WAL, kept in memory).
type coreNode struct {
	key   chain.Signer
	core  *pbft.Replica
	store *Store
	dir   string
	wal   []pbft.Record
}

// coreNet runs real consensus cores over an instant, lossless network in
// one goroutine; each node stores what it commits, and serves sync
// requests from its store.
type coreNet struct {
	tb    testing.TB
	g     *chain.Genesis
	nodes []*coreNode
	ids   map[string]int
	now   int64
}

func newCoreNet(tb testing.TB, c *testChain) *coreNet {
	net := &coreNet{tb: tb, g: c.genesis, ids: map[string]int{}, now: c.genesis.Time + 1000}
	for i := 0; i <= testValidators; i++ { // the validators, then the newcomer
		n := &coreNode{key: testKey("node", i), dir: tb.TempDir()}
		net.ids[string(n.key.ID())] = i
		net.nodes = append(net.nodes, n)
		net.start(n)
	}
	return net
}

// start opens a node's store and restores its core from the snapshot.
func (net *coreNet) start(n *coreNode) {
	s, err := Open(Config{Dir: n.dir, Genesis: net.g})
	if err != nil {
		net.tb.Fatal(err)
	}
	snap, err := s.Snapshot()
	if err != nil {
		net.tb.Fatal(err)
	}
	core, err := pbft.RestoreSnapshot(pbft.Config{Genesis: net.g, Signer: n.key}, net.now, snap, n.wal)
	if err != nil {
		net.tb.Fatal(err)
	}
	n.core, n.store = core, s
}

// stop crashes a node: its core is gone, its store closed.
func (net *coreNet) stop(n *coreNode) {
	if err := n.store.Close(); err != nil {
		net.tb.Fatal(err)
	}
	n.core, n.store = nil, nil
}

type coreMsg struct {
	from, to int
	raw      []byte
}

// step carries out every Ready and delivers every message, then moves
// the clock by ms, until the network is quiet.
func (net *coreNet) step(ms int64) {
	for range 1000 {
		var queue []coreMsg
		var syncs [][2]int
		for i, n := range net.nodes {
			for n.core != nil && n.core.HasReady() {
				rd := n.core.Ready()
				n.wal = append(n.wal, rd.Persist...)
				for _, c := range rd.Committed {
					if err := n.store.Commit(c); err != nil {
						net.tb.Fatalf("node %d: %v", i, err)
					}
				}
				for _, out := range rd.Messages {
					raw, err := pbft.EncodeMessage(out.Msg)
					if err != nil {
						net.tb.Fatal(err)
					}
					for j := range net.nodes {
						if j != i && (out.To == nil || net.ids[string(out.To)] == j) {
							queue = append(queue, coreMsg{from: i, to: j, raw: raw})
						}
					}
				}
				if rd.Sync != nil {
					if j, ok := net.ids[string(rd.Sync.Peer)]; ok {
						syncs = append(syncs, [2]int{i, j})
					}
				}
				n.core.Advance()
			}
		}
		for _, m := range queue {
			if net.nodes[m.to].core == nil {
				continue
			}
			msg, err := pbft.DecodeMessage(m.raw)
			if err != nil {
				net.tb.Fatal(err)
			}
			_ = net.nodes[m.to].core.Step(net.nodes[m.from].key.ID(), msg)
		}
		for _, s := range syncs {
			net.serveSync(s[0], s[1])
		}
		net.now += ms
		for _, n := range net.nodes {
			if n.core != nil {
				n.core.Tick(net.now)
			}
		}
		if len(queue) == 0 && len(syncs) == 0 {
			return
		}
	}
	net.tb.Fatal("the network never went quiet")
}

// serveSync hands node i the blocks peer j stored after i's height, read
// back from j's store as a node serving sync would.
func (net *coreNet) serveSync(i, j int) {
	to, from := net.nodes[i], net.nodes[j]
	if to.core == nil || from.core == nil {
		return
	}
	var blocks []pbft.Committed
	for h := to.core.Height() + 1; h <= from.store.Height() && len(blocks) < 32; h++ {
		c, err := from.store.Committed(h)
		if err != nil {
			net.tb.Fatal(err)
		}
		blocks = append(blocks, c)
	}
	_ = to.core.StepSync(blocks)
}

// waitHeight submits txs to node 0 and runs the network until every live
// node reaches height h.
func (net *coreNet) waitHeight(h uint64, txs func() []chain.Tx) {
	for range 200 {
		done := true
		for _, n := range net.nodes {
			done = done && (n.core == nil || n.core.Height() >= h)
		}
		if done {
			return
		}
		for _, tx := range txs() {
			if err := net.nodes[0].core.Submit(&tx); err != nil {
				net.tb.Fatal(err)
			}
		}
		net.step(10)
	}
	net.tb.Fatalf("the nodes did not reach height %d", h)
}

// settle runs the network without new transactions until every live
// node is at the same height (a lagging one syncs on heartbeats).
func (net *coreNet) settle() {
	for range 200 {
		var hs []uint64
		for _, n := range net.nodes {
			if n.core != nil {
				hs = append(hs, n.core.Height())
			}
		}
		if slices.Min(hs) == slices.Max(hs) {
			return
		}
		net.step(50)
	}
	net.tb.Fatal("the nodes never reached the same height")
}

// TestStoreFollowsTheCore runs four validators and a follower that commit
// into their stores. The admins make the follower a validator, and one
// validator stops while the epoch changes and the others go on; restarted
// from its store's snapshot, it must catch up by sync (served from the
// others' stores), keep committing with them and store every block.
func TestStoreFollowsTheCore(t *testing.T) {
	c := newTestChain(t, testParams())
	net := newCoreNet(t, c)
	// Anchors of new datasets, always valid.
	txs := func(n int) func() []chain.Tx {
		return func() []chain.Tx {
			return c.anchorTxs(n, net.nodes[0].core.Height()+1+c.genesis.Params.ReplayWindow/2)
		}
	}
	net.waitHeight(3, txs(3))
	c.h = net.nodes[0].core.Height()
	member := c.addValidator()
	if err := net.nodes[0].core.Submit(&member); err != nil {
		t.Fatal(err)
	}
	stopped := net.nodes[2]
	net.stop(stopped)
	net.waitHeight(13, txs(3))
	if e := net.nodes[0].core.Validators().Epoch; e != 1 {
		t.Fatalf("epoch %d, want an epoch change while node 2 was down", e)
	}
	net.start(stopped)
	if stopped.core.Height() >= 13 || stopped.core.Validators().Epoch != 0 {
		t.Fatalf("node 2 restarted at height %d epoch %d", stopped.core.Height(), stopped.core.Validators().Epoch)
	}
	net.waitHeight(20, txs(3))
	net.settle()
	want := net.nodes[0].core
	for i, n := range net.nodes {
		if n.core.Height() != want.Height() || n.core.StateRoot() != want.StateRoot() || n.store.Height() != n.core.Height() {
			t.Fatalf("node %d at height %d (store %d), node 0 at %d", i, n.core.Height(), n.store.Height(), want.Height())
		}
	}
	// The restarted node's store reopens at its height.
	h := stopped.store.Height()
	net.stop(stopped)
	net.start(stopped)
	if stopped.core.Height() != h || stopped.core.StateRoot() != want.StateRoot() {
		t.Fatalf("reopened at height %d, want %d", stopped.core.Height(), h)
	}
}
