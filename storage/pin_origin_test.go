package storage

import (
	"context"
	"encoding/binary"
	"path/filepath"
	"slices"
	"testing"

	"github.com/ipfs/go-cid"
)

// TestPinOrigins checks what decides whether a node serves a DAG: a fetched
// pin never downgrades a local one, a local pin upgrades a fetched one, a
// plain Pin keeps an existing origin, PinsOf splits the two, and a pin
// record from before origins existed reads as local.
func TestPinOrigins(t *testing.T) {
	ctx := context.Background()
	s := openTestStore(t, filepath.Join(t.TempDir(), "s"), Options{})
	put := func(b []byte) *Writer {
		w, err := s.NewWriter()
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Put(rawBlock(b), b); err != nil {
			t.Fatal(err)
		}
		return w
	}
	commit := func(w *Writer) {
		if err := w.Commit(); err != nil {
			t.Fatal(err)
		}
		w.Close()
	}
	local, fetched, upgraded := rawBlock([]byte("local")), rawBlock([]byte("fetched")), rawBlock([]byte("upgraded"))
	w := put([]byte("local"))
	w.Pin(local)
	commit(w)
	w = put([]byte("local"))
	w.PinFetched(local) // must not downgrade
	commit(w)
	w = put([]byte("fetched"))
	w.PinFetched(fetched)
	commit(w)
	w = put([]byte("upgraded"))
	w.PinFetched(upgraded)
	commit(w)
	w = put([]byte("upgraded"))
	w.Pin(upgraded) // added locally after being fetched: now a source
	commit(w)
	if err := s.Pin(ctx, fetched); err != nil { // a plain pin keeps the origin
		t.Fatal(err)
	}
	for c, want := range map[string]PinOrigin{local.String(): PinLocal, fetched.String(): PinFetched, upgraded.String(): PinLocal} {
		cc := rawFromString(t, c)
		got, pinned, err := s.PinOrigin(ctx, cc)
		if err != nil || !pinned || got != want {
			t.Errorf("%s: origin %v pinned %v err %v, want %v", c, got, pinned, err, want)
		}
	}
	locals, _ := s.PinsOf(ctx, PinLocal)
	fetchedPins, _ := s.PinsOf(ctx, PinFetched)
	if len(locals) != 2 || !slices.ContainsFunc(locals, local.Equals) || len(fetchedPins) != 1 || !fetchedPins[0].Equals(fetched) {
		t.Fatalf("PinsOf: local %v fetched %v", locals, fetchedPins)
	}
	old := binary.AppendVarint(nil, 12345)
	if r, err := decodePin(old); err != nil || r.origin != PinLocal {
		t.Fatalf("old pin record: %+v %v", r, err)
	}
	if _, err := decodePin(append(old, 7)); err == nil {
		t.Fatal("accepted an unknown origin")
	}
}

func rawFromString(t *testing.T, s string) cid.Cid {
	t.Helper()
	c, err := cid.Decode(s)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
