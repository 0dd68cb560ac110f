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

// Link is a CID encoded the DAG-CBOR way: tag 42 around a byte string
// holding a zero byte and the binary CID.
type Link struct{ cid.Cid }

// MarshalCBOR implements cbor.Marshaler.
func (l Link) MarshalCBOR() ([]byte, error) {
	if !l.Defined() {
		return nil, errors.New("dagcbor: undefined CID")
	}
	return encMode.Marshal(cbor.Tag{Number: cidTag, Content: append([]byte{0}, l.Bytes()...)})
}

// UnmarshalCBOR implements cbor.Unmarshaler.
func (l *Link) UnmarshalCBOR(b []byte) error {
	var t cbor.RawTag
	if err := decMode.Unmarshal(b, &t); err != nil {
		return err
	}
	if t.Number != cidTag {
		return fmt.Errorf("dagcbor: tag %d where a CID (tag 42) belongs", t.Number)
	}
	var content []byte
	if err := decMode.Unmarshal(t.Content, &content); err != nil {
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
