package chain

import (
	"bytes"
	"errors"
	"fmt"
	"sort"

	"github.com/ipfs/go-cid"

	"auditnet/internal/dagcbor"
)

// Outcome codes: what a transaction (or a deadline) executed to. Every
// outcome goes into the block's results root, so a receipt proves it.
const (
	OutcomeOK             = "ok"
	OutcomeNoop           = "no-op"
	OutcomeAuthorised     = "authorised"
	OutcomeDenied         = "denied"
	OutcomeServed         = "served"
	OutcomeUnacknowledged = "unacknowledged"
	OutcomeNonService     = "non-service"
)

// Reasons an access request is denied (DESIGN.md, a fixed set).
const (
	ReasonNotAuditor  = "not-auditor"
	ReasonNotAnchored = "not-anchored"
	ReasonNotHolder   = "not-holder"
	ReasonNoGrant     = "no-grant"
	ReasonExpired     = "expired"
	ReasonRevoked     = "revoked"
	ReasonRateLimited = "rate-limited"
)

// Outcome is one entry of a block's results.
type Outcome struct {
	Tx     dagcbor.Link `cbor:"tx"`
	Code   string       `cbor:"code"`
	Reason string       `cbor:"reason,omitempty"`
}

// ResultsRoot is the RFC 6962 root over the outcomes' encodings.
func ResultsRoot(outcomes []Outcome) ([]byte, error) {
	leaves, err := leavesOf(outcomes, encodeOutcome)
	if err != nil {
		return nil, err
	}
	return MerkleRoot(leaves), nil
}

// encodeOutcome is an outcome's leaf: its canonical encoding.
func encodeOutcome(o *Outcome) ([]byte, error) {
	return Marshal(o)
}

// ErrInvalidTx is wrapped by Check's refusals: such a transaction is never
// put in a block, and a block holding one is rejected.
var ErrInvalidTx = errors.New("chain: invalid transaction")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidTx, fmt.Sprintf(format, args...))
}

// Machine executes transactions against the state. It is deterministic:
// it reads only the state, the transactions, and the height and time of
// the block being executed.
type Machine struct {
	state     State
	chain     string
	admins    map[string]bool
	threshold int
	// lists holds the transaction lists changed during a block, expiries
	// the expiry heights whose index it noted, included the transactions
	// the block has taken so far (by Cid.KeyString).
	lists    map[string]*txList
	expiries map[uint64]bool
	included map[string]bool
	// replay holds the replay set's lists decoded.
	replay *ReplayCache
	// verified, if set, tells of transactions whose signatures the caller
	// has already verified, so that each is verified once per node.
	verified func(*Tx) bool
	// params is the decoding of paramsRaw, the last parameter record read.
	params    Params
	paramsRaw []byte
	members   map[string]memberCache
}

// SkipVerified makes Check trust the signatures of the transactions for
// which verified returns true; the caller verified those already (with
// VerifySignatures) and keys them by their whole encoding, signatures
// included (Tx.Hash). Check trusts, too, a sealed transaction that
// VerifySignatures or VerifyTxs passed.
func (m *Machine) SkipVerified(verified func(*Tx) bool) { m.verified = verified }

// ShareReplayCache makes the machine keep its decoded replay-set lists in
// c, which machines over clones of one state may share (it holds only
// decodings of what a state holds, so it never changes an outcome). A
// machine without one keeps its own.
func (m *Machine) ShareReplayCache(c *ReplayCache) { m.replay = c }

// NewMachine returns the machine of the chain g describes over s; an empty
// state is given g's members and parameters.
func NewMachine(g *Genesis, s State) (*Machine, error) {
	if err := g.Validate(); err != nil {
		return nil, err
	}
	m := &Machine{state: s, chain: g.ChainID, admins: map[string]bool{}, threshold: g.Admins.Threshold}
	for _, k := range g.Admins.Keys {
		id, _ := ParsePeerID(k)
		m.admins[string(id)] = true
	}
	if _, ok := s.Get(paramsKey); ok {
		return m, nil
	}
	if err := putRecord(s, paramsKey, &g.Params); err != nil {
		return nil, err
	}
	if err := initValidators(s, g); err != nil {
		return nil, err
	}
	validators := map[string]bool{}
	for _, v := range g.Validators {
		validators[v.PeerID] = true
	}
	for _, gm := range g.Members {
		id, _ := ParsePeerID(gm.PeerID)
		rec := MemberRecord{Role: gm.Role, Name: gm.Name, Validator: validators[gm.PeerID]}
		if err := putRecord(s, memberKey(id), &rec); err != nil {
			return nil, err
		}
	}
	return m, nil
}

// Params returns the parameters in force.
func (m *Machine) Params() (Params, error) {
	raw, ok := m.state.Get(paramsKey)
	if ok && m.paramsRaw != nil && bytes.Equal(raw, m.paramsRaw) {
		return m.params, nil // Check asks once per transaction
	}
	var p Params
	if ok, err := getRecord(m.state, paramsKey, &p); err != nil || !ok {
		return p, fmt.Errorf("chain: no params in state: %w", err)
	}
	m.params, m.paramsRaw = p, bytes.Clone(raw)
	return p, nil
}

func (m *Machine) member(p []byte) (MemberRecord, bool, error) {
	key := memberKey(p)
	raw, ok := m.state.Get(key)
	if !ok {
		return MemberRecord{}, false, nil
	}
	// Check asks once per transaction, mostly about a few senders: a
	// record's decoding is kept while its bytes stay the same.
	if c, hit := m.members[string(p)]; hit && bytes.Equal(c.raw, raw) {
		return c.rec, true, nil
	}
	var r MemberRecord
	if _, err := getRecord(m.state, key, &r); err != nil {
		return r, false, err
	}
	if m.members == nil || len(m.members) >= maxMemberCache {
		m.members = map[string]memberCache{}
	}
	m.members[string(p)] = memberCache{raw: bytes.Clone(raw), rec: r}
	return r, true, nil
}

// memberCache is a member record's bytes and their decoding.
type memberCache struct {
	raw []byte
	rec MemberRecord
}

// maxMemberCache bounds the member records a Machine keeps decoded.
const maxMemberCache = 4096

// Check decides whether tx may go into the block at height h: shape,
// signatures, the replay window, and whether its sender may send it (the
// roles table of DESIGN.md) against the current state.
func (m *Machine) Check(tx *Tx, h uint64) error {
	if err := tx.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalidTx, err)
	}
	b := &tx.Body
	if b.Chain != m.chain {
		return invalid("tx for chain %q", b.Chain)
	}
	p, err := m.Params()
	if err != nil {
		return err
	}
	if b.Expires < h || b.Expires > h+p.ReplayWindow {
		return invalid("tx expires at height %d, outside [%d, %d]", b.Expires, h, h+p.ReplayWindow)
	}
	id, err := tx.ID()
	if err != nil {
		return err
	}
	if seen, err := m.seen(id, b.Expires); err != nil {
		return err
	} else if seen {
		return invalid("tx %s already committed", id)
	}
	if !tx.SignaturesVerified() && (m.verified == nil || !m.verified(tx)) {
		if err := tx.VerifySignatures(); err != nil {
			return fmt.Errorf("%w: %v", ErrInvalidTx, err)
		}
	}
	if len(b.Sender) == 0 {
		return m.checkAdmins(tx)
	}
	sender, ok, err := m.member(b.Sender)
	if err != nil {
		return err
	}
	if !ok {
		return invalid("sender is not a member")
	}
	return m.checkNodeTx(tx, sender, h, p)
}

// checkAdmins requires threshold distinct admin signatures.
func (m *Machine) checkAdmins(tx *Tx) error {
	n := 0
	for _, s := range tx.Sigs {
		if !m.admins[string(s.Signer)] {
			return invalid("signer is not an admin")
		}
		n++
	}
	if n < m.threshold {
		return invalid("%d admin signatures, %d needed", n, m.threshold)
	}
	if mb := tx.Body.Member; mb != nil {
		return m.checkValidatorChange(mb)
	}
	if g := tx.Body.Grant; g != nil {
		if _, ok := m.state.Get(datasetKey(g.Dataset)); !ok {
			return invalid("grant on a dataset that is not anchored")
		}
	}
	return nil
}

func (m *Machine) checkNodeTx(tx *Tx, sender MemberRecord, h uint64, p Params) error {
	b := &tx.Body
	role := sender.Role
	switch b.Kind {
	case KindAnchor:
		if role != string(roleAgency) {
			return invalid("a %s may not anchor", role)
		}
	case KindGrant:
		if role != string(roleAgency) || string(b.Grant.Dataset.Owner) != string(b.Sender) {
			return invalid("only the dataset's owner or admins grant")
		}
		var prior GrantRecord
		if ok, err := getRecord(m.state, grantKey(b.Grant.Dataset, b.Grant.Auditor), &prior); err != nil {
			return err
		} else if ok && !prior.Revoked && len(prior.Grantor) == 0 {
			return invalid("a grant by the admins is in force; only they change it")
		}
		var d DatasetRecord
		if ok, err := getRecord(m.state, datasetKey(b.Grant.Dataset), &d); err != nil || !ok {
			return invalid("grant on a dataset that is not anchored")
		}
	case KindRevoke:
		var g GrantRecord
		ok, err := getRecord(m.state, grantKey(b.Revoke.Dataset, b.Revoke.Auditor), &g)
		if err != nil {
			return err
		}
		if !ok || g.Revoked || string(g.Grantor) != string(b.Sender) {
			return invalid("only the grantor or admins revoke a grant in force")
		}
	case KindAccess:
		// Any member may ask; the state machine decides, and says why.
	case KindServed:
		return m.checkServed(tx, h, p)
	case KindEvidence:
		if role != string(roleDatacenter) && role != string(roleOffice) {
			return invalid("a %s may not send evidence", role)
		}
		e := b.Evidence
		if !Conflicts(&e.A, &e.B) || e.A.Vote.Chain != m.chain {
			return invalid("evidence votes do not conflict")
		}
		if _, dup := m.state.Get(evidenceKey(&e.A)); dup {
			return invalid("this equivocation is already on the chain")
		}
		// The votes' signatures were checked with the transaction's
		// (VerifySignatures), once per node.
	default:
		return invalid("a node may not send %s", b.Kind)
	}
	return nil
}

// checkServed accepts one Served per authorised request, from the
// provider it names, within T blocks, for no more than the anchored size.
func (m *Machine) checkServed(tx *Tx, h uint64, p Params) error {
	sv := tx.Body.Served
	var a AccessRecord
	ok, err := getRecord(m.state, accessKey(sv.Request.Cid), &a)
	if err != nil {
		return err
	}
	switch {
	case !ok:
		return invalid("served: no open authorised request %s (never authorised, served already, or past its window)", sv.Request.Cid)
	case string(a.Provider) != string(tx.Body.Sender):
		return invalid("served: sent by another than the named provider")
	case h > a.Height+p.AccessWindow:
		return invalid("served: after the access window")
	}
	if sv.Ack == nil {
		return nil
	}
	var d DatasetRecord
	if ok, err := getRecord(m.state, datasetKey(a.Dataset), &d); err != nil || !ok {
		return invalid("served: dataset gone")
	}
	if sv.Ack.Chain != m.chain || !sv.Ack.Request.Equals(sv.Request.Cid) || sv.Ack.Bytes > d.Size {
		return invalid("served: acknowledgement does not match the request")
	}
	if err := VerifyAck(sv.Ack, a.Auditor); err != nil {
		return invalid("served: acknowledgement: %v", err)
	}
	return nil
}

// Execute applies a block's transactions at height h and block time t
// (ms). It first settles the deadlines falling due (accesses not served in
// time become non-services; replay entries expire), then executes each
// transaction, which must pass Check: a block holding an invalid one is
// refused, and the caller discards the state it was applied to. It
// returns every outcome, deadlines first, in order.
func (m *Machine) Execute(h uint64, t int64, txs []Tx) ([]Outcome, error) {
	_, out, err := m.run(h, t, txs, false)
	return out, err
}

// Build is Execute for a proposer: transactions that fail Check are left
// out instead of failing the block. It returns the transactions included
// and the outcomes.
func (m *Machine) Build(h uint64, t int64, txs []Tx) ([]Tx, []Outcome, error) {
	return m.run(h, t, txs, true)
}

func (m *Machine) run(h uint64, t int64, txs []Tx, skipInvalid bool) ([]Tx, []Outcome, error) {
	p, err := m.Params()
	if err != nil {
		return nil, nil, err
	}
	m.lists, m.expiries, m.included = map[string]*txList{}, map[uint64]bool{}, map[string]bool{}
	defer func() { m.lists, m.expiries, m.included = nil, nil, nil }()
	out, err := m.settleDeadlines(h)
	if err != nil {
		return nil, nil, err
	}
	included := make([]Tx, 0, len(txs))
	for i := range txs {
		tx := &txs[i]
		if err := m.Check(tx, h); err != nil {
			if skipInvalid && errors.Is(err, ErrInvalidTx) {
				continue
			}
			return nil, nil, fmt.Errorf("tx %d: %w", i, err)
		}
		id, _ := tx.ID()
		o, err := m.apply(tx, id, h, t, p)
		if err != nil {
			return nil, nil, fmt.Errorf("tx %d: %w", i, err)
		}
		o.Tx = dagcbor.Link{Cid: id}
		out = append(out, o)
		if err := m.markSeen(id, tx.Body.Expires, h); err != nil {
			return nil, nil, err
		}
		included = append(included, *tx)
	}
	if err := m.flushLists(); err != nil {
		return nil, nil, err
	}
	p, err = m.Params() // a Params transaction takes effect from the next block
	if err != nil {
		return nil, nil, err
	}
	return included, out, m.advanceEpoch(h, p)
}

// markSeen puts a transaction committed at height h in the replay set
// until it expires. The replay set is kept by expiry height e: one list
// per height that committed transactions expiring at e, and the list of
// those heights. A block writes its own lists once, however many blocks'
// transactions expire with its own (one list for all of them would be
// read and written whole by each block adding to it), and a list never
// changes once written, so its decoding can be kept (ReplayCache). There
// is no key per transaction: a key per transaction would be written, and
// deleted again, in the state trie and on disk for every transaction.
func (m *Machine) markSeen(id cid.Cid, expires, h uint64) error {
	m.included[id.KeyString()] = true
	if err := m.appendTx(expiringKey(expires, h), id); err != nil {
		return err
	}
	if m.expiries[expires] {
		return nil
	}
	m.expiries[expires] = true
	key := heightKey("expiry/", expires)
	var hs heightList
	if _, err := getRecord(m.state, key, &hs); err != nil {
		return err
	}
	if n := len(hs.Heights); n > 0 && hs.Heights[n-1] == h {
		return nil
	}
	hs.Heights = append(hs.Heights, h)
	return putRecord(m.state, key, &hs)
}

// seen reports whether a transaction that expires at height e is in the
// replay set: committed earlier in this block or in a block before it.
// Only the lists of transactions expiring at e can hold it, since a
// transaction's ID covers its expiry height.
func (m *Machine) seen(id cid.Cid, e uint64) (bool, error) {
	if m.included[id.KeyString()] {
		return true, nil
	}
	var hs heightList
	if ok, err := getRecord(m.state, heightKey("expiry/", e), &hs); err != nil || !ok {
		return false, err
	}
	if m.replay == nil {
		m.replay = NewReplayCache()
	}
	for _, h := range hs.Heights {
		raw, ok := m.state.Get(expiringKey(e, h))
		if !ok {
			continue // this block's own list, written when it ends
		}
		ids, err := m.replay.list(e, h, raw)
		if err != nil {
			return false, err
		}
		if ids[id.KeyString()] {
			return true, nil
		}
	}
	return false, nil
}

// forgetExpired takes the transactions that expired at height e out of
// the replay set.
func (m *Machine) forgetExpired(e uint64) error {
	key := heightKey("expiry/", e)
	var hs heightList
	if _, err := getRecord(m.state, key, &hs); err != nil {
		return err
	}
	for _, h := range hs.Heights {
		m.state.Delete(expiringKey(e, h))
	}
	m.state.Delete(key)
	if m.replay != nil {
		m.replay.forget(e)
	}
	return nil
}

// appendTx adds a transaction to the list kept under key. During a block
// the lists are kept in memory and written once at its end, so a block of
// k transactions writes each list once rather than k times.
func (m *Machine) appendTx(key []byte, id cid.Cid) error {
	l := m.lists[string(key)]
	if l == nil {
		l = &txList{}
		if _, err := getRecord(m.state, key, l); err != nil {
			return err
		}
		if m.lists == nil {
			return putRecord(m.state, key, &txList{IDs: append(l.IDs, dagcbor.Link{Cid: id})})
		}
		m.lists[string(key)] = l
	}
	l.IDs = append(l.IDs, dagcbor.Link{Cid: id})
	return nil
}

// flushLists writes the lists appendTx changed during a block.
func (m *Machine) flushLists() error {
	keys := make([]string, 0, len(m.lists))
	for k := range m.lists {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if err := putRecord(m.state, []byte(k), m.lists[k]); err != nil {
			return err
		}
	}
	m.lists = nil
	return nil
}

func (m *Machine) settleDeadlines(h uint64) ([]Outcome, error) {
	var out []Outcome
	if h > 0 {
		if err := m.forgetExpired(h - 1); err != nil {
			return nil, err
		}
	}
	key := heightKey("due/", h)
	var due txList
	if _, err := getRecord(m.state, key, &due); err != nil {
		return nil, err
	}
	// A request still in the state at its deadline was never served: it
	// becomes a non-service and leaves the state (the blocks are the
	// access log).
	for _, id := range due.IDs {
		if _, ok := m.state.Get(accessKey(id.Cid)); ok {
			m.addOpen(-1)
			out = append(out, Outcome{Tx: id, Code: OutcomeNonService})
			m.state.Delete(accessKey(id.Cid))
		}
	}
	m.state.Delete(key)
	return out, nil
}

func (m *Machine) apply(tx *Tx, id cid.Cid, h uint64, t int64, p Params) (Outcome, error) {
	b := &tx.Body
	switch b.Kind {
	case KindAnchor:
		ds := Dataset{Owner: b.Sender, Root: b.Anchor.Root}
		if _, exists := m.state.Get(datasetKey(ds)); exists {
			return Outcome{Code: OutcomeNoop, Reason: "already anchored"}, nil
		}
		rec := DatasetRecord{Size: b.Anchor.Size, Name: b.Anchor.Name, Policy: b.Anchor.Policy, Height: h, Time: t}
		return Outcome{Code: OutcomeOK}, putRecord(m.state, datasetKey(ds), &rec)
	case KindGrant:
		rec := GrantRecord{Grantor: b.Sender, Expires: b.Grant.Expires, Height: h}
		return Outcome{Code: OutcomeOK}, putRecord(m.state, grantKey(b.Grant.Dataset, b.Grant.Auditor), &rec)
	case KindRevoke:
		key := grantKey(b.Revoke.Dataset, b.Revoke.Auditor)
		var g GrantRecord
		if ok, err := getRecord(m.state, key, &g); err != nil || !ok {
			return Outcome{Code: OutcomeNoop, Reason: "no grant"}, err
		}
		g.Revoked = true
		return Outcome{Code: OutcomeOK}, putRecord(m.state, key, &g)
	case KindAccess:
		return m.decideAccess(tx, id, h, t, p)
	case KindServed:
		// Served settles the request: its record leaves the state, so a
		// second Served finds nothing to settle and its deadline nothing
		// to record.
		m.state.Delete(accessKey(b.Served.Request.Cid))
		m.addOpen(-1)
		code := OutcomeServed
		if b.Served.Ack == nil {
			code = OutcomeUnacknowledged
		}
		return Outcome{Code: code}, nil
	case KindMember:
		return m.applyMember(b.Member, h)
	case KindParams:
		return Outcome{Code: OutcomeOK}, putRecord(m.state, paramsKey, b.Params)
	case KindEvidence:
		m.state.Set(evidenceKey(&b.Evidence.A), id.Bytes())
		return Outcome{Code: OutcomeOK}, nil
	}
	return Outcome{}, fmt.Errorf("chain: no rule for %s", b.Kind)
}

// decideAccess executes an access request to authorised, or denied with
// the first reason that applies.
func (m *Machine) decideAccess(tx *Tx, id cid.Cid, h uint64, t int64, p Params) (Outcome, error) {
	b := &tx.Body
	a := b.Access
	deny := func(reason string) (Outcome, error) { return Outcome{Code: OutcomeDenied, Reason: reason}, nil }
	// Every request counts against the auditor's cap, denied or not.
	rk := rateKey(b.Sender, h/p.ReplayWindow)
	count := uint64(0)
	if raw, ok := m.state.Get(rk); ok && len(raw) == 8 {
		count = uint64FromBytes(raw)
	}
	m.state.Set(rk, uint64Bytes(count+1))
	sender, _, err := m.member(b.Sender)
	if err != nil {
		return Outcome{}, err
	}
	if sender.Role != string(roleAuditor) {
		return deny(ReasonNotAuditor)
	}
	if count >= p.MaxAccessPerWindow {
		return deny(ReasonRateLimited)
	}
	var d DatasetRecord
	if ok, err := getRecord(m.state, datasetKey(a.Dataset), &d); err != nil || !ok {
		if err != nil {
			return Outcome{}, err
		}
		return deny(ReasonNotAnchored)
	}
	if string(a.Provider) != string(a.Dataset.Owner) {
		return deny(ReasonNotHolder)
	}
	if d.Policy == PolicyRestricted {
		var g GrantRecord
		ok, err := getRecord(m.state, grantKey(a.Dataset, b.Sender), &g)
		switch {
		case err != nil:
			return Outcome{}, err
		case !ok:
			return deny(ReasonNoGrant)
		case g.Revoked:
			return deny(ReasonRevoked)
		case g.Expires != 0 && g.Expires <= t:
			return deny(ReasonExpired)
		}
	}
	rec := AccessRecord{Auditor: b.Sender, Dataset: a.Dataset, Provider: a.Provider, Height: h}
	if err := putRecord(m.state, accessKey(id), &rec); err != nil {
		return Outcome{}, err
	}
	if err := m.appendTx(heightKey("due/", h+p.AccessWindow+1), id); err != nil {
		return Outcome{}, err
	}
	m.addOpen(1)
	return Outcome{Code: OutcomeAuthorised}, nil
}

func (m *Machine) applyMember(mb *Member, h uint64) (Outcome, error) {
	if err := m.noteValidatorChange(mb, h); err != nil {
		return Outcome{}, err
	}
	key := memberKey(mb.Peer)
	switch mb.Op {
	case MemberRemove:
		if _, ok := m.state.Get(key); !ok {
			return Outcome{Code: OutcomeNoop, Reason: "not a member"}, nil
		}
		m.state.Delete(key)
		return Outcome{Code: OutcomeOK}, nil
	default:
		rec := MemberRecord{Role: mb.Role, Name: mb.Name, Validator: mb.Validator}
		return Outcome{Code: OutcomeOK}, putRecord(m.state, key, &rec)
	}
}
