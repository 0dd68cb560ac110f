package node

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"
)

// TestMembershipReloadCutsOffRemovedPeer runs two daemons that are members
// of each other, then takes the auditor out of the agency's Members with
// `auditnet config` while both run: within a poll interval the agency
// closes the auditor's connection, and a new dial is refused.
func TestMembershipReloadCutsOffRemovedPeer(t *testing.T) {
	agency, auditor := initTestRepo(t, RoleAgency), initTestRepo(t, RoleAuditor)
	ca, _ := ReadConfig(agency)
	cb, _ := ReadConfig(auditor)
	setJSON := func(dir, key string, v any) {
		t.Helper()
		raw, _ := json.Marshal(v)
		if err := SetConfigValue(dir, key, string(raw), true); err != nil {
			t.Fatal(err)
		}
	}
	setJSON(agency, "Members", []string{cb.Identity.PeerID})
	setJSON(auditor, "Members", []string{ca.Identity.PeerID})
	runTestDaemon(t, agency)
	runTestDaemon(t, auditor)
	ctx := context.Background()
	a, err := DialDaemon(ctx, agency)
	if err != nil {
		t.Fatal(err)
	}
	b, err := DialDaemon(ctx, auditor)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.ID(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Connect(ctx, id.Addresses[0]); err != nil {
		t.Fatal(err)
	}
	connected := func() bool {
		peers, err := a.Peers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return slices.ContainsFunc(peers, func(p PeerInfo) bool { return p.Peer == cb.Identity.PeerID })
	}
	waitUntil(t, "the auditor to connect", connected)

	setJSON(agency, "Members", []string{})
	waitUntil(t, "the agency to cut the auditor off", func() bool { return !connected() })
	b.Connect(ctx, id.Addresses[0]) // the dialer may see its side finish; the agency must not admit it
	if connected() {
		t.Fatal("a removed member was admitted again")
	}
}

// waitUntil polls cond until it holds, for at most 20 seconds.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}
