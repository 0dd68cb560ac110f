package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/pnet"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/node"
	"auditnet/p2p"
)

// TestRelayedAndMisdirectedFetchesRefused drives the holder's side with
// members' own libp2p hosts against real daemons: a non-member cannot
// connect at all; an authorised request
// relayed by another member (signed by the auditor, sent from the
// relayer's host) is refused and nothing is served, while the auditor's
// own host fetching under the same request gets the data; and the
// auditor node that fetched a copy serves it to nobody, with a request or
// without.
func TestRelayedAndMisdirectedFetchesRefused(t *testing.T) {
	skipShort(t)
	c := newChainNet(t, 4, 2)
	c.startAll(t)
	agency, auditorNode, office := c.roles(t)
	keys, err := node.ReadBenchKeys(c.tn.Bench)
	if err != nil {
		t.Fatal(err)
	}
	// The auditor is a bench auditor key; the relayer a bench agency key:
	// both members, neither running a node.
	var auditorKey, relayerKey crypto.PrivKey
	for _, k := range keys {
		raw, _ := hex.DecodeString(k.Key)
		sk, err := crypto.UnmarshalEd25519PrivateKey(raw)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case node.Role(k.Role) == node.RoleAuditor && auditorKey == nil:
			auditorKey = sk
		case node.Role(k.Role) == node.RoleAgency && relayerKey == nil:
			relayerKey = sk
		}
	}
	auditorID, _ := peer.IDFromPrivateKey(auditorKey)

	data := make([]byte, 200_000)
	rand.Read(data)
	p := filepath.Join(t.TempDir(), "ledger.bin")
	os.WriteFile(p, data, 0o600)
	root := strings.TrimSpace(mustCLI(t, "--repo", agency.Dir, "add", "-Q", p))
	mustCLI(t, "--repo", agency.Dir, "grant", root, auditorID.String())
	mustCLI(t, "--repo", agency.Dir, "grant", root, auditorNode.PeerID)
	rootCid, _ := cid.Decode(root)
	owner, _ := chain.ParsePeerID(agency.PeerID)
	var signer chain.Signer
	for _, a := range c.auditors {
		if bytes.Equal(a.ID(), []byte(auditorID)) {
			signer = a
		}
	}
	o := c.access(t, office, signer, chain.Dataset{Owner: owner, Root: dagcbor.Link{Cid: rootCid}})
	if o.Code != chain.OutcomeAuthorised {
		t.Fatalf("access request: %+v", o)
	}
	request := o.Tx.Cid

	holder := memberHost(t, c, agency)
	fetch := func(from crypto.PrivKey, signAs crypto.PrivKey, provider *netNode, auth cid.Cid) ([]byte, error) {
		t.Helper()
		h := holder(from)
		var fh host.Host = h
		if !from.Equals(signAs) {
			// A relay: the request names and is signed by signAs, and goes
			// out on from's connections.
			as, _ := peer.IDFromPrivateKey(signAs)
			fh = relayHost{Host: h, as: as}
		}
		f, err := p2p.NewFetcher(p2p.FetcherConfig{Host: fh, Identity: signAs, Network: c.genesis.ChainID, IdleTimeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		id, _ := peer.Decode(provider.PeerID)
		addr, _ := ma.NewMultiaddr(provider.Swarm + "/p2p/" + provider.PeerID)
		info, err := peer.AddrInfoFromP2pAddr(addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.Connect(ctx, *info); err != nil {
			return nil, fmt.Errorf("connect: %w", err)
		}
		var out bytes.Buffer
		_, err = f.Cat(ctx, rootCid, "", &out, p2p.FetchOptions{Providers: []peer.ID{id}, Auth: auth})
		return out.Bytes(), err
	}

	// Relayed: signed by the auditor, sent by another member.
	got, err := fetch(relayerKey, auditorKey, agency, request)
	if err == nil || len(got) > 0 || !strings.Contains(err.Error(), "requester is not the peer on this stream") {
		t.Fatalf("a relayed request: %d bytes, %v", len(got), err)
	}
	if s := servedJournal(t, agency); len(s) != 0 {
		t.Fatalf("the holder served a relayed request: %+v", s)
	}
	// The relayer asking as itself under the auditor's request.
	if got, err := fetch(relayerKey, relayerKey, agency, request); err == nil || len(got) > 0 || !strings.Contains(err.Error(), "another auditor") {
		t.Fatalf("another member under the auditor's request: %d bytes, %v", len(got), err)
	}
	// The auditor itself: served.
	if got, err := fetch(auditorKey, auditorKey, agency, request); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the auditor under its own request: %d bytes, %v", len(got), err)
	}
	if s := servedJournal(t, agency); len(s) != 1 || s[0].Request != request.String() || s[0].Auditor != auditorID.String() || s[0].Bytes == 0 {
		t.Fatalf("the holder's journal: %+v", s)
	}

	// A key that is no member: the holder's gater refuses the connection,
	// so nothing is even asked.
	outsider, _, err := crypto.GenerateEd25519Key(nil)
	if err != nil {
		t.Fatal(err)
	}
	// (The dialler may see the handshake finish before the holder's gater
	// closes the connection: then the stream cannot open.)
	if got, err := fetch(outsider, outsider, agency, request); err == nil || len(got) > 0 ||
		!strings.HasPrefix(err.Error(), "connect: ") && !strings.Contains(err.Error(), "open fetch stream to "+agency.PeerID) {
		t.Fatalf("a non-member reached the holder: %d bytes, %v", len(got), err)
	}
	if s := servedJournal(t, agency); len(s) != 1 {
		t.Fatalf("the holder's journal after a non-member's try: %+v", s)
	}

	// The auditor node fetches its own copy and serves it to nobody: the
	// chain names the agency as the holder (a request naming the auditor
	// node is denied on the chain, TestAccessDecidedByChain), so its gate
	// refuses the request, and a fetch with none.
	if out := mustCLI(t, "--repo", auditorNode.Dir, "cat", root); out != string(data) {
		t.Fatalf("the auditor node's cat: %d bytes", len(out))
	}
	for _, auth := range []cid.Cid{request, cid.Undef} {
		if got, err := fetch(auditorKey, auditorKey, auditorNode, auth); err == nil || len(got) > 0 {
			t.Fatalf("the auditor node served its fetched copy (auth %v): %d bytes, %v", auth, len(got), err)
		}
	}
	if s := servedJournal(t, auditorNode); len(s) != 0 {
		t.Fatalf("the auditor node's journal: %+v", s)
	}
}

// relayHost is a member's host that names another peer as itself, so
// that a fetcher writes that peer as the requester of the requests it
// sends on this host's streams.
type relayHost struct {
	host.Host
	as peer.ID
}

func (r relayHost) ID() peer.ID { return r.as }

// memberHost returns a function that starts (once per key) a libp2p host
// on 127.0.0.1 with a member's key, in the testnet's private network if it
// has one, admitting only n.
func memberHost(t *testing.T, c *chainNet, n *netNode) func(crypto.PrivKey) *p2p.Host {
	var psk pnet.PSK
	if f, err := os.Open(filepath.Join(n.Dir, "swarm.key")); err == nil {
		psk, err = pnet.DecodeV1PSK(f)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	} else if !errors.Is(err, fs.ErrNotExist) {
		t.Fatal(err)
	}
	var members []peer.ID
	for _, m := range c.nodes {
		id, _ := peer.Decode(m.PeerID)
		members = append(members, id)
	}
	hosts := map[string]*p2p.Host{}
	return func(sk crypto.PrivKey) *p2p.Host {
		id, _ := peer.IDFromPrivateKey(sk)
		if h := hosts[id.String()]; h != nil {
			return h
		}
		listen, _ := ma.NewMultiaddr("/ip4/127.0.0.1/tcp/0")
		h, err := p2p.NewHost(p2p.HostConfig{Identity: sk, ListenAddrs: []ma.Multiaddr{listen}, SwarmKey: psk, Members: p2p.NewMemberSet(members...)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { h.Close() })
		hosts[id.String()] = h
		return h
	}
}
