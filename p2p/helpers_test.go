package p2p

import (
	"bytes"
	"context"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/storage"
	"auditnet/storage/unixfs"
)

const testNetwork = "auditnet-test"

// testNode is a host with a real store in a temporary directory.
type testNode struct {
	t       testing.TB
	key     crypto.PrivKey
	host    *Host
	members *MemberSet
	store   *storage.Store
	fetcher *Fetcher
	service *FetchService
}

func newTestNode(t testing.TB, quic bool) *testNode {
	t.Helper()
	key, err := NewIdentity()
	if err != nil {
		t.Fatal(err)
	}
	listen := ma.StringCast("/ip4/127.0.0.1/tcp/0")
	if quic {
		listen = ma.StringCast("/ip4/127.0.0.1/udp/0/quic-v1")
	}
	members := NewMemberSet()
	h, err := NewHost(HostConfig{Identity: key, ListenAddrs: []ma.Multiaddr{listen}, Members: members})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close() })
	st, err := storage.Open(filepath.Join(t.TempDir(), "blocks"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	n := &testNode{t: t, key: key, host: h, members: members, store: st}
	n.fetcher, err = NewFetcher(FetcherConfig{Host: h, Identity: key, Network: testNetwork, Store: st, IdleTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// serve starts the fetch service with the given authorizer (AllowAll if
// nil).
func (n *testNode) serve(a Authorizer) {
	n.t.Helper()
	if a == nil {
		a = AllowAll{}
	}
	s, err := NewFetchService(FetchServiceConfig{Host: n.host, Store: n.store, Network: testNetwork, Authorizer: a, IdleTimeout: 10 * time.Second})
	if err != nil {
		n.t.Fatal(err)
	}
	n.service = s
	n.t.Cleanup(func() { s.Close() })
}

func (n *testNode) id() peer.ID { return n.host.ID() }

// link makes the nodes members of each other's networks and connects them.
func link(t testing.TB, nodes ...*testNode) {
	t.Helper()
	for _, a := range nodes {
		for _, b := range nodes {
			a.members.Add(b.id())
		}
	}
	for i, a := range nodes {
		for _, b := range nodes[i+1:] {
			if err := a.host.Connect(context.Background(), peer.AddrInfo{ID: b.id(), Addrs: b.host.Addrs()}); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// addFile imports data as a UnixFS file and pins it as local.
func (n *testNode) addFile(data []byte) cid.Cid {
	n.t.Helper()
	return n.importAndPin(func(im *unixfs.Importer) (unixfs.Entry, error) {
		return im.File(context.Background(), bytes.NewReader(data))
	})
}

// importAndPin runs one import into n's store and pins its root as local.
func (n *testNode) importAndPin(run func(*unixfs.Importer) (unixfs.Entry, error)) cid.Cid {
	n.t.Helper()
	w, err := n.store.NewWriter()
	if err != nil {
		n.t.Fatal(err)
	}
	defer w.Close()
	im, err := unixfs.NewImporter(unixfs.Params{}, w, nil)
	if err != nil {
		n.t.Fatal(err)
	}
	e, err := run(im)
	if err != nil {
		n.t.Fatal(err)
	}
	w.Pin(e.Cid)
	if err := w.Commit(); err != nil {
		n.t.Fatal(err)
	}
	return e.Cid
}

func randomBytes(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := range 8 {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

// readAll reads a fetched file back from the store.
func (n *testNode) readAll(c cid.Cid) []byte {
	n.t.Helper()
	nd, err := unixfs.Load(context.Background(), n.store, c)
	if err != nil {
		n.t.Fatal(err)
	}
	r, err := unixfs.NewFileReader(context.Background(), n.store, nd, 2)
	if err != nil {
		n.t.Fatal(err)
	}
	defer r.Close()
	var buf bytes.Buffer
	if _, err := r.WriteTo(&buf); err != nil {
		n.t.Fatal(err)
	}
	return buf.Bytes()
}

// addDir imports files (slash-separated relative names) as a UnixFS
// directory tree and pins its root as local.
func (n *testNode) addDir(files map[string][]byte) cid.Cid {
	n.t.Helper()
	dir := n.t.TempDir()
	for name, data := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			n.t.Fatal(err)
		}
		if err := os.WriteFile(p, data, 0o644); err != nil {
			n.t.Fatal(err)
		}
	}
	return n.importAndPin(func(im *unixfs.Importer) (unixfs.Entry, error) {
		return im.AddPath(context.Background(), dir, unixfs.AddOptions{}, func(string, unixfs.Entry, bool) {})
	})
}

// mustResolve resolves a path in n's store.
func mustResolve(t testing.TB, n *testNode, root cid.Cid, path string) cid.Cid {
	t.Helper()
	nd, err := unixfs.Resolve(context.Background(), n.store, root, path)
	if err != nil {
		t.Fatal(err)
	}
	return nd.Cid
}
