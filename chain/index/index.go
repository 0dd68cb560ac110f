package index

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
)

// ErrGap is wrapped by Apply for a block past the one after the last
// indexed: the caller replays the blocks in between first.
var ErrGap = errors.New("index: height gap")

// ErrClosed is returned by every method of a closed Index.
var ErrClosed = errors.New("index: closed")

// Index is the audit trail's query indexes in one goleveldb database. Its
// methods are safe for concurrent use; Apply calls are serialised.
type Index struct {
	db  *leveldb.DB
	dir string

	// mu guards closed: methods hold it shared, Close exclusively.
	mu     sync.RWMutex
	closed bool
	// applyMu serialises Apply; lastTime and wb, Apply's write batch,
	// reset and reused from block to block, are guarded by it.
	applyMu  sync.Mutex
	wb       leveldb.Batch
	last     atomic.Uint64
	lastTime int64
}

// Open opens (creating if needed) the index in dir.
func Open(dir string) (*Index, error) {
	// Tables are snappy-compressed: an event repeats its block's peer
	// IDs, dataset roots and DAG-CBOR field names, and compression cuts
	// an access event's entries by more than half
	// (store.BenchmarkAccessEventFootprint). A larger memtable than the
	// default 4 MiB means less compaction per block.
	db, err := leveldb.OpenFile(dir, &opt.Options{
		Filter:      filter.NewBloomFilter(10),
		Compression: opt.SnappyCompression,
		WriteBuffer: 16 << 20,
	})
	if err != nil {
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	ix := &Index{db: db, dir: dir}
	if err := ix.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("index: open %s: %w", dir, err)
	}
	return ix, nil
}

// load checks the format record, writing it in an empty database, and
// reads the last indexed height.
func (ix *Index) load() error {
	v, err := ix.db.Get(keyFormat, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		if err := ix.checkEmpty(); err != nil {
			return err
		}
		if err := ix.db.Put(keyFormat, []byte(format), &opt.WriteOptions{Sync: true}); err != nil {
			return fmt.Errorf("write format record: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read format record: %w", err)
	case !bytes.Equal(v, []byte(format)):
		return fmt.Errorf("format %q, this program reads %q: rebuild the index", v, format)
	}
	v, err = ix.db.Get(keyLast, nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound):
		return nil
	case err != nil:
		return fmt.Errorf("read last height: %w", err)
	}
	h, t, err := parseLastRecord(v)
	if err != nil {
		return err
	}
	ix.last.Store(h)
	ix.lastTime = t
	return nil
}

// checkEmpty refuses a database that holds keys but no format record: it
// is not an index.
func (ix *Index) checkEmpty() error {
	it := ix.db.NewIterator(nil, nil)
	defer it.Release()
	if it.First() {
		return errors.New("database has keys but no format record: not an index")
	}
	return it.Error()
}

// LastHeight is the height of the last block indexed; 0 before the first.
func (ix *Index) LastHeight() uint64 { return ix.last.Load() }

// Close closes the database. Further calls return ErrClosed; closing
// twice is not an error.
func (ix *Index) Close() error {
	ix.mu.Lock()
	defer ix.mu.Unlock()
	if ix.closed {
		return nil
	}
	ix.closed = true
	if err := ix.db.Close(); err != nil {
		return fmt.Errorf("index: close %s: %w", ix.dir, err)
	}
	return nil
}

// enter holds the index open for one call; exit releases it.
func (ix *Index) enter() error {
	ix.mu.RLock()
	if ix.closed {
		ix.mu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (ix *Index) exit() { ix.mu.RUnlock() }
