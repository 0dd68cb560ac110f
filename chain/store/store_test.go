package store

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/chain/pbft"
)

func openStore(tb testing.TB, dir string, g *chain.Genesis) *Store {
	tb.Helper()
	s, err := Open(Config{Dir: dir, Genesis: g})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func commitAll(tb testing.TB, s *Store, blocks []pbft.Committed) {
	tb.Helper()
	for _, c := range blocks {
		if err := s.Commit(c); err != nil {
			tb.Fatal(err)
		}
	}
}

func sameEncoding(tb testing.TB, a, b any) bool {
	tb.Helper()
	x, _, err := chain.Encode(a)
	if err != nil {
		tb.Fatal(err)
	}
	y, _, err := chain.Encode(b)
	if err != nil {
		tb.Fatal(err)
	}
	return bytes.Equal(x, y)
}

// checkPrefix fails unless the store holds exactly blocks 1..h of c: each
// block, certificate and outcomes as committed, every transaction of them
// in the index, the state after h, and nothing of h+1.
func checkPrefix(tb testing.TB, s *Store, c *testChain, h uint64) {
	tb.Helper()
	if got := s.Height(); got != h {
		tb.Fatalf("height %d, want %d", got, h)
	}
	for i := uint64(1); i <= h; i++ {
		want := c.blocks[i-1]
		got, err := s.Committed(i)
		if err != nil {
			tb.Fatalf("block %d: %v", i, err)
		}
		// By encoding: a decoded transaction is sealed (it keeps its
		// bytes and ID), the one committed may not be.
		if !sameEncoding(tb, got.Block, want.Block) || !sameEncoding(tb, got.Cert, want.Cert) || !sameEncoding(tb, got.Outcomes, want.Outcomes) || got.State != nil {
			tb.Fatalf("block %d reads back otherwise than committed", i)
		}
		outcomes, err := s.Outcomes(i)
		if err != nil || !sameEncoding(tb, outcomes, want.Outcomes) {
			tb.Fatalf("outcomes of block %d read alone: %v", i, err)
		}
		rb, rc, err := s.RawCommitted(i)
		if err != nil {
			tb.Fatal(err)
		}
		wb, _, _ := chain.Encode(want.Block)
		wc, _, _ := chain.Encode(want.Cert)
		if !bytes.Equal(rb, wb) || !bytes.Equal(rc, wc) {
			tb.Fatalf("block %d: raw bytes are not the canonical encoding", i)
		}
		for j := range want.Block.Txs {
			id, _ := want.Block.Txs[j].ID()
			th, ti, err := s.Tx(id)
			if err != nil || th != i || ti != j {
				tb.Fatalf("tx %d of block %d: found at %d/%d (%v)", j, i, th, ti, err)
			}
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	if h == 0 {
		if !reflect.DeepEqual(snap, pbft.Snapshot{}) {
			tb.Fatalf("snapshot at height 0 is not the zero one: %+v", snap)
		}
	} else {
		want := c.blocks[h-1]
		root := snap.State.Root()
		if !reflect.DeepEqual(snap.Header, want.Block.Header) || !bytes.Equal(root[:], want.Block.Header.StateRoot) {
			tb.Fatalf("snapshot at height %d is not block %d's", h, h)
		}
	}
	if int(h) < len(c.blocks) {
		if _, err := s.Committed(h + 1); !errors.Is(err, ErrNotFound) {
			tb.Fatalf("block %d past the head: %v", h+1, err)
		}
		if _, err := s.Outcomes(h + 1); !errors.Is(err, ErrNotFound) {
			tb.Fatalf("outcomes of block %d past the head: %v", h+1, err)
		}
		for _, tx := range c.blocks[h].Block.Txs {
			id, _ := tx.ID()
			if _, _, err := s.Tx(id); !errors.Is(err, ErrNotFound) {
				tb.Fatalf("a tx of block %d past the head is indexed: %v", h+1, err)
			}
		}
	}
}

// TestCommitAndRead commits a chain across an epoch change and reads
// everything back, before and after reopening the store.
func TestCommitAndRead(t *testing.T) {
	c := buildTestChain(t, 10, 20)
	dir := t.TempDir()
	s := openStore(t, dir, c.genesis)
	checkPrefix(t, s, c, 0)
	commitAll(t, s, c.blocks)
	checkPrefix(t, s, c, 10)
	if _, _, err := s.Tx(cid.NewCidV1(cid.Raw, c.blocks[0].Block.Header.TxRoot[:0])); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown tx: %v", err)
	}
	for _, h := range []uint64{0, 11} {
		if _, err := s.Committed(h); !errors.Is(err, ErrNotFound) {
			t.Fatalf("block %d: %v", h, err)
		}
		if _, _, err := s.RawCommitted(h); !errors.Is(err, ErrNotFound) {
			t.Fatalf("raw block %d: %v", h, err)
		}
	}
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if snap.PrevValidators.Epoch != 1 || len(snap.PrevValidators.Members) != testValidators+1 || c.vals.Epoch != 2 {
		t.Fatalf("in epoch %d: previous set of epoch %d with %d members", c.vals.Epoch, snap.PrevValidators.Epoch, len(snap.PrevValidators.Members))
	}
	checkReceipts(t, s, c)
	if n, err := s.DiskUsage(); err != nil || n <= 0 {
		t.Fatalf("disk usage %d, %v", n, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Committed(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("read after close: %v", err)
	}
	if err := s.Commit(c.blocks[0]); !errors.Is(err, ErrClosed) {
		t.Fatalf("commit after close: %v", err)
	}
	s = openStore(t, dir, c.genesis)
	checkPrefix(t, s, c, 10)
	again, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(again.PrevValidators, snap.PrevValidators) || again.State.Root() != snap.State.Root() {
		t.Fatal("the reopened store's snapshot differs")
	}
	checkReceipts(t, s, c)
	// The chain goes on from the reopened store's snapshot.
	c.restart(again)
	for range 3 {
		if err := s.Commit(c.add(c.txs(20))); err != nil {
			t.Fatal(err)
		}
	}
	if s.Height() != 13 {
		t.Fatalf("height %d after 3 more blocks", s.Height())
	}
}

// checkReceipts builds the receipt of the first transaction of every
// block from what the store holds (the block, its outcomes and
// certificate, and the epoch changes up to its epoch) and verifies it
// against the genesis, as an auditor would offline.
func checkReceipts(t *testing.T, s *Store, c *testChain) {
	t.Helper()
	anchor, err := chain.AnchorFromGenesis(c.genesis)
	if err != nil {
		t.Fatal(err)
	}
	for h := uint64(1); h <= s.Height(); h++ {
		cb, err := s.Committed(h)
		if err != nil {
			t.Fatal(err)
		}
		epochs, err := s.EpochChanges(cb.Block.Header.Epoch)
		if err != nil {
			t.Fatal(err)
		}
		if uint64(len(epochs)) != cb.Block.Header.Epoch {
			t.Fatalf("block %d of epoch %d: %d epoch changes", h, cb.Block.Header.Epoch, len(epochs))
		}
		r, err := chain.NewReceipt(cb.Block, cb.Outcomes, 0, *cb.Cert, epochs)
		if err != nil {
			t.Fatalf("block %d: %v", h, err)
		}
		if _, err := chain.VerifyReceipt(r, anchor); err != nil {
			t.Fatalf("receipt of block %d (epoch %d): %v", h, cb.Block.Header.Epoch, err)
		}
	}
	if _, err := s.EpochChanges(c.vals.Epoch + 1); !errors.Is(err, ErrNotFound) {
		t.Fatalf("epoch changes past the current epoch: %v", err)
	}
}

// TestSnapshotRestoresTheCore checks that the snapshot of a reopened store
// restores a consensus core at the stored height, epoch and state.
func TestSnapshotRestoresTheCore(t *testing.T) {
	c := buildTestChain(t, 9, 5)
	dir := t.TempDir()
	s := openStore(t, dir, c.genesis)
	commitAll(t, s, c.blocks)
	s.Close()
	s = openStore(t, dir, c.genesis)
	snap, err := s.Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	core, err := pbft.RestoreSnapshot(pbft.Config{Genesis: c.genesis, Signer: testKey("node", 1)}, c.time+500, snap, nil)
	if err != nil {
		t.Fatal(err)
	}
	bcid, _ := c.blocks[8].Block.CID()
	if core.Height() != 9 || core.StateRoot() != c.state.Root() || !core.LastBlock().Equals(bcid) || !reflect.DeepEqual(core.Validators(), c.vals) {
		t.Fatalf("restored core at height %d, epoch %d", core.Height(), core.Validators().Epoch)
	}
}

// fakeState is a State that is not a MemState.
type fakeState struct{ chain.State }

// TestCommitRefuses hands Commit blocks that do not extend the stored
// chain or do not hold together: each is refused, changes nothing, and
// the right block still commits after it.
func TestCommitRefuses(t *testing.T) {
	c := buildTestChain(t, 4, 5)
	s := openStore(t, t.TempDir(), c.genesis)
	commitAll(t, s, c.blocks[:2])
	next := c.blocks[2]
	other := c.blocks[3]
	tests := []struct {
		name string
		c    func() pbft.Committed
		want string
	}{
		{"a gap", func() pbft.Committed { return other }, "the next is 3"},
		{"a repeat", func() pbft.Committed { return c.blocks[1] }, "the next is 3"},
		{"no state", func() pbft.Committed { b := next; b.State = nil; return b }, "needs its certificate and state"},
		{"no certificate", func() pbft.Committed { b := next; b.Cert = nil; return b }, "needs its certificate and state"},
		{"the state of another block", func() pbft.Committed { b := next; b.State = other.State; return b }, "not the header's"},
		{"a state that is not a MemState", func() pbft.Committed { b := next; b.State = fakeState{next.State}; return b }, "want *chain.MemState"},
		{"the certificate of another block", func() pbft.Committed { b := next; b.Cert = other.Cert; return b }, "certificate is for another block"},
		{"outcomes of another block", func() pbft.Committed { b := next; b.Outcomes = other.Outcomes; return b }, "results root"},
		{"another previous block", func() pbft.Committed {
			b := next
			blk := *b.Block
			blk.Header.Prev = other.Block.Header.Prev
			b.Block = &blk
			return b
		}, "does not follow block 2"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Commit(tc.c())
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("commit: %v, want an error with %q", err, tc.want)
			}
			if s.Height() != 2 {
				t.Fatalf("height %d after a refused commit", s.Height())
			}
		})
	}
	if err := s.Commit(next); err != nil {
		t.Fatalf("the right block after refusals: %v", err)
	}
	checkPrefix(t, s, c, 3)
}
