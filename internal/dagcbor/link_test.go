package dagcbor

import (
	"bytes"
	"errors"
	"testing"

	"github.com/fxamacker/cbor/v2"
	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// TestLinkMatchesCodec checks that Link's hand-written encoding is the
// one the codec gives tag 42 around 0x00 and the CID, for CIDs whose byte
// string heads take one, two and three bytes, and that it decodes back.
func TestLinkMatchesCodec(t *testing.T) {
	v0, err := cid.Decode("QmdfTbBqBPQ7VNxZEYEj14VmRuZBkqFbiwReogJgS1zR1n")
	if err != nil {
		t.Fatal(err)
	}
	long, err := mh.Encode(bytes.Repeat([]byte{7}, 300), mh.IDENTITY)
	if err != nil {
		t.Fatal(err)
	}
	short, err := mh.Encode([]byte{1, 2}, mh.IDENTITY)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []cid.Cid{v0, testCID(cid.DagCBOR, "x"), cid.NewCidV1(cid.Raw, long), cid.NewCidV1(cid.Raw, short)} {
		got, err := Link{c}.MarshalCBOR()
		if err != nil {
			t.Fatal(err)
		}
		want, err := encMode.Marshal(cbor.Tag{Number: cidTag, Content: append([]byte{0}, c.Bytes()...)})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("%s: encoded %x, the codec %x", c, got, want)
		}
		var back Link
		if err := Unmarshal(got, &back); err != nil || !back.Equals(c) {
			t.Fatalf("%s: decoded %v, %v", c, back, err)
		}
	}
}

// TestLinkRefusesNonMinimalLength: a byte string head longer than it
// needs to be is not canonical, even inside a link.
func TestLinkRefusesNonMinimalLength(t *testing.T) {
	c := testCID(cid.Raw, "x").Bytes()
	in := append([]byte{0xd8, 0x2a, 0x59, 0x00, byte(len(c) + 1), 0x00}, c...)
	var l Link
	err := Unmarshal(in, &l)
	if !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("%v, want ErrNotCanonical", err)
	}
	indef := append(append([]byte{0xd8, 0x2a, 0x5f, byte(0x40 + len(c) + 1), 0x00}, c...), 0xff)
	if err := Unmarshal(indef, &l); err == nil {
		t.Fatalf("accepted an indefinite-length CID: %v", err)
	}
}

// TestUnmarshalFirst decodes the first of two items strictly and returns
// the second; a non-canonical first item is refused.
func TestUnmarshalFirst(t *testing.T) {
	var n uint64
	rest, err := UnmarshalFirst([]byte{0x05, 0x61, 'a'}, &n)
	if err != nil || n != 5 || !bytes.Equal(rest, []byte{0x61, 'a'}) {
		t.Fatalf("got %d, rest %x, %v", n, rest, err)
	}
	if _, err := UnmarshalFirst([]byte{0x18, 0x05, 0x00}, &n); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("non-minimal first item: %v, want ErrNotCanonical", err)
	}
	if _, err := UnmarshalFirst([]byte{0x18}, &n); err == nil {
		t.Fatal("accepted a truncated item")
	}
}

// TestRaw: items left encoded in a Raw come back byte for byte; a Raw's
// own canonical form is checked when it is decoded, not before.
func TestRaw(t *testing.T) {
	type outer struct {
		Items []Raw `cbor:"items"`
	}
	in, err := Marshal(map[string][]any{"items": {uint64(1), "two", []byte{3}}})
	if err != nil {
		t.Fatal(err)
	}
	var o outer
	if err := Unmarshal(in, &o); err != nil {
		t.Fatal(err)
	}
	var s string
	if len(o.Items) != 3 || Unmarshal(o.Items[1], &s) != nil || s != "two" {
		t.Fatalf("items %x", o.Items)
	}
	again, err := Marshal(&o)
	if err != nil || !bytes.Equal(again, in) {
		t.Fatalf("re-encoded %x, %v", again, err)
	}
	bad := bytes.Replace(in, []byte{0x01}, []byte{0x18, 0x01}, 1) // 1 as a two-byte integer
	if err := Unmarshal(bad, &o); err != nil {
		t.Fatal(err)
	}
	var n uint64
	if err := Unmarshal(o.Items[0], &n); !errors.Is(err, ErrNotCanonical) {
		t.Fatalf("a non-canonical item: %v", err)
	}
}
