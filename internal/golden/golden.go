// Package golden holds what tests of encodings share: golden vectors kept
// in a JSON file (rewritten on request, compared otherwise), and the check
// that go-ipld-prime's DAG-CBOR codec reads our encodings byte for byte.
package golden

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	ipld "github.com/ipld/go-ipld-prime/codec/dagcbor"
	"github.com/ipld/go-ipld-prime/node/basicnode"
)

// Check compares got with the vectors in the JSON file at path; with
// update it first rewrites the file from got. Any vector added, removed or
// changed fails the test, so a change to what is signed shows in a diff.
func Check[T comparable](t testing.TB, path string, got map[string]T, update bool) {
	t.Helper()
	if update {
		raw, err := json.MarshalIndent(got, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	var want map[string]T
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	if len(want) != len(got) {
		t.Fatalf("%d vectors on file, %d made", len(want), len(got))
	}
	for name, w := range want {
		if got[name] != w {
			t.Errorf("%s changed:\n got %+v\nwant %+v", name, got[name], w)
		}
	}
}

// IPLDRoundTrip checks that go-ipld-prime decodes each encoding and
// re-encodes it to the same bytes.
func IPLDRoundTrip(t testing.TB, encodings [][]byte) {
	t.Helper()
	for i, enc := range encodings {
		nb := basicnode.Prototype.Any.NewBuilder()
		if err := ipld.Decode(nb, bytes.NewReader(enc)); err != nil {
			t.Fatalf("encoding %d: go-ipld-prime cannot decode it: %v", i, err)
		}
		var again bytes.Buffer
		if err := ipld.Encode(nb.Build(), &again); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(again.Bytes(), enc) {
			t.Fatalf("encoding %d: go-ipld-prime re-encodes it differently", i)
		}
	}
}
