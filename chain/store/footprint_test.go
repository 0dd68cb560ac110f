package store

import (
	"encoding/binary"
	"io/fs"
	"path/filepath"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/chain"
	"auditnet/chain/index"
	"auditnet/internal/dagcbor"
)

// BenchmarkAccessEventFootprint measures what the data center keeps per
// access event (an authorised AccessRequest and its acknowledged Served)
// in its chain store and its audit index: perBlock requests per block,
// each served in the next block, as the data center's node commits and
// indexes them. The figures are taken after both databases are closed
// and compacted (see settle in accessFootprint). The WAL is not counted:
// it is truncated at every stable checkpoint, so it holds at most a few
// checkpoint intervals of consensus messages however long the chain.
func BenchmarkAccessEventFootprint(b *testing.B) {
	for _, tc := range []struct {
		name             string
		perBlock, events int
	}{{"one-per-block", 1, 500}, {"5-per-block", 5, 2_000}, {"10-per-block", 10, 5_000}, {"20-per-block", 20, 10_000}, {"500-per-block", 500, 10_000}} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				store, ix := accessFootprint(b, tc.perBlock, tc.events)
				b.ReportMetric(float64(store)/float64(tc.events), "store-B/event")
				b.ReportMetric(float64(ix)/float64(tc.events), "index-B/event")
				b.ReportMetric(float64(store+ix)/float64(tc.events), "B/event")
			}
		})
	}
}

// accessFootprint commits events access events perBlock at a time and
// returns how much the store and the index grew by.
func accessFootprint(b *testing.B, perBlock, events int) (int64, int64) {
	params := chain.DefaultParams()
	params.MaxAccessPerWindow = 1 << 40
	// A short access window, so that the records of the last requests
	// leave the state within a few padding blocks at the end, as every
	// record does T+1 blocks after its request on a running chain.
	params.AccessWindow = 10
	c := newTestChain(b, params)
	storeDir, indexDir := b.TempDir(), b.TempDir()
	s := openStore(b, storeDir, c.genesis)
	ix, err := index.Open(indexDir)
	if err != nil {
		b.Fatal(err)
	}
	commit := func(txs []chain.Tx) {
		cb := c.add(txs)
		if err := s.Commit(cb); err != nil {
			b.Fatal(err)
		}
		if err := ix.Apply(cb.Block.Header.Height, cb.Block, cb.Outcomes); err != nil {
			b.Fatal(err)
		}
	}
	// settle closes both databases and compacts them: what a node that
	// has run for a while holds, once goleveldb's journal has become
	// tables (it is bounded by the write buffer, whatever the chain's
	// length) and compactions have dropped what the state overwrote or
	// deleted.
	settle := func() (int64, int64) {
		if err := s.db.CompactRange(util.Range{}); err != nil {
			b.Fatal(err)
		}
		if err := s.Close(); err != nil {
			b.Fatal(err)
		}
		if err := ix.Close(); err != nil {
			b.Fatal(err)
		}
		db, err := leveldb.OpenFile(indexDir, &opt.Options{Filter: filter.NewBloomFilter(10), Compression: opt.SnappyCompression})
		if err != nil {
			b.Fatal(err)
		}
		if err := db.CompactRange(util.Range{}); err != nil {
			b.Fatal(err)
		}
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
		s = openStore(b, storeDir, c.genesis)
		if ix, err = index.Open(indexDir); err != nil {
			b.Fatal(err)
		}
		return dirSize(b, storeDir), dirSize(b, indexDir)
	}
	// Each agency anchors an open dataset: every request is authorised.
	var datasets []chain.Dataset
	var anchors []chain.Tx
	for i, ag := range c.agencies {
		c.nonce++
		root := testRoot(c.nonce)
		anchors = append(anchors, c.sign1(b, &chain.Tx{Body: chain.TxBody{Chain: testChainID, Kind: chain.KindAnchor, Sender: ag.ID(),
			Expires: c.height() + 2, Nonce: c.nonce, Anchor: &chain.Anchor{Root: root, Size: 1 << 30, Name: "ledger", Policy: chain.PolicyOpen}}}, c.agencies[i]))
		datasets = append(datasets, chain.Dataset{Owner: ag.ID(), Root: root})
	}
	commit(anchors)
	store0, index0 := settle()

	var served []chain.Tx
	for sent := 0; sent < events || len(served) > 0; {
		txs := served
		served = nil
		for i := 0; i < perBlock && sent < events; i++ {
			c.nonce++
			au := c.auditors[c.nonce%uint64(len(c.auditors))]
			ds := datasets[(c.nonce/3)%uint64(len(datasets))]
			owner := c.agencyOf(ds)
			expires := c.height() + 1 + params.ReplayWindow/2
			req := c.sign1(b, &chain.Tx{Body: chain.TxBody{Chain: testChainID, Kind: chain.KindAccess, Sender: au.ID(), Expires: expires, Nonce: c.nonce,
				Access: &chain.AccessRequest{Dataset: ds, Provider: ds.Owner, Nonce: binary.BigEndian.AppendUint64(nil, c.nonce),
					Purpose: "annual audit 2026", Case: "AO-2026-0147"}}}, au)
			id, err := req.ID()
			if err != nil {
				b.Fatal(err)
			}
			ack := &chain.Ack{Chain: testChainID, Request: dagcbor.Link{Cid: id}, Bytes: 1 << 30, Blocks: 4100}
			if err := chain.SignAck(ack, au); err != nil {
				b.Fatal(err)
			}
			c.nonce++
			served = append(served, c.sign1(b, &chain.Tx{Body: chain.TxBody{Chain: testChainID, Kind: chain.KindServed, Sender: owner.ID(), Expires: expires + 1, Nonce: c.nonce,
				Served: &chain.Served{Request: dagcbor.Link{Cid: id}, Ack: ack}}}, owner))
			txs = append(txs, req)
			sent++
		}
		commit(txs)
		for _, o := range c.blocks[len(c.blocks)-1].Outcomes {
			if o.Code != chain.OutcomeAuthorised && o.Code != chain.OutcomeServed {
				b.Fatalf("block %d: outcome %+v", c.height(), o)
			}
		}
	}
	for range params.AccessWindow + 1 {
		commit(nil)
	}
	store1, index1 := settle()
	return store1 - store0, index1 - index0
}

func dirSize(tb testing.TB, dir string) int64 {
	var n int64
	err := filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		info, err := d.Info()
		n += info.Size()
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	return n
}
