package chain

import (
	"bytes"
	"testing"
)

// TestDecodeStateEntries reads back the member and dataset records the
// machine writes, from their state keys and values.
func TestDecodeStateEntries(t *testing.T) {
	w := newWorld(t, nil)
	ds := w.anchor("agency", "ledger", PolicyRestricted)
	raw, ok := w.s.Get(datasetKey(ds))
	if !ok {
		t.Fatal("no dataset record")
	}
	got, rec, err := DecodeDatasetEntry(datasetKey(ds), raw)
	if err != nil || !bytes.Equal(got.Owner, ds.Owner) || !got.Root.Cid.Equals(ds.Root.Cid) || rec.Name != "ledger" || rec.Policy != PolicyRestricted {
		t.Fatalf("dataset entry %+v %+v: %v", got, rec, err)
	}
	id := w.ids["auditor"]
	raw, _ = w.s.Get(memberKey(id))
	p, m, err := DecodeMemberEntry(memberKey(id), raw)
	if err != nil || !bytes.Equal(p, id) || m.Role != "auditor" {
		t.Fatalf("member entry %x %+v: %v", p, m, err)
	}
	for _, key := range [][]byte{[]byte("dataset/"), []byte("dataset/\x05ab"), []byte("grant/x")} {
		if _, _, err := DecodeDatasetEntry(key, raw); err == nil {
			t.Errorf("DecodeDatasetEntry(%q) succeeded", key)
		}
	}
}
