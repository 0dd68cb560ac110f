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

// fakeValidator answers /auditnet/tx/1 with decide(i) for the i-th of
// the test's transactions and counts what it was sent.
type fakeValidator struct {
	host   *p2p.Host
	height uint64
	leader bool
	decide func(i int) p2p.TxResult

	mu   sync.Mutex
	sent map[int]int
}

// TestForwardTriesTheNextValidator: a follower sends its transactions to
// the validators that have shown its height first, and a refusal from
// one of those stands, whatever a validator behind would say; a refusal
// from a validator behind it (one catching up has not applied the anchor
// a grant depends on) sends the transaction on to the next; what one took
// is not sent again.
func TestForwardTriesTheNextValidator(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	signer := chain.NewSigner(key)
	txs := make([]*chain.Tx, 3)
	index := map[string]int{}
	for i := range txs {
		txs[i] = &chain.Tx{Body: chain.TxBody{Chain: "c", Kind: chain.KindAnchor, Sender: signer.ID(), Expires: 10, Nonce: uint64(i + 1),
			Anchor: &chain.Anchor{Root: testLink(t, "d"), Size: 1, Name: "d", Policy: chain.PolicyOpen}}}
		if err := txs[i].Sign(signer); err != nil {
			t.Fatal(err)
		}
		raw, _ := chain.EncodeTx(txs[i])
		index[string(raw)] = i
	}
	ok := p2p.TxResult{Code: p2p.TxOK}
	refuse := p2p.TxResult{Code: p2p.TxInvalid, Reason: "grant on a dataset that is not anchored"}
	acceptAll := func(int) p2p.TxResult { return ok }
	run := func(t *testing.T, self uint64, vals ...*fakeValidator) []error {
		follower := newTestHost(t)
		st := &ChainStatus{Height: self}
		for _, v := range vals {
			v.host, v.sent = newTestHost(t), map[int]int{}
			serveTxs(t, v, index)
			if err := follower.Connect(context.Background(), peer.AddrInfo{ID: v.host.ID(), Addrs: v.host.Addrs()}); err != nil {
				t.Fatal(err)
			}
			st.Validators = append(st.Validators, ValidatorStatus{PeerID: v.host.ID().String(), Height: v.height, Leader: v.leader})
		}
		c := &chainNode{host: follower}
		c.status.Store(st)
		errs, err := c.forward(context.Background(), txs)
		if err != nil {
			t.Fatal(err)
		}
		return errs
	}

	t.Run("a current validator's refusal stands", func(t *testing.T) {
		lagging := &fakeValidator{height: 5, leader: true, decide: acceptAll}
		current := &fakeValidator{height: 10, decide: func(i int) p2p.TxResult {
			if i == 2 {
				return refuse
			}
			return ok
		}}
		errs := run(t, 10, lagging, current)
		if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrRefused) {
			t.Fatalf("forward: %v", errs)
		}
		lagging.mu.Lock()
		defer lagging.mu.Unlock()
		if len(lagging.sent) != 0 {
			t.Fatalf("the lagging leader was sent %v though a current validator decided every tx", lagging.sent)
		}
	})
	t.Run("a lagging validator's refusal goes on to the next", func(t *testing.T) {
		// Both behind this node's height 10 (heartbeats not yet seen).
		first := &fakeValidator{height: 8, leader: true, decide: func(i int) p2p.TxResult {
			if i == 0 {
				return ok
			}
			return refuse
		}}
		second := &fakeValidator{height: 9, decide: func(i int) p2p.TxResult {
			if i == 2 {
				return refuse
			}
			return ok
		}}
		errs := run(t, 10, first, second)
		if errs[0] != nil || errs[1] != nil || !errors.Is(errs[2], ErrRefused) {
			t.Fatalf("forward: %v", errs)
		}
		second.mu.Lock()
		defer second.mu.Unlock()
		if second.sent[0] != 0 || second.sent[1] != 1 || second.sent[2] != 1 {
			t.Fatalf("the second validator was sent %v (tx index: times)", second.sent)
		}
	})
}

func newTestHost(t *testing.T) *p2p.Host {
	t.Helper()
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

// serveTxs runs v's tx service until the test ends.
func serveTxs(t *testing.T, v *fakeValidator, index map[string]int) {
	svc, err := p2p.NewTxService(p2p.TxServiceConfig{Host: v.host, Handle: func(_ context.Context, _ peer.ID, batch [][]byte) []p2p.TxResult {
		out := make([]p2p.TxResult, len(batch))
		v.mu.Lock()
		defer v.mu.Unlock()
		for j, raw := range batch {
			i := index[string(raw)]
			v.sent[i]++
			out[j] = v.decide(i)
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

// allMembers admits every peer.
type allMembers struct{}

func (allMembers) IsMember(peer.ID) bool { return true }
