package store

import (
	"bytes"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// storedValues commits a short chain (with an epoch change) and returns
// the values stored under a key prefix, as fuzz seeds.
func storedValues(f *testing.F, prefix string) [][]byte {
	c := buildTestChain(f, 9, 6)
	s := openStore(f, f.TempDir(), c.genesis)
	commitAll(f, s, c.blocks)
	var out [][]byte
	it := s.db.NewIterator(util.BytesPrefix([]byte(prefix)), nil)
	defer it.Release()
	for it.Next() {
		out = append(out, bytes.Clone(it.Value()))
	}
	return out
}

// FuzzDecodeHead: whatever the head decoder accepts encodes back to the
// same bytes.
func FuzzDecodeHead(f *testing.F) {
	for _, v := range storedValues(f, string(keyHead)) {
		f.Add(v)
	}
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, in []byte) {
		m, err := decodeHead(in)
		if err != nil {
			return
		}
		if out := encodeHead(m); !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
	})
}

// FuzzDecodeOutcomes: whatever the outcomes decoder accepts encodes back
// to the same bytes.
func FuzzDecodeOutcomes(f *testing.F) {
	for _, v := range storedValues(f, prefixOutcomes) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		o, err := decodeOutcomes(in)
		if err != nil {
			return
		}
		out, err := encodeOutcomes(o)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
	})
}

// FuzzDecodeEpochChange: whatever the epoch change decoder accepts names
// the epoch it is stored for and a set of valid peer IDs, and encodes back
// to the same bytes.
func FuzzDecodeEpochChange(f *testing.F) {
	for _, v := range storedValues(f, prefixEpoch) {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		ec, err := decodeEpochChange(in, 1)
		if err != nil {
			return
		}
		if ec.Header.Epoch != 1 || len(ec.Validators) == 0 {
			t.Fatalf("decoded %+v", ec)
		}
		out, err := encodeEpochChange(ec)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
	})
}

// FuzzDecodePlace: whatever the tx index decoder accepts encodes back to
// the same bytes.
func FuzzDecodePlace(f *testing.F) {
	for _, v := range storedValues(f, prefixTx)[:5] {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		h, i, err := decodePlace(in)
		if err != nil {
			return
		}
		if out := encodePlace(h, i); !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
	})
}
