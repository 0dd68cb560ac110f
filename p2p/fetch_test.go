package p2p

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
	"auditnet/storage/unixfs"
)

func TestFetchFromOneProvider(t *testing.T) {
	for _, quic := range []bool{false, true} {
		name := "tcp"
		if quic {
			name = "quic"
		}
		t.Run(name, func(t *testing.T) {
			prov, req := newTestNode(t, quic), newTestNode(t, quic)
			prov.serve(nil)
			link(t, prov, req)
			data := randomBytes(1, 64<<20)
			root := prov.addFile(data)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			var out bytes.Buffer
			if _, err := req.fetcher.Cat(ctx, root, "", &out, FetchOptions{Providers: []peer.ID{prov.id()}}); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(out.Bytes(), data) {
				t.Fatal("cat: bytes differ")
			}
			if has, _ := req.store.Has(ctx, root); has {
				t.Fatal("cat stored blocks")
			}

			stats, err := req.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{prov.id()}})
			if err != nil {
				t.Fatal(err)
			}
			if got := req.readAll(root); !bytes.Equal(got, data) {
				t.Fatal("get: bytes differ")
			}
			origin, pinned, err := req.store.PinOrigin(ctx, root)
			if err != nil || !pinned || origin != storage.PinFetched {
				t.Fatalf("pin after get: %v %v %v", origin, pinned, err)
			}
			t.Logf("get: %d bytes in %d blocks over %d requests", stats.Bytes, stats.Blocks, stats.Requests)
		})
	}
}

// TestFetchedDataIsNeverServed checks that a node serves only the roots it
// is the source of: after a Get, the requester holds the dataset pinned as
// fetched, and a third node asking it for that root is told it is not a
// source, while the original provider serves it.
func TestFetchedDataIsNeverServed(t *testing.T) {
	prov, mid, last := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
	prov.serve(nil)
	mid.serve(nil)
	link(t, prov, mid, last)
	root := prov.addFile(randomBytes(3, 1<<20))
	ctx := context.Background()
	if _, err := mid.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{prov.id()}}); err != nil {
		t.Fatal(err)
	}
	_, err := last.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{mid.id()}})
	var refused *FetchRefusedError
	if !errors.As(err, &refused) || refused.Code != replyNotHeld {
		t.Fatalf("fetch from a node that only fetched the data: %v", err)
	}
	if _, err := last.fetcher.Get(ctx, root, "", FetchOptions{Providers: []peer.ID{mid.id(), prov.id()}}); err != nil {
		t.Fatalf("fetch falling back to the source: %v", err)
	}
}

// TestFetchByPath fetches parts of a directory dataset by UnixFS path: a
// file streamed with Cat, a subdirectory stored with Get; a missing name
// fails with ErrNoSuchEntry without trying other providers.
func TestFetchByPath(t *testing.T) {
	prov, req := newTestNode(t, false), newTestNode(t, false)
	prov.serve(nil)
	link(t, prov, req)
	ledger := randomBytes(4, 3<<20)
	root := prov.addDir(map[string][]byte{
		"ledger.csv":       ledger,
		"sub/note.txt":     []byte("hello auditors\n"),
		"sub/deeper/x.bin": randomBytes(5, 300<<10),
	})
	ctx := context.Background()
	opts := FetchOptions{Providers: []peer.ID{prov.id()}}
	var out bytes.Buffer
	if _, err := req.fetcher.Cat(ctx, root, "ledger.csv", &out, opts); err != nil || !bytes.Equal(out.Bytes(), ledger) {
		t.Fatalf("cat by path: %d bytes, %v", out.Len(), err)
	}
	stats, err := req.fetcher.Get(ctx, root, "sub", opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, pinned, _ := req.store.PinOrigin(ctx, stats.Target); !pinned {
		t.Fatal("the fetched subdirectory is not pinned")
	}
	if _, pinned, _ := req.store.PinOrigin(ctx, root); pinned {
		t.Fatal("the whole root got pinned for a path fetch")
	}
	if got := req.readAll(mustResolve(t, req, stats.Target, "deeper/x.bin")); !bytes.Equal(got, randomBytes(5, 300<<10)) {
		t.Fatal("subdirectory content differs")
	}
	if _, err := req.fetcher.Cat(ctx, root, "nope.txt", io.Discard, opts); !errors.Is(err, unixfs.ErrNoSuchEntry) {
		t.Fatalf("missing path: %v", err)
	}
}

// TestServingSlots checks the provider's admission: at most MaxPerPeer
// fetches for one peer and MaxConcurrent in all, each freed slot reusable.
func TestServingSlots(t *testing.T) {
	n := newTestNode(t, false)
	s, err := NewFetchService(FetchServiceConfig{Host: n.host, Store: n.store, Network: testNetwork, Authorizer: AllowAll{}, MaxConcurrent: 3, MaxPerPeer: 2})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a, b, c := peer.ID("a"), peer.ID("b"), peer.ID("c")
	for i, tc := range []struct {
		p    peer.ID
		want bool
	}{{a, true}, {a, true}, {a, false}, {b, true}, {c, false}} {
		if got := s.acquire(tc.p); got != tc.want {
			t.Fatalf("step %d: acquire(%s) = %v, want %v", i, tc.p, got, tc.want)
		}
	}
	s.release(a)
	if !s.acquire(c) || s.acquire(b) {
		t.Fatal("a freed slot went to the wrong peer")
	}
	s.release(a)
	s.release(b)
	s.release(c)
	if len(s.busy) != 0 || len(s.slots) != 0 {
		t.Fatalf("slots leaked: %v, %d", s.busy, len(s.slots))
	}
}
