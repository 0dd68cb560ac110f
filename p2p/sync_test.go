package p2p

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/network"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// memSource is a SyncSource of made-up blocks: block h is "block h"
// padded to size bytes, its certificate "cert h". failAt, if not 0, is a
// height whose read fails.
type memSource struct {
	mu     sync.Mutex
	height uint64
	size   int
	failAt uint64
}

func (m *memSource) Height() uint64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.height
}

func (m *memSource) RawCommitted(h uint64) ([]byte, []byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if h == 0 || h > m.height || h == m.failAt {
		return nil, nil, fmt.Errorf("no block %d", h)
	}
	return testBlock(h, m.size), []byte(fmt.Sprintf("cert %d", h)), nil
}

func testBlock(h uint64, size int) []byte {
	b := make([]byte, max(size, 16))
	copy(b, fmt.Sprintf("block %d", h))
	return b
}

// syncNode is a host serving /auditnet/sync/1 from src.
func syncNode(t *testing.T, src SyncSource, cfg SyncServiceConfig) *wireHost {
	t.Helper()
	h := newWireHost(t, nil, "")
	cfg.Host, cfg.Source = h.Host, src
	s, err := NewSyncService(cfg)
	if err != nil {
		t.Fatal(err)
	}
	runPart(t, s.Run)
	return h
}

func checkSynced(t *testing.T, got []SyncedBlock, from uint64, n, size int) {
	t.Helper()
	if len(got) != n {
		t.Fatalf("%d blocks, want %d", len(got), n)
	}
	for i, sb := range got {
		h := from + uint64(i)
		if sb.Height != h || !bytes.Equal(sb.Block, testBlock(h, size)) || string(sb.Cert) != fmt.Sprintf("cert %d", h) {
			t.Fatalf("block %d: height %d, %q", i, sb.Height, sb.Block[:16])
		}
	}
}

// TestSyncFetch fetches 600 blocks from a server that sends at most 256
// per request: three requests get them all, a fourth past the tip gets
// none; a request for fewer than MaxBlocks gets that many; MaxBytes cuts
// a reply short but never below one block; a source that fails mid-way
// gives the blocks before the failure, as a complete (short) answer.
func TestSyncFetch(t *testing.T) {
	src := &memSource{height: 600, size: 1000}
	server := syncNode(t, src, SyncServiceConfig{})
	client := newWireHost(t, nil, "")
	linkWire(t, server, client)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	var all []SyncedBlock
	for next := uint64(1); ; {
		got, err := FetchCommitted(ctx, client, server.ID(), next, 1000)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) > DefaultSyncMaxBlocks {
			t.Fatalf("%d blocks in one reply", len(got))
		}
		if len(got) == 0 {
			break
		}
		all = append(all, got...)
		next += uint64(len(got))
	}
	checkSynced(t, all, 1, 600, 1000)

	got, err := FetchCommitted(ctx, client, server.ID(), 10, 5)
	if err != nil {
		t.Fatal(err)
	}
	checkSynced(t, got, 10, 5, 1000)

	for _, tc := range []struct {
		name      string
		size      int
		maxBytes  int64
		wantCount int
	}{
		{"two fit", 4 << 10, 10 << 10, 2},
		{"one over MaxBytes", 20 << 10, 10 << 10, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := syncNode(t, &memSource{height: 50, size: tc.size}, SyncServiceConfig{MaxBytes: tc.maxBytes})
			linkWire(t, srv, client)
			got, err := FetchCommitted(ctx, client, srv.ID(), 3, 50)
			if err != nil {
				t.Fatal(err)
			}
			checkSynced(t, got, 3, tc.wantCount, tc.size)
		})
	}

	t.Run("source fails", func(t *testing.T) {
		srv := syncNode(t, &memSource{height: 50, size: 100, failAt: 7}, SyncServiceConfig{})
		linkWire(t, srv, client)
		got, err := FetchCommitted(ctx, client, srv.ID(), 3, 50)
		if err != nil {
			t.Fatal(err)
		}
		checkSynced(t, got, 3, 4, 100)
	})

	for _, tc := range []struct {
		start uint64
		max   int
	}{{0, 10}, {1, 0}, {1, -1}} {
		if _, err := FetchCommitted(ctx, client, server.ID(), tc.start, tc.max); err == nil {
			t.Errorf("FetchCommitted(%d, %d) ran", tc.start, tc.max)
		}
	}
	if _, err := NewSyncService(SyncServiceConfig{Host: server.Host, Source: src, MaxBytes: MaxSyncBytes + 1}); err == nil {
		t.Error("a server that sends more than a client accepts was built")
	}
}

// syncFrame encodes a reply frame without checking it.
func syncFrame(t *testing.T, h uint64, block, cert []byte) []byte {
	t.Helper()
	b, err := dagcbor.Marshal(SyncedBlock{Height: h, Block: block, Cert: cert})
	if err != nil {
		t.Fatal(err)
	}
	return appendFrame(nil, b)
}

// TestSyncLyingServer: a server that skips a height, starts elsewhere,
// sends an oversized block or certificate, more blocks than asked, an
// oversized or truncated frame, or a non-canonical encoding gives an
// ErrProtocol, with the good blocks before it.
func TestSyncLyingServer(t *testing.T) {
	ok := func(h uint64) []byte { return syncFrame(t, h, []byte("block"), []byte("cert")) }
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	nonCanonical, _ := dagcbor.Marshal(SyncedBlock{Height: 3, Block: []byte("block"), Cert: []byte("cert")})
	// The height as a two-byte integer: the value is right, the encoding
	// not minimal.
	nonCanonical = bytes.Replace(nonCanonical, []byte("\x66height\x03"), []byte("\x66height\x18\x03"), 1)
	for _, tc := range []struct {
		name  string
		max   int
		reply []byte
		good  int
	}{
		{"skips a height", 10, cat(ok(1), ok(2), ok(4)), 2},
		{"starts elsewhere", 10, cat(ok(2), ok(3)), 0},
		{"repeats a height", 10, cat(ok(1), ok(1)), 1},
		{"block too large", 10, cat(ok(1), syncFrame(t, 2, make([]byte, chain.MaxBlockSize+1), []byte("c"))), 1},
		{"certificate too large", 10, cat(ok(1), syncFrame(t, 2, []byte("b"), make([]byte, chain.MaxCertSize+1))), 1},
		{"empty certificate", 10, cat(ok(1), syncFrame(t, 2, []byte("b"), nil)), 1},
		{"more than asked", 2, cat(ok(1), ok(2), ok(3)), 2},
		{"frame too large", 10, cat(ok(1), binary.AppendUvarint(nil, maxSyncFrameSize+1)), 1},
		{"truncated frame", 10, cat(ok(1), ok(2)[:10]), 1},
		{"not canonical", 10, cat(ok(1), ok(2), appendFrame(nil, nonCanonical)), 2},
		{"not a block", 10, cat(ok(1), appendFrame(nil, []byte{0xa0})), 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			liar := newWireHost(t, nil, "")
			liar.SetStreamHandler(SyncProtocol, func(st network.Stream) {
				defer st.Close()
				st.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := newFrameReader(st, nil, maxSyncRequestSize, 0, false).next(); err != nil {
					st.Reset()
					return
				}
				st.Write(tc.reply)
			})
			client := newWireHost(t, nil, "")
			linkWire(t, liar, client)
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			got, err := FetchCommitted(ctx, client, liar.ID(), 1, tc.max)
			if !errors.Is(err, ErrProtocol) {
				t.Fatalf("err = %v, want ErrProtocol", err)
			}
			if len(got) != tc.good {
				t.Fatalf("%d blocks returned with the error, want the %d good ones", len(got), tc.good)
			}
			for i, sb := range got {
				if sb.Height != uint64(i+1) {
					t.Fatalf("block %d at height %d", i, sb.Height)
				}
			}
		})
	}
}

// TestSyncBadRequest: a malformed request, or one from height 0, resets
// the stream without a block read.
func TestSyncBadRequest(t *testing.T) {
	src := &memSource{height: 10, size: 10}
	server := syncNode(t, src, SyncServiceConfig{})
	client := newWireHost(t, nil, "")
	linkWire(t, server, client)
	zero, _ := dagcbor.Marshal(syncRequest{From: 0, Max: 3})
	for name, wire := range map[string][]byte{
		"not a request": appendFrame(nil, []byte{0xa0}),
		"from zero":     appendFrame(nil, zero),
		"too large":     appendFrame(nil, make([]byte, maxSyncRequestSize+1)),
		"nothing":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := client.NewStream(ctx, server.ID(), SyncProtocol)
			if err != nil {
				t.Fatal(err)
			}
			defer st.Reset()
			st.SetDeadline(time.Now().Add(10 * time.Second))
			st.Write(wire)
			st.CloseWrite()
			if _, err := st.Read(make([]byte, 1)); !isReset(err) {
				t.Fatalf("read %v, want a reset", err)
			}
		})
	}
}

// FuzzDecodeSyncRequest: decodeSyncRequest never panics, and what it
// accepts is valid and re-encodes to its bytes.
func FuzzDecodeSyncRequest(f *testing.F) {
	for _, r := range []syncRequest{{From: 1, Max: 1}, {From: 1 << 40, Max: 256}, {From: 0, Max: 3}} {
		b, _ := dagcbor.Marshal(r)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Add([]byte{0xa2, 0x63, 'm', 'a', 'x', 0x01, 0x64, 'f', 'r', 'o', 'm', 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := decodeSyncRequest(b)
		if err != nil {
			return
		}
		if r.check() != nil {
			t.Fatalf("accepted %+v", r)
		}
		again, err := dagcbor.Marshal(r)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not round-trip: %v", err)
		}
	})
}

// FuzzDecodeSyncedBlock: decodeSyncedBlock never panics, and what it
// accepts is within bounds and re-encodes to its bytes.
func FuzzDecodeSyncedBlock(f *testing.F) {
	for _, sb := range []SyncedBlock{
		{Height: 1, Block: []byte("block"), Cert: []byte("cert")},
		{Height: 1 << 33, Block: bytes.Repeat([]byte{1}, 300), Cert: bytes.Repeat([]byte{2}, 40)},
		{Height: 2, Block: nil, Cert: []byte("cert")},
	} {
		b, _ := dagcbor.Marshal(sb)
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		sb, err := decodeSyncedBlock(b)
		if err != nil {
			return
		}
		if checkSyncedBlock(&sb) != nil {
			t.Fatalf("accepted a block of %d bytes with a certificate of %d", len(sb.Block), len(sb.Cert))
		}
		again, err := dagcbor.Marshal(sb)
		if err != nil || !bytes.Equal(again, b) {
			t.Fatalf("accepted bytes do not round-trip: %v", err)
		}
	})
}

// TestFetchCommittedFromADeadPeerFailsSoon: a sync from a peer that died
// (over QUIC, whose dial to a closed port waits out a 5 s handshake
// timeout) fails within syncDialTimeout, so that a node, which syncs from
// one peer at a time, asks a live one next instead of waiting.
func TestFetchCommittedFromADeadPeerFailsSoon(t *testing.T) {
	a := newWireHost(t, nil, "/ip4/127.0.0.1/udp/0/quic-v1")
	dead := newWireHost(t, nil, "/ip4/127.0.0.1/udp/0/quic-v1")
	a.members.Add(dead.ID())
	a.Peerstore().AddAddrs(dead.ID(), dead.Addrs(), time.Hour)
	dead.Close()
	start := time.Now()
	_, err := FetchCommitted(context.Background(), a, dead.ID(), 1, 16)
	took := time.Since(start)
	if err == nil {
		t.Fatal("a sync from a dead peer succeeded")
	}
	if took > syncDialTimeout+2*time.Second {
		t.Fatalf("the sync from a dead peer failed after %v (%v)", took, err)
	}
}
