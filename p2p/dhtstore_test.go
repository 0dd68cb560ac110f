package p2p

import (
	"context"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	ds "github.com/ipfs/go-datastore"
	"github.com/ipfs/go-datastore/query"
	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"
	mh "github.com/multiformats/go-multihash"
)

// TestRecordStoreDatastore checks the go-datastore semantics the DHT relies
// on: reads of missing keys, prefix queries that respect key boundaries,
// keys-only queries, batches, and refusal after Close.
func TestRecordStoreDatastore(t *testing.T) {
	ctx := context.Background()
	s, err := OpenRecordStore(filepath.Join(t.TempDir(), "dht"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, ds.NewKey("/nope")); err != ds.ErrNotFound {
		t.Fatalf("get missing: %v", err)
	}
	for _, k := range []string{"/a/1", "/a/2", "/ab/1", "/b"} {
		if err := s.Put(ctx, ds.NewKey(k), []byte(k)); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := s.Batch(ctx)
	b.Put(ctx, ds.NewKey("/a/3"), []byte("/a/3"))
	b.Delete(ctx, ds.NewKey("/b"))
	if err := b.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	res, err := s.Query(ctx, query.Query{Prefix: "/a"})
	if err != nil {
		t.Fatal(err)
	}
	entries, err := res.Rest()
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, e := range entries {
		if string(e.Value) != e.Key {
			t.Fatalf("entry %s holds %q", e.Key, e.Value)
		}
		keys = append(keys, e.Key)
	}
	if !slices.Equal(keys, []string{"/a/1", "/a/2", "/a/3"}) {
		t.Fatalf("prefix /a: %v", keys)
	}
	res, _ = s.Query(ctx, query.Query{KeysOnly: true, Limit: 2})
	entries, _ = res.Rest()
	if len(entries) != 2 || entries[0].Value != nil {
		t.Fatalf("keys-only, limit 2: %+v", entries)
	}
	if ok, _ := s.Has(ctx, ds.NewKey("/b")); ok {
		t.Fatal("batched delete did not apply")
	}
	if n, err := s.GetSize(ctx, ds.NewKey("/ab/1")); err != nil || n != 5 {
		t.Fatalf("size: %d %v", n, err)
	}
	s.Close()
	if err := s.Put(ctx, ds.NewKey("/c"), nil); err == nil {
		t.Fatal("put after close")
	}
}

// TestProviderRecordsSurviveRestart has a DHT server take a provider record
// from a peer, restart (new process state, same record store), and still
// answer for it.
func TestProviderRecordsSurviveRestart(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "dht")
	members := NewMemberSet()
	start := func(key []byte) (*Host, *DHT, *RecordStore) {
		t.Helper()
		sk := mustKey(t)
		h, err := NewHost(HostConfig{Identity: sk, ListenAddrs: []ma.Multiaddr{ma.StringCast("/ip4/127.0.0.1/tcp/0")}, Members: members})
		if err != nil {
			t.Fatal(err)
		}
		members.Add(h.ID())
		var rs *RecordStore
		if key != nil {
			if rs, err = OpenRecordStore(dir); err != nil {
				t.Fatal(err)
			}
		}
		d, err := NewDHT(h, DHTConfig{Server: true, Records: recordsOrNil(rs)})
		if err != nil {
			t.Fatal(err)
		}
		return h, d, rs
	}
	server, sdht, srs := start([]byte{1})
	holder, hdht, _ := start(nil)
	defer holder.Close()
	defer hdht.Close()
	if err := hdht.Bootstrap(ctx, []peer.AddrInfo{{ID: server.ID(), Addrs: server.Addrs()}}); err != nil {
		t.Fatal(err)
	}
	waitRoutingTable(t, hdht)
	root := testCidP2P("dataset")
	if err := hdht.Provide(ctx, root); err != nil {
		t.Fatal(err)
	}
	// ADD_PROVIDER is a one-way message: wait until the server has it.
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		got, _ := sdht.kad.ProviderStore().GetProviders(ctx, root.Hash())
		if len(got) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the server never stored the record")
		}
		<-tick.C
	}
	sdht.Close()
	server.Close()
	srs.Close()

	server2, sdht2, srs2 := start([]byte{1})
	defer func() { sdht2.Close(); server2.Close(); srs2.Close() }()
	provs, err := sdht2.kad.ProviderStore().GetProviders(ctx, root.Hash())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(provs, func(p peer.AddrInfo) bool { return p.ID == holder.ID() }) {
		t.Fatalf("after restart the server knows providers %v, want %s", provs, holder.ID())
	}
}

func recordsOrNil(rs *RecordStore) ds.Batching {
	if rs == nil {
		return nil
	}
	return rs
}

// waitRoutingTable waits until d has a peer in its routing table.
func waitRoutingTable(t *testing.T, d *DHT) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for d.RoutingTableSize() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("routing table still empty")
		}
		<-tick.C
	}
}

func testCidP2P(s string) cid.Cid {
	h, _ := mh.Sum([]byte(s), mh.SHA2_256, -1)
	return cid.NewCidV1(cid.Raw, h)
}
