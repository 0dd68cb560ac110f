package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/internal/dagcbor"
)

// TestStalledStreamsTimeOut checks the streams' deadlines at both ends: a
// provider that stops sending after 1 MiB costs the requester one idle
// timeout, after which it is dropped and the fetch finishes from another;
// and a requester that never sends its request costs the provider one idle
// timeout, after which it is told so and the stream ends.
func TestStalledStreamsTimeOut(t *testing.T) {
	stalled, honest, req := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
	stalled.serve(nil)
	honest.serve(nil)
	link(t, stalled, honest, req)
	data := randomBytes(31, 8<<20)
	root := stalled.addFile(data)
	honest.addFile(data)
	k := newKillSwitch(1 << 20)
	k.install(t, stalled)
	// Long enough that the honest provider, serving 8 MiB under -race on a
	// loaded 2-core machine, never looks stalled (300 ms did, in CI); short
	// enough that the stalled one costs one idle timeout, not the test's.
	req.fetcher.cfg.IdleTimeout = 2 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var out bytes.Buffer
	stats, err := req.fetcher.Cat(ctx, root, "", &out, FetchOptions{Providers: []peer.ID{stalled.id(), honest.id()}})
	if err != nil || !bytes.Equal(out.Bytes(), data) {
		t.Fatalf("cat past a stalled provider: %d bytes, %v", out.Len(), err)
	}
	if _, dropped := stats.DroppedReasons[stalled.id()]; !dropped {
		t.Fatalf("the stalled provider was not dropped: %v", stats.DroppedReasons)
	}
	if _, err := req.fetcher.Cat(ctx, root, "", &out, FetchOptions{Providers: []peer.ID{stalled.id()}}); !errors.Is(err, ErrNoProvider) || ctx.Err() != nil {
		t.Fatalf("cat from the stalled provider alone: %v", err)
	}

	// The provider side: a stream that never carries a request.
	quick := newTestNode(t, false)
	svc, err := NewFetchService(FetchServiceConfig{Host: quick.host, Store: quick.store, Network: testNetwork, Authorizer: AllowAll{}, IdleTimeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	link(t, quick, req)
	st, err := req.host.NewStream(ctx, quick.id(), FetchProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.SetReadDeadline(time.Now().Add(10 * time.Second))
	raw, err := readFrame(bufio.NewReader(st), maxReplySize)
	if err != nil {
		t.Fatalf("no reply from a provider waiting for a request: %v", err)
	}
	var rep fetchReply
	if err := dagcbor.Unmarshal(raw, &rep); err != nil || rep.Code != replyRefused {
		t.Fatalf("reply %+v, %v", rep, err)
	}
}
