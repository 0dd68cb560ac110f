package p2p

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/storage"
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
