package car

import (
	"bytes"
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	carv2 "github.com/ipld/go-car/v2"
	carstorage "github.com/ipld/go-car/v2/storage"

	"auditnet/storage"
	"auditnet/storage/unixfs"
)

func newStore(t *testing.T) *storage.Store {
	t.Helper()
	s, err := storage.Open(t.TempDir(), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// addDataset stores a directory with a multi-block file, a small file and
// a file repeating the first one's content (so the DAG has shared blocks).
func addDataset(t *testing.T, s *storage.Store) (cid.Cid, []byte) {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 1))
	big := make([]byte, 70_000)
	for i := range big {
		big[i] = byte(rng.Uint32())
	}
	w, err := s.NewWriter()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	im, err := unixfs.NewImporter(unixfs.Params{ChunkSize: 8192, MaxLinks: 3}, w, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	a, err := im.File(ctx, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	b, err := im.File(ctx, bytes.NewReader([]byte("small")))
	if err != nil {
		t.Fatal(err)
	}
	dir, err := im.Directory([]unixfs.DirEntry{{Name: "a.bin", Entry: a}, {Name: "b.txt", Entry: b}, {Name: "copy.bin", Entry: a}})
	if err != nil {
		t.Fatal(err)
	}
	w.Pin(dir.Cid)
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	return dir.Cid, big
}

func export(t *testing.T, s *storage.Store, root cid.Cid) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := Export(context.Background(), &buf, s, root); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestExportImportRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	root, big := addDataset(t, src)
	archive := export(t, src, root)

	dst := newStore(t)
	res, err := Import(ctx, bytes.NewReader(archive), dst)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Roots) != 1 || !res.Roots[0].Equals(root) {
		t.Fatalf("roots %v, want [%s]", res.Roots, root)
	}
	if pinned, _ := dst.IsPinned(ctx, root); !pinned {
		t.Fatal("imported root not pinned")
	}
	n, err := unixfs.Resolve(ctx, dst, root, "copy.bin")
	if err != nil {
		t.Fatal(err)
	}
	fr, err := unixfs.NewFileReader(ctx, dst, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	got, err := io.ReadAll(fr)
	if err != nil || !bytes.Equal(got, big) {
		t.Fatalf("file after import differs: %v", err)
	}
	// Exporting again from the importing store gives the same bytes.
	if again := export(t, dst, root); !bytes.Equal(again, archive) {
		t.Fatal("re-export differs")
	}
}

// TestExportMatchesGoCar writes the same blocks in the same order with
// go-car's CAR v1 writer and compares bytes, and reads our archive back
// with go-car's reader.
func TestExportMatchesGoCar(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	root, _ := addDataset(t, s)
	ours := export(t, s, root)

	var theirs bytes.Buffer
	cw, err := carstorage.NewWritable(&theirs, []cid.Cid{root}, carv2.WriteAsCarV1(true))
	if err != nil {
		t.Fatal(err)
	}
	var order []cid.Cid
	err = s.WalkDAG(ctx, root, func(c cid.Cid, data []byte) error {
		order = append(order, c)
		return cw.Put(ctx, c.KeyString(), data)
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := cw.Finalize(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ours, theirs.Bytes()) {
		t.Fatalf("our CAR (%d bytes) differs from go-car's (%d bytes)", len(ours), theirs.Len())
	}
	br, err := carv2.NewBlockReader(bytes.NewReader(ours))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		blk, err := br.Next()
		if errors.Is(err, io.EOF) {
			if i != len(order) {
				t.Fatalf("go-car read %d blocks, we wrote %d", i, len(order))
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if !blk.Cid().Equals(order[i]) {
			t.Fatalf("block %d is %s, want %s", i, blk.Cid(), order[i])
		}
	}
	// 3 file nodes + 9 leaves for a.bin (70 KB / 8 KiB, 3 links per node),
	// 1 leaf for b.txt, 1 directory; copy.bin's blocks are not repeated.
	if len(order) < 10 {
		t.Fatalf("only %d blocks exported", len(order))
	}
}

func TestImportRejectsBadArchives(t *testing.T) {
	ctx := context.Background()
	src := newStore(t)
	root, _ := addDataset(t, src)
	archive := export(t, src, root)

	corrupt := bytes.Clone(archive)
	corrupt[len(corrupt)-10] ^= 1
	// Drop the last block: the DAG is incomplete.
	cr, err := NewReader(bytes.NewReader(archive))
	if err != nil {
		t.Fatal(err)
	}
	var lastLen int
	for {
		c, data, err := cr.Next()
		if err != nil {
			break
		}
		lastLen = c.ByteLen() + len(data) + 1
	}
	incomplete := archive[:len(archive)-lastLen]

	cases := []struct {
		name    string
		archive []byte
	}{
		{"empty", nil},
		{"header only half", archive[:20]},
		{"truncated mid-block", archive[:len(archive)-7]},
		{"corrupt block", corrupt},
		{"incomplete DAG", incomplete},
		{"garbage", []byte("this is not a CAR file at all, just text")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dst := newStore(t)
			if _, err := Import(ctx, bytes.NewReader(tc.archive), dst); err == nil {
				t.Fatal("import succeeded")
			}
			if pins, _ := dst.Pins(ctx); len(pins) != 0 {
				t.Fatalf("failed import pinned %v", pins)
			}
		})
	}
	// An incomplete archive whose missing block the store already has
	// imports fine.
	dst := newStore(t)
	if _, err := Import(ctx, bytes.NewReader(archive), dst); err != nil {
		t.Fatal(err)
	}
	if err := dst.Unpin(ctx, root); err != nil {
		t.Fatal(err)
	}
	if _, err := Import(ctx, bytes.NewReader(incomplete), dst); err != nil {
		t.Fatalf("incomplete archive completed by the store: %v", err)
	}
}

func TestHeaderEncoding(t *testing.T) {
	// The header of `ipfs dag export bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e`
	// ("hello world"): varint 0x3a, then {roots: [CID], version: 1}.
	c := cid.MustParse("bafkreifzjut3te2nhyekklss27nh3k72ysco7y32koao5eei66wof36n5e")
	h := header([]cid.Cid{c})
	want := append([]byte{0x3a, 0xa2, 0x65}, "roots"...)
	want = append(want, 0x81, 0xd8, 0x2a, 0x58, 0x25, 0x00)
	want = append(want, c.Bytes()...)
	want = append(want, 0x67)
	want = append(want, "version"...)
	want = append(want, 0x01)
	if !bytes.Equal(h, want) {
		t.Fatalf("header\n %x\nwant\n %x", h, want)
	}
}
