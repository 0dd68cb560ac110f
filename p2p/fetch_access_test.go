package p2p

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"io"
	"sync"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/internal/dagcbor"
)

// newFetchRequest is a well-formed request from requester to provider.
func newFetchRequest(requester, provider peer.ID, root cid.Cid) *FetchRequest {
	nonce := make([]byte, nonceSize)
	rand.Read(nonce)
	return &FetchRequest{
		Network:   testNetwork,
		Root:      dagcbor.Link{Cid: root},
		Requester: []byte(requester),
		Provider:  []byte(provider),
		Nonce:     nonce,
		Time:      time.Now().UnixMilli(),
		Purpose:   "audit",
	}
}

func framed(b []byte) []byte {
	var buf bytes.Buffer
	writeFrame(&buf, b)
	return buf.Bytes()
}

// signedFrame is r signed with sk, framed as the requester sends it.
func signedFrame(t *testing.T, r *FetchRequest, sk crypto.PrivKey) []byte {
	t.Helper()
	b, err := EncodeSignedRequest(r, sk)
	if err != nil {
		t.Fatal(err)
	}
	return framed(b)
}

// envelopeFrame frames r with sig as its signature, whatever it is.
func envelopeFrame(t *testing.T, r *FetchRequest, sig []byte) []byte {
	t.Helper()
	raw, err := dagcbor.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := dagcbor.Marshal(signedRequest{Request: raw, Sig: sig})
	if err != nil {
		t.Fatal(err)
	}
	return framed(b)
}

// rawExchange writes wire on a new fetch stream from one node to a peer,
// closes its side and returns every byte the peer sends back.
func rawExchange(t *testing.T, from *testNode, to peer.ID, wire []byte) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	st, err := from.host.NewStream(ctx, to, FetchProtocol)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	st.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := st.Write(wire); err != nil {
		t.Fatalf("write request: %v", err)
	}
	if err := st.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(st)
	if err != nil {
		t.Fatalf("read reply: %v", err)
	}
	return b
}

// decodeOnlyReply decodes bytes that must hold one reply frame and nothing
// else.
func decodeOnlyReply(t *testing.T, b []byte) fetchReply {
	t.Helper()
	br := bufio.NewReader(bytes.NewReader(b))
	frame, err := readFrame(br, maxReplySize)
	if err != nil {
		t.Fatalf("reply frame: %v", err)
	}
	var rep fetchReply
	if err := dagcbor.Unmarshal(frame, &rep); err != nil {
		t.Fatalf("reply: %v", err)
	}
	if rest, _ := io.ReadAll(br); len(rest) > 0 {
		t.Fatalf("%d bytes after a refusal", len(rest))
	}
	return rep
}

// denyPurpose refuses requests whose purpose is "deny".
type denyPurpose struct{}

func (denyPurpose) Authorize(_ context.Context, r *FetchRequest) error {
	if r.Purpose == "deny" {
		return errors.New("no grant")
	}
	return nil
}

// TestFetchRequestRefusals guards the provider's checks, one bad request
// per rule: relayed by a third peer, unsigned, badly signed, signed by a
// key other than the requester's, stale, from the future, replayed,
// addressed to another provider, for another network, oversized,
// malformed, not authorised. Each is refused with its reason and nothing
// else on the stream, and the raw reply bytes are identical whether or not
// the provider holds the requested root.
func TestFetchRequestRefusals(t *testing.T) {
	prov, a, c := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
	prov.serve(denyPurpose{})
	link(t, prov, a, c)
	held := prov.addFile(randomBytes(31, 300<<10))
	notHeld := rawCID(randomBytes(32, 100))

	// Control: the same request, well formed, is served or answered
	// "not held"; what follows differs only by its mutation.
	if rep := rawExchange(t, a, prov.id(), signedFrame(t, newFetchRequest(a.id(), prov.id(), held), a.key)); len(rep) < 300<<10 {
		t.Fatalf("valid request for a held root: %d bytes back", len(rep))
	}
	if rep := decodeOnlyReply(t, rawExchange(t, a, prov.id(), signedFrame(t, newFetchRequest(a.id(), prov.id(), notHeld), a.key))); rep.Code != replyNotHeld {
		t.Fatalf("valid request for a root not held: %+v", rep)
	}

	req := func(root cid.Cid, edit func(*FetchRequest)) *FetchRequest {
		r := newFetchRequest(a.id(), prov.id(), root)
		if edit != nil {
			edit(r)
		}
		return r
	}
	signedBy := func(sk crypto.PrivKey, edit func(*FetchRequest)) func(cid.Cid) []byte {
		return func(root cid.Cid) []byte { return signedFrame(t, req(root, edit), sk) }
	}
	for _, tc := range []struct {
		name   string
		from   *testNode
		wire   func(root cid.Cid) []byte
		replay bool // the same bytes are sent once before
		want   string
	}{
		{"relayed by a third peer", c, signedBy(a.key, nil), false, "requester is not the peer on this stream"},
		{"unsigned", a, func(root cid.Cid) []byte { return envelopeFrame(t, req(root, nil), nil) }, false, "bad signature"},
		{"bad signature", a, func(root cid.Cid) []byte {
			r := req(root, nil)
			raw, _ := dagcbor.Marshal(r)
			sig, _ := a.key.Sign(signingBytes(raw))
			sig[7] ^= 1
			return envelopeFrame(t, r, sig)
		}, false, "bad signature"},
		{"signed by another key", a, signedBy(c.key, nil), false, "bad signature"},
		{"signed without the domain tag", a, func(root cid.Cid) []byte {
			r := req(root, nil)
			raw, _ := dagcbor.Marshal(r)
			sig, _ := a.key.Sign(raw)
			return envelopeFrame(t, r, sig)
		}, false, "bad signature"},
		{"stale", a, signedBy(a.key, func(r *FetchRequest) { r.Time -= (10 * time.Minute).Milliseconds() }), false, "stale request"},
		{"from the future", a, signedBy(a.key, func(r *FetchRequest) { r.Time += (10 * time.Minute).Milliseconds() }), false, "stale request"},
		{"replayed", a, signedBy(a.key, nil), true, "replayed request"},
		{"addressed to another provider", a, signedBy(a.key, func(r *FetchRequest) { r.Provider = []byte(c.id()) }), false, "request is addressed to another provider"},
		{"another network", a, signedBy(a.key, func(r *FetchRequest) { r.Network = "elsewhere" }), false, "wrong network"},
		{"oversized", a, func(cid.Cid) []byte {
			b := binary.AppendUvarint(nil, maxRequestSize+1)
			return append(b, make([]byte, maxRequestSize+1)...)
		}, false, "malformed request"},
		{"malformed", a, func(cid.Cid) []byte { return framed([]byte("not a request")) }, false, "malformed request"},
		{"short nonce", a, signedBy(a.key, func(r *FetchRequest) { r.Nonce = r.Nonce[:8] }), false, "malformed request"},
		{"not authorised", a, signedBy(a.key, func(r *FetchRequest) { r.Purpose = "deny" }), false, "not authorised: no grant"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			replies := make(map[cid.Cid][]byte)
			for _, root := range []cid.Cid{held, notHeld} {
				wire := tc.wire(root)
				if tc.replay {
					rawExchange(t, tc.from, prov.id(), wire)
				}
				replies[root] = rawExchange(t, tc.from, prov.id(), wire)
			}
			if !bytes.Equal(replies[held], replies[notHeld]) {
				t.Errorf("refusals differ: %x for a held root, %x for one not held", replies[held], replies[notHeld])
			}
			rep := decodeOnlyReply(t, replies[held])
			if rep.Code != replyRefused || rep.Message != tc.want {
				t.Errorf("reply %+v, want refused: %q", rep, tc.want)
			}
		})
	}
}

// TestFetchNonMemberRefused guards the membership fence at connection
// time: a member's Connect to a non-member fails, and a member accepts no
// connection from a non-member (even one that counts the member as its
// own), so the non-member cannot fetch.
func TestFetchNonMemberRefused(t *testing.T) {
	member, outsider := newTestNode(t, false), newTestNode(t, false)
	member.serve(nil)
	outsider.members.Add(member.id())
	root := member.addFile(randomBytes(33, 1<<20))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if err := member.host.Connect(ctx, peer.AddrInfo{ID: outsider.id(), Addrs: outsider.host.Addrs()}); err == nil {
		t.Error("a member dialled a non-member")
	}
	assertRefusesInbound(ctx, t, member, outsider, root)
}

// assertRefusesInbound checks that gate refuses dialer's connections and
// fetches. Over TLS the dialer can finish its side of the handshake (the
// muxer comes with it) before gate's gater closes the connection, so the
// dialer's Connect may return nil; gate must never hold the connection, it
// must die on the dialer's side too, and a fetch must fail.
func assertRefusesInbound(ctx context.Context, t *testing.T, gate, dialer *testNode, root cid.Cid) {
	t.Helper()
	err := dialer.host.Connect(ctx, peer.AddrInfo{ID: gate.id(), Addrs: gate.host.Addrs()})
	if gate.host.Network().Connectedness(dialer.id()) == network.Connected {
		t.Errorf("%s accepted a connection from a non-member (dialer's Connect: %v)", gate.id(), err)
	}
	fetchWait(ctx, t, "the refused connection to close on the dialer's side", func() bool {
		return dialer.host.Network().Connectedness(gate.id()) != network.Connected
	})
	var out bytes.Buffer
	if _, err := dialer.fetcher.Cat(ctx, root, "", &out, FetchOptions{Providers: []peer.ID{gate.id()}}); !errors.Is(err, ErrNoProvider) || out.Len() > 0 {
		t.Errorf("non-member cat: %v, %d bytes", err, out.Len())
	}
	if gate.host.Network().Connectedness(dialer.id()) == network.Connected {
		t.Errorf("%s accepted a connection from a non-member for a fetch", gate.id())
	}
}

// gateWriter collects what a Cat writes; the write that would pass after
// bytes closes reached and waits for release.
type gateWriter struct {
	buf     bytes.Buffer
	after   int
	reached chan struct{}
	release chan struct{}
	once    sync.Once
	freed   sync.Once
}

func (w *gateWriter) Write(p []byte) (int, error) {
	if w.buf.Len()+len(p) > w.after {
		w.once.Do(func() { close(w.reached) })
		<-w.release
	}
	return w.buf.Write(p)
}

func (w *gateWriter) free() { w.freed.Do(func() { close(w.release) }) }

// TestFetchMemberRemovedMidStream guards revocation at the edge: a
// requester removed from the provider's membership while a Cat is in
// flight (held at 1 MiB of 32 MiB) has its stream reset by Enforce, the
// Cat fails, the connection is gone on both sides, and it can neither
// connect again nor fetch.
func TestFetchMemberRemovedMidStream(t *testing.T) {
	prov, req := newTestNode(t, false), newTestNode(t, false)
	prov.serve(nil)
	link(t, prov, req)
	data := randomBytes(35, 32<<20)
	root := prov.addFile(data)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	w := &gateWriter{after: 1 << 20, reached: make(chan struct{}), release: make(chan struct{})}
	t.Cleanup(w.free)
	done := make(chan fetchResult, 1)
	go func() {
		stats, err := req.fetcher.Cat(ctx, root, "", w, FetchOptions{Providers: []peer.ID{prov.id()}})
		done <- fetchResult{stats: stats, err: err}
	}()
	select {
	case <-w.reached:
	case r := <-done:
		t.Fatalf("cat ended before 1 MiB: %v", r.err)
	case <-ctx.Done():
		t.Fatal("cat never reached 1 MiB")
	}
	prov.members.Remove(req.id())
	if n := prov.host.Enforce(); n != 1 {
		t.Errorf("Enforce closed %d peers, want 1", n)
	}
	w.free()
	r := <-done
	if !errors.Is(r.err, ErrNoProvider) {
		t.Fatalf("cat of a removed member: %v", r.err)
	}
	if w.buf.Len() >= len(data) || !bytes.Equal(w.buf.Bytes(), data[:w.buf.Len()]) {
		t.Errorf("wrote %d bytes of %d, or wrong ones", w.buf.Len(), len(data))
	}
	if _, ok := r.stats.DroppedReasons[prov.id()]; !ok {
		t.Errorf("provider not dropped: %+v", r.stats)
	}
	fetchWait(ctx, t, "the connection to close on both sides", func() bool {
		return len(prov.host.Network().ConnsToPeer(req.id())) == 0 && len(req.host.Network().ConnsToPeer(prov.id())) == 0
	})
	fetchWait(ctx, t, "the provider's handler to return", func() bool { return len(prov.service.slots) == 0 })
	assertRefusesInbound(ctx, t, prov, req, root)
}
