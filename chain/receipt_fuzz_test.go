package chain

import (
	"reflect"
	"testing"
)

// FuzzVerifyReceipt decodes and verifies arbitrary bytes against the
// genesis anchor and a checkpoint of a fixed chain (rcChain). Whatever
// verifies must prove exactly what one of the valid seed receipts proves:
// a changed proof never proves something else.
func FuzzVerifyReceipt(f *testing.F) {
	c := newRCChain(f)
	anchors := []TrustAnchor{c.anchor, c.checkpoint}
	want := map[string]*Proven{}
	for _, r := range []*Receipt{c.denied, c.anchored, c.member, c.authorised, c.fromCheck} {
		b, err := EncodeReceipt(r)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		decoded, err := DecodeReceipt(b)
		if err != nil {
			f.Fatal(err)
		}
		verified := 0
		for _, a := range anchors {
			if p, err := VerifyReceipt(decoded, a); err == nil {
				want[p.Tx.KeyString()] = p
				verified++
			}
		}
		if verified != 1 {
			f.Fatalf("seed verifies against %d anchors, want 1", verified)
		}
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		r, err := DecodeReceipt(in)
		if err != nil {
			return
		}
		for _, a := range anchors {
			p, err := VerifyReceipt(r, a)
			if err != nil {
				continue
			}
			if w := want[p.Tx.KeyString()]; !reflect.DeepEqual(p, w) {
				t.Fatalf("a changed receipt proves\n%v\nnot\n%v", p, w)
			}
		}
	})
}
