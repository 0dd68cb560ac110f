// Package car writes and reads CAR v1 archives (content-addressed
// archives, https://ipld.io/specs/transport/car/carv1/) of the store's
// DAGs, byte for byte as `ipfs dag export` writes them and readable by
// `ipfs dag import`.
package car

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"

	"auditnet/storage"
)

// Limits on what Import reads: a section holds one block (at most
// storage.MaxBlockSize) and its CID; a header holds a few roots.
const (
	maxSectionSize = storage.MaxBlockSize + 1024
	maxHeaderSize  = 64 << 10
)

// Export writes root's DAG as a CAR v1 with root as its only root: every
// distinct block once, depth first in link order, as `ipfs dag export`
// does. Each block is re-hashed as it is read from the store.
func Export(ctx context.Context, w io.Writer, s *storage.Store, root cid.Cid) error {
	bw := bufio.NewWriterSize(w, 1<<20)
	if _, err := bw.Write(header([]cid.Cid{root})); err != nil {
		return fmt.Errorf("write CAR header: %w", err)
	}
	err := s.WalkDAG(ctx, root, func(c cid.Cid, data []byte) error {
		n := uint64(c.ByteLen() + len(data))
		var lenBuf [binary.MaxVarintLen64]byte
		if _, err := bw.Write(lenBuf[:binary.PutUvarint(lenBuf[:], n)]); err != nil {
			return err
		}
		if _, err := bw.WriteString(c.KeyString()); err != nil {
			return err
		}
		_, err := bw.Write(data)
		return err
	})
	if err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("export %s: %w", root, err)
	}
	return nil
}

// header returns the length-prefixed CAR v1 header.
func header(roots []cid.Cid) []byte {
	h := EncodeHeader(roots)
	out := binary.AppendUvarint(nil, uint64(len(h)))
	return append(out, h...)
}

// EncodeHeader returns a CAR v1 header, {roots, version: 1} in canonical
// DAG-CBOR, without its length prefix (the fetch protocol frames it).
// DAG-CBOR orders map keys by length, so "roots" comes before "version".
func EncodeHeader(roots []cid.Cid) []byte {
	var h []byte
	h = cborHead(h, 5, 2) // map of two entries
	h = cborHead(h, 3, 5)
	h = append(h, "roots"...)
	h = cborHead(h, 4, uint64(len(roots)))
	for _, r := range roots {
		h = cborHead(h, 6, 42) // tag 42: a CID
		h = cborHead(h, 2, uint64(1+r.ByteLen()))
		h = append(h, 0) // the multibase identity prefix
		h = append(h, r.KeyString()...)
	}
	h = cborHead(h, 3, 7)
	h = append(h, "version"...)
	return cborHead(h, 0, 1)
}

// cborHead appends a CBOR initial byte and argument in the shortest form.
func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xff:
		return append(b, m|24, byte(n))
	case n <= 0xffff:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xffffffff:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

// ImportResult describes an imported CAR.
type ImportResult struct {
	Roots  []cid.Cid
	Blocks int
	Bytes  int64
}

// ErrNoRoots is returned for a CAR that names no root.
var ErrNoRoots = errors.New("car: archive has no roots")

// Reader reads the blocks of a CAR (v1, or v2 holding a v1) one at a time,
// checking each against its CID and refusing oversized headers and
// sections, so that a hostile archive can neither plant a block under a
// false CID nor make the reader allocate more than one block.
type Reader struct {
	br *carv2.BlockReader
	// Roots are the roots the header names.
	Roots []cid.Cid
}

// NewReader reads the CAR header from r.
func NewReader(r io.Reader) (*Reader, error) {
	br, err := carv2.NewBlockReader(r,
		carv2.MaxAllowedHeaderSize(maxHeaderSize),
		carv2.MaxAllowedSectionSize(maxSectionSize))
	if err != nil {
		return nil, fmt.Errorf("read CAR header: %w", err)
	}
	if len(br.Roots) == 0 {
		return nil, ErrNoRoots
	}
	return &Reader{br: br, Roots: br.Roots}, nil
}

// Next returns the next block, checked against its CID, or io.EOF.
func (r *Reader) Next() (cid.Cid, []byte, error) {
	blk, err := r.br.Next()
	if err != nil {
		return cid.Undef, nil, err
	}
	c, data := blk.Cid(), blk.RawData()
	if len(data) > storage.MaxBlockSize {
		return cid.Undef, nil, fmt.Errorf("block %s: %d bytes: %w", c, len(data), storage.ErrTooLarge)
	}
	// go-car checks the hash too; checking here as well keeps the
	// guarantee in this package, whatever the library's options become.
	sum, err := c.Prefix().Sum(data)
	if err != nil {
		return cid.Undef, nil, fmt.Errorf("block %s: %w", c, err)
	}
	if !sum.Equals(c) {
		return cid.Undef, nil, &storage.CorruptError{Cid: c, Reason: "CAR block does not match its CID"}
	}
	return c, data, nil
}

// Import reads a CAR, stores its blocks and pins every root, as `ipfs dag
// import` does. A root whose DAG the archive and the store do not hold
// completely fails the import and no root is pinned. Blocks are stored as
// they come through one storage.Writer: a truncated or corrupt archive
// leaves nothing pinned (blocks flushed before the failure are unpinned
// and go at the next GC).
func Import(ctx context.Context, r io.Reader, s *storage.Store) (ImportResult, error) {
	cr, err := NewReader(bufio.NewReaderSize(r, 1<<20))
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Roots: cr.Roots}
	w, err := s.NewWriter()
	if err != nil {
		return res, err
	}
	defer w.Close()
	for {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		c, data, err := cr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return res, fmt.Errorf("read CAR block %d: %w", res.Blocks, err)
		}
		if err := w.Put(c, data); err != nil {
			return res, err
		}
		res.Blocks++
		res.Bytes += int64(len(data))
	}
	if err := w.Flush(); err != nil {
		return res, err
	}
	// The writer's lease keeps every block until the pins are written.
	if err := s.Pin(ctx, res.Roots...); err != nil {
		return res, err
	}
	return res, w.Commit()
}
