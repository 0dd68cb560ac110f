package chain

import (
	"bytes"
	"fmt"
	"sort"
)

// Epochs (DESIGN.md, "Epochs"): a Member transaction that puts a peer in
// or out of the validator set changes the desired set at once, but the set
// that validates changes only at the first checkpoint at least L blocks
// after the last such change committed. That checkpoint's block is the
// last of its epoch, and its header's NextValidators names the new set.
// Every other header's NextValidators is the hash of the set in force, the
// one that validates the next block.

var (
	validatorsKey = []byte("validators")
	pendingKey    = []byte("validators/pending")
	openKey       = []byte("accesses/open")
)

// validatorsRecord is the validator set in force and its epoch.
type validatorsRecord struct {
	Epoch uint64   `cbor:"epoch"`
	IDs   [][]byte `cbor:"ids"`
}

// pendingRecord is a desired validator set that differs from the one in
// force, and the height of the last change to it.
type pendingRecord struct {
	IDs   [][]byte `cbor:"ids"`
	Since uint64   `cbor:"since"`
}

// Validators returns the validator set in force: the one that validates
// the next block, with its epoch.
func (m *Machine) Validators() (ValidatorSet, error) {
	var r validatorsRecord
	if ok, err := getRecord(m.state, validatorsKey, &r); err != nil || !ok {
		return ValidatorSet{}, fmt.Errorf("chain: no validator set in state: %w", err)
	}
	return NewValidatorSet(r.Epoch, r.IDs...), nil
}

// DeadlinePending reports whether a deadline counted in blocks is waiting
// for blocks to pass: an authorised access not yet served (it becomes a
// non-service after T blocks) or a validator-set change (it takes effect
// at a checkpoint). On an idle chain the leader proposes empty blocks
// while one is pending, and none otherwise.
func (m *Machine) DeadlinePending() bool {
	if _, ok := m.state.Get(pendingKey); ok {
		return true
	}
	raw, ok := m.state.Get(openKey)
	return ok && len(raw) == 8 && uint64FromBytes(raw) > 0
}

// addOpen adds d to the count of authorised accesses awaiting service.
func (m *Machine) addOpen(d int) {
	n := uint64(0)
	if raw, ok := m.state.Get(openKey); ok && len(raw) == 8 {
		n = uint64FromBytes(raw)
	}
	if d < 0 && n < uint64(-d) {
		n = 0 // never wraps: a count below zero would leave a deadline pending forever
	} else {
		n = uint64(int64(n) + int64(d))
	}
	if n == 0 {
		m.state.Delete(openKey)
		return
	}
	m.state.Set(openKey, uint64Bytes(n))
}

func initValidators(s State, g *Genesis) error {
	ids := make([][]byte, 0, len(g.Validators))
	for _, v := range g.Validators {
		id, err := ParsePeerID(v.PeerID)
		if err != nil {
			return err
		}
		ids = append(ids, id)
	}
	return putRecord(s, validatorsKey, &validatorsRecord{IDs: sortedIDs(ids)})
}

func sortedIDs(ids [][]byte) [][]byte {
	sort.Slice(ids, func(i, j int) bool { return bytes.Compare(ids[i], ids[j]) < 0 })
	return ids
}

// desiredValidators is the set the validators will be once pending
// changes take effect.
func (m *Machine) desiredValidators() ([][]byte, error) {
	var p pendingRecord
	ok, err := getRecord(m.state, pendingKey, &p)
	if err != nil {
		return nil, err
	}
	if ok {
		return p.IDs, nil
	}
	var r validatorsRecord
	if _, err := getRecord(m.state, validatorsKey, &r); err != nil {
		return nil, err
	}
	return r.IDs, nil
}

// withValidator returns ids with p in it or not.
func withValidator(ids [][]byte, p []byte, in bool) [][]byte {
	out := make([][]byte, 0, len(ids)+1)
	for _, id := range ids {
		if !bytes.Equal(id, p) {
			out = append(out, id)
		}
	}
	if in {
		out = append(out, append([]byte(nil), p...))
	}
	return sortedIDs(out)
}

// checkValidatorChange refuses a Member transaction that would leave the
// desired set with fewer than 4 validators (n ≥ 3f+1 with f ≥ 1) or more
// than MaxValidators, or make an auditor a validator.
func (m *Machine) checkValidatorChange(mb *Member) error {
	in := mb.Op != MemberRemove && mb.Validator
	if in && mb.Role == string(roleAuditor) {
		return invalid("an auditor cannot be a validator")
	}
	ids, err := m.desiredValidators()
	if err != nil {
		return err
	}
	if n := len(withValidator(ids, mb.Peer, in)); n < 4 || n > MaxValidators {
		return invalid("the change leaves %d validators, want 4 to %d", n, MaxValidators)
	}
	return nil
}

// noteValidatorChange records the desired set after a Member transaction
// at height h.
func (m *Machine) noteValidatorChange(mb *Member, h uint64) error {
	ids, err := m.desiredValidators()
	if err != nil {
		return err
	}
	desired := withValidator(ids, mb.Peer, mb.Op != MemberRemove && mb.Validator)
	var cur validatorsRecord
	if _, err := getRecord(m.state, validatorsKey, &cur); err != nil {
		return err
	}
	if equalIDs(desired, cur.IDs) {
		m.state.Delete(pendingKey)
		return nil
	}
	return putRecord(m.state, pendingKey, &pendingRecord{IDs: desired, Since: h})
}

func equalIDs(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// advanceEpoch ends the epoch at block h if h is a checkpoint at least L
// blocks after the last pending change.
func (m *Machine) advanceEpoch(h uint64, p Params) error {
	if h%p.CheckpointInterval != 0 {
		return nil
	}
	var pend pendingRecord
	ok, err := getRecord(m.state, pendingKey, &pend)
	if err != nil || !ok || h < pend.Since+p.EpochDelay {
		return err
	}
	var cur validatorsRecord
	if _, err := getRecord(m.state, validatorsKey, &cur); err != nil {
		return err
	}
	m.state.Delete(pendingKey)
	return putRecord(m.state, validatorsKey, &validatorsRecord{Epoch: cur.Epoch + 1, IDs: pend.IDs})
}
