package pbft

import (
	"errors"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// TestMempoolCapsEachSender: one member cannot fill the mempool. Past its
// quota of pending transactions a sender's next one is busy while another
// sender's is admitted; a committed one frees its place; and a
// transaction another validator forwarded (admitted there under the same
// quota) may take up to peers times the quota.
func TestMempoolCapsEachSender(t *testing.T) {
	p := newMempool(100, 3)
	nonce := uint64(0)
	txFrom := func(sender string) (*chain.Tx, cid.Cid) {
		nonce++
		tx := &chain.Tx{Body: chain.TxBody{Chain: "c", Kind: chain.KindAnchor, Sender: []byte(sender), Expires: 10, Nonce: nonce}}
		id, err := tx.ID()
		if err != nil {
			t.Fatal(err)
		}
		return tx, id
	}
	var first cid.Cid
	for i := range 3 {
		tx, id := txFrom("flooder")
		if err := p.room(tx, 1); err != nil {
			t.Fatalf("tx %d of the flooder: %v", i, err)
		}
		p.add(tx, id, 100, 0, 1)
		if i == 0 {
			first = id
		}
	}
	tx, _ := txFrom("flooder")
	if err := p.room(tx, 1); !errors.Is(err, ErrBusy) {
		t.Fatalf("the flooder's 4th pending tx: %v, want ErrBusy", err)
	}
	if err := p.room(tx, 4); err != nil {
		t.Fatalf("a forwarded tx of the flooder among 4 validators: %v", err)
	}
	other, _ := txFrom("auditor")
	if err := p.room(other, 1); err != nil {
		t.Fatalf("another sender while the flooder is at its quota: %v", err)
	}
	p.remove(first)
	if err := p.room(tx, 1); err != nil {
		t.Fatalf("the flooder after one of its txs committed: %v", err)
	}
}
