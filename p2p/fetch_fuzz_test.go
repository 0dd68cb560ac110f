package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"

	"auditnet/internal/dagcbor"
	"auditnet/storage/unixfs"
)

// fuzzKey is a fixed Ed25519 node key, so seeds are the same every run.
func fuzzKey(tb testing.TB, seed byte) (crypto.PrivKey, peer.ID) {
	tb.Helper()
	sk, _, err := crypto.GenerateEd25519Key(bytes.NewReader(bytes.Repeat([]byte{seed}, 64)))
	if err != nil {
		tb.Fatal(err)
	}
	id, err := peer.IDFromPrivateKey(sk)
	if err != nil {
		tb.Fatal(err)
	}
	return sk, id
}

// fuzzRequests are well-formed requests covering every field.
func fuzzRequests(tb testing.TB) ([]*FetchRequest, crypto.PrivKey) {
	sk, requester := fuzzKey(tb, 1)
	_, provider := fuzzKey(tb, 2)
	root := rawCID([]byte("fuzz root"))
	base := func() *FetchRequest {
		return &FetchRequest{
			Network:   testNetwork,
			Root:      dagcbor.Link{Cid: root},
			Requester: []byte(requester),
			Provider:  []byte(provider),
			Nonce:     bytes.Repeat([]byte{7}, nonceSize),
			Time:      1_700_000_000_000,
			Purpose:   "audit 2024/17",
		}
	}
	withPath, withLinks, withAuth := base(), base(), base()
	withPath.Scope = Scope{Path: "dir/file.csv", Depth: 1}
	withLinks.Scope = Scope{Links: [][]int{{}, {0, 3}, {1}}, Depth: 2, Dedup: true}
	withAuth.Auth = &dagcbor.Link{Cid: dagpbCID([]byte("access request"))}
	return []*FetchRequest{base(), withPath, withLinks, withAuth}, sk
}

// FuzzDecodeSignedRequest: DecodeSignedRequest never panics, and what it
// accepts is within bounds, valid, canonical (its envelope and request
// re-encode to the bytes they came from) and signed by its requester.
func FuzzDecodeSignedRequest(f *testing.F) {
	reqs, sk := fuzzRequests(f)
	for _, r := range reqs {
		b, err := EncodeSignedRequest(r, sk)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
		bad := bytes.Clone(b)
		bad[len(bad)/2] ^= 1
		f.Add(bad)
	}
	f.Add([]byte{})
	f.Add([]byte{0xa2, 0x63, 's', 'i', 'g', 0x40, 0x67, 'r', 'e', 'q', 'u', 'e', 's', 't', 0x40})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := DecodeSignedRequest(b)
		if err != nil {
			return
		}
		if len(b) > maxRequestSize {
			t.Fatalf("accepted a request of %d bytes", len(b))
		}
		if err := r.Validate(); err != nil {
			t.Fatalf("accepted an invalid request: %v", err)
		}
		var env signedRequest
		if err := dagcbor.Unmarshal(b, &env); err != nil {
			t.Fatalf("accepted envelope does not decode again: %v", err)
		}
		raw, err := dagcbor.Marshal(r)
		if err != nil || !bytes.Equal(raw, env.Request) {
			t.Fatalf("request re-encodes to %x (%v), came as %x", raw, err, []byte(env.Request))
		}
		if again, err := dagcbor.Marshal(env); err != nil || !bytes.Equal(again, b) {
			t.Fatalf("envelope re-encodes to %x (%v), came as %x", again, err, b)
		}
		pub, err := r.RequesterID().ExtractPublicKey()
		if err != nil {
			t.Fatal(err)
		}
		if ok, err := pub.Verify(signingBytes(raw), env.Sig); err != nil || !ok {
			t.Fatal("accepted a request its requester did not sign")
		}
	})
}

// TestDecodeSignedRequestEachField guards the request verifier with one
// bad vector per signed field: each field changed after signing breaks the
// signature, and each bound broken before signing is refused by Validate.
func TestDecodeSignedRequestEachField(t *testing.T) {
	reqs, sk := fuzzRequests(t)
	_, other := fuzzKey(t, 3)
	edits := []struct {
		name string
		edit func(*FetchRequest)
	}{
		{"network", func(r *FetchRequest) { r.Network = "other" }},
		{"root", func(r *FetchRequest) { r.Root = dagcbor.Link{Cid: rawCID([]byte("other"))} }},
		{"scope path", func(r *FetchRequest) { r.Scope.Path = "other" }},
		{"scope links", func(r *FetchRequest) { r.Scope.Links = [][]int{{9}} }},
		{"scope depth", func(r *FetchRequest) { r.Scope.Depth = 3 }},
		{"scope dedup", func(r *FetchRequest) { r.Scope.Dedup = !r.Scope.Dedup }},
		{"provider", func(r *FetchRequest) { r.Provider = []byte(other) }},
		{"nonce", func(r *FetchRequest) { r.Nonce = bytes.Repeat([]byte{8}, nonceSize) }},
		{"time", func(r *FetchRequest) { r.Time++ }},
		{"purpose", func(r *FetchRequest) { r.Purpose += "!" }},
		{"auth", func(r *FetchRequest) { r.Auth = &dagcbor.Link{Cid: rawCID([]byte("other auth"))} }},
	}
	for _, tc := range edits {
		t.Run("after signing/"+tc.name, func(t *testing.T) {
			r := *reqs[0]
			b, err := EncodeSignedRequest(&r, sk)
			if err != nil {
				t.Fatal(err)
			}
			var env signedRequest
			if err := dagcbor.Unmarshal(b, &env); err != nil {
				t.Fatal(err)
			}
			tc.edit(&r)
			if env.Request, err = dagcbor.Marshal(&r); err != nil {
				t.Fatal(err)
			}
			wire, err := dagcbor.Marshal(env)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeSignedRequest(wire); !errors.Is(err, errBadSignature) {
				t.Fatalf("err = %v, want errBadSignature", err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		edit func(*FetchRequest)
	}{
		{"no network", func(r *FetchRequest) { r.Network = "" }},
		{"short nonce", func(r *FetchRequest) { r.Nonce = r.Nonce[:nonceSize-1] }},
		{"long purpose", func(r *FetchRequest) { r.Purpose = strings.Repeat("p", maxPurposeLength+1) }},
		{"long path", func(r *FetchRequest) { r.Scope.Path = strings.Repeat("d/", maxPathLength) }},
		{"path and links", func(r *FetchRequest) { r.Scope = Scope{Path: "a", Links: [][]int{{0}}} }},
		{"too many link paths", func(r *FetchRequest) { r.Scope.Links = make([][]int, maxScopeLinks+1) }},
		{"link path too deep", func(r *FetchRequest) { r.Scope.Links = [][]int{make([]int, maxLinkPathDepth+1)} }},
		{"negative link index", func(r *FetchRequest) { r.Scope.Links = [][]int{{-1}} }},
		{"link index past maxLinks", func(r *FetchRequest) { r.Scope.Links = [][]int{{maxLinks}} }},
		{"negative depth", func(r *FetchRequest) { r.Scope.Depth = -1 }},
		{"depth past maxDAGDepth", func(r *FetchRequest) { r.Scope.Depth = maxDAGDepth + 1 }},
		{"bad requester", func(r *FetchRequest) { r.Requester = []byte("nobody") }},
		{"bad provider", func(r *FetchRequest) { r.Provider = nil }},
	} {
		t.Run("invalid/"+tc.name, func(t *testing.T) {
			r := *reqs[0]
			tc.edit(&r)
			wire, err := EncodeSignedRequest(&r, sk)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := DecodeSignedRequest(wire); err == nil || errors.Is(err, errBadSignature) {
				t.Fatalf("err = %v, want a validation error", err)
			}
		})
	}
}

// FuzzDecodeReply: the requester's reading of a reply frame never panics,
// never takes a frame over maxReplySize, and what decodes re-encodes to
// the same bytes.
func FuzzDecodeReply(f *testing.F) {
	for _, rep := range []fetchReply{
		{replyOK, ""}, {replyRefused, "stale request"}, {replyNotHeld, "this node is not a source of bafy"},
		{replyBusy, "too many fetches running"}, {replyBadScope, strings.Repeat("x", 300)}, {-1, "\xff"},
	} {
		b, err := encodeReply(rep.Code, rep.Message)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(framed(b))
	}
	f.Add([]byte{0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, err := readFrame(bufio.NewReader(bytes.NewReader(b)), maxReplySize)
		if err != nil {
			return
		}
		if len(frame) > maxReplySize {
			t.Fatalf("read a reply frame of %d bytes", len(frame))
		}
		var rep fetchReply
		if err := dagcbor.Unmarshal(frame, &rep); err != nil {
			return
		}
		if again, err := encodeReply(rep.Code, rep.Message); err != nil || !bytes.Equal(again, frame) {
			t.Fatalf("reply %+v re-encodes to %x (%v), came as %x", rep, again, err, frame)
		}
	})
}

// FuzzDecodeCarHeader: the requester's reading of the CAR header never
// panics, what decodes re-encodes to the same bytes, and a header naming
// one root at version 1 is exactly what encodeCarHeader writes for it.
func FuzzDecodeCarHeader(f *testing.F) {
	for _, c := range []cid.Cid{rawCID([]byte("a")), dagpbCID([]byte("b"))} {
		b, err := encodeCarHeader(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(framed(b))
	}
	two, _ := dagcbor.Marshal(carHeader{Roots: []dagcbor.Link{{Cid: rawCID([]byte("a"))}, {Cid: rawCID([]byte("b"))}}, Version: 1})
	f.Add(framed(two))
	v2, _ := dagcbor.Marshal(carHeader{Version: 2})
	f.Add(framed(v2))
	f.Fuzz(func(t *testing.T, b []byte) {
		frame, err := readFrame(bufio.NewReader(bytes.NewReader(b)), maxReplySize)
		if err != nil {
			return
		}
		var hdr carHeader
		if err := dagcbor.Unmarshal(frame, &hdr); err != nil {
			return
		}
		if again, err := dagcbor.Marshal(hdr); err != nil || !bytes.Equal(again, frame) {
			t.Fatalf("header re-encodes to %x (%v), came as %x", again, err, frame)
		}
		if hdr.Version == 1 && len(hdr.Roots) == 1 {
			if want, err := encodeCarHeader(hdr.Roots[0].Cid); err != nil || !bytes.Equal(want, frame) {
				t.Fatalf("header for %s is %x, encodeCarHeader writes %x (%v)", hdr.Roots[0].Cid, frame, want, err)
			}
		}
	})
}

// blockMap is an in-memory block sink and getter.
type blockMap map[cid.Cid][]byte

func (m blockMap) Put(c cid.Cid, data []byte) error {
	m[c] = bytes.Clone(data)
	return nil
}

func (m blockMap) get(_ context.Context, c cid.Cid) ([]byte, error) {
	if b, ok := m[c]; ok {
		return b, nil
	}
	return nil, errors.New("no block")
}

// fuzzDAG is a small file DAG of three levels (64-byte leaves, three links
// per node) and the CAR sections an honest provider sends for it.
func fuzzDAG(tb testing.TB) (root cid.Cid, data, sections []byte, blocks []sentBlock) {
	tb.Helper()
	data = randomBytes(41, 600)
	m := blockMap{}
	im, err := unixfs.NewImporter(unixfs.Params{ChunkSize: 64, MaxLinks: 3, Workers: 1}, m, nil)
	if err != nil {
		tb.Fatal(err)
	}
	e, err := im.File(context.Background(), bytes.NewReader(data))
	if err != nil {
		tb.Fatal(err)
	}
	tr := newTraversal(Scope{}, m.get, func(c cid.Cid, b []byte) error {
		blocks = append(blocks, sentBlock{c, b})
		return nil
	})
	tr.push([]target{{c: e.Cid, path: []int{}}})
	if err := tr.run(context.Background()); err != nil {
		tb.Fatal(err)
	}
	return e.Cid, data, sectionsOf(blocks), blocks
}

// fuzzStream is the little of a stream a session uses once open.
type fuzzStream struct{ network.Stream }

func (fuzzStream) SetReadDeadline(time.Time) error { return nil }
func (fuzzStream) Close() error                    { return nil }
func (fuzzStream) Reset() error                    { return nil }

// sectionsOf encodes blocks as CAR sections.
func sectionsOf(blocks []sentBlock) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	for _, b := range blocks {
		writeSection(bw, b.c, b.data)
	}
	bw.Flush()
	return buf.Bytes()
}

// runSession feeds b, as the blocks of a stream, to a requester's session
// running the whole-DAG traversal of root with a visit that writes the
// file out, as Cat does. It fails t if the session hands on a block that
// does not hash to its CID.
func runSession(t *testing.T, root cid.Cid, b []byte) (out []byte, s *session, runErr, closeErr error) {
	fetcher := &Fetcher{cfg: FetcherConfig{Now: time.Now, IdleTimeout: time.Minute}}
	s = &session{f: fetcher, p: peer.ID("fuzz"), st: fuzzStream{}, br: bufio.NewReader(bytes.NewReader(b)), stop: func() bool { return true }, open: true}
	// What prefetch does, read ahead to the end in this goroutine: the
	// fuzzer's coverage then does not depend on scheduling. Every section
	// takes at least one byte, so len(b)+1 of them fit.
	s.sections, s.quit, s.done = make(chan section, len(b)+1), make(chan struct{}), make(chan struct{})
	for {
		sec := s.readSection()
		s.sections <- sec
		if sec.err != nil {
			break
		}
	}
	close(s.sections)
	close(s.done)
	s.onBlock = func(c cid.Cid, block []byte) error {
		if err := checkBlock(c, block); err != nil {
			t.Fatalf("session handed on a block that fails its CID: %v", err)
		}
		return nil
	}
	var buf bytes.Buffer
	tr := newTraversal(Scope{}, s.get, func(c cid.Cid, block []byte) error {
		n, err := unixfs.DecodeNode(c, block)
		if err != nil {
			return err
		}
		buf.Write(n.FileData())
		return nil
	})
	tr.push([]target{{c: root, path: []int{}}})
	runErr = tr.run(context.Background())
	closeErr = s.close(runErr == nil)
	return buf.Bytes(), s, runErr, closeErr
}

// FuzzSessionSections feeds arbitrary bytes, as the blocks of a stream, to
// a requester's session fetching a fixed root. It never panics, hands on
// only blocks that hash to their CIDs, takes no more than the DAG declares
// (plus the one block that passes it), and when the fetch succeeds the file
// is exactly the original: no stream but the honest one can pass.
func FuzzSessionSections(f *testing.F) {
	root, data, honest, blocks := fuzzDAG(f)
	f.Add(honest)
	f.Add(honest[:len(honest)-1])
	f.Add(append(bytes.Clone(honest), honest[:40]...))
	f.Add(sectionsOf(corruptBlock(sentBlock{}, blocks)))
	f.Add(sectionsOf(swapBlocks(sentBlock{}, blocks)))
	f.Add(sectionsOf(insertForeign(sentBlock{rawCID([]byte("x")), []byte("x")}, blocks)))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		out, s, err, cerr := runSession(t, root, b)
		if err == nil && cerr == nil && !bytes.Equal(out, data) {
			t.Fatalf("a fetch succeeded with %d wrong bytes", len(out))
		}
		if err == nil && cerr != nil && !errors.Is(cerr, ErrProtocol) {
			t.Fatalf("excess after the scope: %v, want ErrProtocol", cerr)
		}
		if s.got > s.budget+maxBlockSize {
			t.Fatalf("took %d bytes against a budget of %d", s.got, s.budget)
		}
	})
}

// TestSessionSectionsHonest checks FuzzSessionSections' premise: the honest
// stream passes, and each seeded fault is caught.
func TestSessionSectionsHonest(t *testing.T) {
	root, data, honest, blocks := fuzzDAG(t)
	out, _, err, cerr := runSession(t, root, honest)
	if err != nil || cerr != nil || !bytes.Equal(out, data) {
		t.Fatalf("honest stream: %v, %v, %d bytes of %d", err, cerr, len(out), len(data))
	}
	for name, b := range map[string][]byte{
		"corrupt":   sectionsOf(corruptBlock(sentBlock{}, blocks)),
		"reordered": sectionsOf(swapBlocks(sentBlock{}, blocks)),
		"excess":    append(bytes.Clone(honest), sectionsOf(blocks[:1])...),
		"truncated": honest[:len(honest)-1],
	} {
		_, _, err, cerr := runSession(t, root, b)
		if err == nil && cerr == nil {
			t.Errorf("%s stream accepted", name)
		}
	}
}
