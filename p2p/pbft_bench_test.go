package p2p

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// BenchmarkConsensusFrames sends frames of 300 bytes (a vote) and of 100
// KiB (a proposal) from one host to another over TCP on loopback, with up
// to a window of frames sent but not yet delivered (so none is dropped),
// and reports frames/s and MB/s end to end.
//
//	go test -run '^$' -bench BenchmarkConsensusFrames -benchtime 5s ./p2p
func BenchmarkConsensusFrames(b *testing.B) {
	for _, transport := range []string{"tcp", "quic"} {
		for _, size := range []int{300, 100 << 10} {
			b.Run(fmt.Sprintf("%s/%dB", transport, size), func(b *testing.B) {
				benchConsensusFrames(b, wireTransports[transport], size)
			})
		}
	}
}

func benchConsensusFrames(b *testing.B, listen string, size int) {
	window := min(4096, max(64, (16<<20)/size))
	delivered := make(chan struct{}, window)
	recvHost, sendHost := newWireHost(b, nil, listen), newWireHost(b, nil, listen)
	recv, err := NewConsensus(ConsensusConfig{Host: recvHost.Host, Deliver: func(peer.ID, []byte) error {
		delivered <- struct{}{}
		return nil
	}})
	if err != nil {
		b.Fatal(err)
	}
	send, err := NewConsensus(ConsensusConfig{Host: sendHost.Host, Deliver: func(peer.ID, []byte) error { return nil }})
	if err != nil {
		b.Fatal(err)
	}
	runPart(b, recv.Run)
	runPart(b, send.Run)
	linkWire(b, recvHost, sendHost)
	frame := make([]byte, size)
	to := recvHost.ID()
	// One frame through first: the stream is open before timing.
	send.Send(to, frame)
	<-delivered

	b.SetBytes(int64(size))
	b.ReportAllocs()
	inflight := 0
	start := time.Now()
	for b.Loop() {
		if inflight == window {
			<-delivered
			inflight--
		}
		for !send.Send(to, frame) {
			<-delivered
			inflight--
		}
		inflight++
	}
	for ; inflight > 0; inflight-- {
		<-delivered
	}
	elapsed := time.Since(start)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "frames/s")
	if st := send.Stats(); st.DroppedFrames != 0 {
		b.Fatalf("%d frames dropped", st.DroppedFrames)
	}
}
