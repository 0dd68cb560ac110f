package unixfs

import (
	"errors"
	"fmt"
	"math"

	"google.golang.org/protobuf/encoding/protowire"
)

// DataType is the UnixFS node type.
type DataType int32

// UnixFS node types, as in unixfs.proto.
const (
	TypeRaw       DataType = 0
	TypeDirectory DataType = 1
	TypeFile      DataType = 2
	TypeMetadata  DataType = 3
	TypeSymlink   DataType = 4
	TypeHAMTShard DataType = 5
)

func (t DataType) String() string {
	switch t {
	case TypeRaw:
		return "raw"
	case TypeDirectory:
		return "directory"
	case TypeFile:
		return "file"
	case TypeMetadata:
		return "metadata"
	case TypeSymlink:
		return "symlink"
	case TypeHAMTShard:
		return "hamt-shard"
	}
	return fmt.Sprintf("type(%d)", int32(t))
}

// Field numbers of the UnixFS Data message.
const (
	fieldType       = 1
	fieldData       = 2
	fieldFileSize   = 3
	fieldBlockSizes = 4
	fieldHashType   = 5
	fieldFanout     = 6
	fieldMode       = 7
	fieldMtime      = 8
)

// HashMurmur3 is the multicodec of murmur3-x64-64, the only hash UnixFS HAMT
// shards use.
const HashMurmur3 = 0x22

// ErrMalformedData is wrapped by every UnixFS decoding error.
var ErrMalformedData = errors.New("unixfs: malformed data")

// Data is the UnixFS Data message carried in a dag-pb node's Data field.
// Optional fields have a Has flag; Data is nil when absent.
type Data struct {
	Type        DataType
	Data        []byte
	FileSize    uint64
	HasFileSize bool
	BlockSizes  []uint64
	HashType    uint64
	HasHashType bool
	Fanout      uint64
	HasFanout   bool
	Mode        uint32
	HasMode     bool
	// Mtime is kept as its raw encoded message when present; auditnet
	// neither writes nor interprets it.
	Mtime []byte
}

// Marshal encodes d in field order, as protobuf (proto2) writers do. The
// type must be one of the Type constants; anything else is a bug in the
// caller and panics, since DecodeData would refuse the result.
func (d *Data) Marshal() []byte {
	if d.Type < TypeRaw || d.Type > TypeHAMTShard {
		panic(fmt.Sprintf("unixfs: marshal of unknown type %d", d.Type))
	}
	b := make([]byte, 0, 16+len(d.Data)+11*len(d.BlockSizes))
	b = protowire.AppendTag(b, fieldType, protowire.VarintType)
	b = protowire.AppendVarint(b, uint64(d.Type))
	if d.Data != nil {
		b = protowire.AppendTag(b, fieldData, protowire.BytesType)
		b = protowire.AppendBytes(b, d.Data)
	}
	if d.HasFileSize {
		b = protowire.AppendTag(b, fieldFileSize, protowire.VarintType)
		b = protowire.AppendVarint(b, d.FileSize)
	}
	for _, s := range d.BlockSizes {
		b = protowire.AppendTag(b, fieldBlockSizes, protowire.VarintType)
		b = protowire.AppendVarint(b, s)
	}
	if d.HasHashType {
		b = protowire.AppendTag(b, fieldHashType, protowire.VarintType)
		b = protowire.AppendVarint(b, d.HashType)
	}
	if d.HasFanout {
		b = protowire.AppendTag(b, fieldFanout, protowire.VarintType)
		b = protowire.AppendVarint(b, d.Fanout)
	}
	if d.HasMode {
		b = protowire.AppendTag(b, fieldMode, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(d.Mode))
	}
	if d.Mtime != nil {
		b = protowire.AppendTag(b, fieldMtime, protowire.BytesType)
		b = protowire.AppendBytes(b, d.Mtime)
	}
	return b
}

// DecodeData parses a UnixFS Data message. It accepts what protobuf
// decoders accept for these fields (any order, packed or unpacked block
// sizes, unknown fields skipped) but rejects a missing type, an unknown
// type, a wrong wire type and truncated input. The result aliases b.
func DecodeData(b []byte) (Data, error) {
	var d Data
	sawType := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return Data{}, malformedData("bad tag")
		}
		b = b[n:]
		switch {
		case num == fieldBlockSizes && typ == protowire.BytesType:
			packed, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return Data{}, malformedData("bad packed block sizes")
			}
			b = b[n:]
			for len(packed) > 0 {
				v, m := protowire.ConsumeVarint(packed)
				if m < 0 {
					return Data{}, malformedData("bad packed block size")
				}
				d.BlockSizes = append(d.BlockSizes, v)
				packed = packed[m:]
			}
		case num == fieldType || num == fieldFileSize || num == fieldBlockSizes ||
			num == fieldHashType || num == fieldFanout || num == fieldMode:
			if typ != protowire.VarintType {
				return Data{}, malformedData("field %d has wire type %d", num, typ)
			}
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return Data{}, malformedData("bad varint in field %d", num)
			}
			b = b[n:]
			switch num {
			case fieldType:
				if v > uint64(TypeHAMTShard) {
					return Data{}, malformedData("unknown type %d", v)
				}
				d.Type, sawType = DataType(v), true
			case fieldFileSize:
				d.FileSize, d.HasFileSize = v, true
			case fieldBlockSizes:
				d.BlockSizes = append(d.BlockSizes, v)
			case fieldHashType:
				d.HashType, d.HasHashType = v, true
			case fieldFanout:
				d.Fanout, d.HasFanout = v, true
			case fieldMode:
				if v > math.MaxUint32 {
					return Data{}, malformedData("mode out of range")
				}
				d.Mode, d.HasMode = uint32(v), true
			}
		case num == fieldData || num == fieldMtime:
			if typ != protowire.BytesType {
				return Data{}, malformedData("field %d has wire type %d", num, typ)
			}
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return Data{}, malformedData("bad bytes in field %d", num)
			}
			b = b[n:]
			if num == fieldData {
				d.Data = v[:len(v):len(v)]
			} else {
				d.Mtime = v[:len(v):len(v)]
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return Data{}, malformedData("bad field %d", num)
			}
			b = b[n:]
		}
	}
	if !sawType {
		return Data{}, malformedData("no type")
	}
	return d, nil
}

func malformedData(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformedData, fmt.Sprintf(format, args...))
}
