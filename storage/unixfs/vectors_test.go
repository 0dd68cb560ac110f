package unixfs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"testing"
)

// kuboVectors is testdata/kubo-cids.json: CIDs kubo 0.42.0 made with
// `ipfs add --cid-version=1` (copied from the project's shared vectors).
type kuboVectors struct {
	Files []struct {
		Case      string `json:"case"`
		Name      string `json:"name"`
		Generator string `json:"generator"`
		Literal   string `json:"literal"`
		Seed      string `json:"seed"`
		Size      int    `json:"size"`
		SHA256    string `json:"sha256"`
		Command   string `json:"command"`
		Cid       string `json:"cid"`
		Blocks    int    `json:"blocks"`
	} `json:"files"`
	Directories []struct {
		Name    string `json:"name"`
		Cid     string `json:"cid"`
		Blocks  int    `json:"blocks"`
		Entries []struct {
			Path      string `json:"path"`
			Type      string `json:"type"`
			Generator string `json:"generator"`
			Literal   string `json:"literal"`
			Size      int    `json:"size"`
			Cid       string `json:"cid"`
		} `json:"entries"`
		Generated *struct {
			Count int `json:"count"`
		} `json:"generated"`
	} `json:"directories"`
}

func loadVectors(t *testing.T) kuboVectors {
	t.Helper()
	raw, err := os.ReadFile("testdata/kubo-cids.json")
	if err != nil {
		t.Fatal(err)
	}
	var v kuboVectors
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

// generate makes the input bytes of a vector.
func generate(t testing.TB, gen, literal, seed string, size int) []byte {
	switch gen {
	case "literal":
		return []byte(literal)
	case "pattern":
		b := make([]byte, size)
		for i := range b {
			b[i] = byte(i % 251)
		}
		return b
	case "prng-sha256":
		var out bytes.Buffer
		var ctr [8]byte
		for i := uint64(0); out.Len() < size; i++ {
			binary.BigEndian.PutUint64(ctr[:], i)
			sum := sha256.Sum256(append([]byte(seed), ctr[:]...))
			out.Write(sum[:])
		}
		return out.Bytes()[:size]
	}
	t.Fatalf("unknown generator %q", gen)
	return nil
}

func TestKuboFileVectors(t *testing.T) {
	v := loadVectors(t)
	for _, f := range v.Files {
		if f.Command != "ipfs add --cid-version=1 -Q" {
			continue // CIDv0 case, for reference only
		}
		t.Run(f.Case+"-"+f.Name, func(t *testing.T) {
			data := generate(t, f.Generator, f.Literal, f.Seed, f.Size)
			sum := sha256.Sum256(data)
			if got := hex.EncodeToString(sum[:]); got != f.SHA256 {
				t.Fatalf("generator: sha256 %s, vector says %s", got, f.SHA256)
			}
			sink := &memSink{}
			im, err := NewImporter(Params{}, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			got, err := im.File(context.Background(), bytes.NewReader(data))
			if err != nil {
				t.Fatal(err)
			}
			if got.Cid.String() != f.Cid {
				t.Errorf("cid %s, kubo %s", got.Cid, f.Cid)
			}
			if got.Size != uint64(f.Size) {
				t.Errorf("size %d, want %d", got.Size, f.Size)
			}
			if len(sink.order) != f.Blocks {
				t.Errorf("%d blocks, kubo %d", len(sink.order), f.Blocks)
			}
		})
	}
}

func TestKuboDirectoryVectors(t *testing.T) {
	v := loadVectors(t)
	for _, d := range v.Directories {
		t.Run(d.Name, func(t *testing.T) {
			sink := &memSink{}
			im, err := NewImporter(Params{}, sink, nil)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			if d.Generated != nil {
				for i := range d.Generated.Count {
					name := fmt.Sprintf("%s/f%05d.txt", dir, i)
					if err := os.WriteFile(name, fmt.Appendf(nil, "%d\n", i), 0o644); err != nil {
						t.Fatal(err)
					}
				}
			}
			for _, e := range d.Entries {
				p := dir + "/" + e.Path
				if e.Type == "directory" {
					if err := os.MkdirAll(p, 0o755); err != nil {
						t.Fatal(err)
					}
					continue
				}
				if err := os.WriteFile(p, generate(t, e.Generator, e.Literal, "", e.Size), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			got, err := im.AddPath(context.Background(), dir, AddOptions{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got.Cid.String() != d.Cid {
				t.Errorf("cid %s, kubo %s", got.Cid, d.Cid)
			}
			if d.Blocks > 0 && len(sink.order) != d.Blocks {
				t.Errorf("%d blocks, kubo %d", len(sink.order), d.Blocks)
			}
		})
	}
}
