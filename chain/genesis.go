package chain

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"

	"github.com/ipfs/go-cid"
)

// Params are the consensus parameters: in genesis, changed only by an
// admin Params transaction (DESIGN.md, "Epochs").
type Params struct {
	// T: blocks within which an authorised access must be served.
	AccessWindow uint64 `cbor:"t" json:"AccessWindow"`
	// L: blocks after which a validator-set change takes effect, at the
	// next checkpoint.
	EpochDelay uint64 `cbor:"l" json:"EpochDelay"`
	// W: how far ahead a tx may expire; the replay set covers W blocks.
	ReplayWindow uint64 `cbor:"w" json:"ReplayWindow"`
	// Δ: how far ahead of a backup's clock a proposal's time may be (ms).
	MaxClockSkewMs int64 `cbor:"delta" json:"MaxClockSkewMs"`
	// Checkpoints every CheckpointInterval blocks.
	CheckpointInterval uint64 `cbor:"checkpoint" json:"CheckpointInterval"`
	MaxBlockTxs        uint64 `cbor:"maxtxs" json:"MaxBlockTxs"`
	MaxBlockBytes      uint64 `cbor:"maxbytes" json:"MaxBlockBytes"`
	// Caps: pending txs per sender in a mempool, and access requests (and
	// denials) per auditor per replay window.
	MaxPendingPerSender uint64 `cbor:"pending" json:"MaxPendingPerSender"`
	MaxAccessPerWindow  uint64 `cbor:"access" json:"MaxAccessPerWindow"`
}

// DefaultParams are the parameters a new testnet starts with.
func DefaultParams() Params {
	return Params{
		AccessWindow: 100, EpochDelay: 10, ReplayWindow: 100, MaxClockSkewMs: 2000,
		CheckpointInterval: 100, MaxBlockTxs: 2000, MaxBlockBytes: 4 << 20,
		MaxPendingPerSender: 1000, MaxAccessPerWindow: 1000,
	}
}

// Validate checks that the parameters can run a chain.
func (p *Params) Validate() error {
	switch {
	case p.AccessWindow == 0 || p.ReplayWindow == 0 || p.CheckpointInterval == 0 || p.EpochDelay == 0:
		return errors.New("chain: params: windows and intervals must be positive")
	case p.MaxClockSkewMs <= 0:
		return errors.New("chain: params: clock skew bound must be positive")
	case p.MaxBlockTxs == 0 || p.MaxBlockTxs > MaxTxsPerBlk || p.MaxBlockBytes == 0 || p.MaxBlockBytes > MaxBlockSize:
		return errors.New("chain: params: block limits out of range")
	}
	return nil
}

// Validator is a member of the genesis validator set.
type Validator struct {
	PeerID string   `cbor:"peer" json:"PeerID"`
	Addrs  []string `cbor:"addrs" json:"Addrs"`
}

// GenesisMember is a member of the network at genesis.
type GenesisMember struct {
	PeerID string `cbor:"peer" json:"PeerID"`
	Role   string `cbor:"role" json:"Role"`
	Name   string `cbor:"name" json:"Name"`
}

// Admins are the keys that sign admin transactions, Threshold of them at
// a time.
type Admins struct {
	Keys      []string `cbor:"keys" json:"Keys"`
	Threshold int      `cbor:"threshold" json:"Threshold"`
}

// Genesis is genesis.json: what every node of a network starts from.
type Genesis struct {
	ChainID    string          `cbor:"chain" json:"ChainID"`
	Time       int64           `cbor:"time" json:"Time"`
	Validators []Validator     `cbor:"validators" json:"Validators"`
	Members    []GenesisMember `cbor:"members" json:"Members"`
	Admins     Admins          `cbor:"admins" json:"Admins"`
	Params     Params          `cbor:"params" json:"Params"`
}

// CID is the genesis' CID: the Prev of block 1 and the root of trust of
// every proof.
func (g *Genesis) CID() (cid.Cid, error) {
	_, c, err := Encode(g)
	return c, err
}

// Validate checks a genesis: at least 4 validators (n ≥ 3f+1 with f ≥ 1),
// distinct valid peer IDs, an admin threshold k with 1 ≤ k ≤ m, and valid
// parameters.
func (g *Genesis) Validate() error {
	if g.ChainID == "" || len(g.ChainID) > maxNameLength {
		return errors.New("chain: genesis has no valid chain id")
	}
	if len(g.Validators) < 4 || len(g.Validators) > MaxValidators {
		return fmt.Errorf("chain: genesis has %d validators, want 4 to %d", len(g.Validators), MaxValidators)
	}
	seen := map[string]bool{}
	check := func(what, id string) error {
		b, err := ParsePeerID(id)
		if err != nil {
			return fmt.Errorf("chain: genesis %s %q: %w", what, id, err)
		}
		if seen[what+string(b)] {
			return fmt.Errorf("chain: genesis lists %s %s twice", what, id)
		}
		seen[what+string(b)] = true
		return nil
	}
	for _, v := range g.Validators {
		if err := check("validator", v.PeerID); err != nil {
			return err
		}
	}
	for _, m := range g.Members {
		if err := check("member", m.PeerID); err != nil {
			return err
		}
		if !validRole(m.Role) {
			return fmt.Errorf("chain: genesis member %s has role %q", m.PeerID, m.Role)
		}
	}
	for _, k := range g.Admins.Keys {
		if err := check("admin", k); err != nil {
			return err
		}
	}
	roles := map[string]string{}
	for _, m := range g.Members {
		roles[m.PeerID] = m.Role
	}
	for _, v := range g.Validators {
		if r := roles[v.PeerID]; r == "" || r == string(roleAuditor) {
			return fmt.Errorf("chain: genesis validator %s is not a member of a validating role", v.PeerID)
		}
	}
	if g.Admins.Threshold < 1 || g.Admins.Threshold > len(g.Admins.Keys) || len(g.Admins.Keys) > MaxSigs {
		return fmt.Errorf("chain: genesis admin threshold %d of %d", g.Admins.Threshold, len(g.Admins.Keys))
	}
	return g.Params.Validate()
}

// ReadGenesis reads and validates genesis.json.
func ReadGenesis(path string) (*Genesis, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read genesis: %w", err)
	}
	var g Genesis
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&g); err != nil {
		return nil, fmt.Errorf("read genesis %s: %w", path, err)
	}
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("genesis %s: %w", path, err)
	}
	return &g, nil
}
