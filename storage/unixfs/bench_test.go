package unixfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

const benchSize = 64 << 20

func benchData() []byte {
	b := make([]byte, benchSize)
	rand.NewChaCha8([32]byte{9}).Read(b)
	return b
}

// BenchmarkSHA256OneCore is the yardstick: crypto/sha256 over 256 KiB
// buffers on one goroutine.
func BenchmarkSHA256OneCore(b *testing.B) {
	data := benchData()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		for off := 0; off < len(data); off += DefaultChunkSize {
			sha256.Sum256(data[off : off+DefaultChunkSize])
		}
	}
}

// BenchmarkImportOnlyHash is `add --only-hash` of a 64 MiB file in memory:
// chunking, parallel leaf hashing and the balanced tree, nothing stored.
func BenchmarkImportOnlyHash(b *testing.B) {
	data := benchData()
	im, err := NewImporter(Params{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := im.File(context.Background(), bytes.NewReader(data)); err != nil {
			b.Fatal(err)
		}
	}
}
