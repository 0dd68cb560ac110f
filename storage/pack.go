package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"strconv"
	"strings"
	"sync"
)

// A pack is an append-only file of block records:
//
//	u32 little-endian data length | u8 key length | key (multihash) | data
//
// The index (leveldb) maps each multihash to (pack, offset, length) of its
// data and records, per pack, the length up to which the pack is durable
// and indexed ("committed"). Bytes past the committed length are the tail
// of a write that was never acknowledged; Open cuts them off.
const (
	recordHeaderSize = 5
	packSuffix       = ".pack"
)

func packName(id uint32) string { return fmt.Sprintf("%08d%s", id, packSuffix) }

func parsePackName(name string) (uint32, bool) {
	digits, ok := strings.CutSuffix(name, packSuffix)
	if !ok || len(digits) != 8 {
		return 0, false
	}
	id, err := strconv.ParseUint(digits, 10, 32)
	return uint32(id), err == nil
}

// recordSize is the bytes a block of n data bytes under key takes in a pack.
func recordSize(key string, n int) int64 {
	return int64(recordHeaderSize + len(key) + n)
}

// location is where a block's data sits.
type location struct {
	pack   uint32
	offset int64
	length int64
}

func (l location) encode() []byte {
	b := make([]byte, 0, 3*binary.MaxVarintLen64)
	b = binary.AppendUvarint(b, uint64(l.pack))
	b = binary.AppendUvarint(b, uint64(l.offset))
	return binary.AppendUvarint(b, uint64(l.length))
}

func decodeLocation(b []byte) (location, error) {
	var v [3]uint64
	for i := range v {
		x, n := binary.Uvarint(b)
		if n <= 0 {
			return location{}, errors.New("storage: corrupt index entry")
		}
		v[i], b = x, b[n:]
	}
	if len(b) != 0 || v[0] > 1<<32-1 || v[1] > 1<<62 || v[2] > 1<<31 {
		return location{}, errors.New("storage: corrupt index entry")
	}
	return location{pack: uint32(v[0]), offset: int64(v[1]), length: int64(v[2])}, nil
}

// pack is one open pack file.
type pack struct {
	id   uint32
	f    File
	name string

	// Guarded by packSet.mu.
	refs      int   // readers in flight
	retired   bool  // removed from the set; closed when refs drops to 0
	busy      bool  // held by a writer or by compaction
	broken    bool  // a write or sync failed: never append again
	committed int64 // durable and indexed length
	end       int64 // write position (committed + unacknowledged tail)
	fresh     bool  // created since its directory was last synced
}

// packSet owns the open packs.
type packSet struct {
	fs      FS
	dir     string
	maxSize int64

	mu     sync.Mutex
	packs  map[uint32]*pack
	nextID uint32
}

func (ps *packSet) path(id uint32) string { return path.Join(ps.dir, packName(id)) }

// acquire returns pack id for reading, or nil if it no longer exists (its
// blocks moved: the caller looks the block up again).
func (ps *packSet) acquire(id uint32) *pack {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.packs[id]
	if p == nil || p.retired {
		return nil
	}
	p.refs++
	return p
}

func (ps *packSet) release(p *pack) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p.refs--
	if p.refs == 0 && p.retired {
		p.f.Close()
	}
}

// take hands out a pack to append to: an idle one with room, or a new one.
func (ps *packSet) take() (*pack, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var best *pack
	for _, p := range ps.packs {
		if p.busy || p.broken || p.retired || p.end >= ps.maxSize {
			continue
		}
		if best == nil || p.id < best.id {
			best = p
		}
	}
	if best != nil {
		best.busy = true
		return best, nil
	}
	id := ps.nextID
	name := ps.path(id)
	f, err := ps.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("create pack %s: %w", name, err)
	}
	ps.nextID++
	p := &pack{id: id, f: f, name: name, busy: true, fresh: true}
	ps.packs[id] = p
	return p, nil
}

// giveBack returns a pack taken for writing.
func (ps *packSet) giveBack(p *pack) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p.busy = false
}

// retire removes p from the set and deletes its file; open readers finish
// first on their own file handle.
func (ps *packSet) retire(p *pack) error {
	ps.mu.Lock()
	p.retired = true
	delete(ps.packs, p.id)
	if p.refs == 0 {
		p.f.Close()
	}
	ps.mu.Unlock()
	if err := ps.fs.Remove(p.name); err != nil && !isNotExist(err) {
		return fmt.Errorf("remove pack %s: %w", p.name, err)
	}
	return ps.fs.SyncDir(ps.dir)
}

// snapshot lists the packs and their committed lengths.
func (ps *packSet) snapshot() map[uint32]int64 {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	out := make(map[uint32]int64, len(ps.packs))
	for id, p := range ps.packs {
		out[id] = p.committed
	}
	return out
}

// claim marks an idle pack busy for compaction; nil if a writer holds it,
// or if it is broken: a broken pack may be named by an index batch whose
// outcome is unknown, so its bytes stay as they are until a reopen.
func (ps *packSet) claim(id uint32) *pack {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	p := ps.packs[id]
	if p == nil || p.busy || p.retired || p.broken {
		return nil
	}
	p.busy = true
	return p
}

func (ps *packSet) closeAll() error {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	var errs []error
	for id, p := range ps.packs {
		if err := p.f.Close(); err != nil {
			errs = append(errs, err)
		}
		delete(ps.packs, id)
	}
	return errors.Join(errs...)
}

// readAt reads exactly len(buf) bytes at off.
func readAt(f File, buf []byte, off int64) error {
	n, err := f.ReadAt(buf, off)
	if n == len(buf) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// appendRecordHeader appends the header of a record of n data bytes under
// key to hdr.
func appendRecordHeader(hdr []byte, key string, n int) []byte {
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(n))
	hdr = append(hdr, byte(len(key)))
	return append(hdr, key...)
}
