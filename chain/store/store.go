package store

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/chain"
)

// Errors callers act on.
var (
	// ErrNotFound: no such block or transaction in the store.
	ErrNotFound = errors.New("store: not found")
	// ErrClosed is returned by every method of a closed Store.
	ErrClosed = errors.New("store: closed")
)

// Config configures a Store.
type Config struct {
	// Dir is the goleveldb directory; Open creates it if needed.
	Dir string
	// Genesis is the chain's genesis: a store holds one chain, and Open
	// refuses a directory written for another. Required.
	Genesis *chain.Genesis
	// Logger receives lifecycle messages; nil discards them.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.Dir == "" {
		return errors.New("store: config needs a directory")
	}
	if c.Genesis == nil {
		return errors.New("store: config needs the genesis")
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Store keeps the committed chain in one goleveldb database: blocks,
// certificates, outcomes, a transaction index, the validator-set changes
// and the state after the last block. Its methods are safe for
// concurrent use; Commit calls are serialised.
type Store struct {
	db      *leveldb.DB
	dir     string
	log     *slog.Logger
	genesis *chain.Genesis
	// genesisVals is the validator set of epoch 0.
	genesisVals chain.ValidatorSet

	// mu guards closed: methods hold it shared, Close exclusively.
	mu     sync.RWMutex
	closed bool
	// commitMu serialises Commit, the only writer of the fields below;
	// it writes them holding headMu too, so that readers need only that.
	commitMu sync.Mutex
	// wb is Commit's write batch, reset and reused from block to block so
	// that its buffer (about 1 MiB for a full block) is not grown anew by
	// doubling each time; leveldb is done with it when Write returns.
	wb     leveldb.Batch
	headMu sync.RWMutex
	height atomic.Uint64
	// The last committed block, its certificate, the state after it, the
	// validator sets in force and before, and every epoch change.
	head     head
	header   chain.Header
	cert     *chain.CommitCert
	state    *chain.MemState
	vals     chain.ValidatorSet
	prevVals chain.ValidatorSet
	epochs   []chain.EpochChange
	// failed is the error of a Commit that did not finish: the store
	// refuses every Commit after it.
	failed error
}

// dbOptions are the store's leveldb options. Tables are snappy-compressed:
// signatures and hashes do not compress, but a block repeats its senders'
// peer IDs, dataset roots, the chain id and DAG-CBOR's field names, and
// compression more than halves what an access event costs on disk
// (BenchmarkAccessEventFootprint, docs/benchmarks.md). A larger memtable than the default
// 4 MiB (a block of 2,000 txs is about 1 MiB with its state diff) means
// fewer, larger level-0 tables and less compaction per block.
func dbOptions() *opt.Options {
	return &opt.Options{
		Filter:      filter.NewBloomFilter(10),
		Compression: opt.SnappyCompression,
		WriteBuffer: 16 << 20,
	}
}

// Open opens (creating if needed) the store in cfg.Dir and checks that
// what it holds is one consistent chain of cfg.Genesis: the head record
// names the last block stored, and the state loaded from disk has the
// root that block's header commits to. It loads that state into memory.
func Open(cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	db, err := leveldb.OpenFile(cfg.Dir, dbOptions())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", cfg.Dir, err)
	}
	s := &Store{db: db, dir: cfg.Dir, log: cfg.Logger, genesis: cfg.Genesis}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", cfg.Dir, err)
	}
	s.log.Info("chain store open", "height", s.head.height, "keys", s.state.Len(), "took", time.Since(start).Round(time.Millisecond))
	return s, nil
}

// load checks the format and genesis records (writing them in an empty
// database), reads the head and loads the state.
func (s *Store) load() error {
	gcid, err := s.genesis.CID()
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	m, err := chain.NewMachine(s.genesis, chain.NewMemState())
	if err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	if s.genesisVals, err = m.Validators(); err != nil {
		return fmt.Errorf("genesis: %w", err)
	}
	v, err := s.db.Get(keyFormat, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		if err := s.checkEmpty(); err != nil {
			return err
		}
		b := new(leveldb.Batch)
		b.Put(keyFormat, []byte(format))
		b.Put(keyGenesis, gcid.Bytes())
		if err := s.db.Write(b, &opt.WriteOptions{Sync: true}); err != nil {
			return fmt.Errorf("write format record: %w", err)
		}
	case err != nil:
		return fmt.Errorf("read format record: %w", err)
	case !bytes.Equal(v, []byte(format)):
		return fmt.Errorf("format %q, this program reads %q: the chain was stored by another version of auditnet, whose state rules differ; start a new network (auditnet testnet) or give this node a new repo to sync into", v, format)
	}
	v, err = s.db.Get(keyGenesis, nil)
	if err != nil {
		return fmt.Errorf("read genesis record: %w", err)
	}
	if !bytes.Equal(v, gcid.Bytes()) {
		return fmt.Errorf("the store holds another chain than genesis %s", gcid)
	}
	v, err = s.db.Get(keyHead, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		s.head = head{block: gcid, time: s.genesis.Time}
		return s.loadGenesis()
	case err != nil:
		return fmt.Errorf("read head record: %w", err)
	}
	if s.head, err = decodeHead(v); err != nil {
		return err
	}
	return s.loadHead()
}

// checkEmpty refuses a database that holds keys but no format record: it
// is not a chain store.
func (s *Store) checkEmpty() error {
	it := s.db.NewIterator(nil, nil)
	defer it.Release()
	if it.First() {
		return errors.New("database has keys but no format record: not a chain store")
	}
	return it.Error()
}

// loadGenesis starts an empty chain: no block, no epoch change and no
// stored state. The first Commit writes the whole state after block 1,
// genesis records included.
func (s *Store) loadGenesis() error {
	for _, p := range []string{prefixBlock, prefixState, prefixEpoch} {
		if k, err := s.firstKey(p); err != nil || k != nil {
			if err != nil {
				return err
			}
			return fmt.Errorf("no head record, but key %q is stored", k)
		}
	}
	s.vals, s.state = s.genesisVals, chain.NewMemState()
	return nil
}

// loadHead checks the last block against the head record and the blocks
// around it, and loads the state after it.
func (s *Store) loadHead() error {
	h := s.head.height
	first, err := s.firstKey(prefixBlock)
	if err != nil {
		return err
	}
	last, err := s.lastKey(prefixBlock)
	if err != nil {
		return err
	}
	switch {
	case first == nil:
		return fmt.Errorf("head record at height %d, but no block is stored", h)
	case !bytes.Equal(first, heightKey(prefixBlock, 1)):
		return fmt.Errorf("the first block stored is not block 1 (key %x)", first)
	case !bytes.Equal(last, heightKey(prefixBlock, h)):
		return fmt.Errorf("head record at height %d, but the last block stored has key %x", h, last)
	}
	blk, cert, _, err := s.read(h)
	if err != nil {
		return err
	}
	bcid, err := blk.CID()
	if err != nil {
		return err
	}
	switch {
	case blk.Header.Height != h:
		return fmt.Errorf("block %d has header height %d", h, blk.Header.Height)
	case !bcid.Equals(s.head.block) || blk.Header.Time != s.head.time:
		return fmt.Errorf("head record names block %s at time %d, block %d is %s at time %d", s.head.block, s.head.time, h, bcid, blk.Header.Time)
	case cert.Height != h || !cert.Block.Equals(bcid):
		return fmt.Errorf("certificate %d is not block %d's", h, h)
	}
	if s.state, err = s.loadState(); err != nil {
		return err
	}
	if root := s.state.Root(); !bytes.Equal(root[:], blk.Header.StateRoot) {
		return fmt.Errorf("state of %d keys has root %x, block %d's header says %x: the stored state is damaged", s.state.Len(), root, h, blk.Header.StateRoot)
	}
	s.header, s.cert = blk.Header, cert
	m, err := chain.NewMachine(s.genesis, s.state)
	if err != nil {
		return err
	}
	if s.vals, err = m.Validators(); err != nil {
		return err
	}
	if err := s.loadEpochs(); err != nil {
		return err
	}
	s.height.Store(h)
	return nil
}

// loadEpochs reads the epoch changes, one per epoch before the current
// one, each naming the set of the next.
func (s *Store) loadEpochs() error {
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixEpoch)), nil)
	defer it.Release()
	for e := uint64(0); it.Next(); e++ {
		if !bytes.Equal(it.Key(), epochKey(e)) {
			return fmt.Errorf("epoch changes: key %x where epoch %d's belongs", it.Key(), e)
		}
		ec, err := decodeEpochChange(it.Value(), e)
		if err != nil {
			return err
		}
		if ec.Header.Height > s.head.height {
			return fmt.Errorf("epoch change %d at block %d, after the last block %d", e, ec.Header.Height, s.head.height)
		}
		s.epochs = append(s.epochs, *ec)
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read epoch changes: %w", err)
	}
	if n := uint64(len(s.epochs)); n != s.vals.Epoch {
		return fmt.Errorf("%d epoch changes stored, the state is in epoch %d", n, s.vals.Epoch)
	}
	if n := len(s.epochs); n > 0 {
		if !bytes.Equal(chain.MerkleRoot(s.epochs[n-1].Validators), s.vals.Hash()) {
			return fmt.Errorf("the last epoch change names another validator set than the state's")
		}
	}
	if s.vals.Epoch > 0 {
		s.prevVals = s.setOf(s.vals.Epoch - 1)
	}
	return nil
}

// setOf returns the validator set of epoch e, one the store knows (zero
// for an epoch past the last change, or before genesis).
func (s *Store) setOf(e uint64) chain.ValidatorSet {
	switch {
	case e == 0:
		return s.genesisVals
	case e <= uint64(len(s.epochs)):
		return chain.NewValidatorSet(e, s.epochs[e-1].Validators...)
	}
	return chain.ValidatorSet{}
}

// loadState reads every state key into a new state.
func (s *Store) loadState() (*chain.MemState, error) {
	var b chain.MemStateBuilder
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixState)), nil)
	defer it.Release()
	for it.Next() {
		b.Add(it.Key()[len(prefixState):], it.Value())
	}
	if err := it.Error(); err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	st, err := b.Build()
	if err != nil {
		return nil, fmt.Errorf("read state: %w", err)
	}
	return st, nil
}

func (s *Store) firstKey(prefix string) ([]byte, error) {
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefix)), nil)
	defer it.Release()
	if it.First() {
		return bytes.Clone(it.Key()), nil
	}
	return nil, it.Error()
}

func (s *Store) lastKey(prefix string) ([]byte, error) {
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefix)), nil)
	defer it.Release()
	if it.Last() {
		return bytes.Clone(it.Key()), nil
	}
	return nil, it.Error()
}

// Height is the height of the last block stored; 0 before the first.
func (s *Store) Height() uint64 { return s.height.Load() }

// Close closes the database. Further calls return ErrClosed; closing
// twice is not an error.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store: close %s: %w", s.dir, err)
	}
	return nil
}

// enter holds the store open for one call; exit releases it.
func (s *Store) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) exit() { s.mu.RUnlock() }
