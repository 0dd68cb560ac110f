package store

import (
	"fmt"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// BenchmarkCommit commits blocks of 2,000 transactions (anchors, grants
// and access requests) on a chain that already holds 10,000, and reports
// the time per block and the bytes the store grows by per transaction.
// Building and executing each block is outside the timer: run it with a
// fixed count (-benchtime 20x), since each block takes about a second to
// sign and execute.
func BenchmarkCommit(b *testing.B) {
	const perBlock = 2000
	c := newTestChain(b, testParams())
	s := openStore(b, b.TempDir(), c.genesis)
	for range 5 {
		if err := s.Commit(c.add(c.txs(perBlock))); err != nil {
			b.Fatal(err)
		}
	}
	before, err := s.DiskUsage()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	blocks := 0
	for b.Loop() {
		b.StopTimer()
		cb := c.add(c.txs(perBlock))
		cb.State.Root()
		b.StartTimer()
		if err := s.Commit(cb); err != nil {
			b.Fatal(err)
		}
		blocks++
	}
	b.StopTimer()
	after, err := s.DiskUsage()
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(blocks*perBlock), "disk-B/tx")
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(blocks), "ms/block")
}

// syntheticStore writes a store at height 1 whose state holds the genesis
// records and n more keys of about 100 bytes, as a chain with n datasets
// would.
func syntheticStore(b *testing.B, n int) (string, *chain.Genesis) {
	c := newTestChain(b, testParams())
	var sb chain.MemStateBuilder
	pairs := func(add func(k, v []byte)) {
		for _, k := range c.state.Keys() {
			v, _ := c.state.Get([]byte(k))
			add([]byte(k), v)
		}
		for i := 0; i < n; i++ {
			add([]byte(fmt.Sprintf("dataset/%032d", i)), []byte(fmt.Sprintf("{size: %d, name: dataset-%d, policy: open, height: %d, time: 1795000000000}", i, i, i/100)))
		}
	}
	pairs(sb.Add)
	st, err := sb.Build()
	if err != nil {
		b.Fatal(err)
	}
	root := st.Root()
	gcid, _ := c.genesis.CID()
	blk := &chain.Block{Header: chain.Header{Chain: testChainID, Height: 1, Prev: dagcbor.Link{Cid: gcid}, Time: c.time + 1,
		StateRoot: root[:], NextValidators: c.vals.Hash()}}
	bcid, _ := blk.CID()
	rawBlock, _, _ := chain.Encode(blk)
	rawCert, _, _ := chain.Encode(&chain.CommitCert{Height: 1, Block: dagcbor.Link{Cid: bcid}})
	outcomes, _ := encodeOutcomes(nil)
	dir := b.TempDir()
	s := openStore(b, dir, c.genesis)
	s.Close()
	db, err := leveldb.OpenFile(dir, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	batch := new(leveldb.Batch)
	flush := func() {
		if err := db.Write(batch, &opt.WriteOptions{Sync: true}); err != nil {
			b.Fatal(err)
		}
		batch.Reset()
	}
	pairs(func(k, v []byte) {
		batch.Put(stateKey(string(k)), v)
		if batch.Len() == 10_000 {
			flush()
		}
	})
	batch.Put(heightKey(prefixBlock, 1), rawBlock)
	batch.Put(heightKey(prefixCert, 1), rawCert)
	batch.Put(heightKey(prefixOutcomes, 1), outcomes)
	batch.Put(keyHead, encodeHead(head{height: 1, time: blk.Header.Time, block: bcid}))
	flush()
	return dir, c.genesis
}

// BenchmarkOpen opens a store whose state holds 100,000 or 1,000,000
// keys: reading the state, building its trie and checking its root
// against the last header, which is what a restart costs before
// pbft.RestoreSnapshot.
func BenchmarkOpen(b *testing.B) {
	for _, n := range []int{100_000, 1_000_000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			dir, g := syntheticStore(b, n)
			b.ReportAllocs()
			for b.Loop() {
				s, err := Open(Config{Dir: dir, Genesis: g})
				if err != nil {
					b.Fatal(err)
				}
				snap, err := s.Snapshot()
				if err != nil || snap.Header.Height != 1 {
					b.Fatalf("snapshot at height %d: %v", snap.Header.Height, err)
				}
				s.Close()
			}
		})
	}
}
