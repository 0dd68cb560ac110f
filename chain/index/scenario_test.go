package index

import (
	"bytes"
	"testing"

	"auditnet/chain"
)

// scenario is a short chain with an event of every kind and outcome,
// indexed. Its blocks (A = agency, a = auditor):
//
//	1: anchor ledger1 (A1, restricted), budget1 (A1, open), ledger2 (A2, open)
//	2: grant ledger1→a1 by A1, grant ledger1→a2 by admins
//	3: reqA a1 ledger1 authorised, reqB a2 budget1 authorised,
//	   reqC a1 ledger2 via A1 denied not-holder, reqD a2 never2 denied not-anchored
//	4: Served reqA (acknowledged), reqE a1 budget1 authorised, Served reqE unacknowledged
//	5: revoke ledger1→a1, reqF a1 ledger1 denied revoked, member add, params, evidence
//	6: empty
//	7: reqB becomes a non-service (T = 3)
type scenario struct {
	*sim
	ix                           *Index
	ledger1, budget1, ledger2    chain.Dataset
	never2                       chain.Dataset
	reqA, reqB, reqC, reqD, reqE *chain.Tx
	reqF, servedA, servedE       *chain.Tx
	adminGrant, member, params   *chain.Tx
	evidenceTx, anchorLedger1    *chain.Tx
}

const scenarioEvents = 18

func newScenario(t testing.TB) *scenario {
	t.Helper()
	s := &scenario{sim: newSim(t, []string{"agency1", "agency2"}, []string{"auditor1", "auditor2"}, func(g *chain.Genesis) {
		g.Params.AccessWindow = 3
	})}
	s.ledger1, s.budget1 = s.dataset("agency1", "ledger"), s.dataset("agency1", "budget")
	s.ledger2, s.never2 = s.dataset("agency2", "ledger"), s.dataset("agency2", "never")

	s.anchorLedger1 = s.anchor("agency1", "ledger", chain.PolicyRestricted)
	s.block(s.anchorLedger1, s.anchor("agency1", "budget", chain.PolicyOpen), s.anchor("agency2", "ledger", chain.PolicyOpen))

	s.adminGrant = s.grant("admins", s.ledger1, "auditor2")
	s.block(s.grant("agency1", s.ledger1, "auditor1"), s.adminGrant)

	s.reqA = s.access("auditor1", s.ledger1, "agency1", "annual audit", "C-1")
	s.reqB = s.access("auditor2", s.budget1, "agency1", "spot check", "C-2")
	s.reqC = s.access("auditor1", s.ledger2, "agency1", "annual audit", "C-1")
	s.reqD = s.access("auditor2", s.never2, "agency2", "spot check", "C-2")
	s.block(s.reqA, s.reqB, s.reqC, s.reqD)

	s.servedA = s.served("agency1", s.reqA, "auditor1", 1000)
	s.reqE = s.access("auditor1", s.budget1, "agency1", "follow-up", "C-1")
	s.servedE = s.served("agency1", s.reqE, "", 0)
	s.block(s.servedA, s.reqE, s.servedE)

	_, newcomer := newKey(t)
	s.ids["newcomer"] = newcomer
	s.reqF = s.access("auditor1", s.ledger1, "agency1", "again", "C-1")
	s.member = s.adminTx(chain.KindMember, func(b *chain.TxBody) {
		b.Member = &chain.Member{Op: chain.MemberAdd, Peer: newcomer, Role: "auditor", Name: "newcomer"}
	})
	s.params = s.adminTx(chain.KindParams, func(b *chain.TxBody) {
		p := chain.DefaultParams()
		p.AccessWindow = 3
		b.Params = &p
	})
	s.evidenceTx = s.evidence("datacenter", "office0")
	s.block(s.tx("agency1", chain.KindRevoke, func(b *chain.TxBody) {
		b.Revoke = &chain.Revoke{Dataset: s.ledger1, Auditor: s.ids["auditor1"]}
	}), s.reqF, s.member, s.params, s.evidenceTx)

	s.block()
	s.block()

	s.ix = openIndex(t, t.TempDir())
	s.applyAll(s.ix)
	return s
}

// all is every event, checked against the blocks' outcomes: one event
// per outcome, at its height and position, with its code and tx.
func (s *scenario) all(t *testing.T) []Event {
	t.Helper()
	all, err := s.ix.Query(Filter{})
	if err != nil {
		t.Fatal(err)
	}
	i := 0
	for _, c := range s.blocks {
		for pos, o := range c.outcomes {
			if i >= len(all) {
				t.Fatalf("%d events, want more", len(all))
			}
			ev := all[i]
			if ev.Height != c.blk.Header.Height || ev.Pos != uint32(pos) || ev.Code != o.Code || ev.Reason != o.Reason || !ev.Tx.Equals(o.Tx.Cid) {
				t.Fatalf("event %d is %d/%d %s/%s %s, want %d/%d %s/%s %s", i, ev.Height, ev.Pos, ev.Code, ev.Reason, ev.Tx.Cid,
					c.blk.Header.Height, pos, o.Code, o.Reason, o.Tx.Cid)
			}
			if ev.Time != c.blk.Header.Time {
				t.Fatalf("event %d has time %d, want %d", i, ev.Time, c.blk.Header.Time)
			}
			i++
		}
	}
	if len(all) != i || i != scenarioEvents {
		t.Fatalf("%d events, %d outcomes, want %d", len(all), i, scenarioEvents)
	}
	return all
}

// eventOf returns the event a transaction executed to.
func eventOf(t *testing.T, all []Event, tx *chain.Tx) Event {
	t.Helper()
	id := txID(t, tx)
	for _, ev := range all {
		if ev.Tx.Equals(id) && ev.Kind != KindNonService {
			return ev
		}
	}
	t.Fatalf("no event for tx %s", id)
	return Event{}
}

func sameDataset(a *chain.Dataset, b chain.Dataset) bool {
	return a != nil && bytes.Equal(a.Owner, b.Owner) && a.Root.Equals(b.Root.Cid)
}
