package store

import (
	"encoding/binary"
	"fmt"

	"github.com/ipfs/go-cid"

	"auditnet/chain"
)

// Keys (doc.go, "Key layout").
var (
	keyFormat  = []byte("m/format")
	keyGenesis = []byte("m/genesis")
	keyHead    = []byte("m/head")
)

const (
	prefixBlock    = "b/"
	prefixCert     = "c/"
	prefixOutcomes = "o/"
	prefixTx       = "x/"
	prefixState    = "s/"
	prefixEpoch    = "e/"
)

// format is the version of the key layout, the encodings and the state's
// rules. v2: access records leave the state when served or due (a chain
// stored by v1 keeps them, so its state roots differ from what this
// program computes for the same blocks).
const format = "auditnet/store/v2"

func heightKey(prefix string, h uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte(prefix), h)
}

func txKey(id cid.Cid) []byte {
	b := id.Bytes()
	return append(binary.AppendUvarint([]byte(prefixTx), uint64(len(b))), b...)
}

func stateKey(k string) []byte { return append([]byte(prefixState), k...) }

// epochKey is the key of the change that ends epoch e.
func epochKey(e uint64) []byte { return heightKey(prefixEpoch, e) }

// head is the last committed block: its height, time and CID.
type head struct {
	height uint64
	time   int64
	block  cid.Cid
}

// encodeHead returns m/head's value: height ‖ time ‖ CID bytes.
func encodeHead(m head) []byte {
	b := binary.BigEndian.AppendUint64(nil, m.height)
	b = binary.BigEndian.AppendUint64(b, uint64(m.time))
	return append(b, m.block.Bytes()...)
}

// decodeHead reads m/head's value.
func decodeHead(b []byte) (head, error) {
	if len(b) < 16 {
		return head{}, fmt.Errorf("head record of %d bytes, want 16 and a CID", len(b))
	}
	c, err := cid.Cast(b[16:])
	if err != nil {
		return head{}, fmt.Errorf("head record: block cid: %w", err)
	}
	m := head{height: binary.BigEndian.Uint64(b), time: int64(binary.BigEndian.Uint64(b[8:])), block: c}
	if m.height == 0 {
		return head{}, fmt.Errorf("head record of height 0")
	}
	return m, nil
}

// placeLen is the length of a tx index entry: height ‖ index in block.
const placeLen = 12

func encodePlace(h uint64, i int) []byte {
	return binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint64(make([]byte, 0, placeLen), h), uint32(i))
}

func decodePlace(b []byte) (uint64, int, error) {
	if len(b) != placeLen {
		return 0, 0, fmt.Errorf("tx index entry of %d bytes, want %d", len(b), placeLen)
	}
	h, i := binary.BigEndian.Uint64(b), binary.BigEndian.Uint32(b[8:])
	if h == 0 || i >= chain.MaxTxsPerBlk {
		return 0, 0, fmt.Errorf("tx index entry names tx %d of block %d", i, h)
	}
	return h, int(i), nil
}

// maxOutcomes bounds the outcomes of a block: one per transaction and one
// per access falling due, which one block's transactions asked for.
const maxOutcomes = 2 * chain.MaxTxsPerBlk

// maxOutcomesSize bounds a block's encoded outcomes.
const maxOutcomesSize = maxOutcomes * 256

// storedOutcomes is a block's outcomes as stored, in order.
type storedOutcomes struct {
	Outcomes []chain.Outcome `cbor:"outcomes"`
}

func encodeOutcomes(o []chain.Outcome) ([]byte, error) {
	b, err := chain.Marshal(&storedOutcomes{Outcomes: o})
	return b, err
}

func decodeOutcomes(b []byte) ([]chain.Outcome, error) {
	var s storedOutcomes
	if err := chain.Decode(b, maxOutcomesSize, &s); err != nil {
		return nil, fmt.Errorf("outcomes: %w", err)
	}
	if len(s.Outcomes) > maxOutcomes {
		return nil, fmt.Errorf("outcomes: %d, at most %d", len(s.Outcomes), maxOutcomes)
	}
	for i, o := range s.Outcomes {
		if !o.Tx.Defined() || o.Code == "" {
			return nil, fmt.Errorf("outcome %d has no tx or no code", i)
		}
	}
	return s.Outcomes, nil
}

// maxEpochChangeSize bounds a stored epoch change: a header, a
// certificate and a validator set.
const maxEpochChangeSize = chain.MaxCertSize + 64<<10

func encodeEpochChange(ec *chain.EpochChange) ([]byte, error) {
	b, err := chain.Marshal(ec)
	return b, err
}

// decodeEpochChange decodes the epoch change stored for epoch e.
func decodeEpochChange(b []byte, e uint64) (*chain.EpochChange, error) {
	var ec chain.EpochChange
	if err := chain.Decode(b, maxEpochChangeSize, &ec); err != nil {
		return nil, fmt.Errorf("epoch change %d: %w", e, err)
	}
	switch {
	case ec.Header.Epoch != e || ec.Header.Height == 0:
		return nil, fmt.Errorf("epoch change %d holds block %d of epoch %d", e, ec.Header.Height, ec.Header.Epoch)
	case len(ec.Cert.Votes) > chain.MaxValidators:
		return nil, fmt.Errorf("epoch change %d: certificate of %d votes", e, len(ec.Cert.Votes))
	case len(ec.Validators) == 0 || len(ec.Validators) > chain.MaxValidators:
		return nil, fmt.Errorf("epoch change %d: %d validators", e, len(ec.Validators))
	}
	for i, id := range ec.Validators {
		if _, err := chain.PublicKeyFromPeerID(id); err != nil {
			return nil, fmt.Errorf("epoch change %d: validator %d: %w", e, i, err)
		}
		if i > 0 && string(id) <= string(ec.Validators[i-1]) {
			return nil, fmt.Errorf("epoch change %d: validators not in strictly increasing order", e)
		}
	}
	return &ec, nil
}
