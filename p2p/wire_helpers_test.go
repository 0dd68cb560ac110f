package p2p

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
)

// wireTransports are the listen addresses tests and benchmarks run the
// chain's protocols over.
var wireTransports = map[string]string{
	"tcp":  "/ip4/127.0.0.1/tcp/0",
	"quic": "/ip4/127.0.0.1/udp/0/quic-v1",
}

// wireHost is a bare host on 127.0.0.1 for the chain's protocols.
type wireHost struct {
	*Host
	key     crypto.PrivKey
	members *MemberSet
}

// newWireHost starts a host listening on listen (TCP on a free port if
// empty) with key (a new one if nil); t's cleanup closes it.
func newWireHost(t testing.TB, key crypto.PrivKey, listen string) *wireHost {
	t.Helper()
	if key == nil {
		var err error
		if key, err = NewIdentity(); err != nil {
			t.Fatal(err)
		}
	}
	if listen == "" {
		listen = "/ip4/127.0.0.1/tcp/0"
	}
	members := NewMemberSet()
	h, err := NewHost(HostConfig{Identity: key, ListenAddrs: []ma.Multiaddr{ma.StringCast(listen)}, Members: members})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	return &wireHost{Host: h, key: key, members: members}
}

// linkWire makes the hosts members of each other's networks and connects
// them.
func linkWire(t testing.TB, hosts ...*wireHost) {
	t.Helper()
	for _, a := range hosts {
		for _, b := range hosts {
			a.members.Add(b.ID())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i, a := range hosts {
		for _, b := range hosts[i+1:] {
			if err := a.Connect(ctx, peer.AddrInfo{ID: b.ID(), Addrs: b.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// runPart runs a part's Run until the returned stop is called (or the
// test ends), then checks that Run returned nil.
func runPart(t testing.TB, run func(context.Context) error) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx) }()
	var stopped bool
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return 20 s after its context ended")
		}
	}
	t.Cleanup(stop)
	return stop
}

// waitFor polls cond until it holds, failing t after d.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	tick := time.NewTicker(2 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("waiting %v for %s", d, what)
		}
		<-tick.C
	}
}

// isReset reports whether err is what a reader of a reset stream gets.
func isReset(err error) bool { return errors.Is(err, network.ErrReset) }
