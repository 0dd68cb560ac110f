package p2p

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"

	"auditnet/storage"
	"auditnet/storage/dagpb"
	"auditnet/storage/unixfs"
)

// sentBlock is one CAR section as a provider writes it.
type sentBlock struct {
	c    cid.Cid
	data []byte
}

// honestBlocks returns the sections an honest provider holding st sends
// for req, in order: it runs the traversal FetchService runs, over the same
// store. A traversal error (an unsupported node) ends the list after the
// block that caused it, as it ends the real provider's stream.
func honestBlocks(ctx context.Context, st *storage.Store, req *FetchRequest) []sentBlock {
	var out []sentBlock
	get := func(ctx context.Context, c cid.Cid) ([]byte, error) {
		if b, ok := identityBlock(c); ok {
			return b, nil
		}
		b, err := st.Get(ctx, c)
		if err != nil {
			return nil, err
		}
		out = append(out, sentBlock{c, b})
		return b, nil
	}
	tr := newTraversal(req.Scope, get, func(cid.Cid, []byte) error { return nil })
	if req.Scope.Path != "" {
		if err := tr.resolvePath(ctx, req.Root.Cid, req.Scope.Path); err != nil {
			return out
		}
	} else {
		svc := &FetchService{cfg: FetchServiceConfig{Store: st}}
		targets, err := svc.resolveLinkPaths(ctx, req.Root.Cid, req.Scope.Links)
		if err != nil {
			return nil
		}
		tr.push(targets)
	}
	tr.run(ctx)
	return out
}

// serveCrafted makes n a bad provider: its fetch handler accepts every
// well-formed request, replies OK with the right CAR header, then sends
// craft's version of the sections an honest provider would send. It uses
// the package's own framing, so only the blocks differ from the real thing.
func (n *testNode) serveCrafted(c craft, foreign sentBlock) {
	n.host.SetStreamHandler(FetchProtocol, func(st network.Stream) {
		if err := writeCrafted(st, n.store, func(bs []sentBlock) []sentBlock { return c(foreign, bs) }); err != nil {
			st.Reset()
			return
		}
		st.Close()
	})
}

func writeCrafted(st network.Stream, store *storage.Store, craft func([]sentBlock) []sentBlock) error {
	st.SetDeadline(time.Now().Add(30 * time.Second))
	raw, err := readFrame(bufio.NewReader(st), maxRequestSize)
	if err != nil {
		return err
	}
	req, err := DecodeSignedRequest(raw)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	blocks := craft(honestBlocks(ctx, store, req))
	rep, err := encodeReply(replyOK, "")
	if err != nil {
		return err
	}
	hdr, err := encodeCarHeader(req.Root.Cid)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(st)
	if err := writeFrame(bw, rep); err != nil {
		return err
	}
	if err := writeFrame(bw, hdr); err != nil {
		return err
	}
	for _, b := range blocks {
		if err := writeSection(bw, b.c, b.data); err != nil {
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		return err
	}
	return st.CloseWrite()
}

// badAt is where the crafts below strike: the third section (the second
// leaf of a whole-file stream), or the last of a shorter stream.
func badAt(bs []sentBlock) int { return max(0, min(2, len(bs)-1)) }

// A craft turns the honest sections of one stream into what a bad
// provider sends; foreign is a valid block of another dataset it holds.
type craft func(foreign sentBlock, honest []sentBlock) []sentBlock

// corruptBlock flips a byte of one block: it no longer hashes to its CID.
func corruptBlock(_ sentBlock, bs []sentBlock) []sentBlock {
	if len(bs) == 0 {
		return bs
	}
	out := slices.Clone(bs)
	i := badAt(out)
	data := bytes.Clone(out[i].data)
	if len(data) == 0 {
		data = []byte{0}
	}
	data[len(data)/2] ^= 0xff
	out[i].data = data
	return out
}

// insertForeign slips the valid foreign block, which nobody asked for, in
// front of an expected one.
func insertForeign(foreign sentBlock, bs []sentBlock) []sentBlock {
	if len(bs) == 0 {
		return bs
	}
	return slices.Insert(slices.Clone(bs), badAt(bs), foreign)
}

// swapBlocks sends two neighbouring blocks in the wrong order (a stream of
// one block goes out as it is).
func swapBlocks(_ sentBlock, bs []sentBlock) []sentBlock {
	out := slices.Clone(bs)
	if i := badAt(out); i+1 < len(out) {
		out[i], out[i+1] = out[i+1], out[i]
	} else if i > 0 {
		out[i-1], out[i] = out[i], out[i-1]
	}
	return out
}

// appendDuplicates keeps sending (valid) blocks after the scope ends.
func appendDuplicates(_ sentBlock, bs []sentBlock) []sentBlock {
	if len(bs) == 0 {
		return bs
	}
	out := slices.Clone(bs)
	for range 3 {
		out = append(out, bs[len(bs)-1])
	}
	return out
}

// badProviderCases are the misbehaviours of a provider that holds the
// dataset.
var badProviderCases = []struct {
	name  string
	craft craft
	want  string // in the error and in the dropped reason
	// complete: the bad provider sent the whole scope before it went
	// wrong, so a fetch from it alone still has every verified block.
	complete bool
}{
	{"corrupt block", corruptBlock, "does not hash to its CID", false},
	{"unrequested valid block", insertForeign, "comes next", false},
	{"reordered blocks", swapBlocks, "comes next", false},
	{"blocks after the end", appendDuplicates, "sent more than the scope asked for", true},
}

// fetchMode runs a Get (into the requester's store) or a Cat (into a
// buffer) of root and returns the file's bytes. It does not touch t, so it
// may run in a goroutine of its own.
type fetchMode struct {
	name string
	run  func(ctx context.Context, n *testNode, root cid.Cid, opts FetchOptions) ([]byte, FetchStats, error)
}

var fetchModes = []fetchMode{
	{"cat", func(ctx context.Context, n *testNode, root cid.Cid, opts FetchOptions) ([]byte, FetchStats, error) {
		var buf bytes.Buffer
		stats, err := n.fetcher.Cat(ctx, root, "", &buf, opts)
		return buf.Bytes(), stats, err
	}},
	{"get", func(ctx context.Context, n *testNode, root cid.Cid, opts FetchOptions) ([]byte, FetchStats, error) {
		stats, err := n.fetcher.Get(ctx, root, "", opts)
		if err != nil {
			return nil, stats, err
		}
		got, err := readStored(ctx, n.store, root)
		return got, stats, err
	}},
}

// readStored reads a file back from a store.
func readStored(ctx context.Context, st *storage.Store, c cid.Cid) ([]byte, error) {
	nd, err := unixfs.Load(ctx, st, c)
	if err != nil {
		return nil, err
	}
	r, err := unixfs.NewFileReader(ctx, st, nd, 2)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	var buf bytes.Buffer
	_, err = r.WriteTo(&buf)
	return buf.Bytes(), err
}

// addForeign imports a one-block dataset and returns that block.
func (n *testNode) addForeign(seed uint64) sentBlock {
	n.t.Helper()
	data := randomBytes(seed, 1000)
	c := n.addFile(data)
	b, err := n.store.Get(context.Background(), c)
	if err != nil {
		n.t.Fatal(err)
	}
	return sentBlock{c, b}
}

// assertNothingKept checks that a fetch left no pin and none of the given
// blocks in the requester's store.
func assertNothingKept(t *testing.T, n *testNode, blocks ...cid.Cid) {
	t.Helper()
	ctx := context.Background()
	pins, err := n.store.Pins(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pins) > 0 {
		t.Errorf("pins after a failed fetch: %v", pins)
	}
	for _, c := range blocks {
		if has, err := n.store.Has(ctx, c); err != nil || has {
			t.Errorf("block %s stored after the fetch (err %v)", c, err)
		}
	}
}

// TestFetchFromBadProviderAlone guards the requester's checks against a
// provider that holds the dataset and lies about its blocks: a corrupt
// block, an unrequested but valid block, blocks out of order, blocks after
// the end. The fetch from it alone fails with ErrProtocol (inside
// ErrNoProvider), names the fault, drops the provider and keeps nothing;
// only a provider that sent the whole scope before its excess leaves a
// complete, verified fetch behind.
func TestFetchFromBadProviderAlone(t *testing.T) {
	data := randomBytes(11, 4<<20)
	for _, mode := range fetchModes {
		for _, tc := range badProviderCases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				bad, req := newTestNode(t, false), newTestNode(t, false)
				link(t, bad, req)
				root := bad.addFile(data)
				foreign := bad.addForeign(12)
				bad.serveCrafted(tc.craft, foreign)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()

				got, stats, err := mode.run(ctx, req, root, FetchOptions{Providers: []peer.ID{bad.id()}})
				if reason := stats.DroppedReasons[bad.id()]; !strings.Contains(reason, tc.want) {
					t.Errorf("dropped reason %q, want it to say %q", reason, tc.want)
				}
				if tc.complete {
					if err != nil {
						t.Fatalf("fetch with every block verified failed: %v", err)
					}
					if !bytes.Equal(got, data) {
						t.Fatal("bytes differ")
					}
					return
				}
				if !errors.Is(err, ErrProtocol) || !errors.Is(err, ErrNoProvider) || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want ErrNoProvider and ErrProtocol saying %q", err, tc.want)
				}
				assertNothingKept(t, req, root, foreign.c)
			})
		}
	}
}

// TestFetchBadProviderThenHonest guards failover: with the bad provider
// asked first and an honest one second, Get and Cat complete with the
// right bytes, the bad provider is in DroppedReasons with the fault, the
// honest one is not, and the bad provider's foreign block is never stored.
func TestFetchBadProviderThenHonest(t *testing.T) {
	data := randomBytes(13, 4<<20)
	for _, mode := range fetchModes {
		for _, tc := range badProviderCases {
			t.Run(mode.name+"/"+tc.name, func(t *testing.T) {
				bad, good, req := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
				good.serve(nil)
				link(t, bad, good, req)
				root := bad.addFile(data)
				good.addFile(data)
				foreign := bad.addForeign(14)
				bad.serveCrafted(tc.craft, foreign)
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()

				got, stats, err := mode.run(ctx, req, root, FetchOptions{Providers: []peer.ID{bad.id(), good.id()}})
				if err != nil {
					t.Fatalf("fetch with an honest second provider: %v (stats %+v)", err, stats)
				}
				if !bytes.Equal(got, data) {
					t.Fatal("bytes differ")
				}
				if reason := stats.DroppedReasons[bad.id()]; !strings.Contains(reason, tc.want) {
					t.Errorf("dropped reason %q, want it to say %q", reason, tc.want)
				}
				if reason, ok := stats.DroppedReasons[good.id()]; ok {
					t.Errorf("honest provider dropped: %s", reason)
				}
				if has, _ := req.store.Has(ctx, foreign.c); has {
					t.Error("the unrequested block was stored")
				}
			})
		}
	}
}

// addUnderstated imports a file whose root declares each leaf's size as
// one byte, and pins it as this node's own.
func (n *testNode) addUnderstated(data []byte, chunk int) cid.Cid {
	n.t.Helper()
	w, err := n.store.NewWriter()
	if err != nil {
		n.t.Fatal(err)
	}
	defer w.Close()
	var links []dagpb.Link
	var sizes []uint64
	for chunkData := range slices.Chunk(data, chunk) {
		c := rawCID(chunkData)
		if err := w.Put(c, chunkData); err != nil {
			n.t.Fatal(err)
		}
		links = append(links, dagpb.NewLink(c, "", 1))
		sizes = append(sizes, uint64(len(chunkData)))
	}
	root := n.putFileNode(w, links, uint64(len(data)), sizes)
	w.Pin(root)
	if err := w.Commit(); err != nil {
		n.t.Fatal(err)
	}
	return root
}

func (n *testNode) putFileNode(w *storage.Writer, links []dagpb.Link, size uint64, sizes []uint64) cid.Cid {
	n.t.Helper()
	fd := unixfs.Data{Type: unixfs.TypeFile, FileSize: size, HasFileSize: true, BlockSizes: sizes}
	nd := dagpb.Node{Links: links, Data: fd.Marshal()}
	block := nd.Marshal()
	c := dagpbCID(block)
	if err := w.Put(c, block); err != nil {
		n.t.Fatal(err)
	}
	return c
}

// TestFetchRefusesMoreThanDeclared guards the byte budget: a provider
// sending a DAG whose root declares its leaves smaller than they are is
// cut off at the first byte past the declared total, with ErrProtocol;
// nothing is pinned or kept.
func TestFetchRefusesMoreThanDeclared(t *testing.T) {
	data := randomBytes(15, 1<<20)
	for _, mode := range fetchModes {
		t.Run(mode.name, func(t *testing.T) {
			prov, req := newTestNode(t, false), newTestNode(t, false)
			prov.serve(nil)
			link(t, prov, req)
			root := prov.addUnderstated(data, 256<<10)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			_, stats, err := mode.run(ctx, req, root, FetchOptions{Providers: []peer.ID{prov.id()}})
			const want = "more than the"
			if !errors.Is(err, ErrProtocol) || !strings.Contains(err.Error(), want) {
				t.Fatalf("err = %v, want ErrProtocol saying %q", err, want)
			}
			if reason := stats.DroppedReasons[prov.id()]; !strings.Contains(reason, want) {
				t.Errorf("dropped reason %q", reason)
			}
			if stats.Bytes > int64(len(data)/2) {
				t.Errorf("accepted %d bytes of a DAG declaring far fewer", stats.Bytes)
			}
			assertNothingKept(t, req, root)
		})
	}
}

// TestFetchRefusesWideNode guards the link limit: a verified dag-pb node
// with 10,000 links (maxLinks is 8192) is refused with ErrUnsupportedDAG,
// whether a crafted provider or the real service sends it. It is a fault of
// the data, not of the provider, so the fetch stops without asking the
// second provider, and nothing is pinned or kept.
func TestFetchRefusesWideNode(t *testing.T) {
	for _, mode := range fetchModes {
		for _, crafted := range []bool{false, true} {
			name := mode.name + "/service"
			if crafted {
				name = mode.name + "/crafted"
			}
			t.Run(name, func(t *testing.T) {
				prov, other, req := newTestNode(t, false), newTestNode(t, false), newTestNode(t, false)
				link(t, prov, other, req)
				root := prov.addWide(10_000)
				other.serve(nil)
				if crafted {
					prov.serveCrafted(func(_ sentBlock, bs []sentBlock) []sentBlock { return bs }, sentBlock{})
				} else {
					prov.serve(nil)
				}
				ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
				defer cancel()

				_, stats, err := mode.run(ctx, req, root, FetchOptions{Providers: []peer.ID{prov.id(), other.id()}})
				if !errors.Is(err, ErrUnsupportedDAG) || !strings.Contains(err.Error(), "10000 links") {
					t.Fatalf("err = %v, want ErrUnsupportedDAG about 10000 links", err)
				}
				if stats.Requests != 1 {
					t.Errorf("%d requests; a data fault must stop the fetch at the first", stats.Requests)
				}
				assertNothingKept(t, req, root)
			})
		}
	}
}

// addWide stores (and pins as local) a UnixFS file node with n links, all
// to one small raw leaf.
func (n *testNode) addWide(links int) cid.Cid {
	n.t.Helper()
	w, err := n.store.NewWriter()
	if err != nil {
		n.t.Fatal(err)
	}
	defer w.Close()
	leaf := []byte("x")
	lc := rawCID(leaf)
	if err := w.Put(lc, leaf); err != nil {
		n.t.Fatal(err)
	}
	ls := make([]dagpb.Link, links)
	for i := range ls {
		ls[i] = dagpb.NewLink(lc, "", 1)
	}
	root := n.putFileNode(w, ls, uint64(links), nil)
	w.Pin(root)
	if err := w.Commit(); err != nil {
		n.t.Fatal(err)
	}
	return root
}

func rawCID(data []byte) cid.Cid { return sumCID(cid.Raw, data) }

func dagpbCID(data []byte) cid.Cid { return sumCID(cid.DagProtobuf, data) }

func sumCID(codec uint64, data []byte) cid.Cid {
	c, err := cid.V1Builder{Codec: codec, MhType: mh.SHA2_256}.Sum(data)
	if err != nil {
		panic(err)
	}
	return c
}
