package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	"golang.org/x/sync/errgroup"

	"auditnet/chain"
	"auditnet/chain/index"
	"auditnet/chain/pbft"
	"auditnet/chain/store"
	"auditnet/chain/wal"
	"auditnet/p2p"
)

// Where a repo keeps its chain.
const (
	genesisFile = "genesis.json"
	chainDir    = "chain"
	walDir      = "wal"
	storeDir    = "store"
	indexDir    = "index"
)

// ErrWALMissing is returned when a repo holds chain data but no WAL: the
// node could have signed something it no longer remembers, so it starts
// only when told to with the recovery flag.
var ErrWALMissing = errors.New("chain data exists but its write-ahead log is missing; " +
	"start with --recover-wal only if this node has not voted since its last committed block (for example, it was stopped for longer than a view change)")

// Loop sizes: how many inbound messages the loop takes before it handles
// Ready (so one fsync covers them all), and how many wait for it.
const (
	inboxSize   = 1024
	txInboxSize = 4096
	// txVerifySize bounds the forwarded-transaction messages waiting for
	// their signature check; beyond it they are dropped.
	txVerifySize  = 64
	drainBatch    = 512
	tickInterval  = 10 * time.Millisecond
	syncBatch     = 256
	followEvery   = 2 * time.Second
	followTimeout = 10 * time.Second
)

// chainOptions configure openChain.
type chainOptions struct {
	Dir        string
	Genesis    *chain.Genesis
	Signer     chain.Signer
	Self       peer.ID
	Timers     ChainTimers
	RecoverWAL bool
	// Now is the node's clock (ms since 1970 UTC); a test shifts it.
	Now    func() int64
	Logger *slog.Logger
}

// ChainTimers are the consensus core's local timers.
type ChainTimers struct {
	ViewChangeTimeout, Heartbeat, RequestTimeout, IdleBlock time.Duration
	MempoolTxs                                              int
}

// chainNode runs the chain on a node: the consensus core, its WAL, the
// block store, the audit index, and the core's traffic. Run's goroutine is
// the only one that touches the core; the rest of the node reads what it
// publishes (status, the committed state) and talks to it through
// channels.
type chainNode struct {
	opts    chainOptions
	log     *slog.Logger
	genesis *chain.Genesis
	replica *pbft.Replica
	wal     *wal.WAL
	store   *store.Store
	index   *index.Index
	host    *p2p.Host
	net     *p2p.Consensus
	txs     *p2p.TxService
	syncSvc *p2p.SyncService
	metrics *chainMetrics
	// verifier decodes and checks signatures outside the loop.
	verifier *pbft.Verifier

	// inbox carries consensus messages, txInbox forwarded transactions:
	// the loop serves consensus first, so a flood of transactions cannot
	// delay the votes that commit them into a view change.
	inbox   chan inbound
	txInbox chan inbound
	// txVerify carries forwarded-transaction messages from the peers'
	// readers to runTxVerifier, which checks their signatures, so that a
	// reader never waits on a signature check or a full txInbox: a
	// proposal, vote or heartbeat behind a batch of transactions on the
	// same stream is read at once.
	txVerify chan inbound
	// stopped is closed when the loop returns, so readers blocked on a
	// full inbox give up.
	stopped chan struct{}
	submits chan *submission
	synced  chan syncResult

	// Owned by Run's goroutine.
	followers map[peer.ID]time.Time
	syncing   bool
	wantSync  *pbft.SyncRequest
	pending   map[cid.Cid]time.Time // submit time of txs this node admitted
	took      loopTimes
	// releaseAt is a stable checkpoint whose WAL records wait for the
	// store to reach it.
	releaseAt uint64
	lastView  uint64
	// lastChanging is whether the status published last showed a view
	// change under way: installing the new view changes no view number
	// and, on an idle chain, commits no block, yet the status must say so.
	lastChanging bool

	// toStore queues committed blocks for runStore; stored is the height
	// it has written.
	toStore chan pbft.Committed
	stored  atomic.Uint64
	// storedMu guards storedCh, closed and replaced at each stored block,
	// for readers that wait for a height (waitStored).
	storedMu sync.Mutex
	storedCh chan struct{}

	// Published for other goroutines.
	// mempool is the core's mempool size after the loop's last step, for
	// Submit to refuse work it could not take before decoding and
	// verifying it.
	mempool atomic.Int64
	state   atomic.Pointer[stateBox]
	status  atomic.Pointer[ChainStatus]
	seen    sync.Map // peer.ID → time.Time of its last frame
	waiters waiterSet
	blocks  blockFeed
}

// stateBox is the committed state the loop publishes for other goroutines.
type stateBox struct {
	s chain.State
	// height is the block the state is after.
	height uint64
}

// inbound is a decoded frame from a peer.
type inbound struct {
	from   peer.ID
	msg    *pbft.Message
	push   *pbft.Committed
	follow bool
}

type syncResult struct {
	from   peer.ID
	blocks []pbft.Committed
	err    error
}

// openChain opens (or creates) the chain's stores in dir and restores the
// core from them.
func openChain(o chainOptions) (*chainNode, error) {
	dir := filepath.Join(o.Dir, chainDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create %s: %w", dir, err)
	}
	c := &chainNode{
		opts: o, log: o.Logger, genesis: o.Genesis,
		inbox: make(chan inbound, inboxSize), txInbox: make(chan inbound, txInboxSize), txVerify: make(chan inbound, txVerifySize), stopped: make(chan struct{}), submits: make(chan *submission, 64), synced: make(chan syncResult, 1),
		followers: map[peer.ID]time.Time{}, pending: map[cid.Cid]time.Time{},
		verifier: pbft.NewVerifier(pbft.VerifierConfig{}), toStore: make(chan pbft.Committed, storeQueue),
		storedCh: make(chan struct{}),
	}
	c.waiters.init()
	c.blocks.init()
	var err error
	hadStore := exists(filepath.Join(dir, storeDir))
	hadWAL, err := wal.Exists(filepath.Join(dir, walDir))
	if err != nil {
		return nil, err
	}
	if c.store, err = store.Open(store.Config{Dir: filepath.Join(dir, storeDir), Genesis: o.Genesis, Logger: o.Logger}); err != nil {
		return nil, fmt.Errorf("open chain store: %w", err)
	}
	if hadStore && !hadWAL && c.store.Height() > 0 && !o.RecoverWAL {
		c.store.Close()
		return nil, ErrWALMissing
	}
	if !hadWAL && o.RecoverWAL {
		o.Logger.Warn("starting with a new, empty write-ahead log (--recover-wal)", "height", c.store.Height())
	}
	fail := func(err error) (*chainNode, error) {
		c.close()
		return nil, err
	}
	w, entries, err := wal.Open(wal.Config{Dir: filepath.Join(dir, walDir), Logger: o.Logger})
	if err != nil {
		return fail(fmt.Errorf("open chain WAL: %w", err))
	}
	c.wal = w
	recs := make([]pbft.Record, 0, len(entries))
	for i, e := range entries {
		r, err := wal.DecodeRecord(e)
		if err != nil {
			return fail(fmt.Errorf("chain WAL entry %d: %w", i, err))
		}
		recs = append(recs, r)
	}
	if c.index, err = index.Open(filepath.Join(dir, indexDir)); err != nil {
		return fail(fmt.Errorf("open chain index: %w", err))
	}
	cfg := pbft.Config{
		Genesis: o.Genesis, Signer: o.Signer, Logger: o.Logger,
		ViewChangeTimeoutMs: o.Timers.ViewChangeTimeout.Milliseconds(),
		HeartbeatIntervalMs: o.Timers.Heartbeat.Milliseconds(),
		RequestTimeoutMs:    o.Timers.RequestTimeout.Milliseconds(),
		IdleBlockIntervalMs: o.Timers.IdleBlock.Milliseconds(),
		MempoolTxs:          o.Timers.MempoolTxs,
	}
	now := o.Now()
	if c.store.Height() == 0 {
		c.replica, err = pbft.Restore(cfg, now, nil, recs)
	} else {
		var snap pbft.Snapshot
		if snap, err = c.store.Snapshot(); err != nil {
			return fail(fmt.Errorf("load chain state: %w", err))
		}
		c.replica, err = pbft.RestoreSnapshot(cfg, now, snap, recs)
	}
	if err != nil {
		return fail(fmt.Errorf("restore consensus: %w", err))
	}
	if err := c.catchUpIndex(); err != nil {
		return fail(err)
	}
	c.stored.Store(c.store.Height())
	c.lastView, c.lastChanging = c.replica.View()
	c.publish()
	o.Logger.Info("chain restored", "height", c.replica.Height(), "wal_records", len(recs), "validator", c.replica.IsValidator())
	return c, nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// catchUpIndex applies to the audit index the blocks the store committed
// after the index's last height (a crash between the two writes).
func (c *chainNode) catchUpIndex() error {
	for h := c.index.LastHeight() + 1; h <= c.store.Height(); h++ {
		cb, err := c.store.Committed(h)
		if err != nil {
			return fmt.Errorf("read block %d for the index: %w", h, err)
		}
		if err := c.index.Apply(h, cb.Block, cb.Outcomes); err != nil {
			return fmt.Errorf("index block %d: %w", h, err)
		}
	}
	return nil
}

// attach connects the chain to the host: consensus, tx submission and
// sync services, and the validators' addresses from genesis.
func (c *chainNode) attach(h *p2p.Host) error {
	c.host = h
	for _, v := range c.genesis.Validators {
		info, err := validatorAddrInfo(v)
		if err != nil {
			return err
		}
		if info.ID != h.ID() && len(info.Addrs) > 0 {
			h.Peerstore().AddAddrs(info.ID, info.Addrs, permanentAddrTTL)
		}
	}
	var err error
	// A consensus frame that waited two view-change timeouts for its peer
	// is from a view the others have left or a slot long decided.
	maxAge := 2 * c.opts.Timers.ViewChangeTimeout
	if c.net, err = p2p.NewConsensus(p2p.ConsensusConfig{Host: h, Deliver: c.deliver, Logger: c.log, MaxFrameAge: maxAge}); err != nil {
		return err
	}
	if c.txs, err = p2p.NewTxService(p2p.TxServiceConfig{Host: h, Handle: c.handleTxs, Logger: c.log}); err != nil {
		return err
	}
	if c.syncSvc, err = p2p.NewSyncService(p2p.SyncServiceConfig{Host: h, Source: c.store, Logger: c.log}); err != nil {
		return err
	}
	c.metrics = newChainMetrics(c)
	return nil
}

func (c *chainNode) close() error {
	var errs []error
	if c.wal != nil {
		errs = append(errs, c.wal.Close())
	}
	if c.index != nil {
		errs = append(errs, c.index.Close())
	}
	if c.store != nil {
		errs = append(errs, c.store.Close())
	}
	return errors.Join(errs...)
}

// Run drives the core until ctx ends or a write fails (a WAL or store
// error stops the node: it never goes on signing what it cannot
// remember).
func (c *chainNode) Run(ctx context.Context) error {
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return c.net.Run(gctx) })
	g.Go(func() error { return c.txs.Run(gctx) })
	g.Go(func() error { return c.syncSvc.Run(gctx) })
	g.Go(func() error { return c.runStore(gctx) })
	g.Go(func() error { return c.runTxVerifier(gctx) })
	g.Go(func() error {
		defer close(c.stopped)
		return c.loop(gctx, g)
	})
	err := g.Wait()
	c.waiters.closeAll(errors.New("node stopping"))
	c.blocks.closeAll()
	return err
}

func (c *chainNode) now() int64 { return c.opts.Now() }

func (c *chainNode) loop(ctx context.Context, g *errgroup.Group) error {
	tick := time.NewTicker(tickInterval)
	defer tick.Stop()
	follow := time.NewTicker(followEvery)
	defer follow.Stop()
	if !c.replica.IsValidator() {
		c.sendFollow()
	}
	for {
		var start time.Time
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m := <-c.inbox:
			c.step(m)
			c.drain()
		case m := <-c.txInbox:
			c.step(m)
			c.drain()
		case s := <-c.submits:
			t0 := time.Now()
			s.reply <- c.submit(s.txs)
			if d := time.Since(t0); d > slowStep {
				c.log.Warn("slow submit", "txs", len(s.txs), "took", d, "height", c.replica.Height())
			}
		case r := <-c.synced:
			c.applySync(ctx, g, r)
		case <-tick.C:
			t0 := time.Now()
			c.replica.Tick(c.now())
			if d := time.Since(t0); d > slowStep {
				c.log.Warn("slow tick", "took", d, "height", c.replica.Height())
			}
		case <-follow.C:
			if !c.replica.IsValidator() {
				c.sendFollow()
			}
			c.expireFollowers()
		}
		start = time.Now()
		c.took = loopTimes{}
		if err := c.handleReady(ctx, g); err != nil {
			return err
		}
		if d := time.Since(start); d > slowReady {
			c.log.Warn("slow Ready", "height", c.replica.Height(), "took", d, "wal", c.took.wal, "store", c.took.store, "send", c.took.send)
		}
	}
}

// slowStep is how long the core may take over one message before the
// node warns.
const slowStep = 100 * time.Millisecond

func kindOf(m inbound) string {
	switch {
	case m.push != nil:
		return "block"
	case m.follow:
		return "follow"
	case m.msg == nil:
		return "none"
	case m.msg.Proposal != nil:
		return fmt.Sprintf("proposal(%d txs)", len(m.msg.Proposal.Block.Txs))
	case m.msg.Vote != nil:
		return "vote/" + string(m.msg.Vote.Vote.Phase)
	case m.msg.ViewChange != nil:
		return "viewchange"
	case m.msg.NewView != nil:
		return "newview"
	case m.msg.Checkpoint != nil:
		return "checkpoint"
	case m.msg.Heartbeat != nil:
		return "heartbeat"
	}
	return fmt.Sprintf("txs(%d)", len(m.msg.Txs))
}

// slowReady is how long carrying out one Ready may take before the node
// warns: an operator sees a slow disk before it costs view changes.
const slowReady = 250 * time.Millisecond

// loopTimes is where one Ready's time went.
type loopTimes struct{ wal, store, send time.Duration }

// drain takes what else waits, consensus messages before transactions,
// so that one Ready (and one fsync) covers a batch of them.
func (c *chainNode) drain() {
	for range drainBatch {
		select {
		case m := <-c.inbox:
			c.step(m)
			continue
		default:
		}
		select {
		case m := <-c.inbox:
			c.step(m)
		case m := <-c.txInbox:
			c.step(m)
		default:
			return
		}
	}
}

func (c *chainNode) step(m inbound) {
	start := time.Now()
	defer func() {
		if d := time.Since(start); d > slowStep {
			c.log.Warn("slow step", "peer", m.from, "kind", kindOf(m), "took", d, "height", c.replica.Height())
		}
	}()
	switch {
	case m.msg != nil:
		if err := c.replica.Step([]byte(m.from), m.msg); err != nil && c.log.Enabled(context.Background(), slog.LevelDebug) {
			c.log.Debug("message dropped", "peer", m.from, "err", err)
		}
	case m.push != nil:
		h := m.push.Block.Header.Height
		switch {
		case h == c.replica.Height()+1:
			if err := c.replica.StepSync([]pbft.Committed{*m.push}); err != nil {
				c.log.Warn("pushed block refused", "peer", m.from, "height", h, "err", err)
			}
		case h > c.replica.Height()+1:
			c.wantSync = &pbft.SyncRequest{Peer: []byte(m.from), From: c.replica.Height() + 1}
		}
	case m.follow:
		if !c.replica.IsValidator() {
			return
		}
		if _, ok := c.followers[m.from]; !ok {
			c.log.Info("follower subscribed", "peer", m.from)
		}
		c.followers[m.from] = time.Now()
	}
}

// handleReady carries out what the core asks, in its order: persist,
// store committed blocks, send, sync.
func (c *chainNode) handleReady(ctx context.Context, g *errgroup.Group) error {
	changed := false
	for c.replica.HasReady() {
		rd := c.replica.Ready()
		if len(rd.Persist) > 0 {
			for _, r := range rd.Persist {
				e, err := wal.EncodeRecord(r)
				if err != nil {
					return fmt.Errorf("encode WAL record: %w", err)
				}
				if err := c.wal.Append(e); err != nil {
					return fmt.Errorf("chain WAL: %w", err)
				}
			}
			start := time.Now()
			if err := c.wal.Sync(); err != nil {
				return fmt.Errorf("chain WAL: %w", err)
			}
			d := time.Since(start)
			c.took.wal += d
			c.metrics.walSync.Observe(d.Seconds())
		}
		start := time.Now()
		for _, cb := range rd.Committed {
			if err := c.commit(ctx, cb); err != nil {
				return err
			}
			changed = true
		}
		c.took.store += time.Since(start)
		start = time.Now()
		c.send(rd.Messages, rd.Committed)
		c.took.send += time.Since(start)
		if rd.Sync != nil {
			c.wantSync = rd.Sync
		}
		if rd.StableCheckpoint > 0 {
			c.releaseAt = rd.StableCheckpoint
		}
		c.replica.Advance()
	}
	if c.releaseAt > 0 && c.stored.Load() >= c.releaseAt {
		if err := c.wal.Release(c.releaseAt); err != nil {
			return fmt.Errorf("chain WAL: %w", err)
		}
		c.releaseAt = 0
	}
	if c.wantSync != nil && !c.syncing {
		c.startSyncIn(ctx, g, peer.ID(c.wantSync.Peer), c.wantSync.From)
	}
	c.wantSync = nil
	view, changing := c.replica.View()
	if changing != c.lastChanging {
		c.lastChanging = changing
		changed = true
	}
	if view != c.lastView {
		c.metrics.viewChanges.Add(float64(view - c.lastView))
		c.lastView = view
		changed = true
	}
	if changed {
		c.publish()
	}
	n := c.replica.MempoolSize()
	c.mempool.Store(int64(n))
	c.metrics.mempool.Set(float64(n))
	return nil
}

// commit takes a block the core committed (loop goroutine): the gater and
// the API see its state at once, the commit-latency metric is fed, and the
// block goes to the store's queue.
func (c *chainNode) commit(ctx context.Context, cb pbft.Committed) error {
	h := cb.Block.Header.Height
	if cb.State != nil {
		c.state.Store(&stateBox{s: cb.State, height: h})
	}
	now := time.Now()
	for i := range cb.Block.Txs {
		if len(c.pending) == 0 {
			break
		}
		if id, err := cb.Block.Txs[i].ID(); err == nil {
			if t, ok := c.pending[id]; ok {
				c.metrics.commitLatency.Observe(now.Sub(t).Seconds())
				delete(c.pending, id)
			}
		}
	}
	c.metrics.height.Set(float64(h))
	select {
	case c.toStore <- cb:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// storeQueue is how many committed blocks may wait for the store. When it
// is full the loop waits: the store sets the pace.
const storeQueue = 64

// runStore writes committed blocks to the store and the index, in order,
// off the loop: a block's write (a synced goleveldb batch, hundreds of
// milliseconds for thousands of transactions on a slow disk) overlaps the
// agreement on the next block instead of delaying it into a view change.
// What waits for a transaction hears of it once its block is stored. A
// failed write stops the node. The WAL is released at a stable checkpoint
// only once the store holds that height (see loop), so a crash never loses
// both a block and the record of what this node signed for it.
func (c *chainNode) runStore(ctx context.Context) error {
	for {
		var cb pbft.Committed
		select {
		case <-ctx.Done():
			return c.flushStore()
		case cb = <-c.toStore:
		}
		if err := c.store.Commit(cb); err != nil {
			return fmt.Errorf("chain store: %w", err)
		}
		c.setStored(cb.Block.Header.Height)
		c.announce(cb)
	}
}

func (c *chainNode) setStored(h uint64) {
	c.stored.Store(h)
	c.storedMu.Lock()
	close(c.storedCh)
	c.storedCh = make(chan struct{})
	c.storedMu.Unlock()
}

// committedHeight is the last height this node committed: the published
// state's, which the status (published after it) may trail by a block.
func (c *chainNode) committedHeight() uint64 {
	h := uint64(0)
	if st := c.status.Load(); st != nil {
		h = st.Height
	}
	if box := c.state.Load(); box != nil {
		h = max(h, box.height)
	}
	return h
}

// txBlock finds committed transaction id and its block. The store writes
// behind the core: a transaction this node committed may be a block or
// two from it, so a miss waits for the store to catch up and looks again.
func (c *chainNode) txBlock(ctx context.Context, id cid.Cid) (pbft.Committed, int, error) {
	h, i, err := c.store.Tx(id)
	if errors.Is(err, store.ErrNotFound) {
		if committed := c.committedHeight(); committed > c.stored.Load() {
			c.waitStored(ctx, committed)
			h, i, err = c.store.Tx(id)
		}
	}
	if err != nil {
		return pbft.Committed{}, 0, fmt.Errorf("tx %s: %w", id, err)
	}
	cb, err := c.store.Committed(h)
	if err != nil {
		return pbft.Committed{}, 0, err
	}
	return cb, i, nil
}

// waitStored waits until the store holds height h, if the core has
// committed it: an API reader who saw a height in the status, or a
// holder that found a request in the published state (which the status
// may trail by a block), can read its block although the store writes
// behind the core.
func (c *chainNode) waitStored(ctx context.Context, h uint64) {
	if h > c.committedHeight() {
		return
	}
	timeout := time.NewTimer(10 * time.Second)
	defer timeout.Stop()
	for c.stored.Load() < h {
		c.storedMu.Lock()
		ch := c.storedCh
		c.storedMu.Unlock()
		if c.stored.Load() >= h {
			return
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return
		case <-timeout.C:
			return
		}
	}
}

// flushStore writes what the loop queued before it stopped, so a clean
// stop leaves the store at the height the core reached.
func (c *chainNode) flushStore() error {
	for {
		select {
		case cb := <-c.toStore:
			if err := c.store.Commit(cb); err != nil {
				return fmt.Errorf("chain store: %w", err)
			}
			c.setStored(cb.Block.Header.Height)
			c.announce(cb)
		default:
			return nil
		}
	}
}

// announce tells the index, waiters and the block feed of a stored block.
func (c *chainNode) announce(cb pbft.Committed) {
	h := cb.Block.Header.Height
	if err := c.index.Apply(h, cb.Block, cb.Outcomes); err != nil {
		// The index is derived: catchUpIndex rebuilds it at the next
		// start, so the chain goes on.
		c.log.Error("index block", "height", h, "err", err)
	}
	outcomes := outcomesByTx(cb.Outcomes)
	ids := make([]cid.Cid, 0, len(cb.Block.Txs))
	for i := range cb.Block.Txs {
		id, err := cb.Block.Txs[i].ID()
		if err != nil {
			c.log.Error("committed tx without an id", "height", h, "err", err)
			continue
		}
		ids = append(ids, id)
		c.waiters.done(id, TxCommit{Height: h, Index: i, Outcome: outcomes[id]})
	}
	c.metrics.committedTxs.Add(float64(len(ids)))
	c.blocks.publish(BlockEvent{Height: h, Time: cb.Block.Header.Time, Txs: ids})
	if membershipChanged(cb.Block) && c.host != nil {
		if n := c.host.Enforce(); n > 0 {
			c.log.Info("members removed by the chain disconnected", "height", h, "disconnected", n)
		}
	}
}

// outcomesByTx indexes a block's outcomes by the transaction they are
// about (a block's outcomes also settle earlier requests, so they do not
// line up with its transactions).
func outcomesByTx(os []chain.Outcome) map[cid.Cid]*chain.Outcome {
	m := make(map[cid.Cid]*chain.Outcome, len(os))
	for i := range os {
		m[os[i].Tx.Cid] = &os[i]
	}
	return m
}

func membershipChanged(b *chain.Block) bool {
	for i := range b.Txs {
		if b.Txs[i].Body.Kind == chain.KindMember {
			return true
		}
	}
	return false
}

// publish makes the core's state visible to other goroutines.
func (c *chainNode) publish() {
	if c.state.Load() == nil || c.replica.Height() == 0 {
		c.state.Store(&stateBox{s: c.replica.CommittedState(), height: c.replica.Height()})
	}
	c.status.Store(c.buildStatus())
}

// IsMember implements p2p.Membership from the committed state.
func (c *chainNode) IsMember(p peer.ID) bool {
	box := c.state.Load()
	if box == nil {
		return false
	}
	_, ok, err := chain.LookupMember(box.s, []byte(p))
	return ok && err == nil
}

// startSyncIn fetches committed blocks from p in a goroutine of g.
func (c *chainNode) startSyncIn(ctx context.Context, g *errgroup.Group, p peer.ID, from uint64) {
	c.syncing = true
	g.Go(func() error {
		fctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		res := syncResult{from: p}
		var raw []p2p.SyncedBlock
		raw, res.err = p2p.FetchCommitted(fctx, c.host, p, from, syncBatch)
		if res.err == nil {
			res.blocks, res.err = decodeSynced(raw)
		}
		select {
		case c.synced <- res:
		case <-ctx.Done():
		}
		return nil
	})
}

func decodeSynced(raw []p2p.SyncedBlock) ([]pbft.Committed, error) {
	out := make([]pbft.Committed, 0, len(raw))
	for _, r := range raw {
		b, err := chain.DecodeBlock(r.Block)
		if err != nil {
			return nil, fmt.Errorf("synced block %d: %w", r.Height, err)
		}
		cert, err := chain.DecodeCommitCert(r.Cert)
		if err != nil {
			return nil, fmt.Errorf("synced certificate %d: %w", r.Height, err)
		}
		if b.Header.Height != r.Height {
			return nil, fmt.Errorf("synced block at %d says height %d", r.Height, b.Header.Height)
		}
		out = append(out, pbft.Committed{Block: b, Cert: cert})
	}
	return out, nil
}

func (c *chainNode) applySync(ctx context.Context, g *errgroup.Group, r syncResult) {
	c.syncing = false
	if r.err != nil {
		if ctx.Err() == nil {
			c.log.Warn("sync failed", "peer", r.from, "err", r.err)
		}
		return
	}
	before := c.replica.Height()
	if err := c.replica.StepSync(r.blocks); err != nil {
		c.log.Warn("synced blocks refused", "peer", r.from, "err", err)
		return
	}
	c.metrics.syncedBlocks.Add(float64(c.replica.Height() - before))
	// A full batch means the peer has more: keep going.
	if len(r.blocks) == syncBatch && c.replica.Height() > before {
		c.startSyncIn(ctx, g, r.from, c.replica.Height()+1)
	}
}

// clockOffsetEnv shifts a daemon's chain clock, for tests of clock skew
// between validators only (for example "5m" or "-5m").
const clockOffsetEnv = "AUDITNET_TEST_CLOCK_OFFSET"

// startChain opens the chain of a repo that has a genesis.json (nil, nil
// when it has none).
func startChain(r *Repo, key crypto.PrivKey, n NetConfig, opts DaemonOptions, logger *slog.Logger) (*chainNode, error) {
	path := filepath.Join(r.Dir, genesisFile)
	if !exists(path) {
		return nil, nil
	}
	g, err := chain.ReadGenesis(path)
	if err != nil {
		return nil, err
	}
	raw, err := key.Raw()
	if err != nil || len(raw) != ed25519.PrivateKeySize {
		return nil, fmt.Errorf("node key: the chain needs an Ed25519 identity")
	}
	self, err := p2p.PeerIDOf(key)
	if err != nil {
		return nil, err
	}
	var offset time.Duration
	if s := os.Getenv(clockOffsetEnv); s != "" {
		if offset, err = time.ParseDuration(s); err != nil {
			return nil, fmt.Errorf("%s: %w", clockOffsetEnv, err)
		}
		logger.Warn("chain clock shifted for a test", "offset", offset)
	}
	return openChain(chainOptions{
		Dir: r.Dir, Genesis: g, Signer: chain.NewSigner(ed25519.PrivateKey(raw)), Self: self,
		Timers: n.Chain, RecoverWAL: opts.RecoverWAL, Logger: logger,
		Now: func() int64 { return time.Now().Add(offset).UnixMilli() },
	})
}
