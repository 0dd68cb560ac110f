package node

import (
	"os"
	"path/filepath"
	"testing"

	"auditnet/chain"
)

// TestTestnetTrustModel checks what testnet writes for several sizes: the
// audit office holds n − f validators and agencies f, followers alternate
// agency and auditor, every repo has the network's genesis, and bench and
// admin keys are members or admins that run no node.
func TestTestnetTrustModel(t *testing.T) {
	for _, tc := range []struct{ validators, followers int }{{4, 0}, {4, 3}, {7, 2}, {10, 1}} {
		dir := filepath.Join(t.TempDir(), "tn")
		tn, err := CreateTestnet(TestnetOptions{Dir: dir, Validators: tc.validators, Followers: tc.followers, BasePort: 20000, BenchSenders: 2})
		if err != nil {
			t.Fatal(err)
		}
		g, err := chain.ReadGenesis(tn.Genesis)
		if err != nil {
			t.Fatal(err)
		}
		f := chain.Faults(tc.validators)
		office, agencies := 0, 0
		roles := map[string]string{}
		for _, m := range g.Members {
			roles[m.PeerID] = m.Role
		}
		for _, v := range g.Validators {
			switch roles[v.PeerID] {
			case string(RoleDatacenter), string(RoleOffice):
				office++
			case string(RoleAgency):
				agencies++
			default:
				t.Errorf("n=%d: validator %s has role %q", tc.validators, v.PeerID, roles[v.PeerID])
			}
		}
		if got, want := office, tc.validators-f; got != want {
			t.Errorf("n=%d: %d audit-office validators, want n − f = %d", tc.validators, got, want)
		}
		if agencies > f {
			t.Errorf("n=%d: %d agency validators, more than f = %d", tc.validators, agencies, f)
		}
		followers := 0
		for _, n := range tn.Nodes {
			if !n.Validator {
				followers++
				if want := []Role{RoleAgency, RoleAuditor}[(followers-1)%2]; n.Role != want {
					t.Errorf("n=%d: follower %d (%s) has role %s, want %s", tc.validators, followers, n.Name, n.Role, want)
				}
			}
			rg, err := chain.ReadGenesis(filepath.Join(n.Dir, genesisFile))
			if err != nil {
				t.Fatal(err)
			}
			if rg.ChainID != g.ChainID {
				t.Errorf("%s has chain %s, want %s", n.Name, rg.ChainID, g.ChainID)
			}
			cfg, err := ReadConfig(n.Dir)
			if err != nil {
				t.Fatal(err)
			}
			if cfg.Identity.PeerID != n.PeerID || cfg.Role != n.Role || cfg.Network != g.ChainID {
				t.Errorf("%s: config says %s/%s/%s", n.Name, cfg.Identity.PeerID, cfg.Role, cfg.Network)
			}
			if got, want := len(cfg.Bootstrap), tc.validators; n.Validator && got != want-1 || !n.Validator && got != want {
				t.Errorf("%s: %d bootstrap peers", n.Name, got)
			}
		}
		if followers != tc.followers {
			t.Errorf("%d followers, want %d", followers, tc.followers)
		}
		keys, err := ReadBenchKeys(tn.Bench)
		if err != nil {
			t.Fatal(err)
		}
		for _, k := range keys {
			if roles[k.PeerID] != k.Role {
				t.Errorf("bench key %s: genesis role %q, want %q", k.PeerID, roles[k.PeerID], k.Role)
			}
		}
		for _, a := range tn.Admins {
			if rel, _ := filepath.Rel(dir, a); filepath.Dir(rel) != adminsDir {
				t.Errorf("admin key %s outside %s", a, adminsDir)
			}
		}
		if g.Admins.Threshold != 2 || len(g.Admins.Keys) != 3 {
			t.Errorf("admins %d of %d, want 2 of 3", g.Admins.Threshold, len(g.Admins.Keys))
		}
	}
}

// TestTestnetByRole checks the layout --agencies and --auditors give: the
// audit office fills every validator seat the agencies do not take (at
// most f of them), the other agencies and every auditor follow, and each
// repo is named after its role.
func TestTestnetByRole(t *testing.T) {
	type want struct {
		name      string
		role      Role
		validator bool
	}
	for _, tc := range []struct {
		validators, agencies, auditors int
		nodes                          []want
	}{
		{4, 3, 1, []want{{"datacenter", RoleDatacenter, true}, {"office-1", RoleOffice, true}, {"office-2", RoleOffice, true},
			{"agency-1", RoleAgency, true}, {"agency-2", RoleAgency, false}, {"agency-3", RoleAgency, false}, {"auditor-1", RoleAuditor, false}}},
		{4, 0, 2, []want{{"datacenter", RoleDatacenter, true}, {"office-1", RoleOffice, true}, {"office-2", RoleOffice, true},
			{"office-3", RoleOffice, true}, {"auditor-1", RoleAuditor, false}, {"auditor-2", RoleAuditor, false}}},
		{7, 1, 0, []want{{"datacenter", RoleDatacenter, true}, {"office-1", RoleOffice, true}, {"office-2", RoleOffice, true},
			{"office-3", RoleOffice, true}, {"office-4", RoleOffice, true}, {"office-5", RoleOffice, true}, {"agency-1", RoleAgency, true}}},
	} {
		dir := filepath.Join(t.TempDir(), "tn")
		tn, err := CreateTestnet(TestnetOptions{Dir: dir, Validators: tc.validators, ByRole: true, Agencies: tc.agencies,
			Auditors: tc.auditors, BasePort: 20000, BenchSenders: 1, Admins: 5, AdminThreshold: 3})
		if err != nil {
			t.Fatal(err)
		}
		if len(tn.Nodes) != len(tc.nodes) {
			t.Fatalf("n=%d, %d agencies, %d auditors: %d nodes, want %d", tc.validators, tc.agencies, tc.auditors, len(tn.Nodes), len(tc.nodes))
		}
		for i, n := range tn.Nodes {
			w := tc.nodes[i]
			if n.Name != w.name || n.Role != w.role || n.Validator != w.validator || n.Dir != filepath.Join(dir, w.name) {
				t.Errorf("node %d: %s %s validator=%v in %s, want %+v", i, n.Name, n.Role, n.Validator, n.Dir, w)
			}
		}
		g, err := chain.ReadGenesis(tn.Genesis)
		if err != nil {
			t.Fatal(err)
		}
		if g.Admins.Threshold != 3 || len(g.Admins.Keys) != 5 || len(tn.Admins) != 5 {
			t.Errorf("admins %d of %d, want 3 of 5", g.Admins.Threshold, len(g.Admins.Keys))
		}
	}
}

func TestTestnetRefusesBadOptions(t *testing.T) {
	full := t.TempDir()
	os.WriteFile(filepath.Join(full, "x"), nil, 0o600)
	for _, o := range []TestnetOptions{
		{Dir: t.TempDir() + "/a", Validators: 3},
		{Dir: t.TempDir() + "/b", Validators: 4, Followers: -1},
		{Dir: t.TempDir() + "/c", Validators: 4, BasePort: 80},
		{Dir: t.TempDir() + "/d", Validators: 4, Admins: 2, AdminThreshold: 3},
		{Dir: full, Validators: 4},
		{Dir: t.TempDir() + "/e", Validators: 4, ByRole: true, Agencies: 2, Followers: 1},
		{Dir: t.TempDir() + "/f", Validators: 4, ByRole: true, Agencies: -1},
		{Dir: t.TempDir() + "/g", Validators: 4, Agencies: 2},
		{Dir: t.TempDir() + "/h", Validators: 4, ByRole: true, Auditors: 200},
	} {
		if _, err := CreateTestnet(o); err == nil {
			t.Errorf("CreateTestnet(%+v) succeeded", o)
		}
	}
}
