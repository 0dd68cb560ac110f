package index

import (
	"fmt"
	"testing"

	"github.com/golang/snappy"

	"auditnet/chain"
)

func chunked(b []byte) int {
	n := 0
	for len(b) > 0 {
		k := min(4096, len(b))
		n += len(snappy.Encode(nil, b[:k]))
		b = b[k:]
	}
	return n
}

func TestZZProbe(t *testing.T) {
	s, events := benchChain(t, 5000, 500, false)
	var raw, evraw []byte
	for _, c := range s.blocks {
		for i := range c.blk.Txs {
			r, _, _ := chain.Encode(&c.blk.Txs[i])
			raw = append(raw, r...)
		}
		be := &blockEvents{pending: map[string]*Event{}, db: nil}
		_ = be
	}
	ix := openIndex(t, t.TempDir())
	s.applyAll(ix)
	it := ix.db.NewIterator(nil, nil)
	for it.Next() {
		evraw = append(evraw, it.Key()...)
		evraw = append(evraw, it.Value()...)
	}
	it.Release()
	fmt.Println("events", events, "txs raw", len(raw), "snappy", chunked(raw))
	fmt.Println("index kv raw", len(evraw), "snappy", chunked(evraw), "per event", len(evraw)/events, chunked(evraw)/events)
}
