package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
)

// Writer adds blocks and pins as one durable unit. Blocks are appended to
// pack files as they come; Flush (and Commit) fsyncs the packs, then writes
// their index entries, the packs' new committed lengths and any pins in one
// synced leveldb batch. What a Writer put is acknowledged only when Flush
// or Commit returns nil: a crash before that leaves no trace of it.
//
// A Writer holds a lease from its first Put until Close, so a concurrent GC
// deletes none of the blocks it wrote or found already stored. A Writer is
// used by one goroutine; Close must always be called.
type Writer struct {
	s     *Store
	lease *Lease

	cur    *pack         // pack being appended to
	bw     *bufio.Writer // buffers appends to cur
	toSync []*pack       // packs appended to since the last flush (cur included)

	pending     []pendingEntry
	pendingKeys map[string]struct{}
	pins        []pendingPin

	// A background fsync of the current pack runs while the writer goes on
	// appending, so that the disk (and its cache flush) works while the
	// importer hashes: the fsync that acknowledges a write then has little
	// left to do. bgDone carries its result; bgPack is the pack it syncs;
	// bgMark is the pack's end when it started.
	bgDone chan error
	bgPack *pack
	bgMark int64

	err    error // sticky: after a failed write the writer only aborts
	closed bool
}

// directWriteSize: blocks at least this big bypass the write buffer.
const directWriteSize = 64 << 10

// DefaultBackgroundSync is how many bytes a writer appends between
// background fsyncs.
const DefaultBackgroundSync = 32 << 20

type pendingEntry struct {
	key string
	loc location
}

// NewWriter starts a write.
func (s *Store) NewWriter() (*Writer, error) {
	if err := s.enterWrite(); err != nil {
		return nil, err
	}
	defer s.exit()
	return &Writer{s: s, lease: s.leases.newLease(), pendingKeys: make(map[string]struct{})}, nil
}

// Put appends a block. c must be the CID of data (the importer computed
// it; car import and fetch verify it): Put does not re-hash. A block
// already stored, or already put by this writer, is not written again.
// data is not retained.
func (w *Writer) Put(c cid.Cid, data []byte) error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("storage: put on a closed writer")
	}
	if len(data) > MaxBlockSize {
		return fmt.Errorf("put %s: %d bytes: %w", c, len(data), ErrTooLarge)
	}
	if isIdentity(c) {
		return nil
	}
	key := string(c.Hash())
	if _, ok := w.pendingKeys[key]; ok {
		return nil
	}
	present, err := w.s.holdAndHas(w.lease, key)
	if err != nil {
		return w.fail(fmt.Errorf("put %s: %w", c, err))
	}
	if present {
		return nil
	}
	if err := w.append(key, data); err != nil {
		return w.fail(fmt.Errorf("put %s: %w", c, err))
	}
	if len(w.pending) >= w.s.opts.FlushEntries {
		return w.Flush()
	}
	return nil
}

// holdAndHas adds key to the lease and reports whether the block is
// indexed, atomically with respect to GC deletions.
func (s *Store) holdAndHas(l *Lease, key string) (bool, error) {
	if err := s.enter(); err != nil {
		return false, err
	}
	defer s.exit()
	t := s.leases
	t.mu.Lock()
	defer t.mu.Unlock()
	l.holdLocked(key)
	return s.db.Has(blockKey([]byte(key)), nil)
}

// append writes one record to the current pack, rotating to a new pack
// when it is full.
func (w *Writer) append(key string, data []byte) error {
	if w.cur != nil && w.cur.end >= w.s.opts.PackSize {
		if err := w.bw.Flush(); err != nil {
			w.markBroken(w.cur)
			return fmt.Errorf("write pack %s: %w", w.cur.name, err)
		}
		w.cur = nil // stays in toSync until the next flush
	}
	if w.cur == nil {
		p, err := w.s.packs.take()
		if err != nil {
			return err
		}
		if _, err := p.f.Seek(p.end, io.SeekStart); err != nil {
			w.s.packs.giveBack(p)
			return fmt.Errorf("seek pack %s: %w", p.name, err)
		}
		w.cur = p
		w.bgMark = p.end
		w.toSync = append(w.toSync, p)
		if w.bw == nil {
			w.bw = bufio.NewWriterSize(p.f, 1<<20)
		} else {
			w.bw.Reset(p.f)
		}
	}
	var hdr [recordHeaderSize + 255]byte
	h := appendRecordHeader(hdr[:0], key, len(data))
	_, err := w.bw.Write(h)
	if err == nil && len(data) >= directWriteSize {
		// A large block goes straight to the file instead of being copied
		// through the buffer first.
		if err = w.bw.Flush(); err == nil {
			_, err = w.cur.f.Write(data)
		}
	} else if err == nil {
		_, err = w.bw.Write(data)
	}
	if err != nil {
		w.markBroken(w.cur)
		return fmt.Errorf("write pack %s: %w", w.cur.name, err)
	}
	loc := location{pack: w.cur.id, offset: w.cur.end + int64(len(h)), length: int64(len(data))}
	w.cur.end += int64(len(h) + len(data))
	w.pending = append(w.pending, pendingEntry{key: key, loc: loc})
	w.pendingKeys[key] = struct{}{}
	if w.cur.end-w.bgMark >= w.s.opts.BackgroundSync {
		return w.startBackgroundSync()
	}
	return nil
}

// startBackgroundSync hands the buffered bytes to the kernel and fsyncs the
// current pack on another goroutine, unless one is still running.
func (w *Writer) startBackgroundSync() error {
	if err := w.collectBackgroundSync(false); err != nil {
		return err
	}
	if w.bgDone != nil {
		return nil
	}
	if err := w.bw.Flush(); err != nil {
		w.markBroken(w.cur)
		return fmt.Errorf("write pack %s: %w", w.cur.name, err)
	}
	p, done := w.cur, make(chan error, 1)
	w.bgDone, w.bgPack, w.bgMark = done, p, p.end
	go func() { done <- p.f.Sync() }()
	return nil
}

// collectBackgroundSync takes the result of the background fsync, waiting
// for it if wait is set. A failed fsync fails the writer for good: after
// one, the kernel may have dropped dirty pages, and a later fsync that
// succeeds would not bring them back.
func (w *Writer) collectBackgroundSync(wait bool) error {
	if w.bgDone == nil {
		return nil
	}
	var err error
	if wait {
		err = <-w.bgDone
	} else {
		select {
		case err = <-w.bgDone:
		default:
			return nil
		}
	}
	p := w.bgPack
	w.bgDone, w.bgPack = nil, nil
	if err != nil {
		w.markBroken(p)
		return w.fail(fmt.Errorf("sync pack %s: %w", p.name, err))
	}
	return nil
}

func (w *Writer) markBroken(p *pack) {
	w.s.packs.mu.Lock()
	p.broken = true
	w.s.packs.mu.Unlock()
}

// Pin records root as a recursive pin, written with the next Flush or
// Commit. The caller guarantees that root's DAG is complete in the store
// or in this writer.
func (w *Writer) Pin(root cid.Cid) {
	w.pins = append(w.pins, pendingPin{root, PinLocal})
}

// PinFetched is Pin for a DAG fetched from another node: the pin keeps it
// but marks it as not this node's to serve. A root already pinned keeps
// its origin.
func (w *Writer) PinFetched(root cid.Cid) {
	w.pins = append(w.pins, pendingPin{root, PinFetched})
}

type pendingPin struct {
	root   cid.Cid
	origin PinOrigin
}

// Flush makes everything put so far durable and indexed (an
// acknowledgement), and keeps the writer open.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	if w.closed {
		return errors.New("storage: flush on a closed writer")
	}
	if err := w.s.enterWrite(); err != nil {
		return w.fail(err)
	}
	defer w.s.exit()
	if len(w.pending) == 0 && len(w.pins) == 0 {
		return nil
	}
	if err := w.syncPacks(); err != nil {
		return err
	}
	batch := new(leveldb.Batch)
	for _, e := range w.pending {
		batch.Put(blockKey([]byte(e.key)), e.loc.encode())
	}
	for _, p := range w.toSync {
		batch.Put(packKey(p.id), binary.AppendUvarint(nil, uint64(p.end)))
	}
	for _, p := range w.pins {
		if p.origin != PinLocal {
			held, err := w.s.db.Has(pinKey(p.root), nil)
			if err != nil {
				return w.fail(fmt.Errorf("read pin %s: %w", p.root, err))
			}
			if held {
				continue
			}
		}
		batch.Put(pinKey(p.root), encodePin(pinRecord{origin: p.origin}))
	}
	if err := w.s.writeIndex(batch, true); err != nil {
		w.indexWriteFailed()
		return w.fail(err)
	}
	w.markCommitted()
	return nil
}

// indexWriteFailed handles an index write whose outcome is unknown: the
// batch may have reached the journal and come back at the next open even
// though its sync failed. The packs it points into must then still hold
// the bytes, so they are kept as they are (never cut back) and take no
// more appends; Open reconciles them with whatever the index says.
func (w *Writer) indexWriteFailed() {
	for _, p := range w.toSync {
		w.markBroken(p)
	}
}

// syncPacks makes every byte appended so far durable: it flushes the
// buffer, fsyncs each pack written to and, for new packs, their directory.
func (w *Writer) syncPacks() error {
	if err := w.collectBackgroundSync(true); err != nil {
		return err
	}
	if w.bw != nil && w.cur != nil {
		if err := w.bw.Flush(); err != nil {
			w.markBroken(w.cur)
			return w.fail(fmt.Errorf("write pack %s: %w", w.cur.name, err))
		}
	}
	dirSync := false
	for _, p := range w.toSync {
		if err := p.f.Sync(); err != nil {
			// After a failed fsync the kernel may have dropped the dirty
			// pages: the pack's tail is unknown, so it takes no more writes.
			w.markBroken(p)
			return w.fail(fmt.Errorf("sync pack %s: %w", p.name, err))
		}
		dirSync = dirSync || p.fresh
	}
	if dirSync {
		if err := w.s.fs.SyncDir(w.s.packs.dir); err != nil {
			return w.fail(fmt.Errorf("sync pack directory: %w", err))
		}
	}
	return nil
}

// markCommitted records that everything appended is indexed: the packs'
// committed lengths move to their ends and full packs go back to the set.
func (w *Writer) markCommitted() {
	w.s.packs.mu.Lock()
	for _, p := range w.toSync {
		p.committed = p.end
		p.fresh = false
	}
	w.s.packs.mu.Unlock()
	// Full packs are done; the current one stays with the writer.
	for _, p := range w.toSync {
		if p != w.cur {
			w.s.packs.giveBack(p)
		}
	}
	w.toSync = w.toSync[:0]
	if w.cur != nil {
		w.toSync = append(w.toSync, w.cur)
	}
	w.pending = w.pending[:0]
	clear(w.pendingKeys)
	w.pins = w.pins[:0]
}

// Commit flushes and ends the write. The lease is released by Close.
func (w *Writer) Commit() error {
	if err := w.Flush(); err != nil {
		return err
	}
	w.releasePacks()
	return nil
}

func (w *Writer) fail(err error) error {
	if w.err == nil {
		w.err = err
	}
	return err
}

// releasePacks returns the writer's packs, cutting off anything not
// committed.
func (w *Writer) releasePacks() {
	// The background fsync must be done before a pack is cut back or
	// handed to another writer.
	if err := w.collectBackgroundSync(true); err != nil {
		w.s.log.Warn("background sync failed", "err", err)
	}
	for _, p := range w.toSync {
		w.s.packs.mu.Lock()
		committed, end, broken := p.committed, p.end, p.broken
		w.s.packs.mu.Unlock()
		if end > committed && !broken {
			if err := p.f.Truncate(committed); err != nil {
				w.s.log.Warn("cannot cut aborted write off pack", "file", p.name, "err", err)
				broken = true
			}
		}
		w.s.packs.mu.Lock()
		p.end = committed
		p.broken = p.broken || broken
		w.s.packs.mu.Unlock()
		w.s.packs.giveBack(p)
	}
	w.toSync, w.cur = nil, nil
	w.pending = nil
	w.pendingKeys = nil
}

// Close ends the write, dropping whatever was not flushed, and releases the
// lease. It is safe to call after Commit and more than once.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	w.closed = true
	w.releasePacks()
	w.lease.Release()
	return nil
}
