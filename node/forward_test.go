package node

import (
	"context"
	"crypto/ed25519"
	"errors"
	"sync"
	"testing"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/chain"
	"auditnet/p2p"
)

// TestForwardTriesTheNextValidator: a follower's transaction that one
// validator refuses (a validator catching up has not applied the anchor a
// grant depends on) goes to the next; a refusal stands when every
// validator refuses, and what a validator took is not sent again.
func TestForwardTriesTheNextValidator(t *testing.T) {
	newHost := func() *p2p.Host {
		sk, _, err := crypto.GenerateEd25519Key(nil)
		if err != nil {
			t.Fatal(err)
		}
		listen, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/0")
		h, err := p2p.NewHost(p2p.HostConfig{Identity: sk, ListenAddrs: []ma.Multiaddr{listen}, Members: allMembers{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		return h
	}
	follower, lagging, current := newHost(), newHost(), newHost()
	_, key, _ := ed25519.GenerateKey(nil)
	signer := chain.NewSigner(key)
	txs := make([]*chain.Tx, 3)
	raws := map[string]int{}
	for i := range txs {
		txs[i] = &chain.Tx{Body: chain.TxBody{Chain: "c", Kind: chain.KindAnchor, Sender: signer.ID(), Expires: 10, Nonce: uint64(i + 1),
			Anchor: &chain.Anchor{Root: testLink(t, "d"), Size: 1, Name: "d", Policy: chain.PolicyOpen}}}
		if err := txs[i].Sign(signer); err != nil {
			t.Fatal(err)
		}
		raw, _ := chain.EncodeTx(txs[i])
		raws[string(raw)] = i
	}
	// The lagging validator (the leader) refuses every tx but the first;
	// the current one refuses the last, and counts what it is sent.
	var mu sync.Mutex
	sentToCurrent := map[int]int{}
	serve := func(h *p2p.Host, decide func(i int) p2p.TxResult) {
		svc, err := p2p.NewTxService(p2p.TxServiceConfig{Host: h, Handle: func(_ context.Context, _ peer.ID, batch [][]byte) []p2p.TxResult {
			out := make([]p2p.TxResult, len(batch))
			for j, raw := range batch {
				out[j] = decide(raws[string(raw)])
			}
			return out
		}})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			svc.Run(ctx)
		}()
		t.Cleanup(func() { cancel(); <-done })
	}
	serve(lagging, func(i int) p2p.TxResult {
		if i == 0 {
			return p2p.TxResult{Code: p2p.TxOK}
		}
		return p2p.TxResult{Code: p2p.TxInvalid, Reason: "grant on a dataset that is not anchored"}
	})
	serve(current, func(i int) p2p.TxResult {
		mu.Lock()
		sentToCurrent[i]++
		mu.Unlock()
		if i == 2 {
			return p2p.TxResult{Code: p2p.TxInvalid, Reason: "bad nonce"}
		}
		return p2p.TxResult{Code: p2p.TxOK}
	})
	for _, v := range []*p2p.Host{lagging, current} {
		if err := follower.Connect(context.Background(), peer.AddrInfo{ID: v.ID(), Addrs: v.Addrs()}); err != nil {
			t.Fatal(err)
		}
	}
	c := &chainNode{host: follower}
	c.status.Store(&ChainStatus{Validators: []ValidatorStatus{{PeerID: current.ID().String()}, {PeerID: lagging.ID().String(), Leader: true}}})
	errs, err := c.forward(context.Background(), txs)
	if err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrRefused) {
		t.Fatalf("forward: %v", errs)
	}
	mu.Lock()
	defer mu.Unlock()
	if sentToCurrent[0] != 0 || sentToCurrent[1] != 1 || sentToCurrent[2] != 1 {
		t.Fatalf("the second validator was sent %v (tx index: times)", sentToCurrent)
	}
}

// allMembers admits every peer.
type allMembers struct{}

func (allMembers) IsMember(peer.ID) bool { return true }
