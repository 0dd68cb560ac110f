package index

import (
	"encoding/binary"
	"fmt"
	"math"
)

// Key prefixes (doc.go, "Key layout").
var (
	keyFormat = []byte("m/format")
	keyLast   = []byte("m/last")
)

const (
	prefixEvent   = "e/"
	prefixDataset = "d/"
	prefixAuditor = "a/"
	prefixAgency  = "g/"
	prefixTx      = "x/"
	prefixTime    = "t/"
)

// format is the version of the key layout and the event encoding.
const format = "auditnet/index/v1"

// place is an event's position in the chain: its block, and the index of
// its outcome in the block's results.
type place struct {
	height uint64
	pos    uint32
}

const placeLen = 12

func (p place) bytes() []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, placeLen), p.height)
	return binary.BigEndian.AppendUint32(b, p.pos)
}

func (p place) less(q place) bool {
	return p.height < q.height || p.height == q.height && p.pos < q.pos
}

// next is the place right after p.
func (p place) next() place {
	if p.pos == math.MaxUint32 {
		return place{height: p.height + 1}
	}
	return place{height: p.height, pos: p.pos + 1}
}

func placeFrom(b []byte) (place, error) {
	if len(b) != placeLen {
		return place{}, fmt.Errorf("%d bytes where a height and position belong", len(b))
	}
	return place{height: binary.BigEndian.Uint64(b), pos: binary.BigEndian.Uint32(b[8:])}, nil
}

// lengthPrefixed appends b to dst after its uvarint length.
func lengthPrefixed(dst, b []byte) []byte {
	return append(binary.AppendUvarint(dst, uint64(len(b))), b...)
}

// secondaryPrefix is the prefix of a secondary index's entries for one
// value (a root CID's bytes, an auditor, an agency).
func secondaryPrefix(prefix string, value []byte) []byte {
	return lengthPrefixed([]byte(prefix), value)
}

func eventKey(p place) []byte { return append([]byte(prefixEvent), p.bytes()...) }

func txKey(id []byte) []byte { return lengthPrefixed([]byte(prefixTx), id) }

// timeBytes orders times as unsigned big-endian numbers do.
func timeBytes(t int64) []byte {
	return binary.BigEndian.AppendUint64(nil, uint64(t)^(1<<63))
}

func timeKey(t int64, h uint64) []byte {
	k := append([]byte(prefixTime), timeBytes(t)...)
	return binary.BigEndian.AppendUint64(k, h)
}

// heightOfTimeKey returns the height a t/ key names.
func heightOfTimeKey(k []byte) (uint64, error) {
	if len(k) != len(prefixTime)+16 {
		return 0, fmt.Errorf("time key of %d bytes", len(k))
	}
	return binary.BigEndian.Uint64(k[len(prefixTime)+8:]), nil
}

// lastRecord is the value of m/last: the last indexed height and its block
// time.
func lastRecord(h uint64, t int64) []byte {
	return binary.BigEndian.AppendUint64(binary.BigEndian.AppendUint64(nil, h), uint64(t))
}

func parseLastRecord(b []byte) (uint64, int64, error) {
	if len(b) != 16 {
		return 0, 0, fmt.Errorf("last height record of %d bytes, want 16", len(b))
	}
	return binary.BigEndian.Uint64(b), int64(binary.BigEndian.Uint64(b[8:])), nil
}
