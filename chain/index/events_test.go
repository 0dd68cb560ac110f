package index

import (
	"bytes"
	"testing"

	"auditnet/chain"
)

// TestEventsRecordEveryFact checks the event of every kind and outcome:
// who, what dataset, which auditor and agency, and what was decided.
func TestEventsRecordEveryFact(t *testing.T) {
	s := newScenario(t)
	all := s.all(t)
	ids := s.ids
	type want struct {
		kind                      Kind
		code, reason              string
		height                    uint64
		sender, auditor, provider []byte
		dataset                   *chain.Dataset
		purpose, caseID           string
	}
	tests := []struct {
		name string
		tx   *chain.Tx
		want want
	}{
		{"anchor", s.anchorLedger1, want{kind: KindAnchor, code: chain.OutcomeOK, height: 1, sender: ids["agency1"], dataset: &s.ledger1}},
		{"admins' grant", s.adminGrant, want{kind: KindGrant, code: chain.OutcomeOK, height: 2, auditor: ids["auditor2"], dataset: &s.ledger1}},
		{"authorised", s.reqA, want{kind: KindAccess, code: chain.OutcomeAuthorised, height: 3, sender: ids["auditor1"],
			auditor: ids["auditor1"], provider: ids["agency1"], dataset: &s.ledger1, purpose: "annual audit", caseID: "C-1"}},
		{"not-holder", s.reqC, want{kind: KindAccess, code: chain.OutcomeDenied, reason: chain.ReasonNotHolder, height: 3,
			sender: ids["auditor1"], auditor: ids["auditor1"], provider: ids["agency1"], dataset: &s.ledger2, purpose: "annual audit", caseID: "C-1"}},
		{"not-anchored", s.reqD, want{kind: KindAccess, code: chain.OutcomeDenied, reason: chain.ReasonNotAnchored, height: 3,
			sender: ids["auditor2"], auditor: ids["auditor2"], provider: ids["agency2"], dataset: &s.never2, purpose: "spot check", caseID: "C-2"}},
		{"served", s.servedA, want{kind: KindServed, code: chain.OutcomeServed, height: 4, sender: ids["agency1"],
			auditor: ids["auditor1"], provider: ids["agency1"], dataset: &s.ledger1}},
		{"unacknowledged", s.servedE, want{kind: KindServed, code: chain.OutcomeUnacknowledged, height: 4, sender: ids["agency1"],
			auditor: ids["auditor1"], provider: ids["agency1"], dataset: &s.budget1}},
		{"revoked", s.reqF, want{kind: KindAccess, code: chain.OutcomeDenied, reason: chain.ReasonRevoked, height: 5,
			sender: ids["auditor1"], auditor: ids["auditor1"], provider: ids["agency1"], dataset: &s.ledger1, purpose: "again", caseID: "C-1"}},
		{"member", s.member, want{kind: KindMember, code: chain.OutcomeOK, height: 5}},
		{"params", s.params, want{kind: KindParams, code: chain.OutcomeOK, height: 5}},
		{"evidence", s.evidenceTx, want{kind: KindEvidence, code: chain.OutcomeOK, height: 5, sender: ids["datacenter"]}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, w := eventOf(t, all, tc.tx), tc.want
			if got.Kind != w.kind || got.Code != w.code || got.Reason != w.reason || got.Height != w.height {
				t.Fatalf("got %s %s/%s at %d, want %s %s/%s at %d", got.Kind, got.Code, got.Reason, got.Height, w.kind, w.code, w.reason, w.height)
			}
			if !bytes.Equal(got.Sender, w.sender) || !bytes.Equal(got.Auditor, w.auditor) || !bytes.Equal(got.Provider, w.provider) {
				t.Fatalf("got sender %x auditor %x provider %x", got.Sender, got.Auditor, got.Provider)
			}
			if w.dataset == nil {
				if got.Dataset != nil || got.Agency != nil {
					t.Fatalf("got dataset %+v, agency %x; want none", got.Dataset, got.Agency)
				}
			} else if !sameDataset(got.Dataset, *w.dataset) || !bytes.Equal(got.Agency, w.dataset.Owner) {
				t.Fatalf("got dataset %+v agency %x, want %+v", got.Dataset, got.Agency, w.dataset)
			}
			if got.Purpose != w.purpose || got.Case != w.caseID {
				t.Fatalf("got purpose %q case %q, want %q %q", got.Purpose, got.Case, w.purpose, w.caseID)
			}
		})
	}

	if ev := eventOf(t, all, s.anchorLedger1); ev.Anchor == nil || ev.Anchor.Name != "ledger" || ev.Anchor.Policy != chain.PolicyRestricted {
		t.Errorf("anchor body %+v", ev.Anchor)
	}
	if ev := eventOf(t, all, s.adminGrant); len(ev.Signers) != 2 || ev.Sender != nil {
		t.Errorf("admins' grant: %d signers, sender %x", len(ev.Signers), ev.Sender)
	}
	if ev := eventOf(t, all, s.servedA); ev.Bytes != 1000 || ev.Blocks != 3 || ev.Request == nil || !ev.Request.Equals(txID(t, s.reqA)) {
		t.Errorf("served: %d bytes, %d blocks, request %v", ev.Bytes, ev.Blocks, ev.Request)
	}
	if ev := eventOf(t, all, s.servedE); ev.Bytes != 0 || ev.Request == nil || !ev.Request.Equals(txID(t, s.reqE)) {
		t.Errorf("unacknowledged (its request in the same block): %d bytes, request %v", ev.Bytes, ev.Request)
	}
	if ev := eventOf(t, all, s.member); ev.Member == nil || ev.Member.Op != chain.MemberAdd || !bytes.Equal(ev.Peer, ids["newcomer"]) || len(ev.Signers) != 2 {
		t.Errorf("member: %+v peer %x", ev.Member, ev.Peer)
	}
	if ev := eventOf(t, all, s.params); ev.Params == nil || ev.Params.AccessWindow != 3 {
		t.Errorf("params: %+v", ev.Params)
	}
	if ev := eventOf(t, all, s.evidenceTx); !bytes.Equal(ev.Peer, ids["office0"]) {
		t.Errorf("evidence names %x, want the equivocating validator", ev.Peer)
	}
}

// TestNonServiceUnderRequest checks that a non-service, whose outcome
// names only the request of an earlier block, is indexed under that
// request's dataset, auditor and agency.
func TestNonServiceUnderRequest(t *testing.T) {
	s := newScenario(t)
	reqB := txID(t, s.reqB)
	for _, f := range []Filter{
		{Auditor: s.ids["auditor2"]},
		{Agency: s.ids["agency1"]},
		{Dataset: &s.budget1},
		{Dataset: &s.budget1, Auditor: s.ids["auditor2"], Agency: s.ids["agency1"], Kinds: []Kind{KindNonService}},
	} {
		got, err := s.ix.Query(f)
		if err != nil {
			t.Fatal(err)
		}
		var ns []Event
		for _, ev := range got {
			if ev.Kind == KindNonService {
				ns = append(ns, ev)
			}
		}
		if len(ns) != 1 {
			t.Fatalf("filter %+v: %d non-services, want 1", f, len(ns))
		}
		ev := ns[0]
		if ev.Height != 7 || ev.Pos != 0 || ev.Code != chain.OutcomeNonService || !ev.Tx.Equals(reqB) || ev.Request == nil || !ev.Request.Equals(reqB) {
			t.Fatalf("non-service %+v", ev)
		}
		if !bytes.Equal(ev.Provider, s.ids["agency1"]) || ev.Purpose != "spot check" || ev.Case != "C-2" || len(ev.Sender) != 0 {
			t.Fatalf("non-service provider %x purpose %q case %q sender %x", ev.Provider, ev.Purpose, ev.Case, ev.Sender)
		}
	}
	got, err := s.ix.Query(Filter{Auditor: s.ids["auditor1"], Kinds: []Kind{KindNonService}})
	if err != nil || len(got) != 0 {
		t.Fatalf("auditor1's non-services: %d, %v; want none (both were served)", len(got), err)
	}
}
