package unixfs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/storage/dagpb"
)

func importBytes(t *testing.T, p Params, data []byte) (*memSink, Entry) {
	t.Helper()
	sink := &memSink{}
	im, err := NewImporter(p, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	e, err := im.File(context.Background(), bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	return sink, e
}

func TestFileRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []struct {
		name string
		p    Params
		size int
	}{
		{"empty", Params{}, 0},
		{"one byte", Params{}, 1},
		{"one chunk", Params{}, DefaultChunkSize},
		{"chunk plus one", Params{}, DefaultChunkSize + 1},
		{"depth 3 small chunks", Params{ChunkSize: 7, MaxLinks: 3}, 7*27 + 5},
		{"depth 4 odd", Params{ChunkSize: 3, MaxLinks: 2, Workers: 3}, 3*16 + 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			data := make([]byte, tc.size)
			for i := range data {
				data[i] = byte(rng.Uint32())
			}
			sink, e := importBytes(t, tc.p, data)
			if e.Size != uint64(tc.size) {
				t.Fatalf("size %d, want %d", e.Size, tc.size)
			}
			n, err := Load(context.Background(), sink, e.Cid)
			if err != nil {
				t.Fatal(err)
			}
			for _, via := range []string{"Read", "WriteTo"} {
				fr, err := NewFileReader(context.Background(), sink, n, 2)
				if err != nil {
					t.Fatal(err)
				}
				var got bytes.Buffer
				if via == "Read" {
					_, err = io.CopyBuffer(&got, struct{ io.Reader }{fr}, make([]byte, 5))
				} else {
					_, err = fr.WriteTo(&got)
				}
				fr.Close()
				if err != nil {
					t.Fatalf("%s: %v", via, err)
				}
				if !bytes.Equal(got.Bytes(), data) {
					t.Fatalf("%s: content differs (%d bytes, want %d)", via, got.Len(), len(data))
				}
			}
		})
	}
}

func TestFileReaderRejectsInconsistentSizes(t *testing.T) {
	data := bytes.Repeat([]byte("abcdefgh"), 10)
	sink, e := importBytes(t, Params{ChunkSize: 8, MaxLinks: 4}, data)
	root, err := Load(context.Background(), sink, e.Cid)
	if err != nil {
		t.Fatal(err)
	}
	// Rewrite the root to declare a wrong size for its first child.
	d := root.data
	d.BlockSizes = append([]uint64(nil), d.BlockSizes...)
	d.BlockSizes[0]++
	d.FileSize++
	bad := dagpb.Node{Links: root.pb.Links, Data: d.Marshal()}
	block := bad.Marshal()
	badCid := dagpbCid(block)
	if err := sink.Put(badCid, block); err != nil {
		t.Fatal(err)
	}
	n, err := Load(context.Background(), sink, badCid)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := NewFileReader(context.Background(), sink, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	_, err = io.ReadAll(fr)
	if !errors.Is(err, ErrNotUnixFS) {
		t.Fatalf("read of inconsistent file: %v, want ErrNotUnixFS", err)
	}
}

func TestFileReaderPropagatesGetError(t *testing.T) {
	data := bytes.Repeat([]byte("x"), 100)
	sink, e := importBytes(t, Params{ChunkSize: 10, MaxLinks: 3}, data)
	// Drop one leaf.
	leaf := sink.order[4]
	delete(sink.blocks, string(leaf.Hash()))
	n, err := Load(context.Background(), sink, e.Cid)
	if err != nil {
		t.Fatal(err)
	}
	fr, err := NewFileReader(context.Background(), sink, n, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer fr.Close()
	if _, err := io.Copy(io.Discard, fr); err == nil {
		t.Fatal("read of a file with a missing block succeeded")
	}
}

func TestDirectoriesReadBack(t *testing.T) {
	for _, tc := range []struct {
		name string
		p    Params
		n    int
	}{
		{"basic", Params{}, 20},
		{"hamt fanout 256", Params{HAMTThreshold: 200}, 300},
		{"hamt fanout 8 deep", Params{HAMTThreshold: 100, HAMTFanout: 8}, 500},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := t.TempDir()
			want := map[string]string{}
			for i := range tc.n {
				name := fmt.Sprintf("file-%d.txt", i)
				content := fmt.Sprintf("content of %d\n", i)
				want[name] = content
				if err := os.WriteFile(filepath.Join(src, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(src, ".hidden"), []byte("h"), 0o600); err != nil {
				t.Fatal(err)
			}
			want[".hidden"] = "h"
			sink := &memSink{}
			im, err := NewImporter(tc.p, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			root, err := im.AddPath(context.Background(), src, AddOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			dir, err := Load(ctx, sink, root.Cid)
			if err != nil {
				t.Fatal(err)
			}
			if dir.Kind != KindDirectory {
				t.Fatalf("root is a %s", dir.Kind)
			}
			entries, err := ReadDir(ctx, sink, dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != len(want) {
				t.Fatalf("%d entries, want %d", len(entries), len(want))
			}
			for _, name := range []string{"file-7.txt", ".hidden", fmt.Sprintf("file-%d.txt", tc.n-1)} {
				n, err := Resolve(ctx, sink, root.Cid, "/"+name)
				if err != nil {
					t.Fatalf("resolve %s: %v", name, err)
				}
				fr, err := NewFileReader(ctx, sink, n, 1)
				if err != nil {
					t.Fatal(err)
				}
				got, err := io.ReadAll(fr)
				fr.Close()
				if err != nil || string(got) != want[name] {
					t.Fatalf("%s: %q, %v; want %q", name, got, err, want[name])
				}
			}
			if _, err := Resolve(ctx, sink, root.Cid, "no-such-file"); !errors.Is(err, ErrNoSuchEntry) {
				t.Fatalf("resolve of a missing name: %v", err)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := Extract(ctx, sink, dir, out, ExtractOptions{}); err != nil {
				t.Fatal(err)
			}
			for name, content := range want {
				got, err := os.ReadFile(filepath.Join(out, name))
				if err != nil || string(got) != content {
					t.Fatalf("extracted %s: %q, %v", name, got, err)
				}
			}
			if err := Extract(ctx, sink, dir, out, ExtractOptions{}); !errors.Is(err, os.ErrExist) {
				t.Fatalf("extract over an existing path: %v", err)
			}
		})
	}
}

func TestExtractRefusesEscapingNames(t *testing.T) {
	sink := &memSink{}
	im, err := NewImporter(Params{}, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := im.File(context.Background(), bytes.NewReader([]byte("pwned")))
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"..", "../x", "a/b", "."} {
		d, err := im.Directory([]DirEntry{{Name: name, Entry: leaf}})
		if err != nil {
			t.Fatal(err)
		}
		dir, err := Load(context.Background(), sink, d.Cid)
		if err != nil {
			t.Fatal(err)
		}
		out := filepath.Join(t.TempDir(), "out")
		if err := Extract(context.Background(), sink, dir, out, ExtractOptions{}); !errors.Is(err, ErrNotUnixFS) {
			t.Fatalf("name %q: extract gave %v, want refusal", name, err)
		}
	}
}

func TestAddPathRefusesSymlinksUnlessAsked(t *testing.T) {
	src := t.TempDir()
	if err := os.WriteFile(filepath.Join(src, "a"), []byte("a"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("a", filepath.Join(src, "link")); err != nil {
		t.Fatal(err)
	}
	im, err := NewImporter(Params{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	_, err = im.AddPath(context.Background(), src, AddOptions{}, nil)
	var se *SpecialFileError
	if !errors.As(err, &se) || se.Path != filepath.Join(src, "link") {
		t.Fatalf("add with a symlink: %v, want SpecialFileError", err)
	}
	sink := &memSink{}
	im, _ = NewImporter(Params{}, sink, nil)
	root, err := im.AddPath(context.Background(), src, AddOptions{Symlinks: SymlinksStore}, nil)
	if err != nil {
		t.Fatal(err)
	}
	n, err := Resolve(context.Background(), sink, root.Cid, "link")
	if err != nil || n.Kind != KindSymlink || n.Target != "a" {
		t.Fatalf("stored symlink: %+v, %v", n, err)
	}
}

// storeRawNode stores a hand-built dag-pb node.
func storeRawNode(t *testing.T, sink *memSink, n dagpb.Node) cid.Cid {
	t.Helper()
	block := n.Marshal()
	c := dagpbCid(block)
	if err := sink.Put(c, block); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestHostileHAMTs: forged shards that repeat a shard or put names where
// their hash does not lead are refused, instead of listing a few blocks as
// billions of entries.
func TestHostileHAMTs(t *testing.T) {
	ctx := context.Background()
	sink := &memSink{}
	im, _ := NewImporter(Params{}, sink, nil)
	leaf, _ := im.File(ctx, bytes.NewReader([]byte("x")))
	shardData := func(bitfield []byte) []byte {
		d := Data{Type: TypeHAMTShard, Data: bitfield, HashType: HashMurmur3, HasHashType: true, Fanout: 256, HasFanout: true}
		return d.Marshal()
	}
	// A real child shard: the entries that hash to slot 0x00 at depth 0,
	// placed at their depth-1 slots.
	var names []string
	for i := 0; len(names) < 2; i++ {
		name := fmt.Sprintf("n%d", i)
		if idx, _ := hamtIndex(name, 0, 8); idx == 0 {
			names = append(names, name)
		}
	}
	i0, _ := hamtIndex(names[0], 1, 8)
	i1, _ := hamtIndex(names[1], 1, 8)
	if i0 > i1 {
		names[0], names[1], i0, i1 = names[1], names[0], i1, i0
	}
	bf := make([]byte, 32)
	bf[31-i0/8] |= 1 << (i0 % 8)
	bf[31-i1/8] |= 1 << (i1 % 8)
	for len(bf) > 0 && bf[0] == 0 {
		bf = bf[1:]
	}
	child := storeRawNode(t, sink, dagpb.Node{Links: []dagpb.Link{
		dagpb.NewLink(leaf.Cid, fmt.Sprintf("%02X%s", i0, names[0]), 1),
		dagpb.NewLink(leaf.Cid, fmt.Sprintf("%02X%s", i1, names[1]), 1),
	}, Data: shardData(bf)})

	good := storeRawNode(t, sink, dagpb.Node{Links: []dagpb.Link{dagpb.NewLink(child, "00", 100)}, Data: shardData([]byte{1})})
	// The same child shard under slots 0x00 and 0x01.
	twice := storeRawNode(t, sink, dagpb.Node{Links: []dagpb.Link{
		dagpb.NewLink(child, "00", 100), dagpb.NewLink(child, "01", 100),
	}, Data: shardData([]byte{3})})
	// The child under a slot its names do not hash to.
	misplaced := storeRawNode(t, sink, dagpb.Node{Links: []dagpb.Link{dagpb.NewLink(child, "05", 100)}, Data: shardData([]byte{1 << 5})})
	// A link whose slot is not in the bitfield.
	offBitfield := storeRawNode(t, sink, dagpb.Node{Links: []dagpb.Link{dagpb.NewLink(child, "00", 100)}, Data: shardData([]byte{2})})

	n, err := Load(ctx, sink, good)
	if err != nil {
		t.Fatal(err)
	}
	if entries, err := ReadDir(ctx, sink, n); err != nil || len(entries) != 2 {
		t.Fatalf("well-formed shard: %v, %v", entries, err)
	}
	for name, c := range map[string]cid.Cid{"shard twice": twice, "misplaced": misplaced, "off bitfield": offBitfield} {
		n, err := Load(ctx, sink, c)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := ReadDir(ctx, sink, n); !errors.Is(err, ErrNotUnixFS) {
			t.Errorf("%s: ReadDir gave %v, want a refusal", name, err)
		}
	}
}

// TestExtractRefusesADirectoryBomb: a few directories that each name the
// next one many times unfold into a huge tree; Extract measures first and
// writes nothing.
func TestExtractRefusesADirectoryBomb(t *testing.T) {
	ctx := context.Background()
	sink := &memSink{}
	im, _ := NewImporter(Params{}, sink, nil)
	e, _ := im.File(ctx, bytes.NewReader([]byte("x")))
	for range 4 {
		var entries []DirEntry
		for i := range 30 {
			entries = append(entries, DirEntry{Name: fmt.Sprint(i), Entry: e})
		}
		var err error
		if e, err = im.Directory(entries); err != nil {
			t.Fatal(err)
		}
	}
	n, err := Load(ctx, sink, e.Cid)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	err = Extract(ctx, sink, n, out, ExtractOptions{MaxEntries: 10_000})
	if !errors.Is(err, ErrTooBig) {
		t.Fatalf("extract of 30^4 entries with a 10,000 limit: %v", err)
	}
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Fatal("a refused extract wrote something")
	}
	if err := Extract(ctx, sink, n, out, ExtractOptions{MaxEntries: 10_000, MaxBytes: 100}); !errors.Is(err, ErrTooBig) {
		t.Fatalf("byte limit: %v", err)
	}
}
