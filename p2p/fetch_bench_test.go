package p2p

import (
	"context"
	"io"
	"testing"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkFetch measures a verified fetch of a 64 MiB file between two
// hosts in this process over loopback: Cat streams it (verified, not
// stored), Get stores and pins it (unpinned and collected between
// iterations).
func BenchmarkFetch(b *testing.B) {
	for _, tc := range []struct {
		name string
		quic bool
		get  bool
	}{
		{"cat-tcp", false, false},
		{"cat-quic", true, false},
		{"get-tcp", false, true},
	} {
		b.Run(tc.name, func(b *testing.B) {
			prov, req := newTestNode(b, tc.quic), newTestNode(b, tc.quic)
			prov.serve(nil)
			link(b, prov, req)
			data := randomBytes(7, 64<<20)
			root := prov.addFile(data)
			ctx := context.Background()
			opts := FetchOptions{Providers: []peer.ID{prov.id()}}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				if tc.get {
					if _, err := req.fetcher.Get(ctx, root, "", opts); err != nil {
						b.Fatal(err)
					}
					b.StopTimer()
					req.store.Unpin(ctx, root)
					req.store.GC(ctx)
					b.StartTimer()
					continue
				}
				if _, err := req.fetcher.Cat(ctx, root, "", io.Discard, opts); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
