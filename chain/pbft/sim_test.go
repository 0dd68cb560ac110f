package pbft

import (
	"container/heap"
	"crypto/sha256"
	"flag"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// The simulator runs n cores in one goroutine over a simulated network
// driven by one seeded random source: the same seed replays the same run,
// event for event. The network drops, duplicates, delays (and so
// reorders) and replays messages, and partitions and heals; nodes crash
// and restart from exactly what their Ready said to persist; Byzantine
// validators (at most f, see byzantine_test.go) run alongside. A checker
// watches every Ready for the invariants of PBFT.

// scenario is what one seed runs.
type scenario struct {
	seed      uint64
	n         int // validators
	followers int
	byz       map[int]byzKind
	// Faults during the fault phase.
	dropP, dupP, replayP float64
	maxDelay             time.Duration
	partitions, crashes  bool
	skew                 map[int]time.Duration
	// valChange: an admin makes follower 0 a validator mid-run.
	valChange bool
	// Test-only switches that break the core, for the checker's teeth.
	brokenQuorum, skipNewViewCheck bool
	faultPhase, healPhase          time.Duration
	txEvery                        time.Duration
	// filter, when set, drops the messages it returns true for (m nil:
	// serving a sync request), before the network heals: a targeted
	// fault.
	filter func(s *sim, from, to int, m *Message) bool
}

func (s scenario) String() string {
	var byz []string
	for i := 0; i < s.n; i++ {
		if k, ok := s.byz[i]; ok {
			byz = append(byz, fmt.Sprintf("%d:%s", i, k))
		}
	}
	return fmt.Sprintf("seed=%d n=%d followers=%d byz=[%s] drop=%.2f dup=%.2f replay=%.2f partitions=%v crashes=%v skew=%v valchange=%v",
		s.seed, s.n, s.followers, strings.Join(byz, " "), s.dropP, s.dupP, s.replayP, s.partitions, s.crashes, len(s.skew) > 0, s.valChange)
}

// randomScenario draws a seed's scenario: n among 4, 5, 7 and 10, up to f
// Byzantine validators of random kinds, and a random mix of network and
// crash faults.
func randomScenario(seed uint64) scenario {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	ns := []int{4, 4, 5, 7, 10}
	s := scenario{seed: seed, n: ns[r.IntN(len(ns))], followers: 1 + r.IntN(2), byz: map[int]byzKind{},
		maxDelay: time.Duration(5+r.IntN(200)) * time.Millisecond, skew: map[int]time.Duration{},
		faultPhase: time.Duration(3+r.IntN(5)) * time.Second, healPhase: 10 * time.Second,
		txEvery: time.Duration(20+r.IntN(100)) * time.Millisecond}
	f := chain.Faults(s.n)
	nbyz := r.IntN(f + 1)
	for _, i := range r.Perm(s.n)[:nbyz] {
		s.byz[i] = byzKind(1 + r.IntN(int(numByzKinds)-1))
	}
	if r.IntN(3) > 0 {
		s.dropP = float64(r.IntN(15)) / 100
	}
	if r.IntN(3) > 0 {
		s.dupP = float64(r.IntN(10)) / 100
	}
	if r.IntN(3) > 0 {
		s.replayP = float64(r.IntN(5)) / 100
	}
	s.partitions = r.IntN(3) == 0
	s.crashes = r.IntN(2) == 0
	if r.IntN(4) == 0 {
		i := r.IntN(s.n)
		s.skew[i] = time.Duration(r.IntN(1500)-750) * time.Millisecond
	}
	s.valChange = r.IntN(4) == 0
	return s
}

type simNode struct {
	idx    int
	id     []byte
	key    chain.Signer
	core   *Replica
	kind   byzKind
	twinOf int // for a twin: the node it shares a key with; else -1
	// The node's disk: what its Readys said to persist.
	blocks []Committed
	wal    []Record
	// lastHeight is the last height this process committed.
	lastHeight uint64
	crashed    bool
}

func (n *simNode) honest() bool { return n.kind == honestNode }

type evKind int

const (
	evDeliver evKind = iota
	evTick
	evSyncServe
	evSyncDeliver
	evClient
	evCrash
	evRestart
	evHeal
	evProbe
)

type event struct {
	at     time.Duration
	seq    uint64
	kind   evKind
	to     int
	from   int
	data   []byte
	blocks []Committed
	height uint64
}

type eventQueue []*event

func (q eventQueue) Len() int { return len(q) }
func (q eventQueue) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q eventQueue) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *eventQueue) Push(x any)   { *q = append(*q, x.(*event)) }
func (q *eventQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

type sim struct {
	tb     testing.TB
	sc     scenario
	r      *rand.Rand
	w      *world
	load   *workload
	nodes  []*simNode
	byID   map[string][]int // peer ID → node indexes (two for twins)
	group  map[int]int      // sender index → which twin hears it
	now    time.Duration
	seq    uint64
	q      eventQueue
	cut    map[[2]int]bool // partitioned pairs
	healed bool
	old    [][]byte // sent messages, for replays
	check  *checker
	probes map[cid.Cid]bool
	// sigCache is shared by all nodes of this run.
	sigCache map[[32]byte]bool
	steps    int
	msgs     int
}

const simTick = 20 * time.Millisecond

var simLog = flag.Bool("simlog", false, "log every simulated core's decisions to stderr")

func newSim(tb testing.TB, sc scenario, w *world) *sim {
	s := &sim{tb: tb, sc: sc, r: rand.New(rand.NewPCG(sc.seed, 1)), w: w, byID: map[string][]int{},
		group: map[int]int{}, cut: map[[2]int]bool{}, probes: map[cid.Cid]bool{}, sigCache: map[[32]byte]bool{}}
	s.load = &workload{tb: tb, w: w}
	s.check = newChecker(s)
	total := sc.n + sc.followers
	for i := 0; i < total; i++ {
		s.addNode(i, w.nodeKeys[i], sc.byz[i], -1)
	}
	for i := 0; i < sc.n; i++ {
		if sc.byz[i] == byzTwins {
			s.addNode(len(s.nodes), w.nodeKeys[i], byzTwins, i)
		}
	}
	for i := range s.nodes {
		s.group[i] = s.r.IntN(2)
	}
	for i := range s.nodes {
		s.schedule(&event{at: time.Duration(s.r.IntN(int(simTick))), kind: evTick, to: i})
	}
	s.schedule(&event{at: 50 * time.Millisecond, kind: evClient})
	if sc.crashes {
		for k := 0; k < 1+s.r.IntN(3); k++ {
			i := s.r.IntN(total)
			if s.nodes[i].honest() {
				at := time.Duration(s.r.Int64N(int64(sc.faultPhase)))
				s.schedule(&event{at: at, kind: evCrash, to: i})
				s.schedule(&event{at: at + time.Duration(s.r.Int64N(int64(2*time.Second))), kind: evRestart, to: i})
			}
		}
	}
	if sc.partitions {
		s.partition()
	}
	s.schedule(&event{at: sc.faultPhase, kind: evHeal, to: -2})
	s.schedule(&event{at: sc.faultPhase + 2*time.Second, kind: evProbe})
	return s
}

func (s *sim) addNode(idx int, sk chain.Signer, kind byzKind, twinOf int) {
	var id []byte
	if twinOf >= 0 {
		id = s.w.nodeIDs[twinOf]
	} else {
		id = s.w.nodeIDs[idx]
	}
	n := &simNode{idx: idx, id: id, key: sk, kind: kind, twinOf: twinOf}
	s.nodes = append(s.nodes, n)
	s.byID[string(id)] = append(s.byID[string(id)], idx)
	n.core = s.newCore(n, nil)
}

func (s *sim) config(n *simNode) Config {
	cfg := Config{Genesis: s.w.genesis, Signer: n.key, ViewChangeTimeoutMs: 500,
		HeartbeatIntervalMs: 200, RequestTimeoutMs: 3000, IdleBlockIntervalMs: 300}
	if *simLog {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug,
			ReplaceAttr: func(_ []string, a slog.Attr) slog.Attr {
				if a.Key == slog.TimeKey {
					return slog.String("t", s.now.String())
				}
				return a
			}})).With("node", n.idx)
	}
	return cfg
}

// clock is a node's clock, ms since 1970 UTC.
func (s *sim) clock(n *simNode) int64 {
	return simGenesisTime + (time.Second + s.now + s.sc.skew[n.idx]).Milliseconds()
}

// newCore starts a node's core, from genesis or, on a restart, from its
// disk.
func (s *sim) newCore(n *simNode, restoreFrom *simNode) *Replica {
	var c *Replica
	var err error
	if restoreFrom == nil {
		c, err = New(s.config(n), s.clock(n))
	} else {
		c, err = Restore(s.config(n), s.clock(n), n.blocks, n.wal)
	}
	if err != nil {
		s.tb.Fatalf("%s: node %d: %v", s.sc, n.idx, err)
	}
	c.hooks = s.hooksFor(n)
	c.hooks.sigCache = s.sigCache
	n.lastHeight = c.Height()
	return c
}

func (s *sim) schedule(e *event) {
	s.seq++
	e.seq = s.seq
	heap.Push(&s.q, e)
}

// partition cuts the network into two random sides for a while.
func (s *sim) partition() {
	for k := range s.cut {
		delete(s.cut, k)
	}
	side := map[int]int{}
	for i := range s.nodes {
		side[i] = s.r.IntN(2)
	}
	for i := range s.nodes {
		for j := range s.nodes {
			if side[i] != side[j] {
				s.cut[[2]int{i, j}] = true
			}
		}
	}
	if s.now+time.Second < s.sc.faultPhase {
		s.schedule(&event{at: s.now + time.Duration(500+s.r.IntN(1500))*time.Millisecond, kind: evHeal, to: -1})
	}
}

// run plays the scenario to its end and returns the checker's findings.
func (s *sim) run() []string {
	end := s.sc.faultPhase + s.sc.healPhase
	for s.q.Len() > 0 {
		e := heap.Pop(&s.q).(*event)
		if e.at > end {
			break
		}
		s.now = e.at
		s.handle(e)
		s.steps++
		if len(s.check.violations) > 0 {
			break
		}
	}
	s.check.finish()
	if len(s.check.violations) > 0 && *simLog {
		for _, n := range s.nodes {
			c := n.core
			if c == nil {
				continue
			}
			fmt.Fprintf(os.Stderr, "node %d: height %d view %d changing %v slot %v prepared %v mempool %d\n", n.idx, c.height, c.view, c.changing, c.slot != nil, c.prepared != nil, c.mempool.len())
			for vs, by := range c.votes {
				fmt.Fprintf(os.Stderr, "   votes %+v: %d\n", vs, len(by))
			}
		}
	}
	return s.check.violations
}

func (s *sim) handle(e *event) {
	switch e.kind {
	case evTick:
		n := s.nodes[e.to]
		if !n.crashed {
			n.core.Tick(s.clock(n))
			s.drain(n)
		}
		s.schedule(&event{at: s.now + simTick, kind: evTick, to: e.to})
	case evDeliver:
		n := s.nodes[e.to]
		if n.crashed {
			return
		}
		m, err := DecodeMessage(e.data)
		if err != nil {
			s.tb.Fatalf("%s: a sent message does not decode: %v", s.sc, err)
		}
		if err := n.core.Step(s.nodes[e.from].id, m); err != nil && *simLog && err != ErrStale {
			n.core.log.Debug("refused", "from", e.from, "err", err, "nv", m.NewView != nil, "proposal", m.Proposal != nil)
		}
		s.drain(n)
		s.byzAfterStep(n, m)
	case evSyncServe:
		peer := s.nodes[e.to]
		if peer.crashed || (!s.healed && s.cut[[2]int{e.to, e.from}]) || (s.sc.filter != nil && !s.healed && s.sc.filter(s, e.to, e.from, nil)) {
			return
		}
		var out []Committed
		for _, b := range peer.blocks {
			if b.Block.Header.Height >= e.height && len(out) < 32 {
				out = append(out, b)
			}
		}
		s.schedule(&event{at: s.now + s.delay(), kind: evSyncDeliver, to: e.from, blocks: out})
	case evSyncDeliver:
		n := s.nodes[e.to]
		if !n.crashed {
			if err := n.core.StepSync(e.blocks); err != nil && *simLog {
				n.core.log.Debug("sync refused", "err", err)
			}
			s.drain(n)
		}
	case evClient:
		s.client()
		if s.now < s.sc.faultPhase+s.sc.healPhase/2 {
			s.schedule(&event{at: s.now + s.sc.txEvery, kind: evClient})
		}
	case evCrash:
		n := s.nodes[e.to]
		if *simLog && n.core != nil {
			n.core.log.Info("crash")
		}
		n.crashed, n.core = true, nil
	case evRestart:
		n := s.nodes[e.to]
		if n.crashed {
			n.crashed = false
			n.core = s.newCore(n, n)
			n.core.log.Info("restarted", "height", n.core.height, "view", n.core.view, "changing", n.core.changing, "wal", len(n.wal))
			s.drain(n)
		}
	case evHeal:
		for k := range s.cut {
			delete(s.cut, k)
		}
		if e.to == -1 && !s.healed && s.r.IntN(2) == 0 {
			s.partition()
			return
		}
		if e.to == -2 {
			s.healed = true
			for _, n := range s.nodes {
				if n.crashed {
					n.crashed = false
					n.core = s.newCore(n, n)
					s.drain(n)
				}
			}
		}
	case evProbe:
		for _, n := range s.nodes {
			if n.honest() && n.core.isValidator() {
				tx := s.load.next(probePick, n.core.Height()+s.w.genesis.Params.ReplayWindow/2)
				id, _ := tx.ID()
				if err := n.core.Submit(tx); err == nil {
					s.probes[id] = true
					s.check.submitted[id] = true
				} else if *simLog {
					n.core.log.Debug("probe refused", "err", err)
				}
				if *simLog {
					n.core.log.Debug("probe", "tx", id)
				}
				s.drain(n)
			}
		}
	}
}

// client submits the next transaction to a random validator.
func (s *sim) client() {
	n := s.nodes[s.r.IntN(s.sc.n)]
	if n.crashed {
		return
	}
	var tx *chain.Tx
	if s.sc.valChange && !s.check.valChangeSent && s.now > time.Second {
		tx = s.load.addValidator(s.sc.n, n.core.Height()+20)
		s.check.valChangeSent = true
	} else {
		tx = s.load.next(s.r.Uint64(), n.core.Height()+s.w.genesis.Params.ReplayWindow/2)
	}
	id, _ := tx.ID()
	s.check.submitted[id] = true
	_ = n.core.Submit(tx)
	s.drain(n)
}

func (s *sim) delay() time.Duration {
	d := time.Millisecond + time.Duration(s.r.Int64N(int64(5*time.Millisecond)))
	if !s.healed && s.sc.maxDelay > 0 {
		d += time.Duration(s.r.Int64N(int64(s.sc.maxDelay)))
	}
	return d
}

// drain carries out a node's Ready: persist, check, send.
func (s *sim) drain(n *simNode) {
	for n.core != nil && n.core.HasReady() {
		rd := n.core.Ready()
		n.core.Advance()
		n.wal = append(n.wal, rd.Persist...)
		n.blocks = append(n.blocks, rd.Committed...)
		if rd.StableCheckpoint > 0 {
			n.wal = truncateWAL(n.wal, rd.StableCheckpoint)
		}
		s.check.ready(n, &rd)
		for _, out := range rd.Messages {
			for _, m := range s.byzOutgoing(n, out) {
				s.route(n, m)
			}
		}
		if rd.Sync != nil {
			for _, j := range s.byID[string(rd.Sync.Peer)] {
				s.schedule(&event{at: s.now + s.delay(), kind: evSyncServe, to: j, from: n.idx, height: rd.Sync.From})
				break
			}
		}
	}
}

// truncateWAL drops records about heights at or below a stable checkpoint,
// as a node's log truncation would.
func truncateWAL(wal []Record, stable uint64) []Record {
	kept := wal[:0]
	for _, r := range wal {
		switch {
		case r.Vote != nil && r.Vote.Vote.Seq <= stable:
		case r.Prepared != nil && len(r.Prepared.Votes) > 0 && r.Prepared.Votes[0].Vote.Seq <= stable:
		case r.Checkpoint != nil && r.Checkpoint.Checkpoint.Height <= stable:
		default:
			kept = append(kept, r)
		}
	}
	return kept
}

// route sends one outbound message over the simulated network.
func (s *sim) route(from *simNode, out Outbound) {
	raw, err := EncodeMessage(out.Msg)
	if err != nil {
		s.tb.Fatalf("%s: encode: %v", s.sc, err)
	}
	var to []int
	if out.To != nil {
		to = s.byID[string(out.To)]
	} else {
		for j := range s.nodes {
			if string(s.nodes[j].id) != string(from.id) {
				to = append(to, j)
			}
		}
	}
	if len(s.old) < 4096 {
		s.old = append(s.old, raw)
	} else {
		s.old[s.r.IntN(len(s.old))] = raw
	}
	for _, j := range to {
		if s.sc.filter != nil && !s.healed && s.sc.filter(s, from.idx, j, out.Msg) {
			continue
		}
		target := s.nodes[j]
		if target.twinOf >= 0 || s.hasTwin(j) {
			// Twins: each hears the senders of its own group.
			if s.group[from.idx] != s.twinSide(j) {
				continue
			}
		}
		s.deliver(from.idx, j, raw)
	}
}

func (s *sim) hasTwin(j int) bool { return len(s.byID[string(s.nodes[j].id)]) > 1 }

func (s *sim) twinSide(j int) int {
	if s.nodes[j].twinOf >= 0 {
		return 1
	}
	return 0
}

func (s *sim) deliver(from, to int, raw []byte) {
	s.msgs++
	if !s.healed {
		if s.cut[[2]int{from, to}] || s.r.Float64() < s.sc.dropP {
			return
		}
		if s.r.Float64() < s.sc.dupP {
			s.schedule(&event{at: s.now + s.delay() + s.delay(), kind: evDeliver, from: from, to: to, data: raw})
		}
		if s.r.Float64() < s.sc.replayP && len(s.old) > 0 {
			s.schedule(&event{at: s.now + s.delay(), kind: evDeliver, from: from, to: to, data: s.old[s.r.IntN(len(s.old))]})
		}
	}
	s.schedule(&event{at: s.now + s.delay(), kind: evDeliver, from: from, to: to, data: raw})
}

// checker holds the invariants every run must keep.
type checker struct {
	s             *sim
	blocks        map[uint64]*chain.Block
	cids          map[uint64]cid.Cid
	committedAt   map[uint64]time.Duration // when an honest node first committed a height
	txAt          map[cid.Cid]uint64
	submitted     map[cid.Cid]bool
	votes         map[voteSlotBy]cid.Cid
	vcs           map[string][32]byte
	violations    []string
	valChangeSent bool
	maxLog        int
}

func newChecker(s *sim) *checker {
	return &checker{s: s, blocks: map[uint64]*chain.Block{}, cids: map[uint64]cid.Cid{}, committedAt: map[uint64]time.Duration{}, txAt: map[cid.Cid]uint64{},
		submitted: map[cid.Cid]bool{}, votes: map[voteSlotBy]cid.Cid{}, vcs: map[string][32]byte{}}
}

func (k *checker) fail(format string, args ...any) {
	k.violations = append(k.violations, fmt.Sprintf("t=%v: ", k.s.now)+fmt.Sprintf(format, args...))
}

// ready checks what a node's Ready commits and signs.
func (k *checker) ready(n *simNode, rd *Ready) {
	for _, cb := range rd.Committed {
		h := cb.Block.Header.Height
		if h != n.lastHeight+1 {
			k.fail("node %d committed height %d after %d (executed twice or skipped)", n.idx, h, n.lastHeight)
		}
		n.lastHeight = h
		if !n.honest() {
			continue
		}
		bcid, _ := blockCID(cb.Block)
		if prev, ok := k.cids[h]; ok && !prev.Equals(bcid) {
			k.fail("agreement: node %d committed %s at height %d, another honest node %s", n.idx, bcid, h, prev)
		}
		if _, ok := k.cids[h]; !ok {
			k.cids[h], k.blocks[h], k.committedAt[h] = bcid, cb.Block, k.s.now
			k.newBlock(n, cb)
		}
	}
	if n.honest() && n.core != nil {
		if b := k.blocks[n.core.Height()]; b != nil && n.core.Height() > 0 {
			if root := n.core.StateRoot(); string(root[:]) != string(b.Header.StateRoot) {
				k.fail("state root: node %d at height %d differs from the block's", n.idx, n.core.Height())
			}
		}
		if sz := n.core.logSize(); sz > k.maxLog {
			k.maxLog = sz
		}
		if bound := 600 + 80*k.s.sc.n; n.core.logSize() > bound {
			c := n.core
			k.fail("bounded logs: node %d holds %d log entries (bound %d): vcs %d signed %d execs %d evidence %d votes %d future %d checkpoints %d (stable %d, height %d)",
				n.idx, c.logSize(), bound, len(c.vcs), len(c.signed), len(c.execs), len(c.evidence), len(c.votes), len(c.future), len(c.checkpoints), c.stable, c.height)
		}
	}
	if n.honest() {
		for _, out := range rd.Messages {
			k.signedBy(n, out.Msg)
		}
	}
}

// newBlock checks a block the first time an honest node commits it: a
// valid certificate from its epoch's set, only submitted valid txs, each
// once.
func (k *checker) newBlock(n *simNode, cb Committed) {
	b := cb.Block
	h := b.Header.Height
	bcid, _ := blockCID(b)
	set := n.core.prevOrCurrent(b.Header.Epoch)
	if set.Members == nil {
		k.fail("node %d does not know epoch %d of block %d", n.idx, b.Header.Epoch, h)
		return
	}
	if err := chain.VerifyCommitCert(cb.Cert, simChain, b.Header.Epoch, h, bcid, set); err != nil {
		k.fail("certificate of block %d: %v", h, err)
	}
	for i := range b.Txs {
		tx := &b.Txs[i]
		id, _ := tx.ID()
		if at, ok := k.txAt[id]; ok {
			k.fail("exactly once: tx %s committed at heights %d and %d", id, at, h)
		}
		k.txAt[id] = h
		if k.submitted[id] {
			continue
		}
		if tx.Body.Kind == chain.KindEvidence && len(k.s.byID[string(tx.Body.Sender)]) > 0 {
			continue // a node's core reported an equivocation; Check verified it
		}
		k.fail("validity: block %d holds tx %s (%s) no client submitted", h, id, tx.Body.Kind)
	}
}

// signedBy records what an honest node signs and fails on any second
// signature for a slot it signed before, across restarts.
func (k *checker) signedBy(n *simNode, m *Message) {
	var votes []*chain.SignedVote
	switch {
	case m.Vote != nil:
		votes = append(votes, m.Vote)
	case m.Proposal != nil:
		votes = append(votes, &m.Proposal.Vote)
	case m.NewView != nil:
		votes = append(votes, &m.NewView.Proposal.Vote)
	case m.ViewChange != nil:
		vc := m.ViewChange.ViewChange
		key := fmt.Sprintf("%x/%d/%d", n.id, vc.Epoch, vc.View)
		b, _, _ := chain.Encode(&vc)
		sum := sha256.Sum256(b)
		if prev, ok := k.vcs[key]; ok && prev != sum {
			k.fail("honest equivocation: node %d sent two view changes for view %d", n.idx, vc.View)
		}
		k.vcs[key] = sum
	}
	for _, sv := range votes {
		if string(sv.Signer) != string(n.id) {
			continue
		}
		v := sv.Vote
		key := voteSlotBy{voteSlot: voteSlot{epoch: v.Epoch, view: v.View, seq: v.Seq, phase: v.Phase}, signer: string(n.id)}
		if prev, ok := k.votes[key]; ok && !prev.Equals(v.Block.Cid) {
			k.fail("honest equivocation: node %d signed two blocks for epoch %d view %d seq %d %s", n.idx, v.Epoch, v.View, v.Seq, v.Phase)
		}
		k.votes[key] = v.Block.Cid
	}
}

// finish checks liveness: after the network healed, with at most f
// faulty validators, every probe committed on every honest node.
func (k *checker) finish() {
	if len(k.violations) > 0 {
		return
	}
	if len(k.s.probes) == 0 {
		k.fail("liveness: no honest validator accepted a probe transaction")
		return
	}
	for id := range k.s.probes {
		h, ok := k.txAt[id]
		if !ok {
			k.fail("liveness: probe %s never committed after the network healed", id)
			return
		}
		for _, n := range k.s.nodes {
			if n.honest() && n.core.Height() < h {
				k.fail("liveness: honest node %d stopped at height %d, probe committed at %d", n.idx, n.core.Height(), h)
				return
			}
		}
	}
}
