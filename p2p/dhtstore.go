package p2p

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// RecordStore keeps the DHT's provider records in goleveldb, so that a DHT
// server that restarts still answers for the records peers gave it (they
// expire on their own after 48 h, and holders re-announce every 12 h). It
// implements go-datastore's Batching, which is what go-libp2p-kad-dht
// stores records in. The records are soft state: writes are not synced.
type RecordStore struct {
	db     *leveldb.DB
	mu     sync.RWMutex
	closed bool
}

var _ ds.Batching = (*RecordStore)(nil)

// OpenRecordStore opens (or creates) the record store in dir.
func OpenRecordStore(dir string) (*RecordStore, error) {
	db, err := leveldb.OpenFile(dir, nil)
	if err != nil {
		return nil, fmt.Errorf("p2p: open DHT record store %s: %w", dir, err)
	}
	return &RecordStore{db: db}, nil
}

var errStoreClosed = errors.New("p2p: DHT record store closed")

func (s *RecordStore) enter() error {
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return errStoreClosed
	}
	return nil
}

func (s *RecordStore) exit() { s.mu.RUnlock() }

// Get implements ds.Read.
func (s *RecordStore) Get(_ context.Context, key ds.Key) ([]byte, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	v, err := s.db.Get(key.Bytes(), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return nil, ds.ErrNotFound
	}
	return v, err
}

// Has implements ds.Read.
func (s *RecordStore) Has(_ context.Context, key ds.Key) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	return s.db.Has(key.Bytes(), nil)
}

// GetSize implements ds.Read.
func (s *RecordStore) GetSize(ctx context.Context, key ds.Key) (int, error) {
	v, err := s.Get(ctx, key)
	if err != nil {
		return -1, err
	}
	return len(v), nil
}

// Put implements ds.Write.
func (s *RecordStore) Put(_ context.Context, key ds.Key, value []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	return s.db.Put(key.Bytes(), value, nil)
}

// Delete implements ds.Write.
func (s *RecordStore) Delete(_ context.Context, key ds.Key) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	return s.db.Delete(key.Bytes(), nil)
}

// Sync implements ds.Datastore: the records are soft state, so there is
// nothing to force to disk.
func (s *RecordStore) Sync(context.Context, ds.Key) error { return nil }

// Query implements ds.Read: it walks the keys under the query's prefix in
// order and leaves filters, orders, offset and limit to go-datastore.
func (s *RecordStore) Query(_ context.Context, q query.Query) (query.Results, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	prefix := ds.NewKey(q.Prefix).String()
	if prefix != "/" {
		prefix += "/"
	}
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefix)), nil)
	s.exit()
	var once sync.Once
	release := func() error {
		once.Do(it.Release)
		return nil
	}
	res := query.ResultsFromIterator(q, query.Iterator{
		Next: func() (query.Result, bool) {
			if !it.Next() {
				if err := it.Error(); err != nil {
					return query.Result{Error: err}, true
				}
				return query.Result{}, false
			}
			key := string(it.Key())
			if !strings.HasPrefix(key, prefix) {
				return query.Result{}, false
			}
			e := query.Entry{Key: key, Size: len(it.Value())}
			if !q.KeysOnly {
				e.Value = append([]byte(nil), it.Value()...)
			}
			return query.Result{Entry: e}, true
		},
		Close: release,
	})
	naive := q
	naive.Prefix = ""
	return query.NaiveQueryApply(naive, res), nil
}

// Batch implements ds.BatchingFeature.
func (s *RecordStore) Batch(context.Context) (ds.Batch, error) {
	return &recordBatch{s: s, b: new(leveldb.Batch)}, nil
}

type recordBatch struct {
	s *RecordStore
	b *leveldb.Batch
}

func (b *recordBatch) Put(_ context.Context, key ds.Key, value []byte) error {
	b.b.Put(key.Bytes(), value)
	return nil
}

func (b *recordBatch) Delete(_ context.Context, key ds.Key) error {
	b.b.Delete(key.Bytes())
	return nil
}

func (b *recordBatch) Commit(context.Context) error {
	if err := b.s.enter(); err != nil {
		return err
	}
	defer b.s.exit()
	return b.s.db.Write(b.b, nil)
}

// Close implements io.Closer; it waits for running calls.
func (s *RecordStore) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return s.db.Close()
}
