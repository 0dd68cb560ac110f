package index

import (
	"bytes"
	"testing"

	"github.com/syndtr/goleveldb/leveldb/util"
)

// FuzzDecodeEvent feeds stored values to the event decoder: whatever it
// accepts is an event of a known kind that encodes back to the same bytes.
// The seeds are the stored events of the scenario, one of every kind.
func FuzzDecodeEvent(f *testing.F) {
	s := newScenario(f)
	it := s.ix.db.NewIterator(util.BytesPrefix([]byte(prefixEvent)), nil)
	for it.Next() {
		f.Add(bytes.Clone(it.Value()))
	}
	it.Release()
	f.Fuzz(func(t *testing.T, in []byte) {
		ev, err := decodeEvent(in, 1, 2)
		if err != nil {
			return
		}
		if !validKind(ev.Kind) || ev.Height != 1 || ev.Pos != 2 {
			t.Fatalf("decoded %+v", ev)
		}
		out, err := encodeEvent(&ev)
		if err != nil {
			t.Fatalf("accepted %x but cannot encode it: %v", in, err)
		}
		if !bytes.Equal(out, in) {
			t.Fatalf("accepted %x, which encodes to %x", in, out)
		}
	})
}
