package car

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"
)

// smallArchive builds a CAR v1 of a few raw blocks without a store.
func smallArchive(blocks ...[]byte) []byte {
	var roots []cid.Cid
	var body []byte
	for _, b := range blocks {
		h, _ := mh.Sum(b, mh.SHA2_256, -1)
		c := cid.NewCidV1(cid.Raw, h)
		if roots == nil {
			roots = []cid.Cid{c}
		}
		body = binary.AppendUvarint(body, uint64(c.ByteLen()+len(b)))
		body = append(body, c.Bytes()...)
		body = append(body, b...)
	}
	return append(header(roots), body...)
}

// FuzzReader feeds arbitrary bytes to the CAR reader: it must never panic,
// and every block it returns must hash to its CID.
func FuzzReader(f *testing.F) {
	valid := smallArchive([]byte("alpha"), []byte("beta"), bytes.Repeat([]byte{7}, 300))
	f.Add(valid)
	f.Add(valid[:len(valid)-3])
	f.Add(valid[:11])
	bad := bytes.Clone(valid)
	bad[len(bad)-1] ^= 0xff
	f.Add(bad)
	f.Add([]byte{0x0a, 0xa1, 0x67, 'v', 'e', 'r', 's', 'i', 'o', 'n', 0x02})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := NewReader(bytes.NewReader(data))
		if err != nil {
			return
		}
		for range 1000 {
			c, block, err := r.Next()
			if err != nil {
				return
			}
			sum, err := c.Prefix().Sum(block)
			if err != nil || !sum.Equals(c) {
				t.Fatalf("reader returned block %s that does not hash to its CID", c)
			}
		}
	})
}
