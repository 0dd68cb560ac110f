package pbft

import (
	"errors"
	"fmt"
	"log/slog"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// Config configures a consensus core. Everything that must be equal on
// every node (quorum, checkpoint interval, Δ, windows, limits) comes from
// the genesis and Params transactions; these are a node's local timers,
// in milliseconds like every time the core handles (it never reads a
// clock: the node passes the time, ms since 1970 UTC, to New and Tick).
type Config struct {
	Genesis *chain.Genesis
	// Signer is the node's Ed25519 key; a node whose peer ID is not in the
	// epoch's validator set follows the chain without voting.
	Signer chain.Signer
	// ViewChangeTimeoutMs is how long a proposal may stay uncommitted, or a
	// leader silent, before the view changes; it doubles with each view
	// change that does not bring progress.
	ViewChangeTimeoutMs int64
	// HeartbeatIntervalMs is how often a validator sends its signed height.
	HeartbeatIntervalMs int64
	// RequestTimeoutMs is how long a transaction a validator holds may wait
	// uncommitted before the validator suspects the leader of censoring it.
	RequestTimeoutMs int64
	// IdleBlockIntervalMs paces the empty blocks an idle chain proposes
	// while a deadline counted in blocks is pending.
	IdleBlockIntervalMs int64
	// MempoolTxs bounds the transactions waiting in the mempool.
	MempoolTxs int
	Logger     *slog.Logger
}

// Default timers.
const (
	DefaultViewChangeTimeoutMs = 1000
	DefaultHeartbeatIntervalMs = 250
	DefaultRequestTimeoutMs    = 5000
	DefaultIdleBlockIntervalMs = 1000
	DefaultMempoolTxs          = 50_000
)

func (c *Config) withDefaults() {
	if c.ViewChangeTimeoutMs <= 0 {
		c.ViewChangeTimeoutMs = DefaultViewChangeTimeoutMs
	}
	if c.HeartbeatIntervalMs <= 0 {
		c.HeartbeatIntervalMs = DefaultHeartbeatIntervalMs
	}
	if c.RequestTimeoutMs <= 0 {
		c.RequestTimeoutMs = DefaultRequestTimeoutMs
	}
	if c.IdleBlockIntervalMs <= 0 {
		c.IdleBlockIntervalMs = DefaultIdleBlockIntervalMs
	}
	if c.MempoolTxs <= 0 {
		c.MempoolTxs = DefaultMempoolTxs
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Record is something the core must have on stable storage before any
// message of the same Ready leaves the node: the votes it signed (so that a
// restarted node never signs another block for the same slot), the
// prepared certificate it holds, the view changes it sent and its
// checkpoints. Exactly one field other than Block is set.
type Record struct {
	Vote *chain.SignedVote `cbor:"vote,omitempty"`
	// Block is the block a PREPARE vote or a prepared certificate is for.
	Block      *chain.Block      `cbor:"block,omitempty"`
	Prepared   *PreparedCert     `cbor:"prepared,omitempty"`
	ViewChange *SignedViewChange `cbor:"viewchange,omitempty"`
	Checkpoint *SignedCheckpoint `cbor:"checkpoint,omitempty"`
}

// Committed is a committed block with its certificate and the outcomes of
// executing it.
type Committed struct {
	Block    *chain.Block
	Cert     *chain.CommitCert
	Outcomes []chain.Outcome
	// State is the committed state after Block, an O(1) clone of the
	// core's (nil in blocks read back from a store). The node may read it
	// and diff it against the previous one, and must not write to it.
	State chain.State
}

// Outbound is a message to send: to one peer, or to every peer (To nil).
type Outbound struct {
	To  []byte
	Msg *Message
}

// SyncRequest asks the node to fetch committed blocks, with their
// certificates, from a peer, starting at a height, and to hand them to
// StepSync.
type SyncRequest struct {
	Peer []byte
	From uint64
}

// Ready is what the core asks of its node, in order: persist Records and
// store Committed blocks (durably) first, then send Messages, then start
// Sync. After doing it, the node calls Advance.
type Ready struct {
	Persist   []Record
	Committed []Committed
	Messages  []Outbound
	Sync      *SyncRequest
	// StableCheckpoint, when not zero, is a new stable checkpoint height:
	// records about heights at or below it may be discarded.
	StableCheckpoint uint64
}

// IsEmpty reports whether there is nothing to do.
func (r *Ready) IsEmpty() bool {
	return len(r.Persist) == 0 && len(r.Committed) == 0 && len(r.Messages) == 0 && r.Sync == nil && r.StableCheckpoint == 0
}

// Errors Submit returns.
var (
	// ErrBusy: the mempool is full, or the sender has its quota waiting.
	ErrBusy = errors.New("pbft: busy: mempool full, try again later")
	// ErrNotValidator: followers do not accept transactions.
	ErrNotValidator = errors.New("pbft: this node is not a validator")
)

// Replica is the consensus state machine of one node: PBFT's normal case
// (pre-prepare, prepare, commit over the block CID), checkpoints, view
// changes and epochs. It has no goroutines, clock, randomness or I/O: the
// node feeds it messages (Step, StepSync), transactions (Submit) and time
// (Tick), and carries out what Ready returns. It is not safe for
// concurrent use.
type Replica struct {
	cfg     Config
	key     chain.Signer
	id      []byte
	chainID string
	log     *slog.Logger
	now     int64

	// The committed chain.
	state    chain.State
	machine  *chain.Machine
	height   uint64
	last     cid.Cid
	lastTime int64
	lastCert *chain.CommitCert
	params   chain.Params
	vals     chain.ValidatorSet
	valIDs   [][]byte
	prevVals chain.ValidatorSet

	// The view.
	view         uint64
	changing     bool
	attempts     int
	viewDeadline int64
	leaderSeen   int64
	viewStart    int64
	viewHeight   uint64
	slotStart    int64
	myVC         *SignedViewChange
	vcs          map[string]*SignedViewChange
	pendingNV    *NewView
	// installed is the NEW-VIEW that started the view this node is in
	// (made or accepted here; not after a restart): it answers the
	// validators that show they are in an earlier view, or still changing
	// to this one, at most once per shareEveryMs each (shared).
	installed *NewView
	shared    map[string]int64

	// The sequence number in flight, height+1.
	slot     *slot
	votes    map[voteSlot]map[string]*chain.SignedVote
	execs    map[cid.Cid]*execution
	prepared *preparedBlock
	signed   map[voteSlot]cid.Cid
	future   map[string][]*Message

	checkpoints map[uint64]map[string]cid.Cid
	cpBlocks    map[uint64]cid.Cid
	stable      uint64

	mempool  *mempool
	verified map[[32]byte]bool
	// replayLists is the replay set's lists decoded, shared by the machines
	// over the committed state and the clones blocks are tried on.
	replayLists *chain.ReplayCache
	evidence    map[voteSlotBy]bool
	// accused is, per validator this node sent evidence against, 1 + the
	// epoch of that evidence.
	accused map[string]uint64
	nonce   uint64

	heights       map[string]uint64
	heard         map[string]heardView // each validator's view, from its last heartbeat of this epoch
	nextHeartbeat int64
	lastPropose   int64
	syncUntil     int64

	// restoring is set while Restore replays stored blocks.
	restoring bool
	// trusted is set while Step handles a message that
	// Verifier.VerifyMessage passed: its signatures hold.
	trusted bool
	// forward holds the transactions admitted from clients since the last
	// Ready, which sends them to the other validators in one message.
	forward []*chain.Tx

	out   Ready
	hooks testHooks
}

// voteSlot is a slot a validator votes in.
type voteSlot struct {
	epoch, view, seq uint64
	phase            chain.Phase
}

type voteSlotBy struct {
	voteSlot
	signer string
}

// slot is the proposal being agreed on in the current view.
type slot struct {
	view  uint64
	block *chain.Block
	cid   cid.Cid
}

// execution is a block executed on a clone of the committed state.
type execution struct {
	block    *chain.Block
	state    chain.State
	machine  *chain.Machine
	outcomes []chain.Outcome
}

type preparedBlock struct {
	cert  PreparedCert
	block *chain.Block
	seq   uint64
}

// New returns the core of a node starting from genesis at time now (ms
// since 1970 UTC).
func New(cfg Config, now int64) (*Replica, error) {
	cfg.withDefaults()
	if cfg.Genesis == nil || cfg.Signer == nil {
		return nil, errors.New("pbft: config needs a genesis and a signer")
	}
	id := cfg.Signer.ID()
	if _, err := chain.PublicKeyFromPeerID(id); err != nil {
		return nil, fmt.Errorf("pbft: node key: %w", err)
	}
	gcid, err := cfg.Genesis.CID()
	if err != nil {
		return nil, err
	}
	state := chain.NewMemState()
	m, err := chain.NewMachine(cfg.Genesis, state)
	if err != nil {
		return nil, err
	}
	c := &Replica{
		cfg: cfg, key: cfg.Signer, id: id, chainID: cfg.Genesis.ChainID, log: cfg.Logger, now: now,
		state: state, machine: m, last: gcid, lastTime: cfg.Genesis.Time,
		vcs: map[string]*SignedViewChange{}, votes: map[voteSlot]map[string]*chain.SignedVote{},
		execs: map[cid.Cid]*execution{}, signed: map[voteSlot]cid.Cid{}, future: map[string][]*Message{},
		checkpoints: map[uint64]map[string]cid.Cid{}, cpBlocks: map[uint64]cid.Cid{}, verified: map[[32]byte]bool{},
		evidence: map[voteSlotBy]bool{}, accused: map[string]uint64{}, heights: map[string]uint64{}, heard: map[string]heardView{}, shared: map[string]int64{},
		leaderSeen: now, slotStart: now, viewStart: now, replayLists: chain.NewReplayCache(),
	}
	m.SkipVerified(c.isVerified)
	m.ShareReplayCache(c.replayLists)
	if err := c.loadEpoch(); err != nil {
		return nil, err
	}
	c.mempool = newMempool(cfg.MempoolTxs, c.params.MaxPendingPerSender)
	return c, nil
}

// loadEpoch reads the parameters and validator set in force.
func (c *Replica) loadEpoch() error {
	p, err := c.machine.Params()
	if err != nil {
		return err
	}
	vals, err := c.machine.Validators()
	if err != nil {
		return err
	}
	c.params = p
	if c.vals.Members != nil && vals.Epoch != c.vals.Epoch {
		c.prevVals = c.vals
		c.vcs = map[string]*SignedViewChange{}
		c.log.Info("new epoch", "epoch", vals.Epoch, "validators", len(vals.Members), "height", c.height)
	}
	c.vals, c.valIDs = vals, vals.IDs()
	if c.mempool != nil {
		c.mempool.perSender = p.MaxPendingPerSender
	}
	return nil
}

// ID returns the node's peer ID bytes.
func (c *Replica) ID() []byte { return c.id }

// Height returns the last committed height.
func (c *Replica) Height() uint64 { return c.height }

// LastBlock returns the CID of the last committed block (the genesis CID
// at height 0).
func (c *Replica) LastBlock() cid.Cid { return c.last }

// View returns the current view and whether a view change is under way.
func (c *Replica) View() (uint64, bool) { return c.view, c.changing }

// Validators returns the validator set in force.
func (c *Replica) Validators() chain.ValidatorSet { return c.vals }

// Leader returns the leader of the current view.
func (c *Replica) Leader() []byte { return c.leaderOf(c.view) }

// StateRoot returns the root of the committed state.
func (c *Replica) StateRoot() [32]byte { return c.state.Root() }

// KnownHeight is the highest height a validator's signed heartbeat or
// certificate has shown this node: a follower's lag is KnownHeight −
// Height.
func (c *Replica) KnownHeight() uint64 {
	h := c.height
	for _, x := range c.heights {
		h = max(h, x)
	}
	return h
}

// MempoolSize returns the number of transactions waiting.
func (c *Replica) MempoolSize() int { return c.mempool.len() }

func (c *Replica) leaderOf(view uint64) []byte { return c.valIDs[view%uint64(len(c.valIDs))] }

func (c *Replica) isValidator() bool { return c.vals.Members[string(c.id)] }

func (c *Replica) isLeader() bool {
	return c.isValidator() && string(c.leaderOf(c.view)) == string(c.id)
}

func (c *Replica) quorum() int { return chain.Quorum(len(c.vals.Members)) - c.hooks.quorumDelta }

func (c *Replica) faults() int { return chain.Faults(len(c.vals.Members)) }

func (c *Replica) nowMs() int64 { return c.now }

// HasReady reports whether Ready has anything.
func (c *Replica) HasReady() bool { return len(c.forward) > 0 || !c.out.IsEmpty() }

// Ready returns what the node must do; the node calls Advance when done.
func (c *Replica) Ready() Ready {
	c.flushForward()
	return c.out
}

// flushForward puts the transactions admitted from clients since the last
// Ready, and still waiting, in messages to every validator: one, unless
// they are more than one message may hold. They go before the Ready's
// other messages, since they arrived before whatever proposal holds them.
func (c *Replica) flushForward() {
	if len(c.forward) == 0 {
		return
	}
	var msgs []Outbound
	var batch []chain.Tx
	size := 0
	for _, tx := range c.forward {
		id, err := tx.ID()
		if err != nil || !c.mempool.has(id) {
			continue // committed or dropped already
		}
		raw, err := tx.Encoding()
		if err != nil {
			continue
		}
		if len(batch) > 0 && (len(batch) == maxForwardTxs || size+len(raw) > maxForwardBytes) {
			msgs = append(msgs, Outbound{Msg: &Message{Txs: batch}})
			batch, size = nil, 0
		}
		batch = append(batch, *tx)
		size += len(raw)
	}
	if len(batch) > 0 {
		msgs = append(msgs, Outbound{Msg: &Message{Txs: batch}})
	}
	c.forward = nil
	c.out.Messages = append(msgs, c.out.Messages...)
}

// Advance tells the core the last Ready was carried out.
func (c *Replica) Advance() { c.out = Ready{} }

func (c *Replica) persist(r Record) { c.out.Persist = append(c.out.Persist, r) }

func (c *Replica) broadcast(m *Message) { c.out.Messages = append(c.out.Messages, Outbound{Msg: m}) }

// Tick passes the time, now in ms since 1970 UTC: heartbeats,
// view-change timers, the pace of empty blocks.
func (c *Replica) Tick(now int64) {
	prev := c.now
	if now > c.now {
		c.now = now
	}
	if !c.isValidator() {
		return
	}
	if gap := c.now - prev; gap > c.cfg.ViewChangeTimeoutMs/2 {
		c.resumed(gap)
	}
	if c.now >= c.nextHeartbeat {
		c.nextHeartbeat = c.now + c.cfg.HeartbeatIntervalMs
		c.sendHeartbeat()
	}
	if c.changing {
		if c.now >= c.viewDeadline {
			c.viewChangeTimedOut()
		}
		return
	}
	if c.isLeader() {
		c.maybePropose()
		c.leaderSeen = c.now
	}
	timeout := c.cfg.ViewChangeTimeoutMs
	switch {
	case c.slot != nil && (c.now-c.slotStart) > timeout:
		c.startViewChange(c.view+1, "proposal not committed in time")
	case (c.now - c.leaderSeen) > timeout:
		c.startViewChange(c.view+1, "leader silent")
	case (c.now-c.viewStart) > c.cfg.RequestTimeoutMs && c.censored():
		c.startViewChange(c.view+1, "transactions left waiting")
	}
}

// resumed restarts the timers after a gap of gap ms since the previous
// Tick, longer than half the view-change timeout (a node ticks far more
// often): this node was paused or starved, so what it did not hear in that
// time says nothing about the leader. Half, not the whole timeout: after a
// pause just shorter than the timeout, a leader last heard just before it
// would be suspected at once, before this node reads the heartbeats that
// wait for it, and it would ask alone for a view change the others do not
// join. The leader, a slot in flight and the waiting transactions get a
// full timeout from now, and a view change in progress keeps the time it
// had left; a leader that is really silent is suspected one timeout later.
func (c *Replica) resumed(gap int64) {
	c.log.Warn("no tick for longer than half the view-change timeout: timers restarted", "gap_ms", gap)
	c.leaderSeen, c.viewStart = c.now, c.now
	if c.slot != nil {
		c.slotStart = c.now
	}
	if c.changing {
		c.viewDeadline += gap
	}
}

func (c *Replica) sendHeartbeat() {
	hb := Heartbeat{Chain: c.chainID, Epoch: c.vals.Epoch, View: c.view, Height: c.height, Block: link(c.last), Changing: c.changing}
	signer, sig, err := sign(TagHeartbeat, &hb, c.key)
	if err != nil {
		c.log.Error("sign heartbeat", "err", err)
		return
	}
	c.broadcast(&Message{Heartbeat: &SignedHeartbeat{Heartbeat: hb, Signer: signer, Sig: sig}})
}

// Step handles a message from peer from. A message that is invalid, out
// of its window or stale is dropped; the error says why, for logs and
// tests, and changes nothing. Step checks every signature the message
// carries unless a Verifier checked it before (VerifyMessage); of a
// message of forwarded transactions it admits those that are valid, and
// returns the first refusal.
func (c *Replica) Step(from []byte, m *Message) error {
	if err := m.validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	defer func(prev bool) { c.trusted = prev }(c.trusted)
	c.trusted = m.verified
	switch {
	case m.Proposal != nil:
		return c.onProposal(m.Proposal, false)
	case m.Vote != nil:
		return c.onVote(m.Vote)
	case m.ViewChange != nil:
		return c.onViewChange(m.ViewChange)
	case m.NewView != nil:
		return c.onNewView(m.NewView)
	case m.Checkpoint != nil:
		return c.onCheckpoint(m.Checkpoint)
	case m.Heartbeat != nil:
		return c.onHeartbeat(m.Heartbeat)
	case len(m.Txs) > 0:
		if !c.isValidator() {
			return ErrNotValidator
		}
		var first error
		for i := range m.Txs {
			if err := c.admit(&m.Txs[i], false); err != nil && first == nil {
				first = fmt.Errorf("tx %d: %w", i, err)
			}
		}
		c.maybePropose()
		return first
	}
	return nil
}

// Submit offers a client's transaction: if it is valid against the
// committed state and the mempool has room, it waits for a block and is
// forwarded to the other validators. The core keeps tx, which the caller
// must not change afterwards; Submit seals it (chain.Tx.Seal). Its
// signatures are checked here unless a Verifier checked them already
// (VerifyTxs).
func (c *Replica) Submit(tx *chain.Tx) error {
	return c.SubmitBatch([]*chain.Tx{tx})[0]
}

// SubmitBatch is Submit for several transactions at once, which a leader
// then proposes together; errs[i] is tx i's.
func (c *Replica) SubmitBatch(txs []*chain.Tx) (errs []error) {
	errs = make([]error, len(txs))
	if !c.isValidator() {
		for i := range errs {
			errs[i] = ErrNotValidator
		}
		return errs
	}
	for i, tx := range txs {
		errs[i] = c.admit(tx, true)
	}
	c.maybePropose()
	return errs
}

// ErrStale is returned for messages about the past or too far ahead.
var ErrStale = errors.New("pbft: stale or out-of-window message")

func (c *Replica) onHeartbeat(sh *SignedHeartbeat) error {
	hb := &sh.Heartbeat
	if hb.Chain != c.chainID || !c.vals.Members[string(sh.Signer)] || hb.Epoch < c.vals.Epoch {
		return ErrStale
	}
	if err := c.verifySigned(TagHeartbeat, &sh.Heartbeat, sh.Signer, sh.Sig); err != nil {
		return err
	}
	if hb.Height > c.heights[string(sh.Signer)] {
		c.heights[string(sh.Signer)] = hb.Height
	}
	if hb.Epoch == c.vals.Epoch {
		c.heard[string(sh.Signer)] = heardView{view: hb.View, changing: hb.Changing, at: c.now}
	}
	if hb.View == c.view && string(sh.Signer) == string(c.leaderOf(c.view)) {
		c.leaderSeen = c.now
	}
	if hb.Epoch == c.vals.Epoch && (hb.View < c.view || (hb.View == c.view && hb.Changing)) {
		c.shareView(sh.Signer)
	}
	// One block behind is normal while a commit is under way; a node
	// stuck there for a heartbeat interval, or further behind, fetches.
	if hb.Height > c.height+1 || hb.Epoch > c.vals.Epoch || (hb.Height > c.height && c.now-c.slotStart > c.cfg.HeartbeatIntervalMs) {
		c.requestSync(sh.Signer)
	}
	return nil
}

// heardView is a validator's view as its last heartbeat said, and when
// this node heard it.
type heardView struct {
	view     uint64
	changing bool
	at       int64
}

// othersInView reports whether f+1 other validators, by heartbeats heard
// within the last view-change timeout, are in view v and not changing: at
// least one honest node started v, so its NEW-VIEW exists.
func (c *Replica) othersInView(v uint64) bool {
	n := 0
	for id, h := range c.heard {
		if id != string(c.id) && c.vals.Members[id] && h.view == v && !h.changing && c.now-h.at <= c.cfg.ViewChangeTimeoutMs {
			n++
		}
	}
	return n > c.faults()
}

func (c *Replica) requestSync(from []byte) {
	if c.now < c.syncUntil || string(from) == string(c.id) {
		return
	}
	c.syncUntil = c.now + c.cfg.ViewChangeTimeoutMs/2
	c.out.Sync = &SyncRequest{Peer: from, From: c.height + 1}
}

// censored reports whether the leader is leaving out a transaction this
// node holds that is still valid: it waited longer than RequestTimeoutMs,
// or blocks went by without it, more than the backlog ahead of it
// explains (one block takes MaxBlockTxs; without this a leader could leave
// a transaction out until it expires, faster than any timer). Before it
// suspects the leader over a transaction, the node forwards it to the
// validators once more and gives it the same wait again: forwarding is
// best effort, and a saturated leader may have dropped it unread. Those
// that became invalid since they were admitted (a grant whose dataset
// another grant changed, say) are dropped on the way.
func (c *Replica) censored() bool {
	backlog := uint64(c.mempool.len())/c.params.MaxBlockTxs + 3
	overdue := func(e *entry) bool {
		// Waiting counts from the later of its arrival and the start of
		// this view: a new leader gets its own chance.
		return c.now-max(e.arrived, c.viewStart) > c.cfg.RequestTimeoutMs || c.height > max(e.height, c.viewHeight)+backlog
	}
	var invalid []cid.Cid
	defer func() {
		for _, id := range invalid {
			c.mempool.remove(id)
		}
	}()
	for _, e := range c.mempool.order {
		switch {
		case e.removed:
			continue
		case !overdue(e):
			if e.reforwarded {
				continue // its wait restarted; older ones may follow
			}
			return false // those behind it arrived later
		case c.machine.Check(e.tx, c.height+1) != nil:
			invalid = append(invalid, e.id)
		case !e.reforwarded:
			e.reforwarded, e.arrived, e.height = true, c.now, c.height
			c.forward = append(c.forward, e.tx)
		default:
			return true
		}
	}
	return false
}

// logSize counts the entries of the core's message logs, which must stay
// bounded whatever peers send: votes, buffered messages, view changes,
// checkpoints, signed slots, executions, evidence seen and the validators
// this view's NEW-VIEW went to.
func (c *Replica) logSize() int {
	n := len(c.vcs) + len(c.signed) + len(c.execs) + len(c.evidence) + len(c.cpBlocks) + len(c.heights) + len(c.shared)
	for _, byS := range c.votes {
		n += len(byS)
	}
	for _, q := range c.future {
		n += len(q)
	}
	for _, by := range c.checkpoints {
		n += len(by)
	}
	return n
}
