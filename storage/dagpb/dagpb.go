// Package dagpb encodes and decodes dag-pb nodes (multicodec 0x70), the
// protobuf form that UnixFS DAGs are made of.
//
// Decoding is strict, as the IPLD dag-pb specification asks: links come
// before data, fields within a link are in order, nothing unknown or
// duplicated is accepted and varints are minimal. One node therefore has one
// encoding, and Decode followed by Marshal gives back the input bytes.
package dagpb

import (
	"errors"
	"fmt"
	"math"

	"github.com/ipfs/go-cid"
	"google.golang.org/protobuf/encoding/protowire"
)

// Codec is the multicodec code of dag-pb.
const Codec = 0x70

// Protobuf field numbers of PBNode and PBLink.
const (
	fieldNodeData  = 1
	fieldNodeLinks = 2
	fieldLinkHash  = 1
	fieldLinkName  = 2
	fieldLinkTsize = 3
)

// ErrMalformed is wrapped by every decoding error.
var ErrMalformed = errors.New("dagpb: malformed node")

// Link is a PBLink: a named, sized reference to another block.
type Link struct {
	// Hash is the CID of the linked block.
	Hash cid.Cid
	// Name is the link's name; HasName tells whether the field is present.
	Name    string
	HasName bool
	// Tsize is the cumulative size of the linked DAG; HasTsize tells
	// whether the field is present.
	Tsize    uint64
	HasTsize bool
}

// NewLink returns a link with its name and size present, as UnixFS writers
// (kubo, boxo) produce them.
func NewLink(c cid.Cid, name string, tsize uint64) Link {
	return Link{Hash: c, Name: name, HasName: true, Tsize: tsize, HasTsize: true}
}

// Node is a PBNode. Data is nil when the field is absent; an empty non-nil
// slice is a present, empty field.
type Node struct {
	Links []Link
	Data  []byte
}

// Validate reports whether the node can be encoded into bytes that Decode
// accepts: every link has a hash and a size below 2^63.
func (n *Node) Validate() error {
	for i, l := range n.Links {
		if !l.Hash.Defined() {
			return malformed("link %d has no hash", i)
		}
		if l.Tsize > math.MaxInt64 {
			return malformed("link %d size %d out of range", i, l.Tsize)
		}
	}
	return nil
}

// Marshal returns the node's canonical encoding. Links are written in the
// order given; UnixFS writers sort directory links by name first. The node
// must be valid (see Validate): encoding a link without a hash is a bug in
// the caller, and Marshal panics on it rather than write a block that no
// decoder accepts.
func (n *Node) Marshal() []byte {
	if err := n.Validate(); err != nil {
		panic(fmt.Sprintf("dagpb: marshal of an invalid node: %v", err))
	}
	return n.AppendMarshal(make([]byte, 0, n.size()))
}

// AppendMarshal appends the node's encoding to b.
func (n *Node) AppendMarshal(b []byte) []byte {
	for i := range n.Links {
		l := &n.Links[i]
		b = protowire.AppendTag(b, fieldNodeLinks, protowire.BytesType)
		b = protowire.AppendVarint(b, uint64(l.size()))
		b = l.appendMarshal(b)
	}
	if n.Data != nil {
		b = protowire.AppendTag(b, fieldNodeData, protowire.BytesType)
		b = protowire.AppendBytes(b, n.Data)
	}
	return b
}

func (n *Node) size() int {
	s := 0
	for i := range n.Links {
		ls := n.Links[i].size()
		s += 1 + protowire.SizeVarint(uint64(ls)) + ls
	}
	if n.Data != nil {
		s += 1 + protowire.SizeBytes(len(n.Data))
	}
	return s
}

func (l *Link) size() int {
	s := 1 + protowire.SizeBytes(l.Hash.ByteLen())
	if l.HasName {
		s += 1 + protowire.SizeBytes(len(l.Name))
	}
	if l.HasTsize {
		s += 1 + protowire.SizeVarint(l.Tsize)
	}
	return s
}

func (l *Link) appendMarshal(b []byte) []byte {
	b = protowire.AppendTag(b, fieldLinkHash, protowire.BytesType)
	b = protowire.AppendVarint(b, uint64(l.Hash.ByteLen()))
	b = append(b, l.Hash.KeyString()...)
	if l.HasName {
		b = protowire.AppendTag(b, fieldLinkName, protowire.BytesType)
		b = protowire.AppendString(b, l.Name)
	}
	if l.HasTsize {
		b = protowire.AppendTag(b, fieldLinkTsize, protowire.VarintType)
		b = protowire.AppendVarint(b, l.Tsize)
	}
	return b
}

// Decode parses a dag-pb block. The returned node's Data aliases b.
func Decode(b []byte) (Node, error) {
	var n Node
	sawData := false
	for len(b) > 0 {
		num, typ, rest, err := consumeTag(b)
		if err != nil {
			return Node{}, err
		}
		if typ != protowire.BytesType {
			return Node{}, malformed("field %d has wire type %d, want bytes", num, typ)
		}
		val, rest, err := consumeBytes(rest)
		if err != nil {
			return Node{}, err
		}
		switch num {
		case fieldNodeLinks:
			if sawData {
				return Node{}, malformed("link after data")
			}
			l, err := decodeLink(val)
			if err != nil {
				return Node{}, fmt.Errorf("link %d: %w", len(n.Links), err)
			}
			n.Links = append(n.Links, l)
		case fieldNodeData:
			if sawData {
				return Node{}, malformed("duplicate data field")
			}
			sawData = true
			n.Data = val[:len(val):len(val)]
		default:
			return Node{}, malformed("unknown node field %d", num)
		}
		b = rest
	}
	return n, nil
}

func decodeLink(b []byte) (Link, error) {
	var l Link
	last := 0
	for len(b) > 0 {
		num, typ, rest, err := consumeTag(b)
		if err != nil {
			return Link{}, err
		}
		if int(num) <= last {
			return Link{}, malformed("link field %d out of order or duplicated", num)
		}
		last = int(num)
		switch num {
		case fieldLinkHash, fieldLinkName:
			if typ != protowire.BytesType {
				return Link{}, malformed("link field %d has wire type %d", num, typ)
			}
			val, r, err := consumeBytes(rest)
			if err != nil {
				return Link{}, err
			}
			rest = r
			if num == fieldLinkHash {
				c, err := cid.Cast(val)
				if err != nil {
					return Link{}, malformed("link hash: %v", err)
				}
				l.Hash = c
			} else {
				l.Name, l.HasName = string(val), true
			}
		case fieldLinkTsize:
			if typ != protowire.VarintType {
				return Link{}, malformed("link size has wire type %d", typ)
			}
			v, r, err := consumeVarint(rest)
			if err != nil {
				return Link{}, err
			}
			if v > math.MaxInt64 {
				return Link{}, malformed("link size %d out of range", v)
			}
			rest = r
			l.Tsize, l.HasTsize = v, true
		default:
			return Link{}, malformed("unknown link field %d", num)
		}
		b = rest
	}
	if !l.Hash.Defined() {
		return Link{}, malformed("link without hash")
	}
	return l, nil
}

func consumeTag(b []byte) (protowire.Number, protowire.Type, []byte, error) {
	v, rest, err := consumeVarint(b)
	if err != nil {
		return 0, 0, nil, err
	}
	num, typ := protowire.DecodeTag(v)
	if num < 1 || v>>3 > math.MaxInt32 {
		return 0, 0, nil, malformed("invalid field number")
	}
	return num, typ, rest, nil
}

// consumeVarint reads a minimally encoded varint.
func consumeVarint(b []byte) (uint64, []byte, error) {
	v, n := protowire.ConsumeVarint(b)
	if n < 0 {
		return 0, nil, malformed("bad varint")
	}
	if n != protowire.SizeVarint(v) {
		return 0, nil, malformed("non-minimal varint")
	}
	return v, b[n:], nil
}

func consumeBytes(b []byte) ([]byte, []byte, error) {
	l, rest, err := consumeVarint(b)
	if err != nil {
		return nil, nil, err
	}
	if l > uint64(len(rest)) {
		return nil, nil, malformed("length %d past end of block", l)
	}
	return rest[:l], rest[l:], nil
}

func malformed(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrMalformed, fmt.Sprintf(format, args...))
}
