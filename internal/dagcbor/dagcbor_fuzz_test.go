package dagcbor

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// record has a field of every kind the wire types use.
type record struct {
	Name   string            `cbor:"name"`
	Count  int64             `cbor:"count,omitempty"`
	Size   uint64            `cbor:"size,omitempty"`
	Flag   bool              `cbor:"flag,omitempty"`
	Data   []byte            `cbor:"data,omitempty"`
	Root   Link              `cbor:"root"`
	Auth   *Link             `cbor:"auth,omitempty"`
	Links  []Link            `cbor:"links,omitempty"`
	Paths  [][]int           `cbor:"paths,omitempty"`
	Labels map[string]string `cbor:"labels,omitempty"`
	Raw    cbor.RawMessage   `cbor:"raw,omitempty"`
}

func testCID(codec uint64, data string) cid.Cid {
	c, err := cid.V1Builder{Codec: codec, MhType: mh.SHA2_256}.Sum([]byte(data))
	if err != nil {
		panic(err)
	}
	return c
}

// targets are the types FuzzUnmarshal decodes into.
func targets() []func() any {
	return []func() any{
		func() any { return new(record) },
		func() any { return new(Link) },
		func() any { return new([]Link) },
		func() any { return new(map[string]int64) },
		func() any { return new(any) },
	}
}

// FuzzUnmarshal: Unmarshal never panics, whatever the target, and when it
// succeeds the value encodes back to exactly the input (one value, one
// encoding), and decoding that again gives the same encoding.
func FuzzUnmarshal(f *testing.F) {
	root := Link{testCID(cid.Raw, "root")}
	auth := Link{testCID(cid.DagProtobuf, "auth")}
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		f.Fatal(err)
	}
	for _, v := range []any{
		record{Name: "a", Root: root},
		record{Name: "full", Count: -5, Size: 1 << 40, Flag: true, Data: []byte{0, 1}, Root: root, Auth: &auth,
			Links: []Link{root, auth, {v0}}, Paths: [][]int{{}, {0, 173}}, Labels: map[string]string{"b": "1", "aa": "2"}, Raw: cbor.RawMessage{0x01}},
		root,
		[]Link{root, {v0}},
		map[string]int64{"x": 1, "yy": -2},
	} {
		b, err := Marshal(v)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, b := range [][]byte{
		{},
		{0xa1, 0x61, 'a', 0x18, 0x01}, // non-minimal integer
		{0xa2, 0x62, 'b', 'b', 0x01, 0x61, 'a', 0x02}, // keys out of order
		{0xbf, 0x61, 'a', 0x01, 0xff},                 // indefinite-length map
		{0xd8, 0x2a, 0x41, 0x00},                      // tag 42 without a CID
		{0xd8, 0x2b, 0x40},                            // tag 43
		{0xfb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0},          // float 1.0
		{0xf9, 0x3c, 0x00},                            // half float 1.0
		{0x01, 0x01},                                  // trailing bytes
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, newTarget := range targets() {
			v := newTarget()
			if err := Unmarshal(b, v); err != nil {
				continue
			}
			again, err := Marshal(v)
			if err != nil {
				t.Fatalf("%T decoded from %x does not encode: %v", v, b, err)
			}
			if !bytes.Equal(again, b) {
				t.Fatalf("%T decoded from %x encodes to %x", v, b, again)
			}
			w := newTarget()
			if err := Unmarshal(again, w); err != nil {
				t.Fatalf("%T: its own encoding %x does not decode: %v", w, again, err)
			}
		}
	})
}

// TestUnmarshalRefusesNonCanonical guards the strictness the fuzz target
// relies on, one vector per rule.
func TestUnmarshalRefusesNonCanonical(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"non-minimal integer", []byte{0xa1, 0x61, 'a', 0x18, 0x01}},
		{"keys out of order", []byte{0xa2, 0x62, 'b', 'b', 0x01, 0x61, 'a', 0x02}},
		{"duplicate key", []byte{0xa2, 0x61, 'a', 0x01, 0x61, 'a', 0x02}},
		{"indefinite map", []byte{0xbf, 0x61, 'a', 0x01, 0xff}},
		{"trailing bytes", []byte{0xa1, 0x61, 'a', 0x01, 0x00}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m map[string]int64
			if err := Unmarshal(tc.in, &m); err == nil {
				t.Fatalf("accepted %x as %v", tc.in, m)
			}
		})
	}
	var l Link
	for name, in := range map[string][]byte{
		"tag 43":         {0xd8, 0x2b, 0x41, 0x00},
		"no prefix":      append([]byte{0xd8, 0x2a, 0x58, 0x24}, testCID(cid.Raw, "x").Bytes()...),
		"empty CID":      {0xd8, 0x2a, 0x41, 0x00},
		"not bytes":      {0xd8, 0x2a, 0x61, 'a'},
		"trailing bytes": append(append([]byte{0xd8, 0x2a, 0x58, 0x26, 0x00}, testCID(cid.Raw, "x").Bytes()...), 0),
	} {
		if err := Unmarshal(in, &l); err == nil {
			t.Errorf("%s: accepted %x as a link", name, in)
		}
	}
	if _, err := Marshal(Link{}); err == nil {
		t.Error("encoded an undefined link")
	}
	if err := Unmarshal([]byte{0x18, 0x01}, new(int)); !errors.Is(err, ErrNotCanonical) {
		t.Errorf("non-minimal integer: %v, want ErrNotCanonical", err)
	}
}
