package wal

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"strconv"
	"strings"

	"auditnet/chain/pbft"
)

// MaxEntrySize bounds an entry's Data: the largest consensus message, so
// that any record the core emits fits.
const MaxEntrySize = pbft.MaxMessageSize

const (
	headerSize      = 24
	frameHeaderSize = 16
	formatVersion   = 1
	segmentExt      = ".wal"
	tmpExt          = ".tmp"
	segmentDigits   = 20
	// searchBudget bounds the bytes Open checksums while looking for a
	// valid frame after a bad one; past it Open cannot rule one out and
	// reports corruption.
	searchBudget = 1 << 30
)

var magic = [8]byte{'a', 'u', 'd', 'i', 't', 'w', 'a', 'l'}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// segmentName is the file name of segment seq.
func segmentName(seq uint64) string {
	return fmt.Sprintf("%0*d%s", segmentDigits, seq, segmentExt)
}

// parseSegmentName returns the sequence number of a segment file name.
func parseSegmentName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segmentExt)
	if !ok || len(digits) != segmentDigits {
		return 0, false
	}
	for _, c := range digits {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	return seq, err == nil
}

// isTempName reports whether name is a segment's temporary file.
func isTempName(name string) bool {
	base, ok := strings.CutSuffix(name, tmpExt)
	if !ok {
		return false
	}
	_, ok = parseSegmentName(base)
	return ok
}

// appendHeader appends the header of segment seq to b.
func appendHeader(b []byte, seq uint64) []byte {
	start := len(b)
	b = append(b, magic[:]...)
	b = binary.LittleEndian.AppendUint32(b, formatVersion)
	b = binary.LittleEndian.AppendUint64(b, seq)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b[start:], castagnoli))
}

// checkHeader checks the header of segment seq at the start of b.
func checkHeader(b []byte, seq uint64) error {
	if len(b) < headerSize {
		return fmt.Errorf("header of %d bytes, want %d", len(b), headerSize)
	}
	h := b[:headerSize]
	if !bytes.Equal(h[:8], magic[:]) {
		return fmt.Errorf("bad magic %q", h[:8])
	}
	if got, want := binary.LittleEndian.Uint32(h[20:]), crc32.Checksum(h[:20], castagnoli); got != want {
		return fmt.Errorf("header checksum %08x, want %08x", got, want)
	}
	if v := binary.LittleEndian.Uint32(h[8:]); v != formatVersion {
		return fmt.Errorf("format version %d, this build reads %d", v, formatVersion)
	}
	if s := binary.LittleEndian.Uint64(h[12:]); s != seq {
		return fmt.Errorf("header names segment %d", s)
	}
	return nil
}

// tornHeader reports whether b, the whole of a last segment whose header
// is bad, is what an interrupted creation leaves: fewer bytes than a
// header that agree with it, or nothing but zeros.
func tornHeader(b []byte, seq uint64) bool {
	if len(b) < headerSize && bytes.HasPrefix(appendHeader(nil, seq), b) {
		return true
	}
	return allZero(b)
}

// appendFrame appends e's frame to b. Height and payload are contiguous,
// so one checksum covers both.
func appendFrame(b []byte, e Entry) []byte {
	off := len(b)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(e.Data)))
	b = binary.LittleEndian.AppendUint32(b, 0)
	b = binary.LittleEndian.AppendUint64(b, e.Height)
	b = append(b, e.Data...)
	binary.LittleEndian.PutUint32(b[off+4:], crc32.Checksum(b[off+8:], castagnoli))
	return b
}

// readFrame reads the frame at off in b: its entry (Data aliases b) and
// its size, or why it is not a frame.
func readFrame(b []byte, off int) (Entry, int, string) {
	rest := len(b) - off
	if rest < frameHeaderSize {
		return Entry{}, 0, fmt.Sprintf("incomplete frame header (%d of %d bytes)", rest, frameHeaderSize)
	}
	n := binary.LittleEndian.Uint32(b[off:])
	if n > MaxEntrySize {
		return Entry{}, 0, fmt.Sprintf("frame length %d over the limit of %d", n, MaxEntrySize)
	}
	size := frameHeaderSize + int(n)
	if size > rest {
		return Entry{}, 0, fmt.Sprintf("incomplete frame (%d of %d bytes)", rest, size)
	}
	e := Entry{Height: binary.LittleEndian.Uint64(b[off+8:]), Data: b[off+frameHeaderSize : off+size : off+size]}
	if got, want := binary.LittleEndian.Uint32(b[off+4:]), crc32.Checksum(b[off+8:off+size], castagnoli); got != want {
		return Entry{}, 0, fmt.Sprintf("frame checksum %08x, want %08x", got, want)
	}
	return e, size, ""
}

// scanFrames reads the frames of a segment's bytes after its header. It
// returns the entries, the offset past the last good frame and, when
// bytes after it are not a frame, why.
func scanFrames(b []byte) (entries []Entry, end int, bad string) {
	off := headerSize
	for off < len(b) {
		e, size, why := readFrame(b, off)
		if why != "" {
			return entries, off, why
		}
		entries = append(entries, e)
		off += size
	}
	return entries, off, ""
}

// validFrameAfter looks for a valid frame starting anywhere in b at or
// after from, and reports the first one's offset. exhausted reports that
// the search gave up at off, past searchBudget checksummed bytes, so a
// valid frame cannot be ruled out.
func validFrameAfter(b []byte, from int) (off int, found, exhausted bool) {
	budget := searchBudget
	for p := from; p+frameHeaderSize <= len(b); p++ {
		n := int(binary.LittleEndian.Uint32(b[p:]))
		if n > MaxEntrySize || p+frameHeaderSize+n > len(b) {
			continue
		}
		if budget -= 8 + n; budget < 0 {
			return p, false, true
		}
		if _, _, why := readFrame(b, p); why == "" {
			return p, true, false
		}
	}
	return 0, false, false
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
