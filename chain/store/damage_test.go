package store

import (
	"errors"
	"strings"
	"testing"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/chain"
)

// TestCommitFailureIsSticky makes a write fail (the database reopened
// read-only underneath the store) and checks that the store refuses every
// Commit after it, even once writes would succeed again, and that
// reopening it resumes at the last whole block.
func TestCommitFailureIsSticky(t *testing.T) {
	c := buildTestChain(t, 4, 5)
	dir := t.TempDir()
	s := openStore(t, dir, c.genesis)
	commitAll(t, s, c.blocks[:2])
	swap := func(o *opt.Options) {
		if err := s.db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := leveldb.OpenFile(dir, o)
		if err != nil {
			t.Fatal(err)
		}
		s.db = db
	}
	swap(&opt.Options{ReadOnly: true})
	if err := s.Commit(c.blocks[2]); !errors.Is(err, leveldb.ErrReadOnly) {
		t.Fatalf("commit to a read-only database: %v", err)
	}
	swap(nil)
	err := s.Commit(c.blocks[2])
	if !errors.Is(err, leveldb.ErrReadOnly) || !strings.Contains(err.Error(), "earlier commit failed") {
		t.Fatalf("commit after a failed one: %v", err)
	}
	if s.Height() != 2 {
		t.Fatalf("height %d after a failed commit", s.Height())
	}
	s.Close()
	s = openStore(t, dir, c.genesis)
	checkPrefix(t, s, c, 2)
	commitAll(t, s, c.blocks[2:])
	checkPrefix(t, s, c, 4)
}

// TestOpenRefusesDamage damages a closed store one way at a time and
// requires Open to refuse it and say what is wrong.
func TestOpenRefusesDamage(t *testing.T) {
	c := buildTestChain(t, 10, 10)
	const h = 10
	put := func(k, v []byte) func(*leveldb.DB) error {
		return func(db *leveldb.DB) error { return db.Put(k, v, nil) }
	}
	del := func(k []byte) func(*leveldb.DB) error { return func(db *leveldb.DB) error { return db.Delete(k, nil) } }
	firstState := func(change func(db *leveldb.DB, k, v []byte) error) func(*leveldb.DB) error {
		return func(db *leveldb.DB) error {
			it := db.NewIterator(util.BytesPrefix([]byte(prefixState)), nil)
			defer it.Release()
			if !it.First() {
				return errors.New("no state key")
			}
			return change(db, append([]byte(nil), it.Key()...), append([]byte(nil), it.Value()...))
		}
	}
	raw := func(h uint64) []byte { b, _, _ := chain.Encode(c.blocks[h-1].Block); return b }
	rawCert := func(h uint64) []byte { b, _, _ := chain.Encode(c.blocks[h-1].Cert); return b }
	bcid := func(h uint64) head {
		id, _ := c.blocks[h-1].Block.CID()
		return head{height: h, time: c.blocks[h-1].Block.Header.Time, block: id}
	}
	other := *c.genesis
	other.ChainID = "another-chain"
	tests := []struct {
		name    string
		damage  func(*leveldb.DB) error
		genesis *chain.Genesis
		want    string
	}{
		{"head ahead of the blocks", put(keyHead, encodeHead(head{height: h + 1, time: 1, block: bcid(h).block})), nil, "the last block stored"},
		{"head behind the blocks", put(keyHead, encodeHead(bcid(h-1))), nil, "the last block stored"},
		{"head of another block", put(keyHead, encodeHead(head{height: h, time: bcid(h).time, block: bcid(h - 1).block})), nil, "head record names block"},
		{"head of another time", put(keyHead, encodeHead(head{height: h, time: 7, block: bcid(h).block})), nil, "head record names block"},
		{"head not decodable", put(keyHead, []byte{1, 2, 3}), nil, "head record of 3 bytes"},
		{"head gone", del(keyHead), nil, "no head record, but key"},
		{"an extra block", put(heightKey(prefixBlock, h+1), raw(h)), nil, "the last block stored"},
		{"block 1 gone", del(heightKey(prefixBlock, 1)), nil, "first block stored is not block 1"},
		{"last block not decodable", put(heightKey(prefixBlock, h), raw(h)[:40]), nil, "block 10"},
		{"last block replaced", put(heightKey(prefixBlock, h), raw(h-1)), nil, "header height 9"},
		{"certificate of another block", put(heightKey(prefixCert, h), rawCert(h-1)), nil, "certificate 10 is not block 10's"},
		{"certificate gone", del(heightKey(prefixCert, h)), nil, "certificate 10 is missing"},
		{"outcomes not decodable", put(heightKey(prefixOutcomes, h), []byte{0xa1}), nil, "block 10: outcomes"},
		{"a state value changed", firstState(func(db *leveldb.DB, k, v []byte) error { return db.Put(k, append(v, 0), nil) }), nil, "the stored state is damaged"},
		{"a state key gone", firstState(func(db *leveldb.DB, k, _ []byte) error { return db.Delete(k, nil) }), nil, "the stored state is damaged"},
		{"an extra state key", put(stateKey("extra"), []byte("x")), nil, "the stored state is damaged"},
		{"the first epoch change gone", del(epochKey(0)), nil, "where epoch 0's belongs"},
		{"the last epoch change gone", del(epochKey(1)), nil, "1 epoch changes stored, the state is in epoch 2"},
		{"an epoch change not decodable", put(epochKey(1), []byte{0x80}), nil, "epoch change 1"},
		{"an epoch change of another epoch", func(db *leveldb.DB) error {
			v, err := db.Get(epochKey(0), nil)
			if err != nil {
				return err
			}
			return db.Put(epochKey(1), v, nil)
		}, nil, "epoch change 1 holds block 4 of epoch 0"},
		{"another format", put(keyFormat, []byte("auditnet/store/v0")), nil, "format"},
		{"another chain", func(*leveldb.DB) error { return nil }, &other, "another chain"},
		{"not a store", del(keyFormat), nil, "not a chain store"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			s := openStore(t, dir, c.genesis)
			commitAll(t, s, c.blocks)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			db, err := leveldb.OpenFile(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tc.damage(db); err != nil {
				t.Fatal(err)
			}
			db.Close()
			g := c.genesis
			if tc.genesis != nil {
				g = tc.genesis
			}
			s, err = Open(Config{Dir: dir, Genesis: g})
			if err == nil {
				s.Close()
				t.Fatal("a damaged store opened")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("open: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
