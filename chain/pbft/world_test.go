package pbft

import (
	"crypto/ed25519"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/ipfs/go-cid"
	mh "github.com/multiformats/go-multihash"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
)

// simChain is the chain ID of simulated networks.
const simChain = "auditnet-sim"

// simGenesisTime is the genesis time of simulated networks (ms).
const simGenesisTime = 1795000000000

// key derives an Ed25519 key from a label, so every seed sees the same
// keys for the same roles.
func key(tb testing.TB, label string, i int) (chain.Signer, []byte) {
	tb.Helper()
	var seed [32]byte
	copy(seed[:], label)
	binary.BigEndian.PutUint32(seed[28:], uint32(i))
	sk := chain.NewSigner(ed25519.NewKeyFromSeed(seed[:]))
	return sk, sk.ID()
}

func peerString(id []byte) string { return chain.PeerIDString(id) }

// world is the membership of a simulated network: validators (node 0 the
// data center, the last an agency, the others office nodes), followers
// that run a core without voting (the first an office node that an admin
// may make a validator), agencies and auditors that send transactions,
// and admins.
type world struct {
	genesis   *chain.Genesis
	nodeKeys  []chain.Signer // validators, then followers
	nodeIDs   [][]byte
	agencies  []chain.Signer
	agencyIDs [][]byte
	auditors  []chain.Signer
	audIDs    [][]byte
	admins    []chain.Signer
}

func newWorld(tb testing.TB, validators, followers int, params chain.Params) *world {
	w := &world{}
	g := &chain.Genesis{ChainID: simChain, Time: simGenesisTime, Params: params}
	for i := 0; i < validators+followers; i++ {
		sk, id := key(tb, "node", i)
		w.nodeKeys, w.nodeIDs = append(w.nodeKeys, sk), append(w.nodeIDs, id)
		role := "office"
		switch {
		case i == 0:
			role = "datacenter"
		case i == validators-1:
			role = "agency"
		}
		if i < validators {
			g.Validators = append(g.Validators, chain.Validator{PeerID: peerString(id)})
		}
		g.Members = append(g.Members, chain.GenesisMember{PeerID: peerString(id), Role: role, Name: fmt.Sprint("node-", i)})
	}
	for i := 0; i < 3; i++ {
		sk, id := key(tb, "agency", i)
		w.agencies, w.agencyIDs = append(w.agencies, sk), append(w.agencyIDs, id)
		g.Members = append(g.Members, chain.GenesisMember{PeerID: peerString(id), Role: "agency", Name: fmt.Sprint("agency-", i)})
		sk, id = key(tb, "auditor", i)
		w.auditors, w.audIDs = append(w.auditors, sk), append(w.audIDs, id)
		g.Members = append(g.Members, chain.GenesisMember{PeerID: peerString(id), Role: "auditor", Name: fmt.Sprint("auditor-", i)})
	}
	for i := 0; i < 3; i++ {
		sk, id := key(tb, "admin", i)
		w.admins = append(w.admins, sk)
		g.Admins.Keys = append(g.Admins.Keys, peerString(id))
	}
	g.Admins.Threshold = 2
	if err := g.Validate(); err != nil {
		tb.Fatal(err)
	}
	w.genesis = g
	return w
}

// simParams are small windows so that checkpoints, epochs and deadlines
// happen within a short run.
func simParams() chain.Params {
	p := chain.DefaultParams()
	p.AccessWindow, p.EpochDelay, p.ReplayWindow, p.CheckpointInterval = 12, 4, 60, 8
	p.MaxBlockTxs = 64
	return p
}

func root(i int) dagcbor.Link {
	h, _ := mh.Sum([]byte(fmt.Sprint("dataset-", i)), mh.SHA2_256, -1)
	return dagcbor.Link{Cid: cid.NewCidV1(cid.DagProtobuf, h)}
}

// workload makes a realistic stream of signed transactions: agencies
// anchor datasets and grant them, auditors ask for them.
type workload struct {
	tb      testing.TB
	w       *world
	nonce   uint64
	anchors int
	// known, once setup anchored datasets, makes grants and requests
	// name only those, so that every transaction is valid.
	known int
}

// setup returns anchors of known datasets per agency, for benchmarks.
func (l *workload) setup(known int, expires uint64) []*chain.Tx {
	var txs []*chain.Tx
	for k := 0; k < known; k++ {
		for a := range l.w.agencies {
			l.nonce++
			tx := &chain.Tx{Body: chain.TxBody{Chain: simChain, Kind: chain.KindAnchor, Sender: l.w.agencyIDs[a], Expires: expires, Nonce: l.nonce,
				Anchor: &chain.Anchor{Root: root(1<<20 + k*len(l.w.agencies) + a), Size: 1 << 20, Name: fmt.Sprint("known-", k), Policy: chain.PolicyOpen}}}
			if err := tx.Sign(l.w.agencies[a]); err != nil {
				l.tb.Fatal(err)
			}
			txs = append(txs, tx)
		}
	}
	l.known = known
	return txs
}

// probePick makes next return an anchor of a new dataset, which is always
// valid.
const probePick = 3 << 40

// next returns the i-th transaction, valid until height expires.
func (l *workload) next(pick uint64, expires uint64) *chain.Tx {
	l.nonce++
	w := l.w
	a := int(pick % uint64(len(w.agencies)))
	au := int(pick / 7 % uint64(len(w.auditors)))
	body := chain.TxBody{Chain: simChain, Expires: expires, Nonce: l.nonce}
	var sk chain.Signer
	switch {
	case l.anchors < 3 || pick%3 == 0 || pick == probePick:
		l.anchors++
		body.Kind, body.Sender, sk = chain.KindAnchor, w.agencyIDs[a], w.agencies[a]
		policy := chain.PolicyRestricted
		if l.anchors%2 == 0 {
			policy = chain.PolicyOpen
		}
		body.Anchor = &chain.Anchor{Root: root(l.anchors*len(w.agencies) + a), Size: 1 << 20, Name: fmt.Sprint("ds-", l.anchors), Policy: policy}
	case pick%3 == 1:
		ds := chain.Dataset{Owner: w.agencyIDs[a], Root: root(int(pick%uint64(l.anchors))*len(w.agencies) + a)}
		if l.known > 0 {
			ds.Root = root(1<<20 + int(pick/3%uint64(l.known))*len(w.agencies) + a)
		}
		body.Kind, body.Sender, sk = chain.KindGrant, w.agencyIDs[a], w.agencies[a]
		body.Grant = &chain.Grant{Dataset: ds, Auditor: w.audIDs[au]}
	default:
		ds := chain.Dataset{Owner: w.agencyIDs[a], Root: root(int(pick%uint64(l.anchors))*len(w.agencies) + a)}
		if l.known > 0 {
			ds.Root = root(1<<20 + int(pick/3%uint64(l.known))*len(w.agencies) + a)
		}
		body.Kind, body.Sender, sk = chain.KindAccess, w.audIDs[au], w.auditors[au]
		body.Access = &chain.AccessRequest{Dataset: ds, Provider: w.agencyIDs[a], Nonce: binary.BigEndian.AppendUint64(nil, l.nonce), Purpose: "audit", Case: "sim"}
	}
	tx := &chain.Tx{Body: body}
	if err := tx.Sign(sk); err != nil {
		l.tb.Fatal(err)
	}
	return tx
}

// addValidator is an admin transaction making node i a validator.
func (l *workload) addValidator(i int, expires uint64) *chain.Tx {
	l.nonce++
	tx := &chain.Tx{Body: chain.TxBody{Chain: simChain, Kind: chain.KindMember, Expires: expires, Nonce: l.nonce,
		Member: &chain.Member{Op: chain.MemberRole, Peer: l.w.nodeIDs[i], Role: "office", Name: fmt.Sprint("node-", i), Validator: true}}}
	for _, sk := range l.w.admins[:2] {
		if err := tx.Sign(sk); err != nil {
			l.tb.Fatal(err)
		}
	}
	return tx
}
