package node

import (
	"context"
	"testing"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// TestGateLookupSeesARequestCommittedMeanwhile: the holder's lookup read
// the state, then found the request in the store, which is written after
// the state is published. The request was committed in between, not
// settled: the lookup must find it open, not refuse it as settled (the
// demo's fetch was refused that way under load).
func TestGateLookupSeesARequestCommittedMeanwhile(t *testing.T) {
	id := testLink(t, "request").Cid
	before, after := chain.NewMemState(), chain.NewMemState()
	rec, err := dagcbor.Marshal(&chain.AccessRecord{Auditor: []byte("auditor"), Dataset: chain.Dataset{Owner: []byte("agency"), Root: testLink(t, "root")}, Provider: []byte("holder"), Height: 7})
	if err != nil {
		t.Fatal(err)
	}
	after.Set(append([]byte("access/"), id.Bytes()...), rec)
	c := &chainNode{}
	c.state.Store(&stateBox{s: before, height: 6})
	g := &accessGate{c: c, stored: func(cid.Cid) bool {
		// The block commits now: the state is published, then stored.
		c.state.Store(&stateBox{s: after, height: 7})
		return true
	}}
	_, found, ok, settled, err := g.lookup(context.Background(), id)
	if err != nil || !ok || settled || found.Height != 7 {
		t.Fatalf("lookup: record %+v, open %v, settled %v, err %v", found, ok, settled, err)
	}
	// A request the store holds and the state no longer does is settled.
	g.stored = func(cid.Cid) bool { return true }
	c.state.Store(&stateBox{s: before, height: 9})
	if _, _, ok, settled, err := g.lookup(context.Background(), id); err != nil || ok || !settled {
		t.Fatalf("a settled request: open %v, settled %v, err %v", ok, settled, err)
	}
}
