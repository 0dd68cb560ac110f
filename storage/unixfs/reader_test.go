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
