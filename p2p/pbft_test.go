package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// consensusNode is a host running the consensus transport, recording what
// it is delivered.
type consensusNode struct {
	*wireHost
	c    *Consensus
	stop func()

	mu  sync.Mutex
	got map[peer.ID][][]byte
	// hook, if set, runs first in Deliver; its error is Deliver's.
	hook func(from peer.ID, frame []byte) error
}

// newConsensusNode starts the transport on h (a new host if nil) with cfg
// (Host and Deliver are set here).
func newConsensusNode(t testing.TB, h *wireHost, cfg ConsensusConfig) *consensusNode {
	t.Helper()
	if h == nil {
		h = newWireHost(t, nil, "")
	}
	n := &consensusNode{wireHost: h, got: make(map[peer.ID][][]byte)}
	cfg.Host = h.Host
	cfg.Deliver = n.deliver
	c, err := NewConsensus(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.c = c
	n.stop = runPart(t, c.Run)
	return n
}

func (n *consensusNode) deliver(from peer.ID, frame []byte) error {
	n.mu.Lock()
	hook := n.hook
	n.got[from] = append(n.got[from], frame)
	n.mu.Unlock()
	if hook != nil {
		return hook(from, frame)
	}
	return nil
}

func (n *consensusNode) received(from peer.ID) [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([][]byte(nil), n.got[from]...)
}

func (n *consensusNode) count(from peer.ID) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.got[from])
}

// orderedFrame is frame i of a test stream: its index, then filler whose
// length varies with i (and is large every 500th frame).
func orderedFrame(i int) []byte {
	size := 8 + (i*37)%4096
	if i%500 == 499 {
		size = 1 << 20
	}
	b := make([]byte, size)
	binary.BigEndian.PutUint64(b, uint64(i))
	for j := 8; j < size; j++ {
		b[j] = byte(i + j)
	}
	return b
}

// TestConsensusDeliversInOrder sends 2,000 frames each way at once,
// between 8 bytes and 1 MiB, over TCP and over QUIC: each side gets every
// frame of the other, intact and in order, and the counters agree.
func TestConsensusDeliversInOrder(t *testing.T) {
	for name, listen := range wireTransports {
		t.Run(name, func(t *testing.T) { testConsensusInOrder(t, listen) })
	}
}

func testConsensusInOrder(t *testing.T, listen string) {
	a := newConsensusNode(t, newWireHost(t, nil, listen), ConsensusConfig{})
	b := newConsensusNode(t, newWireHost(t, nil, listen), ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	const n = 2000
	var wg sync.WaitGroup
	for _, pair := range [][2]*consensusNode{{a, b}, {b, a}} {
		wg.Add(1)
		go func(from, to *consensusNode) {
			defer wg.Done()
			for i := range n {
				if !from.c.Send(to.ID(), orderedFrame(i)) {
					t.Errorf("send %d refused", i)
					return
				}
			}
		}(pair[0], pair[1])
	}
	wg.Wait()
	for _, pair := range [][2]*consensusNode{{a, b}, {b, a}} {
		from, to := pair[0], pair[1]
		waitFor(t, 30*time.Second, "every frame", func() bool { return to.count(from.ID()) >= n })
		got := to.received(from.ID())
		if len(got) != n {
			t.Fatalf("%d frames delivered, want %d", len(got), n)
		}
		for i, f := range got {
			if !bytes.Equal(f, orderedFrame(i)) {
				t.Fatalf("frame %d: %d bytes starting %x, want frame %d", i, len(f), f[:min(8, len(f))], i)
			}
		}
	}
	waitFor(t, 10*time.Second, "the queues to empty", func() bool { return len(a.c.Stats().Queued) == 0 })
	st := a.c.Stats()
	var bytesSent uint64
	for i := range n {
		bytesSent += uint64(len(orderedFrame(i)))
	}
	if st.SentFrames != n || st.ReceivedFrames != n || st.SentBytes != bytesSent || st.ReceivedBytes != bytesSent || st.DroppedFrames != 0 {
		t.Fatalf("stats %+v, want %d frames and %d bytes each way, none dropped", st, n, bytesSent)
	}
}

// TestConsensusSendNeverBlocks fills the queue of a dead peer and of a
// peer that stops reading: Send keeps returning at once, false past the
// bound (frames or bytes), and counts each refusal as a drop. The slow
// peer, once it reads again, gets every frame Send accepted, in order.
func TestConsensusSendNeverBlocks(t *testing.T) {
	// sendAll sends frames to p until one is refused, within a deadline,
	// and returns how many were accepted.
	sendAll := func(t *testing.T, c *Consensus, p peer.ID, frame func(int) []byte, limit int) (accepted, refused int) {
		t.Helper()
		done := make(chan struct{})
		go func() {
			defer close(done)
			for i := 0; i < limit; i++ {
				if c.Send(p, frame(i)) {
					accepted++
				} else {
					refused++
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatal("Send blocked")
		}
		return accepted, refused
	}
	small := func(i int) []byte { return orderedFrame(i)[:8] }

	t.Run("dead peer, frames", func(t *testing.T) {
		a := newConsensusNode(t, nil, ConsensusConfig{QueueFrames: 64})
		dead := newWireHost(t, nil, "")
		a.members.Add(dead.ID())
		a.Peerstore().AddAddrs(dead.ID(), dead.Addrs(), time.Hour)
		dead.Close()
		accepted, refused := sendAll(t, a.c, dead.ID(), small, 100)
		st := a.c.Stats()
		if accepted != 64 || refused != 36 || st.DroppedFrames != 36 || st.Queued[dead.ID()] != 64 {
			t.Fatalf("accepted %d, refused %d, stats %+v; want 64 queued and 36 dropped", accepted, refused, st)
		}
	})
	t.Run("dead peer, bytes", func(t *testing.T) {
		a := newConsensusNode(t, nil, ConsensusConfig{QueueBytes: 10 << 10})
		dead := newWireHost(t, nil, "")
		dead.Close()
		accepted, refused := sendAll(t, a.c, dead.ID(), func(int) []byte { return make([]byte, 1<<10) }, 15)
		if st := a.c.Stats(); accepted != 10 || refused != 5 || st.DroppedFrames != 5 {
			t.Fatalf("accepted %d, refused %d, stats %+v; want 10 KiB queued", accepted, refused, st)
		}
	})
	t.Run("slow peer", func(t *testing.T) {
		a := newConsensusNode(t, nil, ConsensusConfig{QueueBytes: 4 << 20})
		b := newConsensusNode(t, nil, ConsensusConfig{})
		release := make(chan struct{})
		var once sync.Once
		free := func() { once.Do(func() { close(release) }) }
		t.Cleanup(free)
		b.hook = func(peer.ID, []byte) error { <-release; return nil }
		linkWire(t, a.wireHost, b.wireHost)
		big := func(i int) []byte {
			f := make([]byte, 100<<10)
			binary.BigEndian.PutUint64(f, uint64(i))
			return f
		}
		// Send until 1,000 refusals: the queue frees room only while the
		// network still buffers what the writer writes, so refusals and
		// acceptances mix until the peer's window and the socket buffers
		// are full; from then on every Send is refused. Accepted frames are
		// numbered in order.
		var accepted, refused int
		var slowest time.Duration
		start := time.Now()
		for refused < 1000 && time.Since(start) < 20*time.Second {
			t0 := time.Now()
			ok := a.c.Send(b.ID(), big(accepted))
			slowest = max(slowest, time.Since(t0))
			if ok {
				accepted++
			} else {
				refused++
			}
		}
		st := a.c.Stats()
		t.Logf("%d frames of 100 KiB accepted, %d refused, slowest Send %v, queued %d", accepted, refused, slowest, st.Queued[b.ID()])
		if refused < 1000 || accepted > 1000 {
			t.Fatalf("%d accepted and %d refused in %v by a peer that does not read", accepted, refused, time.Since(start))
		}
		if slowest > 100*time.Millisecond {
			t.Fatalf("a Send took %v", slowest)
		}
		if st.DroppedFrames != uint64(refused) {
			t.Fatalf("dropped %d, refused %d", st.DroppedFrames, refused)
		}
		free()
		waitFor(t, 30*time.Second, "the slow peer to catch up", func() bool { return b.count(a.ID()) >= accepted })
		for i, f := range b.received(a.ID()) {
			if binary.BigEndian.Uint64(f) != uint64(i) {
				t.Fatalf("frame %d is frame %d", i, binary.BigEndian.Uint64(f))
			}
		}
		if got := b.count(a.ID()); got != accepted {
			t.Fatalf("%d frames delivered, %d accepted", got, accepted)
		}
	})
}

// TestConsensusRedialsAfterRestart stops a peer (transport and host) and
// starts it again with the same key on the same address: the sender's
// writer, whose stream broke, opens a new one and frames flow again.
func TestConsensusRedialsAfterRestart(t *testing.T) {
	a := newConsensusNode(t, nil, ConsensusConfig{})
	b := newConsensusNode(t, nil, ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	if !a.c.Send(b.ID(), []byte("before")) {
		t.Fatal("send refused")
	}
	waitFor(t, 10*time.Second, "the first frame", func() bool { return b.count(a.ID()) == 1 })

	addr := b.Addrs()[0]
	key := b.key
	b.stop()
	b.Close()
	waitFor(t, 10*time.Second, "the stream to break", func() bool { return len(a.Network().ConnsToPeer(b.ID())) == 0 })
	h2 := newWireHost(t, key, addr.String())
	h2.members.Add(a.ID())
	b2 := newConsensusNode(t, h2, ConsensusConfig{})

	// Keep sending, as the consensus core would retransmit, until the
	// restarted peer has something.
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(30 * time.Second)
	for i := 0; b2.count(a.ID()) == 0; i++ {
		a.c.Send(b2.ID(), fmt.Appendf(nil, "after %d", i))
		select {
		case <-tick.C:
		case <-deadline:
			t.Fatalf("nothing delivered after the restart; stats %+v", a.c.Stats())
		}
	}
	if st := a.c.Stats(); st.Redials == 0 {
		t.Fatalf("no redial counted: %+v", st)
	}
	got := b2.received(a.ID())
	if !bytes.HasPrefix(got[0], []byte("after ")) {
		t.Fatalf("restarted peer got %q", got[0])
	}
}

// rawFrames opens a bare /auditnet/pbft/1 stream from h to p, writes w,
// closes its writing side, and returns what a read then gets: the
// transport never writes, so io.EOF (a clean end) or a reset.
func rawFrames(t *testing.T, h *wireHost, p peer.ID, w []byte) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := h.NewStream(ctx, p, ConsensusProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Reset()
	st.SetDeadline(time.Now().Add(10 * time.Second))
	st.Write(w) // may fail once the transport has reset the stream
	st.CloseWrite()
	_, err = st.Read(make([]byte, 1))
	return err
}

// TestConsensusRejectsBadFrames writes crafted bytes on a stream to the
// transport: a frame over MaxFrame, an empty one, a truncated one, a bad
// length, or one Deliver refuses resets the stream, and nothing after the
// good frames before it is delivered. A clean stream ends cleanly.
func TestConsensusRejectsBadFrames(t *testing.T) {
	frame := func(b []byte) []byte { return appendFrame(nil, b) }
	good := append(frame([]byte("one")), frame([]byte("two"))...)
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	for _, tc := range []struct {
		name  string
		wire  []byte
		reset bool
		want  []string
	}{
		{"clean", good, false, []string{"one", "two"}},
		{"oversized", cat(good, frame(make([]byte, 1025)), frame([]byte("three"))), true, []string{"one", "two"}},
		{"oversized header only", cat(good, binary.AppendUvarint(nil, 1<<40)), true, []string{"one", "two"}},
		{"empty", cat(good, []byte{0}, frame([]byte("three"))), true, []string{"one", "two"}},
		{"truncated", cat(good, binary.AppendUvarint(nil, 100), make([]byte, 50)), true, []string{"one", "two"}},
		{"truncated length", cat(good, []byte{0x80}), true, []string{"one", "two"}},
		{"non-minimal length", cat(good, []byte{0x83, 0x00}, []byte("abc")), true, []string{"one", "two"}},
		{"length over 64 bits", cat(good, bytes.Repeat([]byte{0xff}, 10), []byte{1}), true, []string{"one", "two"}},
		{"deliver refuses", cat(good, frame([]byte("bad")), frame([]byte("three"))), true, []string{"one", "two", "bad"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newConsensusNode(t, nil, ConsensusConfig{MaxFrame: 1024})
			b.hook = func(_ peer.ID, f []byte) error {
				if string(f) == "bad" {
					return errors.New("undecodable")
				}
				return nil
			}
			x := newWireHost(t, nil, "")
			linkWire(t, b.wireHost, x)
			err := rawFrames(t, x, b.ID(), tc.wire)
			if tc.reset && !isReset(err) {
				t.Fatalf("stream not reset: read gave %v", err)
			}
			if !tc.reset && !errors.Is(err, io.EOF) {
				t.Fatalf("clean stream ended with %v", err)
			}
			// The stream is over on the transport's side too: what was
			// delivered is final.
			var got []string
			for _, f := range b.received(x.ID()) {
				got = append(got, string(f))
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("delivered %q, want %q", got, tc.want)
			}
			if st := b.c.Stats(); st.ReceivedFrames != uint64(len(tc.want)) {
				t.Fatalf("received %d frames, want %d", st.ReceivedFrames, len(tc.want))
			}
		})
	}
}

// TestConsensusWriterRecoversFromReset: a peer whose Deliver refuses a
// frame resets the stream; the sender's writer notices, opens a new
// stream, and later frames arrive.
func TestConsensusWriterRecoversFromReset(t *testing.T) {
	a, b := newConsensusNode(t, nil, ConsensusConfig{}), newConsensusNode(t, nil, ConsensusConfig{})
	b.hook = func(_ peer.ID, f []byte) error {
		if string(f) == "bad" {
			return errors.New("undecodable")
		}
		return nil
	}
	linkWire(t, a.wireHost, b.wireHost)
	a.c.Send(b.ID(), []byte("bad"))
	waitFor(t, 10*time.Second, "the bad frame", func() bool { return b.count(a.ID()) == 1 })
	waitFor(t, 10*time.Second, "the writer to see the reset", func() bool {
		a.c.Send(b.ID(), []byte("good"))
		return b.count(a.ID()) > 1
	})
	if st := a.c.Stats(); st.Redials == 0 {
		t.Fatalf("no redial: %+v", st)
	}
	for _, f := range b.received(a.ID())[1:] {
		if string(f) != "good" {
			t.Fatalf("delivered %q", f)
		}
	}
}

// TestConsensusCut checks the test switch: Outbound drops what this node
// sends to a peer, Inbound what it receives from one (both counted as
// dropped, Send still says yes), the other direction keeps working, and
// Heal restores the link. A frame sent after healing arrives, and on one
// stream frames arrive in order, so a cut frame never arrived before it.
func TestConsensusCut(t *testing.T) {
	a, b := newConsensusNode(t, nil, ConsensusConfig{}), newConsensusNode(t, nil, ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	send := func(from, to *consensusNode, s string) {
		t.Helper()
		if !from.c.Send(to.ID(), []byte(s)) {
			t.Fatalf("send %q refused", s)
		}
	}
	expect := func(to, from *consensusNode, want ...string) {
		t.Helper()
		waitFor(t, 10*time.Second, fmt.Sprintf("%d frames", len(want)), func() bool { return to.count(from.ID()) >= len(want) })
		var got []string
		for _, f := range to.received(from.ID()) {
			got = append(got, string(f))
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("delivered %q, want %q", got, want)
		}
	}
	send(a, b, "a1")
	expect(b, a, "a1")

	a.c.Cut(b.ID(), Outbound)
	send(a, b, "a2 cut")
	send(b, a, "b1")
	expect(a, b, "b1")
	a.c.Cut(b.ID(), Heal)
	send(a, b, "a3")
	expect(b, a, "a1", "a3")
	if st := a.c.Stats(); st.DroppedFrames != 1 {
		t.Fatalf("a dropped %d, want 1", st.DroppedFrames)
	}

	b.c.Cut(a.ID(), Inbound)
	send(a, b, "a4 cut")
	send(b, a, "b2")
	expect(a, b, "b1", "b2")
	waitFor(t, 10*time.Second, "b to drop a4", func() bool { return b.c.Stats().DroppedFrames == 1 })
	b.c.Cut(a.ID(), Heal)
	send(a, b, "a5")
	expect(b, a, "a1", "a3", "a5")

	a.c.Cut(b.ID(), Both)
	send(a, b, "a6 cut")
	send(b, a, "b3 cut")
	waitFor(t, 10*time.Second, "a to drop both", func() bool { return a.c.Stats().DroppedFrames == 3 })
	a.c.Cut(b.ID(), Heal)
	send(a, b, "a7")
	send(b, a, "b4")
	expect(b, a, "a1", "a3", "a5", "a7")
	expect(a, b, "b1", "b2", "b4")
}

// TestConsensusSendRefuses checks what Send refuses outright (an empty
// frame, one over MaxFrame, one to this node) and that Run runs once.
func TestConsensusSendRefuses(t *testing.T) {
	a := newConsensusNode(t, nil, ConsensusConfig{MaxFrame: 100})
	other := newWireHost(t, nil, "")
	for _, tc := range []struct {
		name  string
		to    peer.ID
		frame []byte
	}{
		{"empty", other.ID(), nil},
		{"over MaxFrame", other.ID(), make([]byte, 101)},
		{"to self", a.ID(), []byte("x")},
	} {
		if a.c.Send(tc.to, tc.frame) {
			t.Errorf("%s: accepted", tc.name)
		}
	}
	if st := a.c.Stats(); st.DroppedFrames != 3 || len(st.Queued) != 0 {
		t.Fatalf("stats %+v", st)
	}
	if err := a.c.Run(context.Background()); err == nil {
		t.Fatal("a second Run ran")
	}
	if _, err := NewConsensus(ConsensusConfig{Host: a.Host}); err == nil {
		t.Fatal("a transport without Deliver was built")
	}
}

// TestConsensusWriterRetires: a writer with nothing to send for
// WriterIdle closes its stream and exits (the peer's reader sees a clean
// end), and a later Send starts a new one.
func TestConsensusWriterRetires(t *testing.T) {
	a := newConsensusNode(t, nil, ConsensusConfig{WriterIdle: 200 * time.Millisecond})
	b := newConsensusNode(t, nil, ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	a.c.Send(b.ID(), []byte("one"))
	waitFor(t, 10*time.Second, "the first frame", func() bool { return b.count(a.ID()) == 1 })
	waitFor(t, 10*time.Second, "the writer to retire", func() bool {
		a.c.mu.Lock()
		defer a.c.mu.Unlock()
		return len(a.c.queues) == 0
	})
	waitFor(t, 10*time.Second, "the stream to close", func() bool {
		for _, c := range a.Network().ConnsToPeer(b.ID()) {
			for _, s := range c.GetStreams() {
				if s.Protocol() == ConsensusProtocol {
					return false
				}
			}
		}
		return true
	})
	a.c.Send(b.ID(), []byte("two"))
	waitFor(t, 10*time.Second, "the second frame", func() bool { return b.count(a.ID()) == 2 })
	if st := a.c.Stats(); st.DroppedFrames != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// testClock is a clock a test moves forward by hand.
type testClock struct {
	mu     sync.Mutex
	offset time.Duration
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.offset)
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.offset += d
}

// TestConsensusDropsStaleFrames: what waited for a peer longer than
// MaxFrameAge is dropped. A peer that comes back after being down gets
// the frames sent since, not first the backlog of frames sent while it
// was away (a restarted validator read that backlog, and acted on its old
// view changes, before the NEW-VIEW that said where the others were); and
// a full queue takes a new frame by dropping its stale ones.
func TestConsensusDropsStaleFrames(t *testing.T) {
	t.Run("peer back", func(t *testing.T) {
		clock := &testClock{}
		a := newConsensusNode(t, nil, ConsensusConfig{MaxFrameAge: time.Second})
		a.c.now = clock.now
		b := newConsensusNode(t, nil, ConsensusConfig{})
		linkWire(t, a.wireHost, b.wireHost)
		if !a.c.Send(b.ID(), []byte("before")) {
			t.Fatal("send refused")
		}
		waitFor(t, 10*time.Second, "the first frame", func() bool { return b.count(a.ID()) == 1 })
		addr, key := b.Addrs()[0], b.key
		b.stop()
		b.Close()
		waitFor(t, 10*time.Second, "the connection to end", func() bool { return len(a.Network().ConnsToPeer(b.ID())) == 0 })
		for i := range 50 {
			if !a.c.Send(b.ID(), fmt.Appendf(nil, "stale %d", i)) {
				t.Fatalf("stale frame %d refused", i)
			}
		}
		clock.advance(2 * time.Second)

		h2 := newWireHost(t, key, addr.String())
		b2 := newConsensusNode(t, h2, ConsensusConfig{})
		linkWire(t, h2, a.wireHost) // the restarted peer dials, as a daemon does
		if !a.c.Send(b2.ID(), []byte("fresh")) {
			t.Fatal("fresh frame refused")
		}
		waitFor(t, 30*time.Second, "the fresh frame", func() bool { return b2.count(a.ID()) > 0 })
		if got := b2.received(a.ID()); len(got) != 1 || string(got[0]) != "fresh" {
			t.Fatalf("the peer back got %q, want only the fresh frame", got)
		}
		if st := a.c.Stats(); st.DroppedFrames == 0 || st.Queued[b.ID()] != 0 {
			t.Fatalf("stats %+v: the stale frames are neither dropped nor gone", st)
		}
	})
	t.Run("full queue", func(t *testing.T) {
		clock := &testClock{}
		a := newConsensusNode(t, nil, ConsensusConfig{QueueFrames: 8, MaxFrameAge: time.Second})
		a.c.now = clock.now
		dead := newWireHost(t, nil, "")
		a.members.Add(dead.ID())
		a.Peerstore().AddAddrs(dead.ID(), dead.Addrs(), time.Hour)
		dead.Close()
		for i := range 8 {
			if !a.c.Send(dead.ID(), []byte{byte(i)}) {
				t.Fatalf("frame %d refused", i)
			}
		}
		if a.c.Send(dead.ID(), []byte{8}) {
			t.Fatal("a ninth frame accepted into a queue of 8 fresh ones")
		}
		clock.advance(2 * time.Second)
		if !a.c.Send(dead.ID(), []byte{9}) {
			t.Fatal("a full queue of stale frames refused a new one")
		}
		if st := a.c.Stats(); st.Queued[dead.ID()] != 1 || st.DroppedFrames != 9 {
			t.Fatalf("stats %+v: want the new frame queued, 8 stale and 1 refused dropped", st)
		}
	})
}

// TestConsensusRedialCutShortByConnection: a dial to a peer that is down
// over QUIC does not fail at once, as TCP's does, but waits out the
// handshake timeout (5 s here); a writer dialing then would hold every
// frame for the restarted peer that long, though the peer, back, has
// connected to this node. The peer's connection ends the dial and the
// frames go out on it at once. The peer comes back on another port, so
// that the dial under way cannot reach it and end by itself.
func TestConsensusRedialCutShortByConnection(t *testing.T) {
	a := newConsensusNode(t, newWireHost(t, nil, "/ip4/127.0.0.1/udp/0/quic-v1"), ConsensusConfig{})
	b := newConsensusNode(t, newWireHost(t, nil, "/ip4/127.0.0.1/udp/0/quic-v1"), ConsensusConfig{})
	linkWire(t, a.wireHost, b.wireHost)
	if !a.c.Send(b.ID(), []byte("before")) {
		t.Fatal("send refused")
	}
	waitFor(t, 10*time.Second, "the first frame", func() bool { return b.count(a.ID()) == 1 })
	key := b.key
	b.stop()
	b.Close()
	waitFor(t, 10*time.Second, "the connection to end", func() bool { return len(a.Network().ConnsToPeer(b.ID())) == 0 })
	// The writer dials the peer that is down, and waits.
	a.c.Send(b.ID(), []byte("while down"))
	waitFor(t, 10*time.Second, "the writer to dial", func() bool { return a.c.Stats().Redials > 0 })

	h2 := newWireHost(t, key, "/ip4/127.0.0.1/udp/0/quic-v1")
	b2 := newConsensusNode(t, h2, ConsensusConfig{})
	back := time.Now()
	linkWire(t, h2, a.wireHost)
	a.c.Send(b2.ID(), []byte("fresh"))
	waitFor(t, 30*time.Second, "the fresh frame", func() bool {
		got := b2.received(a.ID())
		return len(got) > 0 && string(got[len(got)-1]) == "fresh"
	})
	// Well inside the 5 s a QUIC dial to a dead port takes to fail.
	if took := time.Since(back); took > 3*time.Second {
		t.Fatalf("the frames reached the restarted peer %v after it connected", took)
	}
}
