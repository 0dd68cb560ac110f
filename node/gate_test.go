package node

import (
	"context"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/p2p"
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

// TestGateCapsWaitingFetchesPerPeer: a holder lets at most
// maxWaitingPerPeer fetches of one peer wait for their access requests to
// commit; the next is refused at once, another peer's is not, and the
// count goes back to zero when the waits end.
func TestGateCapsWaitingFetchesPerPeer(t *testing.T) {
	c := &chainNode{}
	c.status.Store(&ChainStatus{Quorum: 1, Validators: []ValidatorStatus{{Self: true}}})
	c.state.Store(&stateBox{s: chain.NewMemState(), height: 3})
	g := &accessGate{c: c, stored: func(cid.Cid) bool { return false }, waiting: map[peer.ID]int{},
		sessions: map[cid.Cid]*accessSession{}, streams: map[streamKey]streamStart{}}
	requestFrom := func(name string) (*p2p.FetchRequest, peer.ID) {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		id, _ := peer.IDFromPrivateKey(sk)
		return &p2p.FetchRequest{Auth: &dagcbor.Link{Cid: testLink(t, name).Cid}, Requester: []byte(id)}, id
	}
	flooder, who := requestFrom("never committed")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	errs := make(chan error, maxWaitingPerPeer)
	for range maxWaitingPerPeer {
		go func() { errs <- g.Authorize(ctx, flooder) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		g.mu.Lock()
		n := g.waiting[who]
		g.mu.Unlock()
		if n == maxWaitingPerPeer {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d fetches waiting, want %d", n, maxWaitingPerPeer)
		}
		runtime.Gosched()
	}
	if err := g.Authorize(ctx, flooder); err == nil || !strings.Contains(err.Error(), "too many fetches") {
		t.Fatalf("the flooder's next fetch: %v", err)
	}
	other, _ := requestFrom("another")
	done, stop := context.WithCancel(context.Background())
	stop()
	if err := g.Authorize(done, other); err != nil && strings.Contains(err.Error(), "too many fetches") {
		t.Fatalf("another peer's fetch: %v", err)
	}
	cancel()
	for range maxWaitingPerPeer {
		if err := <-errs; err == nil {
			t.Fatal("a fetch whose request never committed was authorised")
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.waiting) != 0 {
		t.Fatalf("waiting after the waits ended: %v", g.waiting)
	}
}
