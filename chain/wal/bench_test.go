package wal

import (
	"fmt"
	"testing"
)

// BenchmarkAppendSync appends batches of 300-byte entries and syncs each
// batch (one write and one real fsync) in a temporary directory.
func BenchmarkAppendSync(b *testing.B) {
	for _, n := range []int{1, 64} {
		b.Run(fmt.Sprintf("entries=%d", n), func(b *testing.B) {
			w, _ := mustOpen(b, Config{Dir: b.TempDir()})
			batch := make([]Entry, n)
			for i := range batch {
				batch[i] = Entry{Height: uint64(i), Data: make([]byte, 300)}
			}
			b.SetBytes(int64(n * (frameHeaderSize + 300)))
			b.ReportAllocs()
			syncs := 0
			for b.Loop() {
				if err := w.Append(batch...); err != nil {
					b.Fatal(err)
				}
				if err := w.Sync(); err != nil {
					b.Fatal(err)
				}
				syncs++
			}
			b.ReportMetric(float64(syncs*n)/b.Elapsed().Seconds(), "entries/s")
			mustClose(b, w)
		})
	}
}
