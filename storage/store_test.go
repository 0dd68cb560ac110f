package storage

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/storage/dagpb"
	"auditnet/storage/unixfs"
)

func openTestStore(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func rawBlock(data []byte) cid.Cid {
	h, _ := mh.Sum(data, mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}

func randomBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// addFile imports data as a UnixFS file through a Writer and pins it.
func addFile(t testing.TB, s *Store, data []byte, p unixfs.Params) cid.Cid {
	t.Helper()
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	im, err := unixfs.NewImporter(p, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := im.File(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	w.Pin(e.Cid)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return e.Cid
}

func readUnixFSFile(t testing.TB, s *Store, root cid.Cid) []byte {
	t.Helper()
	ctx := context.Background()
	n, err := unixfs.Load(ctx, s, root)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := unixfs.NewFileReader(ctx, s, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	var buf bytes.Buffer
	if _, err := fr.WriteTo(&buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestPutGetHasSizeDelete(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	data := []byte("audit record 1")
	c := rawBlock(data)
	if ok, err := s.Has(ctx, c); err != nil || ok {
		t.Fatalf("has before put: %v, %v", ok, err)
	}
	if _, err := s.Get(ctx, c); !errors.Is(err, ErrNotFound) {
		t.Fatalf("get before put: %v", err)
	}
	if err := s.Put(ctx, c, data); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, c)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %q, %v", got, err)
	}
	if n, err := s.Size(ctx, c); err != nil || n != len(data) {
		t.Fatalf("size: %d, %v", n, err)
	}
	// The same bytes under dag-pb share the multihash: one stored block.
	pbCid := cid.NewCidV1(cid.DagProtobuf, c.Hash())
	if ok, _ := s.Has(ctx, pbCid); !ok {
		t.Fatal("dag-pb CID with the same multihash not found")
	}
	if err := s.Put(ctx, pbCid, data); err != nil {
		t.Fatal(err)
	}
	count := 0
	if err := s.Iterate(ctx, func(mh.Multihash, int) error { count++; return nil }); err != nil {
		t.Fatal(err)
	}
	if count != 1 {
		t.Fatalf("%d blocks stored for one multihash", count)
	}
	if err := s.Put(ctx, c, []byte("not the data")); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("put with a wrong CID: %v", err)
	}
	if err := s.Delete(ctx, c); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, c); ok {
		t.Fatal("block still there after delete")
	}
}

func TestAcknowledgedSurvivesReopenAndAbortLeavesNothing(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{PackSize: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(3, 4))
	data := randomBytes(rng, 300_000)
	root := addFile(t, s, data, unixfs.Params{ChunkSize: 10_000})

	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	lost := randomBytes(rng, 5000)
	if err := w.Put(rawBlock(lost), lost); err != nil {
		t.Fatal(err)
	}
	w.Close() // aborted: never acknowledged
	if ok, _ := s.Has(ctx, rawBlock(lost)); ok {
		t.Fatal("aborted block is visible")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openTestStore(t, dir, Options{PackSize: 1 << 16})
	if got := readUnixFSFile(t, s, root); !bytes.Equal(got, data) {
		t.Fatal("file differs after reopen")
	}
	if pinned, _ := s.IsPinned(ctx, root); !pinned {
		t.Fatal("pin lost")
	}
	st, err := s.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs < 4 {
		t.Fatalf("%d packs for 300 KB at 64 KiB per pack: rotation broken", st.Packs)
	}
	if ok, _ := s.Has(ctx, rawBlock(lost)); ok {
		t.Fatal("aborted block came back")
	}
}

func TestGetDetectsCorruption(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	data := bytes.Repeat([]byte("evidence "), 1000)
	c := rawBlock(data)
	if err := s.Put(ctx, c, data); err != nil {
		t.Fatal(err)
	}
	s.Close()
	flipByteInPacks(t, dir, []byte("evidence evidence"))
	s = openTestStore(t, dir, Options{})
	_, err = s.Get(ctx, c)
	var ce *CorruptError
	if !errors.As(err, &ce) || !ce.Cid.Equals(c) {
		t.Fatalf("get of a corrupted block: %v, want CorruptError for %s", err, c)
	}
	var problems []Problem
	if _, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) }); err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Kind != ProblemCorrupt || !problems[0].Cid.Equals(c) {
		t.Fatalf("verify found %v, want one corrupt block %s", problems, c)
	}
}

// flipByteInPacks changes one byte inside the first occurrence of marker in
// the store's pack files, as a failing disk would.
func flipByteInPacks(t *testing.T, dir string, marker []byte) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(dir, "packs", "*.pack"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		if i := bytes.Index(b, marker); i >= 0 {
			b[i+3] ^= 0x40
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
	}
	t.Fatal("marker not found in any pack")
}

func TestVerifyReportsMissingBlocksOfPinnedDAGs(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	rng := rand.New(rand.NewPCG(5, 6))
	data := randomBytes(rng, 50_000)
	root := addFile(t, s, data, unixfs.Params{ChunkSize: 1000})
	leaf := rawBlock(data[3000:4000])
	if err := s.Delete(ctx, leaf); err != nil {
		t.Fatal(err)
	}
	var problems []Problem
	st, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) })
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Kind != ProblemMissing || !problems[0].Cid.Equals(leaf) || !problems[0].Root.Equals(root) {
		t.Fatalf("verify found %v, want leaf %s missing from %s", problems, leaf, root)
	}
	if st.Pins != 1 || st.Problems != 1 {
		t.Fatalf("stats %+v", st)
	}
	// A missing leaf hides no links: GC can still tell what the pin keeps.
	if _, err := s.GC(ctx); err != nil {
		t.Fatalf("gc with a missing leaf: %v", err)
	}
	if got, err := s.Get(ctx, rawBlock(data[:1000])); err != nil || !bytes.Equal(got, data[:1000]) {
		t.Fatalf("gc removed a pinned leaf: %v", err)
	}
}

func TestGCRefusesWhenAPinnedDAGLostAnInnerNode(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	rng := rand.New(rand.NewPCG(5, 7))
	data := randomBytes(rng, 20_000)
	root := addFile(t, s, data, unixfs.Params{ChunkSize: 1000, MaxLinks: 4})
	n, err := unixfs.Load(ctx, s, root)
	if err != nil {
		t.Fatal(err)
	}
	inner := n.Links()[0]
	if inner.Type() != cid.DagProtobuf {
		t.Fatalf("first child %s is not an inner node", inner)
	}
	if err := s.Delete(ctx, inner); err != nil {
		t.Fatal(err)
	}
	before, _ := s.Stat(ctx)
	if _, err := s.GC(ctx); !errors.Is(err, ErrNotFound) {
		t.Fatalf("gc over a pin missing an inner node: %v, want refusal", err)
	}
	after, _ := s.Stat(ctx)
	if after.Blocks != before.Blocks {
		t.Fatalf("refused gc still deleted %d blocks", before.Blocks-after.Blocks)
	}
}

// TestGCRemovesUnpinnedAndReclaimsDisk checks both ways GC gives disk
// back: punching holes (the default) and rewriting packs (file systems
// without hole punching).
func TestGCRemovesUnpinnedAndReclaimsDisk(t *testing.T) {
	for _, noPunch := range []bool{false, true} {
		t.Run(fmt.Sprintf("noPunch=%v", noPunch), func(t *testing.T) {
			testGCReclaims(t, noPunch)
		})
	}
}

func testGCReclaims(t *testing.T, noPunch bool) {
	ctx := context.Background()
	dir := t.TempDir()
	s := openTestStore(t, dir, Options{PackSize: 4 << 20, noPunch: noPunch})
	rng := rand.New(rand.NewPCG(7, 8))
	keepData := randomBytes(rng, 3<<20)
	dropData := randomBytes(rng, 9<<20)
	keep := addFile(t, s, keepData, unixfs.Params{})
	drop := addFile(t, s, dropData, unixfs.Params{})
	if err := s.Unpin(ctx, drop); err != nil {
		t.Fatal(err)
	}
	if err := s.Unpin(ctx, drop); !errors.Is(err, ErrNotPinned) {
		t.Fatalf("second unpin: %v", err)
	}
	st, err := s.GC(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.BlocksRemoved != 37 { // 36 leaves + the root
		t.Fatalf("removed %d blocks, want 37", st.BlocksRemoved)
	}
	if ok, _ := s.Has(ctx, drop); ok {
		t.Fatal("unpinned root survived GC")
	}
	if got := readUnixFSFile(t, s, keep); !bytes.Equal(got, keepData) {
		t.Fatal("pinned file damaged by GC")
	}
	stat, err := s.Stat(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ratio := float64(stat.DiskBytes) / float64(len(keepData)); ratio >= 1.05 {
		t.Fatalf("disk %d bytes for %d live: %.3fx, want < 1.05x", stat.DiskBytes, len(keepData), ratio)
	}
	// A second GC finds nothing to do.
	if st, err := s.GC(ctx); err != nil || st.BlocksRemoved != 0 || st.PacksRewritten+st.PacksPunched != 0 {
		t.Fatalf("second gc: %+v, %v", st, err)
	}
}

func TestGCKeepsBlocksLeasedByAnAddInFlight(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	// An unpinned block, as an earlier aborted or unpinned add leaves.
	data := []byte("shared chunk")
	c := rawBlock(data)
	if err := s.Put(ctx, c, data); err != nil {
		t.Fatal(err)
	}
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// The add finds the block already stored and relies on it.
	if err := w.Put(c, data); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GC(ctx); err != nil || st.BlocksRemoved != 0 {
		t.Fatalf("gc during the add: %+v, %v", st, err)
	}
	w.Pin(c)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Get(ctx, c); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("leased-then-pinned block lost: %v", err)
	}
}

func TestGCKeepsBlocksOfALeaseReleasedDuringGC(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	data := []byte("chunk pinned while gc runs")
	c := rawBlock(data)
	if err := s.Put(ctx, c, data); err != nil {
		t.Fatal(err)
	}
	// Mark runs with no pin on c; the add pins it and lets go of its lease
	// after mark and before sweep.
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Put(c, data); err != nil {
		t.Fatal(err)
	}
	s.leases.mu.Lock()
	s.leases.gcKeep = make(map[uint64]struct{}) // what GC does before mark
	s.leases.mu.Unlock()
	live, err := s.mark(ctx)
	if err != nil {
		t.Fatal(err)
	}
	w.Pin(c)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	var st GCStats
	if err := s.sweep(ctx, live, &st); err != nil {
		t.Fatal(err)
	}
	if st.BlocksRemoved != 0 {
		t.Fatalf("sweep removed %d blocks of a lease released during GC", st.BlocksRemoved)
	}
}

// keptFiles is a concurrent list of files that stay pinned.
type keptFiles struct {
	mu    sync.Mutex
	roots []cid.Cid
	datas [][]byte
}

func (k *keptFiles) add(c cid.Cid, data []byte) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.roots = append(k.roots, c)
	k.datas = append(k.datas, data)
}

func (k *keptFiles) pick(i int) (cid.Cid, []byte, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.roots) == 0 {
		return cid.Undef, nil, false
	}
	i %= len(k.roots)
	return k.roots[i], k.datas[i], true
}

func TestConcurrentWritersReadersAndGC(t *testing.T) {
	ctx := context.Background()
	var kept keptFiles
	s := openTestStore(t, t.TempDir(), Options{PackSize: 1 << 20})
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	roots := make([][]cid.Cid, 4)
	datas := make([][][]byte, 4)
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range 6 {
				data := randomBytes(rng, 100_000+rng.IntN(200_000))
				// Every third file shares its content with goroutine 0's,
				// so dedup across writers is exercised.
				if i%3 == 0 {
					data = randomBytes(rand.New(rand.NewPCG(0, uint64(i))), 150_000)
				}
				w, err := s.NewWriter()
				if err != nil {
					errs <- err
					return
				}
				im, _ := unixfs.NewImporter(unixfs.Params{ChunkSize: 16_384}, w, nil)
				e, err := im.File(ctx, bytes.NewReader(data))
				if err == nil {
					w.Pin(e.Cid)
					err = w.Commit()
				}
				w.Close()
				if err != nil {
					errs <- err
					return
				}
				roots[g] = append(roots[g], e.Cid)
				datas[g] = append(datas[g], data)
				if i%2 == 0 {
					kept.add(e.Cid, data)
				}
				if i%2 == 1 { // unpin some, for GC to collect
					if err := s.Unpin(ctx, e.Cid); err != nil && !errors.Is(err, ErrNotPinned) {
						errs <- err
					}
				}
			}
		}()
	}
	gcDone := make(chan struct{})
	go func() {
		defer close(gcDone)
		for range 5 {
			if _, err := s.GC(ctx); err != nil {
				errs <- fmt.Errorf("gc: %w", err)
				return
			}
		}
	}()
	// Readers read files that stay pinned while the writers and GC run.
	var readers sync.WaitGroup
	for r := range 2 {
		readers.Add(1)
		go func() {
			defer readers.Done()
			for i := 0; ; i++ {
				select {
				case <-gcDone:
					return
				default:
				}
				root, data, ok := kept.pick(i + r)
				if !ok {
					continue
				}
				n, err := unixfs.Load(ctx, s, root)
				if err != nil {
					errs <- fmt.Errorf("read %s during gc: %w", root, err)
					return
				}
				fr, _ := unixfs.NewFileReader(ctx, s, n, 2)
				var buf bytes.Buffer
				_, err = fr.WriteTo(&buf)
				fr.Close()
				if err != nil || !bytes.Equal(buf.Bytes(), data) {
					errs <- fmt.Errorf("read %s during gc: %v", root, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	<-gcDone
	readers.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if _, err := s.GC(ctx); err != nil {
		t.Fatal(err)
	}
	pins, err := s.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]bool{}
	for _, p := range pins {
		pinned[p.KeyString()] = true
	}
	for g := range roots {
		for i, root := range roots[g] {
			if !pinned[root.KeyString()] {
				continue
			}
			if got := readUnixFSFile(t, s, root); !bytes.Equal(got, datas[g][i]) {
				t.Fatalf("pinned file %s damaged", root)
			}
		}
	}
	var problems []Problem
	if _, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) }); err != nil || len(problems) > 0 {
		t.Fatalf("verify: %v %v", problems, err)
	}
}

// TestReadRacingGCSaysNotFoundNotCorrupt makes GC delete a block and punch
// out its bytes between a reader's index lookup and its read: the reader
// must report the block gone, not corrupt.
func TestReadRacingGCSaysNotFoundNotCorrupt(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	rng := rand.New(rand.NewPCG(11, 12))
	keep := addFile(t, s, randomBytes(rng, 1<<20), unixfs.Params{})
	gone := randomBytes(rng, 200_000)
	goneCid := rawBlock(gone)
	if err := s.Put(ctx, goneCid, gone); err != nil {
		t.Fatal(err)
	}
	// Pin something after it, so its bytes sit between live records.
	addFile(t, s, randomBytes(rng, 300_000), unixfs.Params{})
	ran := false
	s.testHookAfterLookup = func() {
		if ran {
			return
		}
		ran = true
		st, err := s.GC(ctx)
		if err != nil || st.BlocksRemoved != 1 || st.PacksPunched != 1 {
			t.Errorf("gc in the window: %+v, %v", st, err)
		}
	}
	_, err := s.Get(ctx, goneCid)
	if !ran {
		t.Fatal("hook did not run")
	}
	if !errors.Is(err, ErrNotFound) || errors.Is(err, ErrCorrupt) {
		t.Fatalf("read racing GC: %v, want not found", err)
	}
	s.testHookAfterLookup = nil
	if got := readUnixFSFile(t, s, keep); len(got) != 1<<20 {
		t.Fatal("live file damaged by punching")
	}
}

// TestInlinedNodeKeepsItsChildren: a dag-pb node inlined in an identity
// CID (`ipfs add --inline`) links to stored blocks; pins, GC, verify and
// export must follow those links.
func TestInlinedNodeKeepsItsChildren(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, t.TempDir(), Options{})
	leafData := []byte("evidence behind an inlined directory")
	leaf := rawBlock(leafData)
	inner := dagpb.Node{Links: []dagpb.Link{dagpb.NewLink(leaf, "f", uint64(len(leafData)))}, Data: []byte{0x08, 0x01}}
	innerBytes := inner.Marshal()
	idHash, err := mh.Sum(innerBytes, mh.IDENTITY, -1)
	if err != nil {
		t.Fatal(err)
	}
	sub := cid.NewCidV1(cid.DagProtobuf, idHash)
	outer := dagpb.Node{Links: []dagpb.Link{dagpb.NewLink(sub, "sub", uint64(len(innerBytes)))}, Data: []byte{0x08, 0x01}}
	outerBytes := outer.Marshal()
	rootHash, _ := mh.Sum(outerBytes, mh.SHA2_256, -1)
	root := cid.NewCidV1(cid.DagProtobuf, rootHash)
	if err := s.Put(ctx, root, outerBytes); err != nil {
		t.Fatal(err)
	}
	var incomplete *IncompleteError
	if err := s.Pin(ctx, root); !errors.As(err, &incomplete) || !incomplete.Missing.Equals(leaf) {
		t.Fatalf("pin without the leaf behind the inlined node: %v", err)
	}
	if err := s.Put(ctx, leaf, leafData); err != nil {
		t.Fatal(err)
	}
	if err := s.Pin(ctx, root); err != nil {
		t.Fatal(err)
	}
	if st, err := s.GC(ctx); err != nil || st.BlocksRemoved != 0 {
		t.Fatalf("gc: %+v, %v", st, err)
	}
	var exported []cid.Cid
	if err := s.WalkDAG(ctx, root, func(c cid.Cid, _ []byte) error { exported = append(exported, c); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(exported) != 2 || !exported[1].Equals(leaf) {
		t.Fatalf("export walked %v, want the root and the leaf", exported)
	}
	if err := s.Delete(ctx, leaf); err != nil {
		t.Fatal(err)
	}
	var problems []Problem
	if _, err := s.Verify(ctx, func(p Problem) { problems = append(problems, p) }); err != nil {
		t.Fatal(err)
	}
	if len(problems) != 1 || problems[0].Kind != ProblemMissing || !problems[0].Cid.Equals(leaf) {
		t.Fatalf("verify: %v", problems)
	}
}
