package p2p

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
	"auditnet/storage/unixfs"
)

// Get fetches the DAG that path names under root into the store and pins
// it as fetched (kept, never served or announced). Blocks the store
// already holds are not fetched again, so a Get that stopped resumes. With
// several providers the missing subtrees are split among them; a provider
// that fails or misbehaves is dropped and its unfinished part goes to the
// others.
func (f *Fetcher) Get(ctx context.Context, root cid.Cid, path string, opts FetchOptions) (FetchStats, error) {
	var stats FetchStats
	if f.cfg.Store == nil {
		return stats, errors.New("p2p: fetcher has no store")
	}
	if len(opts.Providers) == 0 {
		return stats, fmt.Errorf("%w %s: no providers given", ErrNoProvider, root)
	}
	w, err := f.cfg.Store.NewWriter()
	if err != nil {
		return stats, err
	}
	defer w.Close()
	sw := &syncedWriter{w: w}
	g := &getRun{f: f, root: root, opts: opts, sw: sw, stats: &stats, alive: append([]peer.ID(nil), opts.Providers...)}

	if err := g.checkDeclaredSize(ctx); err != nil {
		return stats, err
	}
	tgt, err := g.resolve(ctx, path)
	if err != nil {
		return stats, err
	}
	stats.Target = tgt.c
	frontier, err := g.frontier(ctx, tgt)
	if err != nil {
		return stats, err
	}
	for round := 0; round < 3 && len(g.alive) > 1 && len(frontier) > 0 && len(frontier) < 4*len(g.alive) && hasInner(frontier); round++ {
		// Too few pieces to share out: fetch the next level of nodes first.
		if err := g.fetchAll(ctx, [][]target{frontier}, 1); err != nil {
			return stats, err
		}
		if frontier, err = g.frontier(ctx, tgt); err != nil {
			return stats, err
		}
	}
	if len(frontier) > 0 {
		if err := g.fetchAll(ctx, split(frontier, 4*len(g.alive)), 0); err != nil {
			return stats, err
		}
	}
	// Every block is now held; prove it before pinning.
	if missing, err := g.frontier(ctx, tgt); err != nil {
		return stats, err
	} else if len(missing) > 0 {
		return stats, fmt.Errorf("fetch %s: %d subtrees still missing after the fetch", root, len(missing))
	}
	w.PinFetched(tgt.c)
	if err := w.Commit(); err != nil {
		return stats, fmt.Errorf("store %s: %w", tgt.c, err)
	}
	return stats, nil
}

type getRun struct {
	f     *Fetcher
	root  cid.Cid
	opts  FetchOptions
	sw    *syncedWriter
	mu    sync.Mutex // guards stats
	stats *FetchStats
	alive []peer.ID // touched by the dispatching goroutine only
}

// checkDeclaredSize refuses a dataset whose root, held here from an
// earlier fetch, declares more than opts.MaxBytes. (A root that is not held
// is checked as it arrives.)
func (g *getRun) checkDeclaredSize(ctx context.Context) error {
	if g.opts.MaxBytes == 0 {
		return nil
	}
	b, err := g.f.cfg.Store.Get(ctx, g.root)
	if errors.Is(err, storage.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	total, err := cumulativeSize(g.root, b)
	if err != nil {
		return err
	}
	if total > g.opts.MaxBytes {
		return fmt.Errorf("%w: %s declares %d bytes, more than the %d allowed", unixfs.ErrTooBig, g.root, total, g.opts.MaxBytes)
	}
	return nil
}

// resolve finds the node path names, fetching the blocks that resolve it
// if the store lacks them.
func (g *getRun) resolve(ctx context.Context, path string) (target, error) {
	if path == "" {
		return target{c: g.root, path: []int{}}, nil
	}
	local := g.f.cfg.Store
	n, indices, err := unixfs.ResolveLinks(ctx, local, g.root, path)
	if err == nil {
		return target{c: n.Cid, path: indices}, nil
	}
	if !errors.Is(err, storage.ErrNotFound) {
		return target{}, err
	}
	// Ask for the path with depth 1: the blocks on the way and the node.
	var lastErr error
	for len(g.alive) > 0 {
		p := g.alive[0]
		err := g.stream(ctx, p, Scope{Path: path, Depth: 1}, nil, func(tr *traversal) error {
			if err := tr.resolvePath(ctx, g.root, path); err != nil {
				return err
			}
			return tr.run(ctx)
		})
		if err == nil {
			break
		}
		if ctx.Err() != nil || isDataError(err) || isWriteError(err) {
			return target{}, err
		}
		g.dropProvider(p, err)
		lastErr = err
	}
	if len(g.alive) == 0 {
		return target{}, fmt.Errorf("%w %s: %w", ErrNoProvider, g.root, lastErr)
	}
	if err := g.sw.flush(); err != nil {
		return target{}, err
	}
	n, indices, err = unixfs.ResolveLinks(ctx, local, g.root, path)
	if err != nil {
		return target{}, err
	}
	return target{c: n.Cid, path: indices}, nil
}

// frontier walks what the store holds of t's DAG and returns the subtrees
// it lacks, in traversal order.
func (g *getRun) frontier(ctx context.Context, t target) ([]target, error) {
	var out []target
	seen := make(map[string]struct{})
	var walk func(t target, depth int) error
	walk = func(t target, depth int) error {
		if _, ok := seen[t.c.KeyString()]; ok {
			return nil
		}
		seen[t.c.KeyString()] = struct{}{}
		if _, ok := identityBlock(t.c); ok {
			return nil
		}
		if depth > maxDAGDepth {
			return fmt.Errorf("%w: DAG deeper than %d levels", ErrUnsupportedDAG, maxDAGDepth)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		has, err := g.f.cfg.Store.Has(ctx, t.c)
		if err != nil {
			return err
		}
		if !has {
			out = append(out, t)
			return nil
		}
		if t.c.Type() == cid.Raw {
			return nil
		}
		b, err := g.f.cfg.Store.Get(ctx, t.c)
		if errors.Is(err, storage.ErrNotFound) {
			out = append(out, t)
			return nil
		}
		if err != nil {
			return err
		}
		links, sizes, err := blockLinks(t.c, b)
		if err != nil {
			return err
		}
		for i := range links {
			child := target{c: links[i], path: append(append([]int(nil), t.path...), i), tsize: sizes[i]}
			if err := walk(child, depth+1); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(t, 0); err != nil {
		return nil, err
	}
	return out, nil
}

func hasInner(ts []target) bool {
	for _, t := range ts {
		if t.c.Type() != cid.Raw {
			return true
		}
	}
	return false
}

// split cuts targets into at most n runs of neighbours, none longer than
// a request may carry.
func split(ts []target, n int) [][]target {
	size := (len(ts) + n - 1) / n
	size = max(1, min(size, maxScopeLinks))
	var out [][]target
	for len(ts) > 0 {
		k := min(size, len(ts))
		out = append(out, ts[:k:k])
		ts = ts[k:]
	}
	return out
}

// fetchAll fetches every chunk, each from one provider, as many at once as
// there are providers alive. A chunk whose provider fails goes back in the
// queue, less what arrived.
func (g *getRun) fetchAll(ctx context.Context, chunks [][]target, depth int) error {
	type result struct {
		p    peer.ID
		left []target
		err  error
	}
	results := make(chan result)
	idle := append([]peer.ID(nil), g.alive...)
	running := 0
	var firstErr, lastErr error
	for {
		for firstErr == nil && len(chunks) > 0 && len(idle) > 0 {
			p, chunk := idle[0], chunks[0]
			idle, chunks = idle[1:], chunks[1:]
			running++
			go func() {
				var tr *traversal
				err := g.stream(ctx, p, Scope{Links: linkPaths(chunk), Depth: depth, Dedup: true}, chunk, func(t *traversal) error {
					tr = t
					t.push(chunk)
					return t.run(ctx)
				})
				left := chunk
				if tr != nil {
					left = tr.remaining()
				}
				results <- result{p, left, err}
			}()
		}
		if running == 0 {
			switch {
			case firstErr != nil:
				return firstErr
			case len(chunks) == 0:
				return g.sw.flush()
			}
			return fmt.Errorf("%w %s: %w", ErrNoProvider, g.root, lastErr)
		}
		r := <-results
		running--
		if r.err == nil {
			idle = append(idle, r.p)
			continue
		}
		if ctx.Err() != nil || isDataError(r.err) || isWriteError(r.err) {
			if firstErr == nil {
				firstErr = r.err
			}
			continue
		}
		g.dropProvider(r.p, r.err)
		lastErr = r.err
		if len(r.left) > 0 {
			chunks = append(split(r.left, max(1, len(g.alive))), chunks...)
		}
	}
}

// stream runs one request to p: run drives the traversal, whose blocks go
// to the store as they are verified.
func (g *getRun) stream(ctx context.Context, p peer.ID, scope Scope, targets []target, run func(*traversal) error) error {
	g.mu.Lock()
	g.stats.Requests++
	g.mu.Unlock()
	s, err := g.f.open(ctx, p, g.root, scope, g.opts, targets)
	if err != nil {
		return err
	}
	s.onBlock = g.sw.put
	tr := newTraversal(scope, s.get, func(cid.Cid, []byte) error { return nil })
	err = run(tr)
	if err == nil {
		err = s.close(true)
	} else {
		s.close(false)
	}
	g.mu.Lock()
	g.stats.Bytes += int64(s.got)
	g.stats.Blocks += s.blocks
	g.stats.add(p, int64(s.got))
	g.mu.Unlock()
	return err
}

func (g *getRun) dropProvider(p peer.ID, err error) {
	g.f.cfg.Logger.Warn("dropping provider for this fetch", "peer", p, "cid", g.root, "err", err)
	g.mu.Lock()
	g.stats.drop(p, err)
	g.mu.Unlock()
	for i, q := range g.alive {
		if q == p {
			g.alive = append(g.alive[:i:i], g.alive[i+1:]...)
			break
		}
	}
}

func isWriteError(err error) bool {
	var we *writeError
	return errors.As(err, &we)
}
