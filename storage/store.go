package storage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path"
	"sort"
	"sync"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/filter"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"
)

// Index key prefixes.
const (
	prefixBlock   = "b" // + multihash → location
	prefixPack    = "p" // + u32 big-endian pack id → uvarint committed length
	prefixPin     = "r" // + CID bytes → pin record
	keyFormat     = "format"
	keyLastGC     = "last-gc" // time of the last sweep
	formatVersion = "auditnet-blockstore-1"
)

// Defaults of Options.
const (
	DefaultPackSize = 256 << 20
	// MaxBlockSize is the largest block the store accepts.
	MaxBlockSize = 2 << 20
)

// Errors callers act on.
var (
	ErrNotFound = errors.New("storage: block not found")
	ErrCorrupt  = errors.New("storage: block corrupt")
	ErrClosed   = errors.New("storage: store closed")
	ErrInUse    = errors.New("storage: block in use by an operation in progress")
	ErrTooLarge = errors.New("storage: block too large")
	ErrReadOnly = errors.New("storage: store opened read-only")
	// ErrFailed: an index write failed, so its outcome is unknown (goleveldb
	// may have journaled it, and it forgets a failed fsync: a later sync
	// could make it durable behind our back). The store refuses writes
	// until it is reopened, which settles what the index holds.
	ErrFailed = errors.New("storage: store stopped after a failed index write; reopen it")
)

// CorruptError reports a block whose stored bytes do not hash to its CID.
type CorruptError struct {
	Cid    cid.Cid
	Reason string
}

func (e *CorruptError) Error() string {
	return fmt.Sprintf("block %s is corrupt: %s", e.Cid, e.Reason)
}

// Unwrap makes errors.Is(err, ErrCorrupt) true.
func (e *CorruptError) Unwrap() error { return ErrCorrupt }

// Options configure a Store. The zero value is the production setting.
type Options struct {
	// FS is the file system under the store (default: the OS).
	FS FS
	// Logger receives the store's logs (default: none).
	Logger *slog.Logger
	// PackSize is the size past which a pack file takes no more blocks
	// (default 256 MiB).
	PackSize int64
	// FlushEntries is how many new blocks a Writer gathers before it makes
	// them durable and indexes them even without Flush (default 16384).
	FlushEntries int
	// BackgroundSync is how many bytes a Writer appends between background
	// fsyncs of its pack (default DefaultBackgroundSync).
	BackgroundSync int64

	// ReadOnly opens the store for reading only: nothing is written, not
	// even the recovery of a crashed write, so a store on a full disk can
	// still be read and verified. Writes return ErrReadOnly.
	ReadOnly bool

	// noPunch makes GC rewrite packs instead of punching holes, as on a
	// file system without hole punching; tests use it.
	noPunch bool

	// indexWriteBuffer overrides leveldb's memtable size; tests shrink it
	// so that table files and manifest rewrites happen in small workloads.
	indexWriteBuffer int
}

// Store is a content-addressed block store: blocks live in append-only
// pack files, a goleveldb index maps each block's multihash to its place,
// and pins name the DAGs to keep. A raw and a dag-pb block with the same
// bytes share one multihash and are stored once. Every read re-hashes the
// block. Every acknowledged write is fsync'd, data and index. All methods
// are safe for concurrent use.
type Store struct {
	dir    string
	fs     FS
	log    *slog.Logger
	opts   Options
	db     *leveldb.DB
	packs  *packSet
	leases *leaseTable
	gcMu   sync.Mutex // one collection at a time

	closeMu sync.RWMutex // held for reading by every operation, for writing by Close
	closed  bool

	failMu sync.Mutex
	failed error // the first failed index write, if any

	// testHookAfterLookup, if set, runs between a read's index lookup and
	// its pack read, so tests can make GC act in that window.
	testHookAfterLookup func()
}

// Open opens (creating if needed) the store in dir. A store left by a crash
// opens to its last acknowledged state: unindexed pack tails are cut off and
// packs the index does not know are deleted.
func Open(dir string, opts Options) (*Store, error) {
	if opts.FS == nil {
		opts.FS = OSFS{}
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.PackSize == 0 {
		opts.PackSize = DefaultPackSize
	}
	if opts.FlushEntries == 0 {
		opts.FlushEntries = 16384
	}
	if opts.BackgroundSync == 0 {
		opts.BackgroundSync = DefaultBackgroundSync
	}
	s := &Store{dir: dir, fs: opts.FS, log: opts.Logger, opts: opts, leases: newLeaseTable()}
	indexDir, packDir := path.Join(dir, "index"), path.Join(dir, "packs")
	if !opts.ReadOnly {
		for _, d := range []string{dir, indexDir, packDir} {
			if err := s.fs.MkdirAll(d, 0o755); err != nil {
				return nil, fmt.Errorf("open store %s: %w", dir, err)
			}
		}
	}
	stor, err := newLevelDBStorage(s.fs, indexDir, s.log)
	if err != nil {
		return nil, fmt.Errorf("open store index %s: %w", indexDir, err)
	}
	db, err := leveldb.Open(stor, &opt.Options{
		Filter:                 filter.NewBloomFilter(10),
		OpenFilesCacheCapacity: 64,
		WriteBuffer:            opts.indexWriteBuffer,
		ReadOnly:               opts.ReadOnly,
		ErrorIfMissing:         opts.ReadOnly,
	})
	if err != nil {
		return nil, fmt.Errorf("open store index %s: %w", indexDir, err)
	}
	s.db = db
	s.packs = &packSet{fs: s.fs, dir: packDir, maxSize: opts.PackSize, packs: make(map[uint32]*pack)}
	if err := s.checkFormat(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recoverPacks(); err != nil {
		s.packs.closeAll()
		db.Close()
		return nil, fmt.Errorf("open store %s: %w", dir, err)
	}
	return s, nil
}

func (s *Store) checkFormat() error {
	v, err := s.db.Get([]byte(keyFormat), nil)
	switch {
	case errors.Is(err, leveldb.ErrNotFound) && s.opts.ReadOnly:
		return fmt.Errorf("store %s has no format record", s.dir)
	case errors.Is(err, leveldb.ErrNotFound):
		if err := s.db.Put([]byte(keyFormat), []byte(formatVersion), &opt.WriteOptions{Sync: true}); err != nil {
			return fmt.Errorf("initialise store index: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("read store format: %w", err)
	case string(v) != formatVersion:
		return fmt.Errorf("store %s has format %q, this program reads %q", s.dir, v, formatVersion)
	}
	return nil
}

// recoverPacks opens every pack the index knows, cuts unacknowledged tails
// and deletes pack files the index never recorded.
func (s *Store) recoverPacks() error {
	committed := make(map[uint32]int64)
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefixPack)), nil)
	for it.Next() {
		k := it.Key()
		n, m := binary.Uvarint(it.Value())
		if len(k) != 5 || m <= 0 {
			it.Release()
			return fmt.Errorf("corrupt pack record %x", k)
		}
		committed[binary.BigEndian.Uint32(k[1:])] = int64(n)
	}
	it.Release()
	if err := it.Error(); err != nil {
		return fmt.Errorf("read pack records: %w", err)
	}
	names, err := s.fs.ReadDir(s.packs.dir)
	if err != nil {
		return fmt.Errorf("list packs: %w", err)
	}
	removed := false
	onDisk := make(map[uint32]bool)
	for _, name := range names {
		id, ok := parsePackName(name)
		if ok {
			onDisk[id] = true
			if id >= s.packs.nextID {
				s.packs.nextID = id + 1
			}
		}
		if !ok {
			s.log.Warn("ignoring a file that is not a pack", "file", name)
			continue
		}
		if _, known := committed[id]; known || s.opts.ReadOnly {
			continue
		}
		// An unknown pack never had a block acknowledged (a crash before its
		// first index write, or after compaction moved its blocks away).
		s.log.Info("removing unreferenced pack file", "file", name)
		if err := s.fs.Remove(path.Join(s.packs.dir, name)); err != nil {
			return fmt.Errorf("remove %s: %w", name, err)
		}
		removed = true
	}
	if removed {
		if err := s.fs.SyncDir(s.packs.dir); err != nil {
			return err
		}
	}
	ids := make([]uint32, 0, len(committed))
	for id := range committed {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i] < ids[j] })
	for _, id := range ids {
		if id >= s.packs.nextID {
			s.packs.nextID = id + 1
		}
		if err := s.openPack(id, committed[id], onDisk[id]); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) openPack(id uint32, committed int64, onDisk bool) error {
	name := s.packs.path(id)
	if !onDisk {
		// Blocks in it will read as missing; verify lists them.
		s.log.Error("pack file missing: its blocks are lost", "file", name)
		return nil
	}
	flag := os.O_RDWR
	if s.opts.ReadOnly {
		flag = os.O_RDONLY
	}
	f, err := s.fs.OpenFile(name, flag, 0)
	if err != nil {
		return fmt.Errorf("open pack %s: %w", name, err)
	}
	size, err := f.Size()
	if err != nil {
		f.Close()
		return fmt.Errorf("size of pack %s: %w", name, err)
	}
	p := &pack{id: id, f: f, name: name, committed: committed, end: committed}
	switch {
	case s.opts.ReadOnly:
		// Reads only touch committed ranges; the tail is cut by the next
		// read-write open.
		p.broken = true
	case size > committed:
		s.log.Warn("cutting unacknowledged tail of pack", "file", name, "committed", committed, "size", size)
		if err := f.Truncate(committed); err != nil {
			f.Close()
			return fmt.Errorf("truncate pack %s: %w", name, err)
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return fmt.Errorf("sync pack %s: %w", name, err)
		}
	case size < committed:
		s.log.Error("pack file shorter than its committed length: blocks at its end are lost", "file", name, "committed", committed, "size", size)
		p.broken, p.end = true, size
	}
	s.packs.packs[id] = p
	return nil
}

// Close closes the store. Writers must be closed first.
func (s *Store) Close() error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	return errors.Join(s.packs.closeAll(), s.db.Close())
}

// enterWrite is enter for operations that change the store.
func (s *Store) enterWrite() error {
	if s.opts.ReadOnly {
		return ErrReadOnly
	}
	if err := s.failure(); err != nil {
		return err
	}
	return s.enter()
}

func (s *Store) failure() error {
	s.failMu.Lock()
	defer s.failMu.Unlock()
	if s.failed != nil {
		return fmt.Errorf("%w: %w", ErrFailed, s.failed)
	}
	return nil
}

// writeIndex writes a batch to the index. A failure stops the store (see
// ErrFailed); the error wraps the cause, so a full disk is still
// errors.Is(err, syscall.ENOSPC).
func (s *Store) writeIndex(b *leveldb.Batch, sync bool) error {
	if err := s.db.Write(b, &opt.WriteOptions{Sync: sync}); err != nil {
		s.failMu.Lock()
		if s.failed == nil {
			s.failed = err
			s.log.Error("index write failed: the store takes no more writes until reopened", "err", err)
		}
		s.failMu.Unlock()
		return fmt.Errorf("write index: %w", err)
	}
	return nil
}

// enter guards an operation against a concurrent Close.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) exit() { s.closeMu.RUnlock() }

func blockKey(hash []byte) []byte {
	k := make([]byte, 0, 1+len(hash))
	return append(append(k, prefixBlock...), hash...)
}

func packKey(id uint32) []byte {
	return binary.BigEndian.AppendUint32([]byte(prefixPack), id)
}

func (s *Store) lookup(hash []byte) (location, error) {
	v, err := s.db.Get(blockKey(hash), nil)
	if errors.Is(err, leveldb.ErrNotFound) {
		return location{}, ErrNotFound
	}
	if err != nil {
		return location{}, fmt.Errorf("read index: %w", err)
	}
	return decodeLocation(v)
}

// Has reports whether the block is stored.
func (s *Store) Has(ctx context.Context, c cid.Cid) (bool, error) {
	if isIdentity(c) {
		return true, nil
	}
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	ok, err := s.db.Has(blockKey(c.Hash()), nil)
	if err != nil {
		return false, fmt.Errorf("has %s: %w", c, err)
	}
	return ok, nil
}

// Size returns the size of a stored block without reading it.
func (s *Store) Size(ctx context.Context, c cid.Cid) (int, error) {
	if isIdentity(c) {
		d, err := mh.Decode(c.Hash())
		if err != nil {
			return 0, err
		}
		return len(d.Digest), nil
	}
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.exit()
	loc, err := s.lookup(c.Hash())
	if err != nil {
		return 0, fmt.Errorf("size of %s: %w", c, err)
	}
	return int(loc.length), nil
}

// Get returns a block's bytes after checking that they hash to c. A
// mismatch is a *CorruptError (errors.Is ErrCorrupt); a block that is not
// stored is ErrNotFound.
func (s *Store) Get(ctx context.Context, c cid.Cid) ([]byte, error) {
	return s.GetInto(ctx, c, nil)
}

// GetInto is Get reading into buf when the block fits in its capacity, so
// that a reader streaming a large file can recycle its buffers. The
// returned slice is buf[:size] or, for a larger block, a new slice.
func (s *Store) GetInto(ctx context.Context, c cid.Cid, buf []byte) ([]byte, error) {
	if isIdentity(c) {
		d, err := mh.Decode(c.Hash())
		if err != nil {
			return nil, err
		}
		return d.Digest, nil
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.exit()
	return s.getVerified(c, buf)
}

// getVerified reads a block and checks it against c. A mismatch is
// corruption only if the index still names the bytes that were read: a
// block GC deleted (and whose bytes it punched out) between the lookup and
// the read is simply gone, and a block compaction moved is read again.
func (s *Store) getVerified(c cid.Cid, buf []byte) ([]byte, error) {
	for attempt := 0; ; attempt++ {
		loc, data, err := s.readInto(c.Hash(), buf)
		if err != nil {
			return nil, fmt.Errorf("get %s: %w", c, err)
		}
		verr := VerifyBlock(c, data)
		if verr == nil {
			return data, nil
		}
		now, err := s.lookup(c.Hash())
		switch {
		case errors.Is(err, ErrNotFound):
			return nil, fmt.Errorf("get %s: %w", c, ErrNotFound)
		case err != nil:
			return nil, fmt.Errorf("get %s: %w", c, err)
		case now == loc || attempt == 2:
			return nil, verr
		}
	}
}

// read returns the stored bytes of a block, unverified.
func (s *Store) read(hash []byte) ([]byte, error) {
	_, data, err := s.readInto(hash, nil)
	return data, err
}

// readInto reads a block's stored bytes, unverified, into buf if it fits,
// and says where it read them.
func (s *Store) readInto(hash []byte, buf []byte) (location, []byte, error) {
	// A block moved by compaction between the index lookup and the read is
	// looked up again; three attempts cover any realistic interleaving.
	for range 3 {
		loc, err := s.lookup(hash)
		if err != nil {
			return location{}, nil, err
		}
		if s.testHookAfterLookup != nil {
			s.testHookAfterLookup()
		}
		data, err := s.readLocation(loc, buf)
		if errors.Is(err, errPackGone) {
			continue
		}
		return loc, data, err
	}
	return location{}, nil, fmt.Errorf("%w: pack missing", ErrNotFound)
}

// errPackGone: the pack a location names is no longer open (compaction
// retired it, or it was missing at open).
var errPackGone = errors.New("storage: pack gone")

// readLocation reads the bytes at loc, into buf if it is big enough.
func (s *Store) readLocation(loc location, buf []byte) ([]byte, error) {
	p := s.packs.acquire(loc.pack)
	if p == nil {
		return nil, fmt.Errorf("pack %d: %w", loc.pack, errPackGone)
	}
	defer s.packs.release(p)
	if int64(cap(buf)) >= loc.length {
		buf = buf[:loc.length]
	} else {
		buf = make([]byte, loc.length)
	}
	if err := readAt(p.f, buf, loc.offset); err != nil {
		return nil, fmt.Errorf("read pack %d at %d: %w", loc.pack, loc.offset, err)
	}
	return buf, nil
}

// verifyBlock checks that data hashes to c.
func VerifyBlock(c cid.Cid, data []byte) error {
	ok, err := hashMatches(c.Hash(), data)
	if err != nil {
		return &CorruptError{Cid: c, Reason: err.Error()}
	}
	if !ok {
		return &CorruptError{Cid: c, Reason: "hash mismatch"}
	}
	return nil
}

// hashMatches reports whether data hashes to the multihash h.
func hashMatches(h []byte, data []byte) (bool, error) {
	if len(h) == 2+sha256.Size && h[0] == mh.SHA2_256 && h[1] == sha256.Size {
		sum := sha256.Sum256(data)
		return bytes.Equal(h[2:], sum[:]), nil
	}
	d, err := mh.Decode(h)
	if err != nil {
		return false, fmt.Errorf("bad multihash: %w", err)
	}
	sum, err := mh.Sum(data, d.Code, d.Length)
	if err != nil {
		return false, fmt.Errorf("hash: %w", err)
	}
	return bytes.Equal(sum, h), nil
}

func isIdentity(c cid.Cid) bool {
	return c.Prefix().MhType == mh.IDENTITY
}

// Put stores one block, checking first that it hashes to c, and returns
// once it is durable.
func (s *Store) Put(ctx context.Context, c cid.Cid, data []byte) error {
	if err := VerifyBlock(c, data); err != nil {
		return err
	}
	w, err := s.NewWriter()
	if err != nil {
		return err
	}
	defer w.Close()
	if err := w.Put(c, data); err != nil {
		return err
	}
	return w.Commit()
}

// Delete removes a block from the index; GC later reclaims its disk space.
// A block held by a lease is not deleted (ErrInUse).
func (s *Store) Delete(ctx context.Context, c cid.Cid) error {
	if err := s.enterWrite(); err != nil {
		return err
	}
	defer s.exit()
	t := s.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.heldLocked(string(c.Hash())) {
		return fmt.Errorf("delete %s: %w", c, ErrInUse)
	}
	b := new(leveldb.Batch)
	b.Delete(blockKey(c.Hash()))
	if err := s.writeIndex(b, true); err != nil {
		return fmt.Errorf("delete %s: %w", c, err)
	}
	return nil
}

// Iterate calls fn for every stored block, in multihash order, over a
// consistent snapshot of the index. It stops at fn's first error.
func (s *Store) Iterate(ctx context.Context, fn func(hash mh.Multihash, size int) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.exit()
	return s.iterateBlocks(ctx, func(hash []byte, loc location) error {
		return fn(mh.Multihash(hash), int(loc.length))
	})
}

// iterateBlocks walks the block index on a snapshot; hash is only valid
// during the call.
func (s *Store) iterateBlocks(ctx context.Context, fn func(hash []byte, loc location) error) error {
	snap, err := s.db.GetSnapshot()
	if err != nil {
		return fmt.Errorf("snapshot index: %w", err)
	}
	defer snap.Release()
	it := snap.NewIterator(util.BytesPrefix([]byte(prefixBlock)), nil)
	defer it.Release()
	for n := 0; it.Next(); n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		loc, err := decodeLocation(it.Value())
		if err != nil {
			return fmt.Errorf("index entry %x: %w", it.Key(), err)
		}
		if err := fn(it.Key()[len(prefixBlock):], loc); err != nil {
			return err
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("iterate index: %w", err)
	}
	return nil
}

// HashCid gives a block's multihash the CID kubo prints for a bare
// multihash (CIDv1, raw codec).
func HashCid(hash mh.Multihash) cid.Cid { return cid.NewCidV1(cid.Raw, hash) }
