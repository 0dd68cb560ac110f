package node

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/chain/pbft"
	"auditnet/p2p"
)

// handleTxs serves /auditnet/tx/1: a member submits encoded transactions.
func (c *chainNode) handleTxs(ctx context.Context, from peer.ID, raw [][]byte) []p2p.TxResult {
	out := make([]p2p.TxResult, len(raw))
	if c.mempoolFull() {
		for i := range out {
			out[i] = txResult(pbft.ErrBusy)
		}
		return out
	}
	txs := make([]*chain.Tx, 0, len(raw))
	at := make([]int, 0, len(raw))
	for i, b := range raw {
		tx, err := chain.DecodeTx(b)
		if err != nil {
			out[i] = p2p.TxResult{Code: p2p.TxInvalid, Reason: err.Error()}
			continue
		}
		txs = append(txs, tx)
		at = append(at, i)
	}
	if len(txs) == 0 {
		return out
	}
	errs, err := c.Submit(ctx, txs)
	for k, i := range at {
		if err != nil {
			out[i] = p2p.TxResult{Code: p2p.TxBusy, Reason: err.Error()}
			continue
		}
		out[i] = txResult(errs[k])
	}
	return out
}

func txResult(err error) p2p.TxResult {
	switch {
	case err == nil:
		return p2p.TxResult{Code: p2p.TxOK}
	case errors.Is(err, pbft.ErrBusy):
		return p2p.TxResult{Code: p2p.TxBusy, Reason: err.Error()}
	case errors.Is(err, pbft.ErrNotValidator):
		return p2p.TxResult{Code: p2p.TxNotValidator, Reason: err.Error()}
	}
	return p2p.TxResult{Code: p2p.TxInvalid, Reason: err.Error()}
}

// ErrRefused is a transaction a validator refused, with its reason.
var ErrRefused = errors.New("transaction refused")

// forward sends a follower's transactions to a validator: those that
// have shown this node's height first (the leader first among them), then
// the ones behind. A refusal from a validator at this node's height
// stands; one from a validator behind it may come from a state it has not
// caught up with (a restarted validator refuses a grant whose anchor it
// has not applied), so the transaction goes on to the next. The last
// refusal stands if no validator reached takes it.
func (c *chainNode) forward(ctx context.Context, txs []*chain.Tx) ([]error, error) {
	raw := make([][]byte, len(txs))
	for i, tx := range txs {
		b, err := chain.EncodeTx(tx)
		if err != nil {
			return nil, fmt.Errorf("encode tx %d: %w", i, err)
		}
		raw[i] = b
	}
	st := c.status.Load()
	self := c.committedHeight()
	vals := append([]ValidatorStatus(nil), st.Validators...)
	current := func(v ValidatorStatus) bool { return v.Height >= self }
	slices.SortStableFunc(vals, func(a, b ValidatorStatus) int {
		switch {
		case current(a) != current(b):
			if current(a) {
				return -1
			}
			return 1
		case a.Leader != b.Leader:
			if a.Leader {
				return -1
			}
			return 1
		}
		return 0
	})
	errs := make([]error, len(txs))
	open := make([]int, len(txs)) // the txs no validator has decided
	for i := range open {
		open[i] = i
	}
	reached := false
	var lastErr error
	for _, v := range vals {
		if v.Self || len(open) == 0 {
			continue
		}
		p, err := peer.Decode(v.PeerID)
		if err != nil {
			continue
		}
		batch := make([][]byte, len(open))
		for j, i := range open {
			batch[j] = raw[i]
		}
		res, err := p2p.SubmitTxs(ctx, c.host.Host, p, batch)
		if err != nil {
			lastErr = err
			continue
		}
		reached = true
		var still []int
		for j, r := range res {
			i := open[j]
			switch r.Code {
			case p2p.TxOK:
				errs[i] = nil
			case p2p.TxBusy:
				errs[i] = pbft.ErrBusy
			case p2p.TxNotValidator:
				still = append(still, i)
			default:
				errs[i] = fmt.Errorf("%w: %s", ErrRefused, r.Reason)
				if !current(v) {
					still = append(still, i)
				}
			}
		}
		open = still
	}
	if !reached {
		if lastErr == nil {
			lastErr = errors.New("no validator reachable")
		}
		return nil, fmt.Errorf("submit to validators: %w", lastErr)
	}
	for _, i := range open {
		if errs[i] == nil {
			errs[i] = errors.New("no validator took the transaction")
		}
	}
	return errs, nil
}

// TxCommit says where a transaction committed.
type TxCommit struct {
	Height  uint64         `json:"Height"`
	Index   int            `json:"Index"`
	Outcome *chain.Outcome `json:"Outcome,omitempty"`
}

// waiterSet tells API requests that wait for a transaction when it
// commits.
type waiterSet struct {
	mu sync.Mutex
	m  map[cid.Cid][]chan TxCommit
	// closed, once set, is the error every later wait gets.
	closed error
}

func (w *waiterSet) init() { w.m = map[cid.Cid][]chan TxCommit{} }

// wait registers for id's commit; cancel unregisters.
func (w *waiterSet) wait(id cid.Cid) (ch chan TxCommit, cancel func(), err error) {
	ch = make(chan TxCommit, 1)
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed != nil {
		return nil, nil, w.closed
	}
	w.m[id] = append(w.m[id], ch)
	return ch, func() {
		w.mu.Lock()
		defer w.mu.Unlock()
		list := w.m[id]
		for i, c := range list {
			if c == ch {
				list = append(list[:i], list[i+1:]...)
				break
			}
		}
		if len(list) == 0 {
			delete(w.m, id)
		} else {
			w.m[id] = list
		}
	}, nil
}

func (w *waiterSet) done(id cid.Cid, tc TxCommit) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.m) == 0 {
		return
	}
	for _, ch := range w.m[id] {
		ch <- tc
	}
	delete(w.m, id)
}

func (w *waiterSet) closeAll(err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.closed = err
	for id, list := range w.m {
		for _, ch := range list {
			close(ch)
		}
		delete(w.m, id)
	}
}

// BlockEvent is a committed block as the block feed reports it.
type BlockEvent struct {
	Height uint64    `json:"Height"`
	Time   int64     `json:"Time"`
	Txs    []cid.Cid `json:"Txs"`
}

// blockFeed fans committed blocks out to subscribers (the bench, the
// API's follow stream). A subscriber that falls blockFeedBuffer blocks
// behind is dropped rather than slowing the chain.
type blockFeed struct {
	mu     sync.Mutex
	subs   map[chan BlockEvent]struct{}
	closed bool
}

const blockFeedBuffer = 4096

func (f *blockFeed) init() { f.subs = map[chan BlockEvent]struct{}{} }

func (f *blockFeed) subscribe() (chan BlockEvent, func()) {
	ch := make(chan BlockEvent, blockFeedBuffer)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		close(ch)
		return ch, func() {}
	}
	f.subs[ch] = struct{}{}
	return ch, func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if _, ok := f.subs[ch]; ok {
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *blockFeed) publish(ev BlockEvent) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		select {
		case ch <- ev:
		default:
			delete(f.subs, ch)
			close(ch)
		}
	}
}

func (f *blockFeed) closeAll() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	for ch := range f.subs {
		delete(f.subs, ch)
		close(ch)
	}
}

// ChainStatus is what `auditnet status` shows.
type ChainStatus struct {
	ChainID      string `json:"ChainID"`
	Validator    bool   `json:"Validator"`
	Height       uint64 `json:"Height"`
	Block        string `json:"Block"`
	StateRoot    string `json:"StateRoot"`
	Epoch        uint64 `json:"Epoch"`
	View         uint64 `json:"View"`
	ViewChanging bool   `json:"ViewChanging"`
	Leader       string `json:"Leader"`
	// KnownHeight is the highest height the validators' signed heartbeats
	// have shown; Lag is KnownHeight − Height.
	KnownHeight uint64            `json:"KnownHeight"`
	Lag         uint64            `json:"Lag"`
	Mempool     int               `json:"Mempool"`
	Quorum      int               `json:"Quorum"`
	Live        int               `json:"Live"`
	HasQuorum   bool              `json:"HasQuorum"`
	Followers   int               `json:"Followers"`
	Validators  []ValidatorStatus `json:"Validators"`
}

// ValidatorStatus is one validator as this node sees it.
type ValidatorStatus struct {
	PeerID string `json:"PeerID"`
	Height uint64 `json:"Height"`
	// LastSeenMs is how long ago this node heard from it (-1: never).
	LastSeenMs int64 `json:"LastSeenMs"`
	Live       bool  `json:"Live"`
	Leader     bool  `json:"Leader"`
	Self       bool  `json:"Self,omitempty"`
}

// buildStatus runs on the loop goroutine.
func (c *chainNode) buildStatus() *ChainStatus {
	r := c.replica
	vals := r.Validators()
	view, changing := r.View()
	root := r.StateRoot()
	st := &ChainStatus{
		ChainID: c.genesis.ChainID, Validator: r.IsValidator(), Height: r.Height(), Block: r.LastBlock().String(),
		StateRoot: hex.EncodeToString(root[:]), Epoch: vals.Epoch, View: view, ViewChanging: changing,
		Leader: chain.PeerIDString(r.Leader()), KnownHeight: r.KnownHeight(), Mempool: r.MempoolSize(),
		Quorum: chain.Quorum(len(vals.Members)), Followers: len(c.followers),
	}
	st.Lag = st.KnownHeight - st.Height
	heights := r.PeerHeights()
	self := string(r.ID())
	for _, id := range vals.IDs() {
		vs := ValidatorStatus{PeerID: chain.PeerIDString(id), Height: heights[string(id)], Leader: string(id) == string(r.Leader()), Self: string(id) == self}
		if vs.Self {
			vs.Height = st.Height
		}
		st.Validators = append(st.Validators, vs)
	}
	return st
}

// liveWithin is how recently a validator must have been heard from to
// count as live: a few heartbeats.
func (c *chainNode) liveWithin() time.Duration {
	hb := c.opts.Timers.Heartbeat
	if hb <= 0 {
		hb = pbft.DefaultHeartbeatIntervalMs * time.Millisecond
	}
	return 4 * hb
}

// Status returns the chain's status with liveness as of now.
func (c *chainNode) Status() ChainStatus {
	st := *c.status.Load()
	st.Validators = append([]ValidatorStatus(nil), st.Validators...)
	now := time.Now()
	st.Live = 0
	for i := range st.Validators {
		v := &st.Validators[i]
		v.LastSeenMs = -1
		if v.Self {
			v.LastSeenMs, v.Live = 0, true
		} else if p, err := peer.Decode(v.PeerID); err == nil {
			if t, ok := c.seen.Load(p); ok {
				ago := now.Sub(t.(time.Time))
				v.LastSeenMs = ago.Milliseconds()
				v.Live = ago <= c.liveWithin()
			}
		}
		if v.Live {
			st.Live++
		}
	}
	st.HasQuorum = st.Live >= st.Quorum
	return st
}
