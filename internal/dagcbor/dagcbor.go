// Package dagcbor encodes Go structs as canonical DAG-CBOR and decodes
// only canonical DAG-CBOR, so that one value has exactly one encoding (and
// one CID, and one signature). It is a thin, strict layer over
// fxamacker/cbor: maps are sorted length-first as DAG-CBOR requires,
// indefinite lengths and duplicate keys are refused, sizes are bounded, and
// a decoded value must re-encode to the bytes it came from.
package dagcbor

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
)

// Limits on anything decoded; callers bound the total size themselves.
const (
	maxNesting  = 16
	maxElements = 1 << 16
)

// ErrNotCanonical is wrapped by Unmarshal for bytes that decode but are
// not the canonical encoding of the value they hold.
var ErrNotCanonical = errors.New("dagcbor: not canonical DAG-CBOR")

// cidTag is the CBOR tag DAG-CBOR gives to CIDs.
const cidTag = 42

// The codec tables are built once and never change.
var encMode, decMode = mustModes()

func mustModes() (cbor.EncMode, cbor.DecMode) {
	em, err := cbor.EncOptions{
		Sort:          cbor.SortLengthFirst,
		IndefLength:   cbor.IndefLengthForbidden,
		NilContainers: cbor.NilContainerAsEmpty,
	}.EncMode()
	if err != nil {
		panic(err)
	}
	dm, err := cbor.DecOptions{
		DupMapKey:         cbor.DupMapKeyEnforcedAPF,
		IndefLength:       cbor.IndefLengthForbidden,
		MaxNestedLevels:   maxNesting,
		MaxArrayElements:  maxElements,
		MaxMapPairs:       maxElements,
		ExtraReturnErrors: cbor.ExtraDecErrorUnknownField,
		NaN:               cbor.NaNDecodeForbidden,
		Inf:               cbor.InfDecodeForbidden,
	}.DecMode()
	if err != nil {
		panic(err)
	}
	return em, dm
}

// Marshal returns the canonical DAG-CBOR encoding of v.
func Marshal(v any) ([]byte, error) {
	b, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("dagcbor: encode %T: %w", v, err)
	}
	return b, nil
}

// Unmarshal decodes data into v and checks that data is the canonical
// encoding of the result: trailing bytes, unknown fields, non-minimal
// integers, unsorted maps and the like are all refused.
func Unmarshal(data []byte, v any) error {
	if err := decMode.Unmarshal(data, v); err != nil {
		return fmt.Errorf("dagcbor: decode %T: %w", v, err)
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return fmt.Errorf("dagcbor: re-encode %T: %w", v, err)
	}
	if !bytes.Equal(again, data) {
		return fmt.Errorf("%w (%T)", ErrNotCanonical, v)
	}
	return nil
}

// UnmarshalFirst is Unmarshal for the first data item of data: it decodes
// that item into v, checks that the item is the canonical encoding of the
// result, and returns the bytes after it.
func UnmarshalFirst(data []byte, v any) (rest []byte, err error) {
	rest, err = decMode.UnmarshalFirst(data, v)
	if err != nil {
		return nil, fmt.Errorf("dagcbor: decode %T: %w", v, err)
	}
	again, err := encMode.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("dagcbor: re-encode %T: %w", v, err)
	}
	if !bytes.Equal(again, data[:len(data)-len(rest)]) {
		return nil, fmt.Errorf("%w (%T)", ErrNotCanonical, v)
	}
	return rest, nil
}

// Raw is one data item left encoded, to be decoded later (or not at all).
// Decoding into a Raw keeps a slice of the input, not a copy: the input
// must not change while the Raw is in use. A Raw encodes as its bytes,
// which must be one well-formed item. Unmarshal checks that the value
// around a Raw is canonical, not the Raw itself: that is for whoever
// decodes it (with Unmarshal).
type Raw []byte

// MarshalCBOR implements cbor.Marshaler.
func (r Raw) MarshalCBOR() ([]byte, error) {
	if len(r) == 0 {
		return nil, errors.New("dagcbor: empty raw item")
	}
	return r, nil
}

// UnmarshalCBOR implements cbor.Unmarshaler.
func (r *Raw) UnmarshalCBOR(b []byte) error {
	*r = b
	return nil
}

// Link is a CID encoded the DAG-CBOR way: tag 42 around a byte string
// holding a zero byte and the binary CID.
type Link struct{ cid.Cid }

// MarshalCBOR implements cbor.Marshaler. It writes the three parts
// directly (tag 42, a byte string head, 0x00 and the CID), the canonical
// form the codec would produce, without going through it: links are in
// every vote, header, outcome and state list.
func (l Link) MarshalCBOR() ([]byte, error) {
	if !l.Defined() {
		return nil, errors.New("dagcbor: undefined CID")
	}
	key := l.KeyString()
	out := make([]byte, 0, 2+9+1+len(key))
	out = append(out, 0xd8, cidTag)
	out = appendHead(out, majorBytes, uint64(1+len(key)))
	out = append(out, 0)
	return append(out, key...), nil
}

// UnmarshalCBOR implements cbor.Unmarshaler: b is one data item, which
// must be tag 42 (in its one canonical head) around a byte string with a
// minimal length head holding 0x00 and exactly one binary CID.
func (l *Link) UnmarshalCBOR(b []byte) error {
	if len(b) < 2 || b[0] != 0xd8 {
		return errors.New("dagcbor: not a CID (tag 42)")
	}
	if b[1] != cidTag {
		return fmt.Errorf("dagcbor: tag %d where a CID (tag 42) belongs", b[1])
	}
	content, err := byteString(b[2:])
	if err != nil {
		return fmt.Errorf("dagcbor: CID content: %w", err)
	}
	if len(content) < 2 || content[0] != 0 {
		return errors.New("dagcbor: CID bytes without the 0x00 multibase prefix")
	}
	n, c, err := cid.CidFromBytes(content[1:])
	if err != nil {
		return fmt.Errorf("dagcbor: %w", err)
	}
	if n != len(content)-1 {
		return errors.New("dagcbor: trailing bytes after a CID")
	}
	l.Cid = c
	return nil
}

// majorBytes is CBOR's major type of byte strings.
const majorBytes = 2

// appendHead appends the minimal head of a data item of a major type and
// argument n.
func appendHead(out []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(out, m|byte(n))
	case n <= 0xff:
		return append(out, m|24, byte(n))
	case n <= 0xffff:
		return append(out, m|25, byte(n>>8), byte(n))
	case n <= 0xffffffff:
		return append(out, m|26, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, m|27, byte(n>>56), byte(n>>48), byte(n>>40), byte(n>>32), byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
}

// byteString returns the content of b, which must be exactly one definite
// byte string with a minimal length head.
func byteString(b []byte) ([]byte, error) {
	if len(b) == 0 || b[0]>>5 != majorBytes {
		return nil, errors.New("not a byte string")
	}
	info, rest := b[0]&0x1f, b[1:]
	var n uint64
	switch {
	case info < 24:
		n = uint64(info)
	case info <= 27:
		size := 1 << (info - 24)
		if len(rest) < size {
			return nil, errors.New("truncated length")
		}
		for _, x := range rest[:size] {
			n = n<<8 | uint64(x)
		}
		rest = rest[size:]
		if len(appendHead(nil, majorBytes, n)) != 1+size {
			return nil, ErrNotCanonical
		}
	default:
		return nil, errors.New("indefinite or reserved length")
	}
	if n != uint64(len(rest)) {
		return nil, errors.New("length does not match the item")
	}
	return rest, nil
}
