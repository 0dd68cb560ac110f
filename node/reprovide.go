package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/ipfs/go-cid"

	"auditnet/storage"
)

// announcer is what the reprovider needs of the DHT.
type announcer interface {
	Provide(ctx context.Context, root cid.Cid) error
}

// reprovideState is reprovide.json: when every root was last announced,
// and the roots still waiting for their first announcement. It makes the
// schedule survive restarts: a node restarted an hour after a round waits
// out the rest of the interval, and one that was down longer than the
// interval announces at once.
type reprovideState struct {
	LastRound time.Time `json:"LastRound"`
	Pending   []string  `json:"Pending"`
}

// rootLister lists the roots to announce.
type rootLister interface {
	PinsOf(ctx context.Context, origin storage.PinOrigin) ([]cid.Cid, error)
}

// reprovider announces the node's own dataset roots (pins of origin
// local; never what it fetched) in the DHT: new ones as soon as they are
// added, all of them every interval.
type reprovider struct {
	path     string
	interval time.Duration
	store    rootLister
	dht      announcer
	logger   *slog.Logger
	retry    time.Duration

	// allowed, if set, says which roots may be announced; the others are
	// never announced, and dropped from the queue.
	allowed func(cid.Cid) bool

	mu      sync.Mutex
	pending map[cid.Cid]struct{}
	last    time.Time // the last complete round
	wake    chan struct{}
}

func newReprovider(path string, interval time.Duration, store rootLister, dht announcer, logger *slog.Logger) *reprovider {
	return &reprovider{
		path: path, interval: interval, store: store, dht: dht, logger: logger, retry: 15 * time.Second,
		pending: make(map[cid.Cid]struct{}), wake: make(chan struct{}, 1),
	}
}

// announce queues a new root for announcement and persists the queue, so
// a crash before the announcement does not lose it.
func (r *reprovider) announce(root cid.Cid) {
	r.mu.Lock()
	r.pending[root] = struct{}{}
	r.mu.Unlock()
	if err := r.save(); err != nil {
		r.logger.Error("save reprovide schedule", "err", err)
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

func (r *reprovider) load() (reprovideState, error) {
	var st reprovideState
	raw, err := os.ReadFile(r.path)
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return st, fmt.Errorf("read %s: %w", r.path, err)
	}
	if err := json.Unmarshal(raw, &st); err != nil {
		r.logger.Warn("reprovide state unreadable; announcing everything now", "err", err)
		return reprovideState{}, nil
	}
	return st, nil
}

func (r *reprovider) save() error {
	r.mu.Lock()
	st := reprovideState{LastRound: r.last, Pending: []string{}}
	for c := range r.pending {
		st.Pending = append(st.Pending, c.String())
	}
	r.mu.Unlock()
	raw, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFileAtomic(storage.OSFS{}, r.path, raw, 0o600)
}

// run announces until ctx ends.
func (r *reprovider) run(ctx context.Context) error {
	st, err := r.load()
	if err != nil {
		return err
	}
	r.mu.Lock()
	r.last = st.LastRound
	for _, s := range st.Pending {
		if c, err := cid.Decode(s); err == nil {
			r.pending[c] = struct{}{}
		}
	}
	r.mu.Unlock()
	// Failed announcements are retried sooner than the next round, backing
	// off while the DHT has no one to take them.
	const maxRetry = 30 * time.Minute
	backoff := r.retry
	for {
		r.mu.Lock()
		last := r.last
		r.mu.Unlock()
		if time.Since(last) >= r.interval {
			r.round(ctx)
			if ctx.Err() == nil {
				r.mu.Lock()
				r.last = time.Now()
				last = r.last
				r.mu.Unlock()
			}
		} else {
			r.provideNew(ctx)
		}
		if ctx.Err() != nil {
			return nil
		}
		if err := r.save(); err != nil {
			r.logger.Error("save reprovide schedule", "err", err)
		}
		wait := time.Until(last.Add(r.interval))
		r.mu.Lock()
		if len(r.pending) > 0 {
			wait = min(wait, backoff)
			backoff = min(2*backoff, maxRetry)
		} else {
			backoff = r.retry
		}
		r.mu.Unlock()
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// provideNew announces the queued roots; those that fail stay queued.
func (r *reprovider) provideNew(ctx context.Context) {
	r.mu.Lock()
	roots := make([]cid.Cid, 0, len(r.pending))
	for c := range r.pending {
		roots = append(roots, c)
	}
	r.mu.Unlock()
	for _, c := range roots {
		if r.provide(ctx, c) {
			r.mu.Lock()
			delete(r.pending, c)
			r.mu.Unlock()
		}
	}
}

// round announces every local root.
func (r *reprovider) round(ctx context.Context) {
	roots, err := r.store.PinsOf(ctx, storage.PinLocal)
	if err != nil {
		r.logger.Error("list roots to announce", "err", err)
		return
	}
	r.logger.Info("announcing dataset roots", "count", len(roots))
	for _, c := range roots {
		ok := r.provide(ctx, c)
		r.mu.Lock()
		if ok {
			delete(r.pending, c)
		} else {
			r.pending[c] = struct{}{}
		}
		r.mu.Unlock()
	}
	r.provideNew(ctx)
}

func (r *reprovider) provide(ctx context.Context, c cid.Cid) bool {
	if r.allowed != nil && !r.allowed(c) {
		return true // nothing to announce: done with it
	}
	pctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := r.dht.Provide(pctx, c); err != nil {
		if ctx.Err() == nil {
			r.logger.Warn("announce failed; will retry", "cid", c, "err", err)
		}
		return false
	}
	r.logger.Debug("announced", "cid", c)
	return true
}
