package storage

import (
	"context"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/syndtr/goleveldb/leveldb"
	"github.com/syndtr/goleveldb/leveldb/opt"
	"github.com/syndtr/goleveldb/leveldb/util"

	"auditnet/storage/unixfs"
)

const benchFileSize = 128 << 20

func benchFile() []byte {
	b := make([]byte, benchFileSize)
	rand.NewChaCha8([32]byte{42}).Read(b)
	return b
}

// diskWrites is the bytes this process has caused to be written to the
// storage layer (/proc/self/io write_bytes), or -1 where unavailable.
func diskWrites() int64 {
	raw, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "write_bytes: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	return -1
}

func dirBytes(dir string) int64 {
	var n int64
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			n += fi.Size()
		}
		return nil
	})
	return n
}

// BenchmarkAdd imports a 128 MiB file into a fresh store and commits it
// (packs and index fsync'd), as `auditnet add` does.
func BenchmarkAdd(b *testing.B) {
	data := benchFile()
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	var disk, written int64
	for b.Loop() {
		b.StopTimer()
		dir := b.TempDir()
		s, err := Open(dir, Options{})
		if err != nil {
			b.Fatal(err)
		}
		w0 := diskWrites()
		b.StartTimer()
		addFile(b, s, data, unixfs.Params{})
		b.StopTimer()
		written = diskWrites() - w0
		s.Close()
		disk = dirBytes(dir)
		b.StartTimer()
	}
	b.ReportMetric(float64(disk)/float64(len(data)), "disk/data")
	b.ReportMetric(float64(written)/float64(len(data)), "written/data")
}

// BenchmarkCat reads a stored 128 MiB file back through the prefetching
// reader, re-hashing every block, as `auditnet cat` does.
func BenchmarkCat(b *testing.B) {
	data := benchFile()
	s := openTestStore(b, b.TempDir(), Options{})
	root := addFile(b, s, data, unixfs.Params{})
	ctx := context.Background()
	n, err := unixfs.Load(ctx, s, root)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	b.ReportAllocs()
	for b.Loop() {
		fr, err := unixfs.NewFileReader(ctx, s, n, 0)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := fr.WriteTo(io.Discard); err != nil {
			b.Fatal(err)
		}
		fr.Close()
	}
}

// layoutBlocks is the benchmark data as 256 KiB raw blocks.
func layoutBlocks(data []byte) ([]cid.Cid, [][]byte) {
	var cids []cid.Cid
	var blocks [][]byte
	for off := 0; off < len(data); off += unixfs.DefaultChunkSize {
		blk := data[off : off+unixfs.DefaultChunkSize]
		cids = append(cids, rawBlock(blk))
		blocks = append(blocks, blk)
	}
	return cids, blocks
}

// BenchmarkLayout compares the two on-disk layouts the storage issue
// weighed, writing the same 128 MiB of 256 KiB blocks and syncing once:
// "packs" (this store: block bytes in append-only pack files, a leveldb
// index) and "leveldb-values" (block bytes as leveldb values, kubo's
// flatfs/leveldb style). written/data is the write amplification seen by
// the kernel; disk/data the space used afterwards (after leveldb's
// compactions settle, for leveldb-values).
func BenchmarkLayout(b *testing.B) {
	data := benchFile()
	cids, blocks := layoutBlocks(data)
	b.Run("packs", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var disk, written int64
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			s, err := Open(dir, Options{})
			if err != nil {
				b.Fatal(err)
			}
			w0 := diskWrites()
			b.StartTimer()
			w, _ := s.NewWriter()
			for i, c := range cids {
				if err := w.Put(c, blocks[i]); err != nil {
					b.Fatal(err)
				}
			}
			if err := w.Commit(); err != nil {
				b.Fatal(err)
			}
			w.Close()
			b.StopTimer()
			s.Close()
			written, disk = diskWrites()-w0, dirBytes(dir)
			b.StartTimer()
		}
		b.ReportMetric(float64(written)/float64(len(data)), "written/data")
		b.ReportMetric(float64(disk)/float64(len(data)), "disk/data")
	})
	b.Run("leveldb-values", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		var disk, written int64
		for b.Loop() {
			b.StopTimer()
			dir := b.TempDir()
			db, err := leveldb.OpenFile(dir, &opt.Options{})
			if err != nil {
				b.Fatal(err)
			}
			w0 := diskWrites()
			b.StartTimer()
			// Batches of 16 blocks (4 MiB), the last one synced.
			batch := new(leveldb.Batch)
			for i, c := range cids {
				batch.Put(c.Hash(), blocks[i])
				if batch.Len() == 16 || i == len(cids)-1 {
					if err := db.Write(batch, &opt.WriteOptions{Sync: i == len(cids)-1}); err != nil {
						b.Fatal(err)
					}
					batch.Reset()
				}
			}
			b.StopTimer()
			// Let compaction settle, as it would in a long-lived store.
			if err := db.CompactRange(leveldbRangeAll); err != nil {
				b.Fatal(err)
			}
			db.Close()
			written, disk = diskWrites()-w0, dirBytes(dir)
			b.StartTimer()
		}
		b.ReportMetric(float64(written)/float64(len(data)), "written/data")
		b.ReportMetric(float64(disk)/float64(len(data)), "disk/data")
	})
}

var leveldbRangeAll = util.Range{}
