package p2p

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
	"auditnet/storage/unixfs"
)

// fetchWait polls cond until it holds, failing t when ctx ends first.
func fetchWait(ctx context.Context, t *testing.T, what string, cond func() bool) {
	t.Helper()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-tick.C:
		case <-ctx.Done():
			t.Fatalf("waiting for %s: %v", what, ctx.Err())
		}
	}
}

// dagBytes returns the bytes of every block of root's DAG in st.
func dagBytes(t *testing.T, st *storage.Store, root cid.Cid) map[cid.Cid]int {
	t.Helper()
	out := make(map[cid.Cid]int)
	err := st.WalkDAG(context.Background(), root, func(c cid.Cid, data []byte) error {
		out[c] = len(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sumBytes(m map[cid.Cid]int) int64 {
	var n int64
	for _, v := range m {
		n += int64(v)
	}
	return n
}

// heldBytes is how many bytes of blocks a store holds.
func heldBytes(t *testing.T, st *storage.Store, blocks map[cid.Cid]int) int64 {
	t.Helper()
	var n int64
	for c, size := range blocks {
		has, err := st.Has(context.Background(), c)
		if err != nil {
			t.Fatal(err)
		}
		if has {
			n += int64(size)
		}
	}
	return n
}

func assertPinnedFetched(t *testing.T, n *testNode, root cid.Cid) {
	t.Helper()
	origin, pinned, err := n.store.PinOrigin(context.Background(), root)
	if err != nil || !pinned || origin != storage.PinFetched {
		t.Fatalf("pin of %s: origin %v, pinned %v, err %v", root, origin, pinned, err)
	}
}

// TestFetchFromThreeProviders guards the multi-provider split: a 64 MiB
// Get from three providers that all hold the dataset arrives complete,
// pinned as fetched, with blocks from more than one provider and no block
// transferred twice (the bytes received equal the DAG's).
func TestFetchFromThreeProviders(t *testing.T) {
	provs := []*testNode{newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)}
	req := newTestNode(t, false)
	link(t, append([]*testNode{req}, provs...)...)
	data := randomBytes(3, 64<<20)
	var root cid.Cid
	ids := make([]peer.ID, len(provs))
	for i, p := range provs {
		p.serve(nil)
		root = p.addFile(data)
		ids[i] = p.id()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	stats, err := req.fetcher.Get(ctx, root, "", FetchOptions{Providers: ids})
	if err != nil {
		t.Fatal(err)
	}
	if got := req.readAll(root); !bytes.Equal(got, data) {
		t.Fatal("bytes differ")
	}
	assertPinnedFetched(t, req, root)
	if want := sumBytes(dagBytes(t, provs[0].store, root)); stats.Bytes != want {
		t.Errorf("received %d bytes, the DAG has %d", stats.Bytes, want)
	}
	var sum int64
	used := 0
	for _, id := range ids {
		sum += stats.FromProvider[id]
		if stats.FromProvider[id] > 0 {
			used++
		}
	}
	if used < 2 || sum != stats.Bytes {
		t.Errorf("from providers %v (sum %d of %d): want more than one", stats.FromProvider, sum, stats.Bytes)
	}
	if len(stats.DroppedReasons) > 0 {
		t.Errorf("dropped %v", stats.DroppedReasons)
	}
	t.Logf("%d bytes in %d blocks over %d requests: %v", stats.Bytes, stats.Blocks, stats.Requests, stats.FromProvider)
}

// killSwitch stops a provider's fetch streams once they have written
// after bytes in all: the write that passes the mark closes reached and
// waits for release, so the test can kill the provider mid-stream.
type killSwitch struct {
	after   int64
	written atomic.Int64
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	freed   sync.Once
}

func newKillSwitch(after int64) *killSwitch {
	return &killSwitch{after: after, reached: make(chan struct{}), release: make(chan struct{})}
}

func (k *killSwitch) free() { k.freed.Do(func() { close(k.release) }) }

// install puts the switch between n's fetch service and its streams.
func (k *killSwitch) install(t *testing.T, n *testNode) {
	n.host.SetStreamHandler(FetchProtocol, func(st network.Stream) {
		n.service.handle(switchedStream{st, k})
	})
	t.Cleanup(k.free) // runs before the service's Close
}

type switchedStream struct {
	network.Stream
	k *killSwitch
}

func (s switchedStream) Write(p []byte) (int, error) {
	if s.k.written.Add(int64(len(p))) >= s.k.after {
		s.k.once.Do(func() { close(s.k.reached) })
		<-s.k.release
	}
	return s.Stream.Write(p)
}

type fetchResult struct {
	got   []byte
	stats FetchStats
	err   error
}

// TestFetchProviderKilledMidStream guards failover from a dead provider:
// the first provider's host is closed while it is blocked in the middle of
// writing a fetch stream (after 4 MiB); the fetch completes from the honest
// second provider, with the right bytes, the dead one dropped and the
// honest one sending the rest.
func TestFetchProviderKilledMidStream(t *testing.T) {
	data := randomBytes(21, 16<<20)
	for _, mode := range fetchModes {
		t.Run(mode.name, func(t *testing.T) {
			victim, honest, req := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
			victim.serve(nil)
			honest.serve(nil)
			link(t, victim, honest, req)
			root := victim.addFile(data)
			honest.addFile(data)
			k := newKillSwitch(4 << 20)
			k.install(t, victim)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			done := make(chan fetchResult, 1)
			go func() {
				got, stats, err := mode.run(ctx, req, root, FetchOptions{Providers: []peer.ID{victim.id(), honest.id()}})
				done <- fetchResult{got, stats, err}
			}()
			select {
			case <-k.reached:
			case r := <-done:
				t.Fatalf("fetch ended before the provider was killed: %v", r.err)
			case <-ctx.Done():
				t.Fatal("the provider never wrote 4 MiB")
			}
			if err := victim.host.Close(); err != nil {
				t.Fatal(err)
			}
			k.free()
			r := <-done
			if r.err != nil {
				t.Fatalf("fetch after the kill: %v (stats %+v)", r.err, r.stats)
			}
			if !bytes.Equal(r.got, data) {
				t.Fatal("bytes differ")
			}
			if _, ok := r.stats.DroppedReasons[victim.id()]; !ok {
				t.Errorf("killed provider not dropped: %+v", r.stats)
			}
			if _, ok := r.stats.DroppedReasons[honest.id()]; ok {
				t.Errorf("honest provider dropped: %+v", r.stats)
			}
			if r.stats.FromProvider[honest.id()] == 0 {
				t.Errorf("nothing from the honest provider: %v", r.stats.FromProvider)
			}
		})
	}
}

// failingWriter takes n bytes, then fails every write.
type failingWriter struct{ n int }

var errOutputFull = errors.New("output full")

func (w *failingWriter) Write(p []byte) (int, error) {
	if len(p) > w.n {
		return 0, errOutputFull
	}
	w.n -= len(p)
	return len(p), nil
}

// TestFetchServiceSurvivesRequesterReset guards the provider against a
// requester that resets its stream mid-transfer (here: its output fails
// after 1 MiB of a 64 MiB Cat): the stream's handler must return and give
// back its slot, so the next fetch is served even with MaxConcurrent 1,
// and Close returns.
func TestFetchServiceSurvivesRequesterReset(t *testing.T) {
	prov, req := newTestNode(t, false), newTestNode(t, false)
	link(t, prov, req)
	svc, err := NewFetchService(FetchServiceConfig{Host: prov.host, Store: prov.store, Network: testNetwork, Authorizer: AllowAll{}, MaxConcurrent: 1, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	data := randomBytes(23, 64<<20)
	root := prov.addFile(data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	opts := FetchOptions{Providers: []peer.ID{prov.id()}}

	for i := range 3 {
		_, err := req.fetcher.Cat(ctx, root, "", &failingWriter{n: 1 << 20}, opts)
		if !errors.Is(err, errOutputFull) {
			t.Fatalf("cat %d into a failing output: %v", i, err)
		}
		fetchWait(ctx, t, "the provider to free its slot", func() bool { return len(svc.slots) == 0 })
	}
	var out bytes.Buffer
	if _, err := req.fetcher.Cat(ctx, root, "", &out, opts); err != nil {
		t.Fatalf("cat after the resets: %v", err)
	}
	if !bytes.Equal(out.Bytes(), data) {
		t.Fatal("bytes differ")
	}
	closed := make(chan struct{})
	go func() { svc.Close(); close(closed) }()
	select {
	case <-closed:
	case <-ctx.Done():
		t.Fatal("FetchService.Close did not return")
	}
}

// TestCatMaxBytesStopsFetch guards FetchOptions.MaxBytes: a root declaring
// more than allowed stops the Cat at the first provider, before any file
// byte is written; a second provider is not asked to send it anyway.
func TestCatMaxBytesStopsFetch(t *testing.T) {
	a, b, req := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
	a.serve(nil)
	b.serve(nil)
	link(t, a, b, req)
	data := randomBytes(25, 1<<20)
	root := a.addFile(data)
	b.addFile(data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	var out bytes.Buffer
	stats, err := req.fetcher.Cat(ctx, root, "", &out, FetchOptions{Providers: []peer.ID{a.id(), b.id()}, MaxBytes: 1000})
	if err == nil || !strings.Contains(err.Error(), "more than the 1000 allowed") {
		t.Fatalf("err = %v, want a refusal over MaxBytes", err)
	}
	if out.Len() > 0 || stats.Requests != 1 || len(stats.DroppedReasons) > 0 {
		t.Errorf("wrote %d bytes, %d requests, dropped %v", out.Len(), stats.Requests, stats.DroppedReasons)
	}

	// Get applies the same bound, whether the root arrives in the fetch or
	// is already held from an earlier one.
	opts := FetchOptions{Providers: []peer.ID{a.id(), b.id()}, MaxBytes: 1000}
	stats, err = req.fetcher.Get(ctx, root, "", opts)
	if !errors.Is(err, unixfs.ErrTooBig) || stats.Requests != 1 || len(stats.DroppedReasons) > 0 {
		t.Fatalf("get over MaxBytes: %v, %d requests, dropped %v", err, stats.Requests, stats.DroppedReasons)
	}
	if _, pinned, _ := req.store.PinOrigin(ctx, root); pinned {
		t.Fatal("a refused dataset was pinned")
	}
	w, _ := req.store.NewWriter()
	rootBlock, _ := a.store.Get(ctx, root)
	w.Put(root, rootBlock)
	w.Commit()
	w.Close()
	if stats, err = req.fetcher.Get(ctx, root, "", opts); !errors.Is(err, unixfs.ErrTooBig) || stats.Requests != 0 {
		t.Fatalf("get over MaxBytes with the root held: %v, %d requests", err, stats.Requests)
	}
}

// reopenStore gives n a fresh store opened with opts, and a fetcher on it.
func (n *testNode) reopenStore(opts storage.Options) {
	n.t.Helper()
	st, err := storage.Open(filepath.Join(n.t.TempDir(), "blocks"), opts)
	if err != nil {
		n.t.Fatal(err)
	}
	n.t.Cleanup(func() { st.Close() })
	f, err := NewFetcher(FetcherConfig{Host: n.host, Identity: n.key, Network: testNetwork, Store: st, IdleTimeout: 10 * time.Second})
	if err != nil {
		n.t.Fatal(err)
	}
	n.store, n.fetcher = st, f
}

// syncGateFS is the OS file system with a gate on the store's index
// journal: once armed, the next journal fsync (the end of a Writer flush)
// completes, closes synced, and waits for release before returning.
type syncGateFS struct {
	storage.OSFS
	armed   atomic.Bool
	synced  chan struct{}
	release chan struct{}
	freed   sync.Once
}

func (g *syncGateFS) free() { g.freed.Do(func() { close(g.release) }) }

func (g *syncGateFS) OpenFile(name string, flag int, perm fs.FileMode) (storage.File, error) {
	f, err := g.OSFS.OpenFile(name, flag, perm)
	if err != nil || !strings.HasSuffix(name, ".log") {
		return f, err
	}
	return gatedFile{f, g}, nil
}

type gatedFile struct {
	storage.File
	g *syncGateFS
}

func (f gatedFile) Sync() error {
	err := f.File.Sync()
	if f.g.armed.CompareAndSwap(true, false) {
		close(f.g.synced)
		<-f.g.release
	}
	return err
}

// TestFetchGetResumes guards resumption: a Get re-fetches only the blocks
// its store lacks, whether they are missing because the store was seeded
// with part of the DAG or because an earlier Get was cancelled right after
// it made a first batch of blocks durable. Bytes received equal the DAG's
// bytes less what was held, and the result is complete and pinned.
func TestFetchGetResumes(t *testing.T) {
	data := randomBytes(27, 16<<20)
	for _, tc := range []struct {
		name    string
		prepare func(t *testing.T, prov, req *testNode, root cid.Cid)
	}{
		{"seeded with every other leaf", func(t *testing.T, prov, req *testNode, root cid.Cid) {
			seedEveryOtherLeaf(t, prov.store, req.store, root)
		}},
		{"cancelled after a flush", func(t *testing.T, prov, req *testNode, root cid.Cid) {
			gate := &syncGateFS{synced: make(chan struct{}), release: make(chan struct{})}
			req.reopenStore(storage.Options{FS: gate, FlushEntries: 4})
			t.Cleanup(gate.free)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			gate.armed.Store(true)
			done := make(chan error, 1)
			go func() {
				_, err := req.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{prov.id()}})
				done <- err
			}()
			select {
			case <-gate.synced:
			case err := <-done:
				t.Fatalf("get ended before its first flush: %v", err)
			case <-time.After(time.Minute):
				t.Fatal("no flush within a minute")
			}
			cancel()
			gate.free()
			if err := <-done; !errors.Is(err, context.Canceled) {
				t.Fatalf("cancelled get: %v", err)
			}
			if pinned, _ := req.store.IsPinned(context.Background(), root); pinned {
				t.Fatal("a cancelled get pinned its root")
			}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			prov, req := newTestNode(t, false), newTestNode(t, false)
			prov.serve(nil)
			link(t, prov, req)
			root := prov.addFile(data)
			blocks := dagBytes(t, prov.store, root)
			total := sumBytes(blocks)
			tc.prepare(t, prov, req, root)
			held := heldBytes(t, req.store, blocks)
			if held == 0 || held >= total {
				t.Fatalf("the requester holds %d of %d bytes before resuming", held, total)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			stats, err := req.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{prov.id()}})
			if err != nil {
				t.Fatal(err)
			}
			if stats.Bytes != total-held {
				t.Errorf("resumed get received %d bytes; the DAG has %d, %d of them held", stats.Bytes, total, held)
			}
			if got := req.readAll(root); !bytes.Equal(got, data) {
				t.Fatal("bytes differ")
			}
			assertPinnedFetched(t, req, root)
			t.Logf("held %d of %d bytes, fetched %d in %d requests", held, total, stats.Bytes, stats.Requests)
		})
	}
}

// seedEveryOtherLeaf copies root's dag-pb nodes and every other raw leaf
// from one store to another, unpinned.
func seedEveryOtherLeaf(t *testing.T, from, to *storage.Store, root cid.Cid) {
	t.Helper()
	w, err := to.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	leaf := 0
	err = from.WalkDAG(context.Background(), root, func(c cid.Cid, data []byte) error {
		if c.Type() == cid.Raw {
			leaf++
			if leaf%2 == 1 {
				return nil
			}
		}
		return w.Put(c, data)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}
