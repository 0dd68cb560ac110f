package dagpb

import (
	"bytes"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime/metrics"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ipldpb "github.com/ipld/go-codec-dagpb"
	cidlink "github.com/ipld/go-ipld-prime/linking/cid"
	"github.com/multiformats/go-multihash"
	"google.golang.org/protobuf/encoding/protowire"
)

// Wire-format builders for hand-made blocks, valid or not.

func cat(parts ...[]byte) []byte { return bytes.Join(parts, nil) }

// bytesField is field num with wire type 2 (length-delimited).
func bytesField(num protowire.Number, payload []byte) []byte {
	b := protowire.AppendTag(nil, num, protowire.BytesType)
	return protowire.AppendBytes(b, payload)
}

// varintField is field num with wire type 0.
func varintField(num protowire.Number, v uint64) []byte {
	b := protowire.AppendTag(nil, num, protowire.VarintType)
	return protowire.AppendVarint(b, v)
}

func dataField(d string) []byte         { return bytesField(1, []byte(d)) }
func linkField(fields ...[]byte) []byte { return bytesField(2, cat(fields...)) }
func hashField(c cid.Cid) []byte        { return bytesField(1, c.Bytes()) }
func nameField(name string) []byte      { return bytesField(2, []byte(name)) }
func tsizeField(v uint64) []byte        { return varintField(3, v) }

func mustHex(s string) []byte {
	b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
	if err != nil {
		panic(err)
	}
	return b
}

func sha256CID(codec uint64, data string) cid.Cid {
	h, err := multihash.Sum([]byte(data), multihash.SHA2_256, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(codec, h)
}

func identityCID(data string) cid.Cid {
	h, err := multihash.Sum([]byte(data), multihash.IDENTITY, -1)
	if err != nil {
		panic(err)
	}
	return cid.NewCidV1(cid.Raw, h)
}

var (
	rawCID   = sha256CID(cid.Raw, "leaf")
	pbCID    = sha256CID(cid.DagProtobuf, "node")
	v0CID    = cid.NewCidV0(sha256CID(cid.DagProtobuf, "v0").Hash())
	idCID    = identityCID("inline")
	emptyCID = identityCID("") // 01 55 00 00: the shortest CID
)

// sameNode reports how got and want differ, telling an absent field from
// a present, empty one.
func sameNode(got, want Node) error {
	if (got.Data == nil) != (want.Data == nil) || !bytes.Equal(got.Data, want.Data) {
		return fmt.Errorf("data %x (nil: %t), want %x (nil: %t)", got.Data, got.Data == nil, want.Data, want.Data == nil)
	}
	if len(got.Links) != len(want.Links) {
		return fmt.Errorf("%d links, want %d", len(got.Links), len(want.Links))
	}
	for i, g := range got.Links {
		w := want.Links[i]
		if !g.Hash.Equals(w.Hash) || g.Name != w.Name || g.HasName != w.HasName || g.Tsize != w.Tsize || g.HasTsize != w.HasTsize {
			return fmt.Errorf("link %d: %+v, want %+v", i, g, w)
		}
	}
	return nil
}

var roundTripTests = []struct {
	name string
	node Node
	wire []byte // the canonical encoding, built by hand
}{
	{name: "empty", node: Node{}, wire: []byte{}},
	{name: "empty data", node: Node{Data: []byte{}}, wire: mustHex("0a 00")},
	{name: "data", node: Node{Data: []byte("hello")}, wire: mustHex("0a 05 68656c6c6f")},
	{name: "data of 200 bytes", node: Node{Data: bytes.Repeat([]byte{0xff}, 200)}, wire: cat(mustHex("0a c801"), bytes.Repeat([]byte{0xff}, 200))},
	{
		name: "hash only",
		node: Node{Links: []Link{{Hash: rawCID}}},
		wire: linkField(hashField(rawCID)),
	},
	{
		name: "empty name and zero size present",
		node: Node{Links: []Link{{Hash: pbCID, HasName: true, HasTsize: true}}},
		wire: linkField(hashField(pbCID), nameField(""), tsizeField(0)),
	},
	{
		name: "name without size",
		node: Node{Links: []Link{{Hash: pbCID, Name: "a", HasName: true}}},
		wire: linkField(hashField(pbCID), nameField("a")),
	},
	{
		name: "size without name",
		node: Node{Links: []Link{{Hash: rawCID, Tsize: 300, HasTsize: true}}},
		wire: linkField(hashField(rawCID), tsizeField(300)),
	},
	{
		name: "cidv0 link",
		node: Node{Links: []Link{NewLink(v0CID, "v0", 1)}},
		wire: linkField(hashField(v0CID), nameField("v0"), tsizeField(1)),
	},
	{
		name: "identity cids",
		node: Node{Links: []Link{NewLink(idCID, "inline", 6), NewLink(emptyCID, "", 0)}},
		wire: cat(linkField(hashField(idCID), nameField("inline"), tsizeField(6)), linkField(hashField(emptyCID), nameField(""), tsizeField(0))),
	},
	{
		name: "largest size",
		node: Node{Links: []Link{NewLink(rawCID, "big", math.MaxInt64)}},
		wire: linkField(hashField(rawCID), nameField("big"), tsizeField(math.MaxInt64)),
	},
	{
		name: "unicode and non-UTF-8 names",
		node: Node{Links: []Link{NewLink(rawCID, "résumé 日本語 🙂", 4), NewLink(pbCID, "\xff\xfe", 5)}},
		wire: cat(linkField(hashField(rawCID), nameField("résumé 日本語 🙂"), tsizeField(4)), linkField(hashField(pbCID), nameField("\xff\xfe"), tsizeField(5))),
	},
	{
		name: "unsorted links and data",
		node: Node{Links: []Link{NewLink(rawCID, "b", 1), NewLink(pbCID, "a", 2)}, Data: []byte{8, 1}},
		wire: cat(linkField(hashField(rawCID), nameField("b"), tsizeField(1)), linkField(hashField(pbCID), nameField("a"), tsizeField(2)), mustHex("0a 02 0801")),
	},
}

func TestRoundTrip(t *testing.T) {
	for _, tc := range roundTripTests {
		t.Run(tc.name, func(t *testing.T) {
			got := tc.node.Marshal()
			if !bytes.Equal(got, tc.wire) {
				t.Fatalf("Marshal = %x, want %x", got, tc.wire)
			}
			if app := tc.node.AppendMarshal([]byte("prefix")); !bytes.Equal(app, cat([]byte("prefix"), tc.wire)) {
				t.Errorf("AppendMarshal = %x", app)
			}
			in := bytes.Clone(tc.wire)
			n, err := Decode(in)
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if err := sameNode(n, tc.node); err != nil {
				t.Fatal(err)
			}
			if again := n.Marshal(); !bytes.Equal(again, tc.wire) {
				t.Errorf("Marshal(Decode) = %x, want %x", again, tc.wire)
			}
			if n.Data != nil {
				_ = append(n.Data, 'x') // must not write into the block
				if !bytes.Equal(in, tc.wire) {
					t.Errorf("appending to Data changed the block: %x", in)
				}
			}
		})
	}
}

// TestMarshalManyLinks covers link lengths and counts that need multi-byte
// varints.
func TestMarshalManyLinks(t *testing.T) {
	var n Node
	var want [][]byte
	for i := range 300 {
		name := strings.Repeat("n", i)
		n.Links = append(n.Links, NewLink(rawCID, name, uint64(i)<<(i%54)))
		want = append(want, linkField(hashField(rawCID), nameField(name), tsizeField(uint64(i)<<(i%54))))
	}
	n.Data = bytes.Repeat([]byte("d"), 70000)
	want = append(want, bytesField(1, n.Data))
	got := n.Marshal()
	if !bytes.Equal(got, cat(want...)) {
		t.Fatal("Marshal differs from the hand-made encoding")
	}
	back, err := Decode(got)
	if err != nil {
		t.Fatal(err)
	}
	if err := sameNode(back, n); err != nil {
		t.Fatal(err)
	}
}

var (
	// A CID whose multihash claims 32 bytes of digest but carries 31.
	shortDigest = rawCID.Bytes()[:rawCID.ByteLen()-1]
	// A CID with a byte after its digest.
	trailingByte = cat(rawCID.Bytes(), []byte{0})
	// A well-formed varint that does not fit in 64 bits.
	overflow = mustHex("ffffffffffffffffff02")
)

// malformedTests are blocks Decode must reject. goCodecDagpb says whether
// go-codec-dagpb v1.7.0 accepts the block anyway: the dag-pb spec asks
// decoders to be strict, and go-codec-dagpb is lax about these.
var malformedTests = []struct {
	name         string
	want         string // in our error message
	in           []byte
	goCodecDagpb bool
}{
	// Node fields.
	{name: "data before links", want: "link after data", in: cat(dataField("d"), linkField(hashField(rawCID))), goCodecDagpb: true},
	{name: "links around data", want: "link after data", in: cat(linkField(hashField(rawCID)), dataField("d"), linkField(hashField(rawCID)))},
	{name: "duplicate data", want: "duplicate data", in: cat(dataField("a"), dataField("b"))},
	{name: "unknown node field", want: "unknown node field 3", in: bytesField(3, []byte("x"))},
	{name: "unknown node field 15", want: "unknown node field 15", in: bytesField(15, nil)},
	{name: "field number zero", want: "invalid field number", in: mustHex("02 00")},
	{name: "field number past 2^29", want: "invalid field number", in: cat(protowire.AppendVarint(nil, uint64(math.MaxInt32+1)<<3|2), []byte{0})},
	{name: "data as varint", want: "wire type 0", in: varintField(1, 5)},
	{name: "links as varint", want: "wire type 0", in: varintField(2, 5)},
	{name: "data as fixed32", want: "wire type 5", in: mustHex("0d 00000000")},
	{name: "links as fixed64", want: "wire type 1", in: mustHex("11 0000000000000000")},
	{name: "data as group", want: "wire type 3", in: mustHex("0b 0c")},
	{name: "wire type 7", want: "wire type 7", in: mustHex("0f")},
	// Link fields.
	{name: "empty link", want: "without hash", in: linkField()},
	{name: "missing hash", want: "without hash", in: linkField(nameField("a"), tsizeField(1))},
	{name: "name before hash", want: "out of order", in: linkField(nameField("a"), hashField(rawCID))},
	{name: "size before hash", want: "out of order", in: linkField(tsizeField(1), hashField(rawCID))},
	{name: "size before name", want: "out of order", in: linkField(hashField(rawCID), tsizeField(1), nameField("a"))},
	{name: "duplicate hash", want: "out of order or duplicated", in: linkField(hashField(rawCID), hashField(rawCID))},
	{name: "duplicate name", want: "out of order or duplicated", in: linkField(hashField(rawCID), nameField("a"), nameField("a"))},
	{name: "duplicate size", want: "out of order or duplicated", in: linkField(hashField(rawCID), tsizeField(1), tsizeField(1))},
	{name: "unknown link field", want: "unknown link field 4", in: linkField(hashField(rawCID), bytesField(4, nil))},
	{name: "unknown link field 0", want: "invalid field number", in: linkField(hashField(rawCID), mustHex("02 00"))},
	{name: "hash as varint", want: "wire type 0", in: linkField(varintField(1, 1))},
	{name: "name as varint", want: "wire type 0", in: linkField(hashField(rawCID), varintField(2, 1))},
	{name: "size as bytes", want: "wire type 2", in: linkField(hashField(rawCID), bytesField(3, []byte{1}))},
	{name: "size as fixed64", want: "wire type 1", in: linkField(hashField(rawCID), mustHex("19 0100000000000000"))},
	// Hashes.
	{name: "empty hash", want: "link hash", in: linkField(bytesField(1, nil))},
	{name: "garbage hash", want: "link hash", in: linkField(bytesField(1, []byte("not a cid")))},
	{name: "cid version 2", want: "link hash", in: linkField(bytesField(1, mustHex("02 55 00 00")))},
	{name: "cid with short digest", want: "link hash", in: linkField(bytesField(1, shortDigest))},
	{name: "cid with a trailing byte", want: "link hash", in: linkField(bytesField(1, trailingByte)), goCodecDagpb: true},
	{name: "cidv0 with a trailing byte", want: "link hash", in: linkField(bytesField(1, cat(v0CID.Bytes(), []byte{0}))), goCodecDagpb: true},
	{name: "cid with non-minimal codec", want: "link hash", in: linkField(bytesField(1, mustHex("01 d500 00 00")))},
	// Truncation.
	{name: "truncated tag", want: "bad varint", in: mustHex("8a")},
	{name: "tag without length", want: "bad varint", in: mustHex("0a")},
	{name: "truncated length", want: "bad varint", in: mustHex("0a 80")},
	{name: "data past the end", want: "past end", in: mustHex("0a 05 6869")},
	{name: "link past the end", want: "past end", in: mustHex("12 30 0a")},
	{name: "hash past the end", want: "past end", in: linkField(mustHex("0a 24 0155"))},
	{name: "name past the end", want: "past end", in: linkField(hashField(rawCID), mustHex("12 05 61"))},
	{name: "truncated size", want: "bad varint", in: linkField(hashField(rawCID), mustHex("18 80"))},
	{name: "size without value", want: "bad varint", in: linkField(hashField(rawCID), mustHex("18"))},
	{name: "length of 2^63", want: "past end", in: cat(mustHex("0a"), protowire.AppendVarint(nil, 1<<63))},
	{name: "length overflows", want: "bad varint", in: cat(mustHex("0a"), overflow)},
	{name: "size overflows", want: "bad varint", in: linkField(hashField(rawCID), mustHex("18"), overflow)},
	{name: "garbage after node", want: "bad varint", in: cat(dataField("d"), []byte{0xff})},
	// Non-minimal varints: one node, one encoding.
	{name: "non-minimal tag", want: "non-minimal", in: mustHex("8a00 00"), goCodecDagpb: true},
	{name: "non-minimal data length", want: "non-minimal", in: mustHex("0a 8100 61"), goCodecDagpb: true},
	{name: "non-minimal link length", want: "non-minimal", in: cat(mustHex("12"), []byte{byte(len(hashField(rawCID)) | 0x80), 0}, hashField(rawCID)), goCodecDagpb: true},
	{name: "non-minimal hash length", want: "non-minimal", in: linkField(cat(mustHex("0a"), []byte{byte(rawCID.ByteLen() | 0x80), 0}, rawCID.Bytes())), goCodecDagpb: true},
	{name: "non-minimal link tag", want: "non-minimal", in: linkField(mustHex("8a00"), protowire.AppendBytes(nil, rawCID.Bytes())), goCodecDagpb: true},
	{name: "non-minimal zero size", want: "non-minimal", in: linkField(hashField(rawCID), mustHex("18 8000")), goCodecDagpb: true},
	{name: "non-minimal size", want: "bad varint", in: linkField(hashField(rawCID), mustHex("18 ff80808080808080808000")), goCodecDagpb: false},
	// Sizes past int64.
	{name: "size 2^63", want: "out of range", in: linkField(hashField(rawCID), tsizeField(1<<63)), goCodecDagpb: true},
	{name: "size 2^64-1", want: "out of range", in: linkField(hashField(rawCID), tsizeField(math.MaxUint64)), goCodecDagpb: true},
}

func TestDecodeRejectsMalformed(t *testing.T) {
	for _, tc := range malformedTests {
		t.Run(tc.name, func(t *testing.T) {
			n, err := Decode(tc.in)
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%x) = %+v, %v; want an error wrapping ErrMalformed", tc.in, n, err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Decode(%x): %v, want an error about %q", tc.in, err, tc.want)
			}
		})
	}
}

// decodeReference decodes b with go-codec-dagpb, the decoder of
// go-ipld-prime and boxo, into our Node type.
func decodeReference(b []byte) (Node, error) {
	nb := ipldpb.Type.PBNode.NewBuilder()
	if err := ipldpb.DecodeBytes(nb, b); err != nil {
		return Node{}, err
	}
	pn := nb.Build().(ipldpb.PBNode)
	var n Node
	for it := pn.FieldLinks().Iterator(); !it.Done(); {
		_, pl := it.Next()
		cl, ok := pl.FieldHash().Link().(cidlink.Link)
		if !ok {
			return Node{}, fmt.Errorf("link hash %v is not a CID", pl.FieldHash().Link())
		}
		l := Link{Hash: cl.Cid}
		if name := pl.FieldName(); name.Exists() {
			l.Name, l.HasName = name.Must().String(), true
		}
		if size := pl.FieldTsize(); size.Exists() {
			l.Tsize, l.HasTsize = uint64(size.Must().Int()), true
		}
		n.Links = append(n.Links, l)
	}
	if d := pn.FieldData(); d.Exists() {
		n.Data = d.Must().Bytes()
		if n.Data == nil {
			n.Data = []byte{}
		}
	}
	return n, nil
}

// encodeReference encodes b's node with go-codec-dagpb, which sorts links
// by name.
func encodeReference(b []byte) ([]byte, error) {
	nb := ipldpb.Type.PBNode.NewBuilder()
	if err := ipldpb.DecodeBytes(nb, b); err != nil {
		return nil, err
	}
	return ipldpb.AppendEncode(nil, nb.Build())
}

// checkAgainstReference checks the differential property on one input:
// whatever we accept, go-codec-dagpb accepts and reads the same way.
func checkAgainstReference(t *testing.T, in []byte) {
	t.Helper()
	ours, err := Decode(in)
	if err != nil {
		return
	}
	ref, refErr := decodeReference(in)
	if refErr != nil {
		t.Fatalf("we accept %x, go-codec-dagpb rejects it: %v", in, refErr)
	}
	if err := sameNode(ours, ref); err != nil {
		t.Fatalf("%x: ours and go-codec-dagpb differ: %v", in, err)
	}
}

var seedFlag = flag.Uint64("dagpb.seed", 0, "seed of the randomised tests (0: taken from the clock)")

// seededRand returns a random source for t whose seed is printed if t
// fails; -dagpb.seed=N replays it.
func seededRand(t *testing.T) *rand.Rand {
	t.Helper()
	seed := *seedFlag
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with: go test -run '^%s$' -dagpb.seed=%d", t.Name(), seed)
		}
	})
	return rand.New(rand.NewPCG(seed, 0))
}

func randomCID(rng *rand.Rand) cid.Cid {
	digest := make([]byte, 32)
	for i := range digest {
		digest[i] = byte(rng.Uint32())
	}
	switch rng.IntN(5) {
	case 0:
		return cid.NewCidV0(sha256CID(cid.DagProtobuf, string(digest)).Hash())
	case 1:
		return sha256CID(cid.Raw, string(digest))
	case 2:
		return sha256CID(cid.DagProtobuf, string(digest))
	case 3:
		h, err := multihash.Sum(digest, multihash.BLAKE2B_MIN+31, -1)
		if err != nil {
			panic(err)
		}
		return cid.NewCidV1(uint64(rng.IntN(1<<20)), h)
	}
	return identityCID(string(digest[:rng.IntN(len(digest))]))
}

func randomNode(rng *rand.Rand) Node {
	var n Node
	for range rng.IntN(6) {
		l := Link{Hash: randomCID(rng)}
		if rng.IntN(4) > 0 {
			name := make([]byte, rng.IntN(12))
			for i := range name {
				name[i] = "ab\xff\xc3\xa9/ "[rng.IntN(7)]
			}
			l.Name, l.HasName = string(name), true
		}
		if rng.IntN(4) > 0 {
			l.Tsize, l.HasTsize = []uint64{0, 1, 127, 128, rng.Uint64() >> 1, math.MaxInt64}[rng.IntN(6)], true
		}
		n.Links = append(n.Links, l)
	}
	switch rng.IntN(3) {
	case 1:
		n.Data = []byte{}
	case 2:
		n.Data = make([]byte, rng.IntN(300))
		for i := range n.Data {
			n.Data[i] = byte(rng.Uint32())
		}
	}
	return n
}

// TestAgreesWithGoCodecDagpb decodes a corpus of valid nodes with both
// decoders and compares, and checks that go-codec-dagpb's encoder writes
// the same bytes as ours when links are sorted by name.
func TestAgreesWithGoCodecDagpb(t *testing.T) {
	rng := seededRand(t)
	var corpus []Node
	for _, tc := range roundTripTests {
		corpus = append(corpus, tc.node)
	}
	for range 500 {
		corpus = append(corpus, randomNode(rng))
	}
	for i, n := range corpus {
		b := n.Marshal()
		ref, err := decodeReference(b)
		if err != nil {
			t.Fatalf("node %d: go-codec-dagpb rejects %x: %v", i, b, err)
		}
		if err := sameNode(ref, n); err != nil {
			t.Fatalf("node %d: go-codec-dagpb reads %x differently: %v", i, b, err)
		}
		if slices.IsSortedFunc(n.Links, func(a, b Link) int { return strings.Compare(a.Name, b.Name) }) {
			enc, err := encodeReference(b)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(enc, b) {
				t.Fatalf("node %d: go-codec-dagpb encodes %x, we %x", i, enc, b)
			}
		}
		checkAgainstReference(t, b)
	}
}

// TestMalformedAgainstGoCodecDagpb pins where go-codec-dagpb is laxer than
// we are; every block it rejects we reject too (TestDecodeRejectsMalformed).
func TestMalformedAgainstGoCodecDagpb(t *testing.T) {
	for _, tc := range malformedTests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := decodeReference(tc.in)
			if got := err == nil; got != tc.goCodecDagpb {
				t.Errorf("go-codec-dagpb accepts %x: %t, want %t (err %v)", tc.in, got, tc.goCodecDagpb, err)
			}
		})
	}
}

// TestDecodeMutations flips, drops and inserts bytes of valid blocks: no
// panic, and whatever we accept go-codec-dagpb reads the same way and we
// re-encode to the input.
func TestDecodeMutations(t *testing.T) {
	rng := seededRand(t)
	accepted := 0
	for range 5000 {
		n := randomNode(rng)
		b := n.Marshal()
		if len(b) == 0 {
			continue
		}
		i := rng.IntN(len(b))
		switch rng.IntN(3) {
		case 0:
			b[i] ^= byte(1 << rng.IntN(8))
		case 1:
			b = slices.Delete(b, i, i+1)
		case 2:
			b = slices.Insert(b, i, byte(rng.Uint32()))
		}
		n, err := Decode(b)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("Decode(%x): %v does not wrap ErrMalformed", b, err)
			}
			continue
		}
		accepted++
		if again := n.Marshal(); !bytes.Equal(again, b) {
			t.Fatalf("Decode(%x) re-encodes to %x", b, again)
		}
		checkAgainstReference(t, b)
	}
	t.Logf("%d mutated blocks accepted", accepted)
}

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocated is the cumulative number of bytes allocated on the heap.
func heapAllocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// decodeAllocBound is what Decode may allocate for an input of n bytes:
// each 8-byte link becomes a 56-byte Link in a slice that append grows
// geometrically, plus its CID and name strings (about 42 bytes per input
// byte for 100,000 minimal links); the slack absorbs the runtime's
// per-span accounting of small objects.
func decodeAllocBound(n int) uint64 { return 64*uint64(n) + 64<<10 }

// decodeAllocated measures the heap bytes Decode(b) allocates, as the
// smallest of up to tries runs that exceed limit (runtime accounting can
// charge one call for earlier allocations).
func decodeAllocated(b []byte, limit uint64, tries int) uint64 {
	least := uint64(math.MaxUint64)
	for range tries {
		before := heapAllocated()
		_, _ = Decode(b)
		least = min(least, heapAllocated()-before)
		if least <= limit {
			break
		}
	}
	return least
}

// TestDecodeAllocations: allocation grows with the input, never with the
// lengths or counts the input claims.
func TestDecodeAllocations(t *testing.T) {
	minimalLink := linkField(hashField(emptyCID))
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"data claims 2^62 bytes", cat(mustHex("0a"), protowire.AppendVarint(nil, 1<<62), []byte("abc"))},
		{"link claims 2^40 bytes", cat(mustHex("12"), protowire.AppendVarint(nil, 1<<40), hashField(rawCID))},
		{"hash claims 2^40 bytes", linkField(cat(mustHex("0a"), protowire.AppendVarint(nil, 1<<40)))},
		{"identity cid claims 2^40 bytes", linkField(bytesField(1, cat(mustHex("01 55 00"), protowire.AppendVarint(nil, 1<<40))))},
		{"100,000 minimal links", bytes.Repeat(minimalLink, 100000)},
		{"100,000 minimal links then garbage", cat(bytes.Repeat(minimalLink, 100000), []byte{0xff})},
		{"1 MiB of data", bytesField(1, make([]byte, 1<<20))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			limit := decodeAllocBound(len(tc.in))
			got := decodeAllocated(tc.in, limit, 5)
			t.Logf("%d bytes allocated for %d bytes of input", got, len(tc.in))
			if got > limit {
				t.Errorf("Decode allocated %d bytes for %d bytes of input, want at most %d", got, len(tc.in), limit)
			}
		})
	}
}

// FuzzDecode: Decode never panics, allocates O(len(input)), and any block
// it accepts re-encodes to exactly its input and reads the same with
// go-codec-dagpb.
func FuzzDecode(f *testing.F) {
	for _, tc := range roundTripTests {
		f.Add(tc.wire)
	}
	for _, tc := range malformedTests {
		f.Add(tc.in)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for range 20 {
		n := randomNode(rng)
		f.Add(n.Marshal())
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		n, err := Decode(in)
		if limit := decodeAllocBound(len(in)); decodeAllocated(in, limit, 1) > limit {
			if got := decodeAllocated(in, limit, 3); got > limit {
				t.Fatalf("Decode allocated %d bytes for %d bytes of input", got, len(in))
			}
		}
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		if again := n.Marshal(); !bytes.Equal(again, in) {
			t.Fatalf("re-encodes to %x", again)
		}
		if !bytes.Equal(in, orig) {
			t.Fatal("Decode or Marshal changed the input")
		}
		checkAgainstReference(t, in)
	})
}

func TestMarshalRefusesWhatDecodeWouldReject(t *testing.T) {
	c := cid.MustParse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
	for name, n := range map[string]Node{
		"undefined hash": {Links: []Link{{Hash: cid.Undef}}},
		"size 2^63":      {Links: []Link{NewLink(c, "x", 1<<63)}},
	} {
		t.Run(name, func(t *testing.T) {
			if err := n.Validate(); !errors.Is(err, ErrMalformed) {
				t.Fatalf("Validate: %v", err)
			}
			defer func() {
				if recover() == nil {
					t.Fatal("Marshal of an invalid node did not panic")
				}
			}()
			n.Marshal()
		})
	}
}
