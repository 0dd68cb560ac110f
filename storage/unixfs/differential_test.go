package unixfs

// Differential tests against boxo, the importer kubo runs: the same bytes
// and entries must give the same root CID and exactly the same blocks.

import (
	"bytes"
	"cmp"
	"context"
	"flag"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/ipfs/boxo/blockservice"
	"github.com/ipfs/boxo/blockstore"
	chunker "github.com/ipfs/boxo/chunker"
	"github.com/ipfs/boxo/ipld/merkledag"
	"github.com/ipfs/boxo/ipld/unixfs/importer/balanced"
	"github.com/ipfs/boxo/ipld/unixfs/importer/helpers"
	uio "github.com/ipfs/boxo/ipld/unixfs/io"
	blocks "github.com/ipfs/go-block-format"
	"github.com/ipfs/go-cid"
	"github.com/ipfs/go-datastore"
	dssync "github.com/ipfs/go-datastore/sync"
	ipld "github.com/ipfs/go-ipld-format"
	"github.com/multiformats/go-multihash"
	"github.com/spaolacci/murmur3"

	"auditnet/storage/dagpb"
)

var diffSeedFlag = flag.Uint64("diff.seed", 0, "seed of the differential tests against boxo (0: taken from the clock)")

// diffSeed is the seed of this run's differential tests.
var diffSeed = sync.OnceValue(func() uint64 {
	if *diffSeedFlag != 0 {
		return *diffSeedFlag
	}
	return uint64(time.Now().UnixNano())
})

// diffRand returns the random source of one differential test, derived from
// the run's seed and the test's name. The seed is printed if the test
// fails; -diff.seed=N replays it.
func diffRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := diffSeed()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test -race -run '^%s$' -diff.seed=%d", strings.SplitN(t.Name(), "/", 2)[0], seed)
		}
	})
	h := fnv.New64a()
	h.Write([]byte(t.Name()))
	return rand.New(rand.NewPCG(seed, h.Sum64()))
}

// v1Builder is the CID builder of `ipfs add --cid-version=1`.
var v1Builder = cid.V1Builder{Codec: cid.DagProtobuf, MhType: multihash.SHA2_256}

// blockLog records the blocks one importer stored. Every CID is checked to
// be the hash of its bytes, so two logs with the same CIDs hold the same
// bytes. dag-pb blocks are kept; raw leaves only if keepRaw (boxo's block
// store already holds the 87 MiB file once).
type blockLog struct {
	mu     sync.Mutex
	puts   int
	blocks map[cid.Cid][]byte
	// ordered asks that a dag-pb block come after every block it links to.
	ordered bool
	keepRaw bool
}

func newBlockLog(ordered bool) *blockLog {
	return &blockLog{blocks: make(map[cid.Cid][]byte), ordered: ordered}
}

func (l *blockLog) Put(c cid.Cid, data []byte) error {
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return fmt.Errorf("hash block %s: %w", c, err)
	}
	if !sum.Equals(c) {
		return fmt.Errorf("block %s holds bytes hashing to %s", c, sum)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	var kept []byte
	if c.Type() != cid.Raw || l.keepRaw {
		kept = bytes.Clone(data)
	}
	if l.ordered && c.Type() == cid.DagProtobuf {
		n, err := dagpb.Decode(kept)
		if err != nil {
			return fmt.Errorf("block %s: %w", c, err)
		}
		for _, link := range n.Links {
			if _, ok := l.blocks[link.Hash]; !ok {
				return fmt.Errorf("block %s stored before its child %s", c, link.Hash)
			}
		}
	}
	l.puts++
	l.blocks[c] = kept
	return nil
}

// recordingDAG is boxo's in-memory DAG service with every Add logged.
type recordingDAG struct {
	ipld.DAGService
	log *blockLog
}

func newRecordingDAG() *recordingDAG {
	bs := blockstore.NewBlockstore(dssync.MutexWrap(datastore.NewMapDatastore()))
	return &recordingDAG{
		DAGService: merkledag.NewDAGService(blockservice.New(bs, nil)),
		log:        newBlockLog(false),
	}
}

func (d *recordingDAG) Add(ctx context.Context, n ipld.Node) error {
	if err := d.log.Put(n.Cid(), n.RawData()); err != nil {
		return err
	}
	return d.DAGService.Add(ctx, n)
}

func (d *recordingDAG) AddMany(ctx context.Context, ns []ipld.Node) error {
	for _, n := range ns {
		if err := d.Add(ctx, n); err != nil {
			return err
		}
	}
	return nil
}

// compareBlocks checks that ours holds exactly the blocks boxo stored,
// byte for byte, and that both stored as many times. skip lists CIDs of
// boxo's log to leave out (children boxo stores again when it links them).
func compareBlocks(t *testing.T, ours, boxo *blockLog, skip map[cid.Cid]bool) {
	t.Helper()
	missing, extra, differ := 0, 0, 0
	want := 0
	for c, b := range boxo.blocks {
		if skip[c] {
			continue
		}
		want++
		ob, ok := ours.blocks[c]
		switch {
		case !ok:
			if missing++; missing <= 3 {
				t.Errorf("boxo stored %s, we did not", c)
			}
		case !bytes.Equal(ob, b):
			if differ++; differ <= 3 {
				t.Errorf("block %s: ours %x, boxo %x", c, ob, b)
			}
		}
	}
	for c := range ours.blocks {
		if _, ok := boxo.blocks[c]; !ok {
			if extra++; extra <= 3 {
				t.Errorf("we stored %s, boxo did not", c)
			}
		}
	}
	if len(ours.blocks) != want {
		t.Errorf("%d distinct blocks, boxo %d (%d missing, %d extra)", len(ours.blocks), want, missing, extra)
	}
	if skip == nil && ours.puts != boxo.puts {
		t.Errorf("%d blocks stored, boxo %d", ours.puts, boxo.puts)
	}
}

// fileShape is one file of a differential test.
type fileShape struct {
	chunkSize int
	maxLinks  int
	size      int64
	zeros     bool     // all-zero content, so identical leaves repeat
	seed      [32]byte // content seed
}

func (s fileShape) String() string {
	kind := "rand"
	if s.zeros {
		kind = "zeros"
	}
	return fmt.Sprintf("chunk=%d/links=%d/size=%d/%s", s.chunkSize, s.maxLinks, s.size, kind)
}

func (s fileShape) reader() io.Reader {
	if s.zeros {
		return io.LimitReader(zeroReader{}, s.size)
	}
	return io.LimitReader(rand.NewChaCha8(s.seed), s.size)
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// boxoFile imports s with boxo's balanced layout, as kubo's `ipfs add
// --cid-version=1` does.
func boxoFile(t *testing.T, s fileShape) (cid.Cid, uint64, *blockLog) {
	t.Helper()
	dag := newRecordingDAG()
	params := helpers.DagBuilderParams{
		Maxlinks:   s.maxLinks,
		RawLeaves:  true,
		CidBuilder: v1Builder,
		Dagserv:    dag,
	}
	db, err := params.New(chunker.NewSizeSplitter(s.reader(), int64(s.chunkSize)))
	if err != nil {
		t.Fatal(err)
	}
	root, err := balanced.Layout(db)
	if err != nil {
		t.Fatalf("boxo: %v", err)
	}
	tsize, err := root.Size()
	if err != nil {
		t.Fatal(err)
	}
	return root.Cid(), tsize, dag.log
}

// diffFile imports s with boxo once and with our importer for each worker
// count, and compares the results.
func diffFile(t *testing.T, rng *rand.Rand, s fileShape, workers ...int) {
	t.Helper()
	want, wantTsize, boxoLog := boxoFile(t, s)
	for _, w := range workers {
		ours := newBlockLog(true)
		var progress int64
		im, err := NewImporter(Params{ChunkSize: s.chunkSize, MaxLinks: s.maxLinks, Workers: w}, ours, func(n int) { progress += int64(n) })
		if err != nil {
			t.Fatal(err)
		}
		r := s.reader()
		if s.size < 1<<20 {
			// Short reads and data returned together with io.EOF must
			// not change the DAG.
			switch rng.IntN(3) {
			case 1:
				r = iotest.HalfReader(r)
			case 2:
				r = iotest.DataErrReader(r)
			}
		}
		got, err := im.File(context.Background(), r)
		if err != nil {
			t.Fatalf("workers=%d: %v", w, err)
		}
		if !got.Cid.Equals(want) {
			t.Errorf("workers=%d: root %s, boxo %s", w, got.Cid, want)
		}
		if got.Size != uint64(s.size) || progress != s.size {
			t.Errorf("workers=%d: size %d, progress %d, want %d", w, got.Size, progress, s.size)
		}
		if got.Tsize != wantTsize {
			t.Errorf("workers=%d: tsize %d, boxo %d", w, got.Tsize, wantTsize)
		}
		compareBlocks(t, ours, boxoLog, nil)
	}
}

func randomSeed(rng *rand.Rand) [32]byte {
	var seed [32]byte
	for i := 0; i < len(seed); i += 8 {
		v := rng.Uint64()
		for j := range 8 {
			seed[i+j] = byte(v >> (8 * j))
		}
	}
	return seed
}

// TestDifferentialFileDefaultChunks compares files around the boundaries
// of kubo's default parameters: one chunk, and one full node of 174 leaves.
func TestDifferentialFileDefaultChunks(t *testing.T) {
	rng := diffRand(t)
	const c = DefaultChunkSize
	sizes := []int64{0, 1, c - 1, c, c + 1, 174*c - 1, 174 * c, 174*c + 1, 2 * 174 * c}
	if testing.Short() {
		sizes = sizes[:6]
	}
	for i, size := range sizes {
		s := fileShape{chunkSize: c, maxLinks: DefaultMaxLinks, size: size, seed: randomSeed(rng)}
		t.Run(s.String(), func(t *testing.T) {
			workers := []int{1 + 3*(i%2)}
			if size <= c+1 {
				workers = []int{1, 4}
			}
			diffFile(t, rng, s, workers...)
		})
	}
}

// TestDifferentialFileTreeBoundaries crosses every depth boundary n =
// MaxLinks^k - 1, MaxLinks^k, MaxLinks^k + 1 leaves with tiny chunks, so
// that trees of depth 2 to 10 are cheap.
func TestDifferentialFileTreeBoundaries(t *testing.T) {
	rng := diffRand(t)
	for _, tc := range []struct{ maxLinks, maxPower int }{
		{2, 9}, {3, 6}, {7, 4}, {174, 2},
	} {
		leaves := 1
		for k := 1; k <= tc.maxPower; k++ {
			leaves *= tc.maxLinks
			for _, n := range []int{leaves - 1, leaves, leaves + 1} {
				chunk := 1 + rng.IntN(64)
				if tc.maxLinks == 174 && k == 2 {
					chunk = 1 + rng.IntN(4) // 30,000 leaves: keep them small
				}
				size := int64(n * chunk)
				if n > 0 && rng.IntN(2) == 0 {
					size -= int64(rng.IntN(chunk)) // a short last leaf
				}
				s := fileShape{chunkSize: chunk, maxLinks: tc.maxLinks, size: size, zeros: rng.IntN(4) == 0, seed: randomSeed(rng)}
				workers := []int{1, 4}
				if n > 5000 {
					workers = []int{1 + 3*(n%2)} // one run is enough for 30,000 leaves
				}
				t.Run(fmt.Sprintf("leaves=%d/%s", n, s), func(t *testing.T) {
					diffFile(t, rng, s, workers...)
				})
			}
		}
	}
}

// TestDifferentialFileRandomShapes tries random chunk sizes, widths and
// lengths.
func TestDifferentialFileRandomShapes(t *testing.T) {
	rng := diffRand(t)
	for range 40 {
		s := fileShape{
			chunkSize: 1 + rng.IntN(300),
			maxLinks:  2 + rng.IntN(12),
			zeros:     rng.IntN(5) == 0,
			seed:      randomSeed(rng),
		}
		s.size = rng.Int64N(int64(s.chunkSize) * int64(s.maxLinks*s.maxLinks*s.maxLinks+2))
		t.Run(s.String(), func(t *testing.T) {
			diffFile(t, rng, s, 1+rng.IntN(6))
		})
	}
}

// dirChild is one directory entry as we see it and as boxo sees it.
type dirChild struct {
	entry Entry
	node  ipld.Node
}

// childMaker makes directory children with our importer: raw leaves, files
// of several leaves and small directories.
type childMaker struct {
	t      *testing.T
	rng    *rand.Rand
	leaves *Importer // default parameters
	small  *Importer // 8-byte chunks, 3 links per node
	log    *blockLog
}

func newChildMaker(t *testing.T, rng *rand.Rand) *childMaker {
	log := newBlockLog(false)
	log.keepRaw = true
	leaves, err := NewImporter(Params{}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	small, err := NewImporter(Params{ChunkSize: 8, MaxLinks: 3}, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	return &childMaker{t: t, rng: rng, leaves: leaves, small: small, log: log}
}

func (m *childMaker) child() dirChild {
	m.t.Helper()
	var e Entry
	var err error
	kind := m.rng.IntN(10)
	switch {
	case kind < 6:
		e, err = m.leaves.File(context.Background(), bytes.NewReader(m.bytes(m.rng.IntN(100))))
	case kind < 9:
		e, err = m.small.File(context.Background(), bytes.NewReader(m.bytes(9+m.rng.IntN(200))))
	default:
		var sub []DirEntry
		for i := range 1 + m.rng.IntN(3) {
			leaf, err := m.leaves.File(context.Background(), bytes.NewReader(m.bytes(m.rng.IntN(20))))
			if err != nil {
				m.t.Fatal(err)
			}
			sub = append(sub, DirEntry{Name: fmt.Sprintf("f%d", i), Entry: leaf})
		}
		e, err = m.leaves.Directory(sub)
	}
	if err != nil {
		m.t.Fatal(err)
	}
	return dirChild{entry: e, node: m.boxoNode(e)}
}

func (m *childMaker) bytes(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(m.rng.Uint32())
	}
	return b
}

// boxoNode returns e's root as boxo's ipld.Node, checking that boxo sees
// the same CID and the same cumulative size.
func (m *childMaker) boxoNode(e Entry) ipld.Node {
	m.t.Helper()
	m.log.mu.Lock()
	data, ok := m.log.blocks[e.Cid]
	m.log.mu.Unlock()
	if !ok {
		m.t.Fatalf("child %s was not stored", e.Cid)
	}
	b, err := blocks.NewBlockWithCid(data, e.Cid)
	if err != nil {
		m.t.Fatal(err)
	}
	var n ipld.Node
	if e.Cid.Type() == cid.Raw {
		n, err = merkledag.DecodeRawBlock(b)
	} else {
		n, err = merkledag.DecodeProtobufBlock(b)
	}
	if err != nil {
		m.t.Fatal(err)
	}
	if size, err := n.Size(); err != nil || size != e.Tsize || !n.Cid().Equals(e.Cid) {
		m.t.Fatalf("boxo sees %s of size %d (%v), we have %s of size %d", n.Cid(), size, err, e.Cid, e.Tsize)
	}
	return n
}

// nameMaker makes unique directory entry names of several kinds.
type nameMaker struct {
	rng  *rand.Rand
	seen map[string]bool
}

var unicodeWords = []string{
	"résumé", "re\u0301sume\u0301", "日本語", "Привет", "ελληνικά", "עברית", "العربية",
	"👩‍💻", "🙂", "ß", "SS", "ǅ", "\u00a0", "a\u200db", "Ω", "Ω",
}

func (m *nameMaker) unique(name string) (string, bool) {
	if name == "" || strings.ContainsRune(name, '/') || m.seen[name] {
		return "", false
	}
	m.seen[name] = true
	return name, true
}

// next returns a random name: plain, sharing a prefix with many others, a
// prefix of another, unicode, long, or not valid UTF-8.
func (m *nameMaker) next() string {
	const alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._- "
	for {
		var name string
		switch m.rng.IntN(8) {
		case 0, 1:
			b := make([]byte, 1+m.rng.IntN(20))
			for i := range b {
				b[i] = alphabet[m.rng.IntN(len(alphabet))]
			}
			name = string(b)
		case 2:
			name = fmt.Sprintf("audit-2024-report-%04d.csv", m.rng.IntN(10000))
		case 3:
			name = strings.Repeat("a", 1+m.rng.IntN(12))
		case 4:
			name = unicodeWords[m.rng.IntN(len(unicodeWords))] + fmt.Sprint(m.rng.IntN(100))
		case 5:
			name = unicodeWords[m.rng.IntN(len(unicodeWords))]
		case 6:
			name = strings.Repeat("long-name-", 25)[:100+m.rng.IntN(150)] + fmt.Sprint(m.rng.IntN(1000))
		case 7:
			name = string([]byte{'x', byte(0x80 + m.rng.IntN(0x80)), byte(m.rng.IntN(0x100))})
		}
		if name, ok := m.unique(name); ok {
			return name
		}
	}
}

// colliding returns count new names whose murmur3-x64-64 hashes share
// their top bits bits, found by a birthday search: in a HAMT of 2^w slots
// per level they stay together for bits/w levels.
func (m *nameMaker) colliding(bits, count int) []string {
	buckets := make(map[uint64][]string)
	for i := 0; ; i++ {
		name := fmt.Sprintf("collide-%d-%x", bits, m.rng.Uint64())
		if m.seen[name] {
			continue
		}
		top := murmur3.Sum64([]byte(name)) >> (64 - bits)
		buckets[top] = append(buckets[top], name)
		if len(buckets[top]) == count {
			for _, n := range buckets[top] {
				m.seen[n] = true
			}
			return buckets[top]
		}
	}
}

// dirFixture is a directory's entries, with the children made by our
// importer.
type dirFixture struct {
	order    []string // the order boxo adds them in
	children map[string]dirChild
	skip     map[cid.Cid]bool // children's CIDs: boxo stores them again
	estimate int              // kubo's "links" estimate: names and CIDs
}

func newDirFixture(t *testing.T, rng *rand.Rand, names []string) *dirFixture {
	t.Helper()
	maker := newChildMaker(t, rng)
	f := &dirFixture{order: names, children: make(map[string]dirChild), skip: make(map[cid.Cid]bool)}
	for _, name := range names {
		ch := maker.child()
		f.children[name] = ch
		f.skip[ch.entry.Cid] = true
		f.estimate += len(name) + ch.entry.Cid.ByteLen()
	}
	return f
}

// diffDirectory builds f with boxo's dynamic directory, adding the entries
// in f.order, as kubo 0.42 does by default (size estimate "links"), and
// with our importer, given the entries in reverse order (the DAG must not
// depend on it); it compares roots, sizes and blocks and returns ours.
func diffDirectory(t *testing.T, f *dirFixture, threshold, fanout int) (Entry, *blockLog) {
	t.Helper()
	ctx := context.Background()
	dag := newRecordingDAG()
	dir, err := uio.NewDirectory(dag,
		uio.WithCidBuilder(v1Builder),
		uio.WithMaxHAMTFanout(fanout),
		uio.WithSizeEstimationMode(uio.SizeEstimationLinks),
	)
	if err != nil {
		t.Fatal(err)
	}
	dir.SetHAMTShardingSize(cmp.Or(threshold, DefaultHAMTThreshold))
	for _, name := range f.order {
		if err := dir.AddChild(ctx, name, f.children[name].node); err != nil {
			t.Fatalf("boxo: add %q: %v", name, err)
		}
	}
	want, err := dir.GetNode()
	if err != nil {
		t.Fatalf("boxo: %v", err)
	}
	if err := dag.Add(ctx, want); err != nil {
		t.Fatal(err)
	}
	wantTsize, err := want.Size()
	if err != nil {
		t.Fatal(err)
	}

	entries := make([]DirEntry, 0, len(f.order))
	for _, name := range slices.Backward(f.order) {
		entries = append(entries, DirEntry{Name: name, Entry: f.children[name].entry})
	}
	ours := newBlockLog(false)
	im, err := NewImporter(Params{HAMTThreshold: threshold, HAMTFanout: fanout}, ours, nil)
	if err != nil {
		t.Fatal(err)
	}
	got, err := im.Directory(entries)
	if err != nil {
		t.Fatal(err)
	}
	if !got.Cid.Equals(want.Cid()) {
		t.Errorf("root %s, boxo %s (%d entries, estimate %d, threshold %d)", got.Cid, want.Cid(), len(entries), f.estimate, threshold)
	}
	if got.Tsize != wantTsize {
		t.Errorf("tsize %d, boxo %d", got.Tsize, wantTsize)
	}
	compareBlocks(t, ours, dag.log, f.skip)
	return got, ours
}

// hamtDepth is the number of shard levels below the root of a HAMT
// directory stored in log (0 for a basic directory or a flat HAMT).
func hamtDepth(t *testing.T, log *blockLog, c cid.Cid) int {
	t.Helper()
	n, err := dagpb.Decode(log.blocks[c])
	if err != nil {
		t.Fatal(err)
	}
	d, err := DecodeData(n.Data)
	if err != nil {
		t.Fatal(err)
	}
	if d.Type != TypeHAMTShard {
		return 0
	}
	padLen := len(fmt.Sprintf("%X", d.Fanout-1))
	depth := 0
	for _, l := range n.Links {
		if len(l.Name) == padLen {
			depth = max(depth, 1+hamtDepth(t, log, l.Hash))
		}
	}
	return depth
}

func rootType(t *testing.T, log *blockLog, c cid.Cid) DataType {
	t.Helper()
	n, err := dagpb.Decode(log.blocks[c])
	if err != nil {
		t.Fatalf("root %s: %v", c, err)
	}
	d, err := DecodeData(n.Data)
	if err != nil {
		t.Fatalf("root %s: %v", c, err)
	}
	return d.Type
}

func TestDifferentialDirectory(t *testing.T) {
	const (
		thresholdDefault  = iota // Params default (256 KiB)
		thresholdExact           // the entries' estimate: stays basic
		thresholdOneUnder        // the estimate exceeds it by one byte
		thresholdLow             // 1: any non-empty directory is sharded
	)
	for _, tc := range []struct {
		name      string
		entries   int
		fanout    int
		threshold int
		collide   [][2]int // groups of {shared hash bits, names}
		longNames bool
		wantType  DataType
		minDepth  int // levels of sub-shards
	}{
		{name: "empty", fanout: 256, wantType: TypeDirectory},
		{name: "basic", entries: 30, fanout: 256, wantType: TypeDirectory},
		{name: "at-threshold", entries: 60, fanout: 256, threshold: thresholdExact, wantType: TypeDirectory},
		{name: "one-byte-over", entries: 60, fanout: 256, threshold: thresholdOneUnder, wantType: TypeHAMTShard},
		{name: "at-threshold-fanout-8", entries: 20, fanout: 8, threshold: thresholdExact, wantType: TypeDirectory},
		{name: "one-byte-over-fanout-8", entries: 20, fanout: 8, threshold: thresholdOneUnder, wantType: TypeHAMTShard, minDepth: 1},
		{name: "single-entry-hamt", entries: 1, fanout: 256, threshold: thresholdLow, wantType: TypeHAMTShard},
		{name: "fanout-8", entries: 150, fanout: 8, threshold: thresholdLow, collide: [][2]int{{12, 2}, {9, 3}}, wantType: TypeHAMTShard, minDepth: 4},
		{name: "fanout-16", entries: 200, fanout: 16, threshold: thresholdLow, collide: [][2]int{{16, 2}, {12, 3}}, wantType: TypeHAMTShard, minDepth: 4},
		{name: "fanout-32", entries: 200, fanout: 32, threshold: thresholdLow, collide: [][2]int{{15, 3}}, wantType: TypeHAMTShard, minDepth: 3},
		{name: "fanout-256", entries: 600, fanout: 256, threshold: thresholdLow, collide: [][2]int{{16, 3}, {24, 2}, {8, 4}}, wantType: TypeHAMTShard, minDepth: 3},
		{name: "fanout-1024", entries: 300, fanout: 1024, threshold: thresholdLow, collide: [][2]int{{20, 3}}, wantType: TypeHAMTShard, minDepth: 2},
		{name: "default-threshold", entries: 1400, fanout: 256, longNames: true, wantType: TypeHAMTShard, minDepth: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rng := diffRand(t)
			names := &nameMaker{rng: rng, seen: make(map[string]bool)}
			var order []string
			for range tc.entries {
				name := names.next()
				if tc.longNames {
					name, _ = names.unique(fmt.Sprintf("%s-%0200d", name, rng.IntN(1e9)))
				}
				if name != "" {
					order = append(order, name)
				}
			}
			for _, g := range tc.collide {
				order = append(order, names.colliding(g[0], g[1])...)
			}
			rng.Shuffle(len(order), func(i, j int) { order[i], order[j] = order[j], order[i] })
			f := newDirFixture(t, rng, order)

			threshold := 0 // the default
			switch tc.threshold {
			case thresholdDefault:
				if tc.wantType == TypeHAMTShard && f.estimate <= DefaultHAMTThreshold {
					t.Fatalf("estimate %d does not cross the default threshold", f.estimate)
				}
			case thresholdExact:
				threshold = f.estimate
			case thresholdOneUnder:
				threshold = f.estimate - 1
			case thresholdLow:
				threshold = 1
			}
			got, ours := diffDirectory(t, f, threshold, tc.fanout)
			if typ := rootType(t, ours, got.Cid); typ != tc.wantType {
				t.Errorf("root is a %s, want a %s (estimate %d, threshold %d)", typ, tc.wantType, f.estimate, threshold)
			}
			if depth := hamtDepth(t, ours, got.Cid); depth < tc.minDepth {
				t.Errorf("HAMT has %d levels of sub-shards, want at least %d", depth, tc.minDepth)
			}
		})
	}
}

// TestDifferentialDirectoryRandom compares random directories: random
// entry counts, fanouts and thresholds around the estimate.
func TestDifferentialDirectoryRandom(t *testing.T) {
	rng := diffRand(t)
	for i := range 25 {
		fanout := 8 << rng.IntN(8)
		n := rng.IntN(120)
		t.Run(fmt.Sprintf("%d/fanout=%d/entries=%d", i, fanout, n), func(t *testing.T) {
			names := &nameMaker{rng: rng, seen: make(map[string]bool)}
			order := make([]string, n)
			for i := range order {
				order[i] = names.next()
			}
			f := newDirFixture(t, rng, order)
			diffDirectory(t, f, max(1, f.estimate+rng.IntN(41)-20), fanout)
		})
	}
}
