package unixfs

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
)

// sameData reports how got and want differ, telling an absent field from a
// present, empty one.
func sameData(got, want Data) error {
	switch {
	case got.Type != want.Type:
		return fmt.Errorf("type %s, want %s", got.Type, want.Type)
	case (got.Data == nil) != (want.Data == nil) || !bytes.Equal(got.Data, want.Data):
		return fmt.Errorf("data %x, want %x", got.Data, want.Data)
	case got.FileSize != want.FileSize || got.HasFileSize != want.HasFileSize:
		return fmt.Errorf("file size %d (%t), want %d (%t)", got.FileSize, got.HasFileSize, want.FileSize, want.HasFileSize)
	case len(got.BlockSizes) != len(want.BlockSizes) || fmt.Sprint(got.BlockSizes) != fmt.Sprint(want.BlockSizes):
		return fmt.Errorf("block sizes %v, want %v", got.BlockSizes, want.BlockSizes)
	case got.HashType != want.HashType || got.HasHashType != want.HasHashType:
		return fmt.Errorf("hash type %d (%t), want %d (%t)", got.HashType, got.HasHashType, want.HashType, want.HasHashType)
	case got.Fanout != want.Fanout || got.HasFanout != want.HasFanout:
		return fmt.Errorf("fanout %d (%t), want %d (%t)", got.Fanout, got.HasFanout, want.Fanout, want.HasFanout)
	case got.Mode != want.Mode || got.HasMode != want.HasMode:
		return fmt.Errorf("mode %o (%t), want %o (%t)", got.Mode, got.HasMode, want.Mode, want.HasMode)
	case (got.Mtime == nil) != (want.Mtime == nil) || !bytes.Equal(got.Mtime, want.Mtime):
		return fmt.Errorf("mtime %x, want %x", got.Mtime, want.Mtime)
	}
	return nil
}

// FuzzDecodeData: DecodeData never panics, rejects only with
// ErrMalformedData, and what it accepts survives Marshal: decode, marshal,
// decode gives an equal Data, and Marshal is then a fixed point.
func FuzzDecodeData(f *testing.F) {
	for _, d := range []Data{
		{Type: TypeRaw},
		{Type: TypeFile, Data: []byte("hello"), FileSize: 5, HasFileSize: true},
		{Type: TypeFile, FileSize: 1 << 40, HasFileSize: true, BlockSizes: []uint64{262144, 262144, 1 << 39}},
		{Type: TypeFile, Data: []byte{}},
		{Type: TypeDirectory},
		{Type: TypeDirectory, Mode: 0o755, HasMode: true, Mtime: []byte{0x08, 0x80, 0xe6, 0xd8, 0xba, 0x06}},
		{Type: TypeHAMTShard, Data: []byte{0x81, 0x00, 0x04}, HashType: HashMurmur3, HasHashType: true, Fanout: 256, HasFanout: true},
		{Type: TypeSymlink, Data: []byte("../target")},
		{Type: TypeMetadata, Data: []byte("mime")},
	} {
		f.Add(d.Marshal())
	}
	// Forms other writers produce: packed block sizes, fields out of
	// order, unknown fields, a repeated type.
	packed := protowire.AppendTag(nil, fieldType, protowire.VarintType)
	packed = protowire.AppendVarint(packed, uint64(TypeFile))
	packed = protowire.AppendTag(packed, fieldBlockSizes, protowire.BytesType)
	packed = protowire.AppendBytes(packed, protowire.AppendVarint(protowire.AppendVarint(nil, 300), 7))
	f.Add(packed)
	f.Add([]byte{0x18, 0x05, 0x08, 0x02})                         // file size before type
	f.Add([]byte{0x08, 0x01, 0x50, 0x07, 0x5a, 0x00})             // unknown varint and bytes fields 10 and 11
	f.Add([]byte{0x08, 0x01, 0x08, 0x02})                         // type twice
	f.Add([]byte{0x08, 0x06})                                     // unknown type
	f.Add([]byte{0x08, 0x01, 0x38, 0x80, 0x80, 0x80, 0x80, 0x10}) // mode past 32 bits
	f.Add([]byte{0x08, 0x01, 0x63, 0x64})                         // a group
	f.Fuzz(func(t *testing.T, in []byte) {
		d, err := DecodeData(in)
		if err != nil {
			if !errors.Is(err, ErrMalformedData) {
				t.Fatalf("error %v does not wrap ErrMalformedData", err)
			}
			return
		}
		enc := d.Marshal()
		again, err := DecodeData(enc)
		if err != nil {
			t.Fatalf("%x decodes to %+v, which marshals to %x, which does not decode: %v", in, d, enc, err)
		}
		if err := sameData(again, d); err != nil {
			t.Fatalf("%x: after marshal and decode: %v", in, err)
		}
		if enc2 := again.Marshal(); !bytes.Equal(enc2, enc) {
			t.Fatalf("%x: Marshal is not a fixed point: %x, then %x", in, enc, enc2)
		}
	})
}
