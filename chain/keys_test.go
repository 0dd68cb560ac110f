package chain

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"testing"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/crypto"
	"github.com/libp2p/go-libp2p/core/peer"
	mh "github.com/multiformats/go-multihash"
)

// libp2pKeys returns n Ed25519 keys from a fixed seed, each with its
// libp2p form.
func libp2pKeys(t testing.TB, n int) ([]ed25519.PrivateKey, []crypto.PrivKey) {
	t.Helper()
	src := mrand.NewChaCha8([32]byte{'k', 'e', 'y', 's'})
	keys := make([]ed25519.PrivateKey, n)
	lkeys := make([]crypto.PrivKey, n)
	for i := range keys {
		_, sk, err := ed25519.GenerateKey(src)
		if err != nil {
			t.Fatal(err)
		}
		lk, err := crypto.UnmarshalEd25519PrivateKey(sk)
		if err != nil {
			t.Fatal(err)
		}
		keys[i], lkeys[i] = sk, lk
	}
	return keys, lkeys
}

// TestPeerIDMatchesLibp2p checks the peer ID bytes, both string forms and
// the key read back against go-libp2p's core/peer, for many keys.
func TestPeerIDMatchesLibp2p(t *testing.T) {
	keys, lkeys := libp2pKeys(t, 500)
	for i, sk := range keys {
		pub := sk.Public().(ed25519.PublicKey)
		want, err := peer.IDFromPublicKey(lkeys[i].GetPublic())
		if err != nil {
			t.Fatal(err)
		}
		got := PeerIDFromPublicKey(pub)
		if !bytes.Equal(got, []byte(want)) {
			t.Fatalf("key %d: peer ID %x, libp2p's %x", i, got, []byte(want))
		}
		if got, want := PeerIDString(got), want.String(); got != want {
			t.Fatalf("key %d: string %s, libp2p's %s", i, got, want)
		}
		back, err := PublicKeyFromPeerID(got)
		if err != nil || !back.Equal(pub) {
			t.Fatalf("key %d: key read back %x, %v", i, back, err)
		}
		for _, s := range []string{want.String(), peer.ToCid(want).String()} {
			parsed, err := ParsePeerID(s)
			if err != nil || !bytes.Equal(parsed, []byte(want)) {
				t.Fatalf("key %d: ParsePeerID(%s) = %x, %v", i, s, parsed, err)
			}
			decoded, err := peer.Decode(PeerIDString(parsed))
			if err != nil || decoded != want {
				t.Fatalf("key %d: libp2p decodes %s as %s, %v", i, PeerIDString(parsed), decoded, err)
			}
		}
	}
}

// TestSignerMatchesLibp2p checks that a Signer has libp2p's peer ID for
// its key and signs exactly as libp2p does, and that libp2p verifies it.
func TestSignerMatchesLibp2p(t *testing.T) {
	keys, lkeys := libp2pKeys(t, 50)
	msg := []byte("auditnet/vote/v1 and some bytes")
	for i, sk := range keys {
		s := NewSigner(sk)
		want, err := peer.IDFromPrivateKey(lkeys[i])
		if err != nil {
			t.Fatal(err)
		}
		if got := s.ID(); !bytes.Equal(got, []byte(want)) {
			t.Fatalf("key %d: signer ID %x, libp2p's %x", i, got, []byte(want))
		}
		got, err := s.Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		wantSig, err := lkeys[i].Sign(msg)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, wantSig) {
			t.Fatalf("key %d: signature %x, libp2p's %x", i, got, wantSig)
		}
		if ok, err := lkeys[i].GetPublic().Verify(msg, got); err != nil || !ok {
			t.Fatalf("key %d: libp2p does not verify the signature: %v", i, err)
		}
		if err := VerifyBy(s.ID(), msg, got); err != nil {
			t.Fatalf("key %d: %v", i, err)
		}
		if err := VerifyBy(s.ID(), append(msg, 0), got); !errors.Is(err, ErrBadSignature) {
			t.Fatalf("key %d: signature of another message: %v", i, err)
		}
	}
}

// TestSignerOwnsItsBytes checks that a Signer neither shares its key with
// the caller nor lets a caller change its ID.
func TestSignerOwnsItsBytes(t *testing.T) {
	sk := ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, 32))
	s := NewSigner(sk)
	want := s.ID()
	s.ID()[0] ^= 1
	clear(sk)
	if got := s.ID(); !bytes.Equal(got, want) {
		t.Fatalf("ID changed to %x", got)
	}
	sig, _ := s.Sign([]byte("m"))
	if err := VerifyBy(want, []byte("m"), sig); err != nil {
		t.Fatal(err)
	}
}

// TestPublicKeyFromPeerIDRefuses checks that only the identity peer ID
// of an Ed25519 key is accepted: libp2p accepts all of these but the
// mutated ones as peer IDs, and some even hold an Ed25519 key.
func TestPublicKeyFromPeerIDRefuses(t *testing.T) {
	good := PeerIDFromPublicKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
	_, ecdsaPub, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaID, _ := peer.IDFromPublicKey(ecdsaPub) // sha2-256 of the key
	_, secpPub, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, _ := peer.IDFromPublicKey(secpPub) // identity, another type
	sha, _ := mh.Sum(good[2:], mh.SHA2_256, -1)
	// The protobuf fields swapped: libp2p reads the same key from it.
	swapped := append([]byte{0x00, 0x24, 0x12, 0x20}, good[6:]...)
	swapped = append(swapped, 0x08, 0x01)
	if pk, err := peer.ID(swapped).ExtractPublicKey(); err != nil || pk.Type() != crypto.Ed25519 {
		t.Fatalf("libp2p no longer reads a key from fields out of order: %v", err)
	}
	type idCase struct {
		name string
		id   []byte
	}
	cases := []idCase{
		{"nil", nil},
		{"empty", []byte{}},
		{"prefix only", good[:6]},
		{"one byte short", good[:len(good)-1]},
		{"one byte long", append(bytes.Clone(good), 0)},
		{"hashed ECDSA key", []byte(ecdsaID)},
		{"secp256k1 key", []byte(secpID)},
		{"hashed Ed25519 key", []byte(sha)},
		{"fields out of order", swapped},
	}
	for i := range 6 {
		bad := bytes.Clone(good)
		bad[i] ^= 0x01
		cases = append(cases, idCase{fmt.Sprintf("prefix byte %d changed", i), bad})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := PublicKeyFromPeerID(tc.id); !errors.Is(err, ErrBadPeerID) {
				t.Fatalf("got %x, %v; want %v", got, err, ErrBadPeerID)
			}
			if err := VerifyBy(tc.id, []byte("m"), make([]byte, ed25519.SignatureSize)); !errors.Is(err, ErrBadSignature) {
				t.Fatalf("verify by it: %v", err)
			}
		})
	}
}

// TestParsePeerIDRefuses checks the strings that are not the peer ID of
// an Ed25519 key.
func TestParsePeerIDRefuses(t *testing.T) {
	_, ecdsaPub, err := crypto.GenerateECDSAKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecdsaID, _ := peer.IDFromPublicKey(ecdsaPub)
	_, secpPub, err := crypto.GenerateSecp256k1Key(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secpID, _ := peer.IDFromPublicKey(secpPub)
	good := PeerIDFromPublicKey(make(ed25519.PublicKey, ed25519.PublicKeySize))
	goodString := PeerIDString(good)
	dagpb := cid.NewCidV1(cid.DagProtobuf, mh.Multihash(good)).String()
	for name, s := range map[string]string{
		"empty":                     "",
		"not base58":                "nope",
		"base58 with a bad letter":  goodString[:10] + "0" + goodString[11:],
		"truncated":                 goodString[:len(goodString)-1],
		"hashed ECDSA key":          ecdsaID.String(),
		"hashed ECDSA key as a CID": peer.ToCid(ecdsaID).String(),
		"secp256k1 key":             secpID.String(),
		"secp256k1 key as a CID":    peer.ToCid(secpID).String(),
		"CID of another codec":      dagpb,
		"CIDv0":                     cid.NewCidV0(mustSum(t, "x")).String(),
		"leading space":             " " + goodString,
	} {
		t.Run(name, func(t *testing.T) {
			if got, err := ParsePeerID(s); !errors.Is(err, ErrBadPeerID) {
				t.Fatalf("ParsePeerID(%q) = %x, %v; want %v", s, got, err, ErrBadPeerID)
			}
		})
	}
}

func mustSum(t testing.TB, s string) mh.Multihash {
	t.Helper()
	h, err := mh.Sum([]byte(s), mh.SHA2_256, -1)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// FuzzPublicKeyFromPeerID: what is accepted is an Ed25519 peer ID that
// libp2p reads the same key from, and it round-trips.
func FuzzPublicKeyFromPeerID(f *testing.F) {
	good := PeerIDFromPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32)).Public().(ed25519.PublicKey))
	f.Add(good)
	f.Add(good[:6])
	f.Add([]byte{})
	f.Add(append(bytes.Clone(good), 0))
	f.Add([]byte(mustSum(f, "x")))
	f.Fuzz(func(t *testing.T, id []byte) {
		pub, err := PublicKeyFromPeerID(id)
		if err != nil {
			if !errors.Is(err, ErrBadPeerID) {
				t.Fatalf("error %v does not wrap ErrBadPeerID", err)
			}
			return
		}
		if got := PeerIDFromPublicKey(pub); !bytes.Equal(got, id) {
			t.Fatalf("accepted %x, whose key gives %x", id, got)
		}
		lp, err := peer.ID(id).ExtractPublicKey()
		if err != nil || lp.Type() != crypto.Ed25519 {
			t.Fatalf("accepted %x, libp2p reads no Ed25519 key from it: %v", id, err)
		}
		if raw, _ := lp.Raw(); !bytes.Equal(raw, pub) {
			t.Fatalf("accepted %x as key %x, libp2p reads %x", id, pub, raw)
		}
		s := PeerIDString(id)
		if back, err := ParsePeerID(s); err != nil || !bytes.Equal(back, id) {
			t.Fatalf("%s parses as %x, %v", s, back, err)
		}
	})
}

// FuzzParsePeerID: a string accepted is one libp2p decodes to the same
// peer ID.
func FuzzParsePeerID(f *testing.F) {
	good := PeerIDFromPublicKey(ed25519.NewKeyFromSeed(bytes.Repeat([]byte{2}, 32)).Public().(ed25519.PublicKey))
	f.Add(PeerIDString(good))
	f.Add(peer.ToCid(peer.ID(good)).String())
	f.Add("")
	f.Add("Qm")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := ParsePeerID(s)
		if err != nil {
			return
		}
		want, err := peer.Decode(s)
		if err != nil || !bytes.Equal(id, []byte(want)) {
			t.Fatalf("ParsePeerID(%q) = %x, libp2p decodes %x, %v", s, id, []byte(want), err)
		}
	})
}

// TestParseHexKey reads a key file's text back to the signer that wrote
// it, and refuses what is not a whole Ed25519 private key in hex.
func TestParseHexKey(t *testing.T) {
	keys, _ := libp2pKeys(t, 1)
	s, err := ParseHexKey("  " + fmt.Sprintf("%x", []byte(keys[0])) + "\n")
	if err != nil || !bytes.Equal(s.ID(), NewSigner(keys[0]).ID()) {
		t.Fatalf("ParseHexKey: %v", err)
	}
	good := fmt.Sprintf("%x", []byte(keys[0]))
	for _, bad := range []string{"", good[:len(good)-2], good + "00", "zz" + good[2:], good[:len(good)/2]} {
		if _, err := ParseHexKey(bad); !errors.Is(err, ErrNotAKey) {
			t.Errorf("ParseHexKey(%q): %v", bad, err)
		}
	}
}
