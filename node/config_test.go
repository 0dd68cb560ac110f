package node

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func initTestRepo(t *testing.T, role Role) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "repo")
	err := InitRepo(dir, InitOptions{Role: role, Listen: []string{"/ip4/127.0.0.1/tcp/0"}, API: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestInitWritesKeyTokenAndValidConfig checks what init leaves: a private
// Ed25519 key whose peer ID the config shows, a private API token, and a
// config that validates with the requested addresses.
func TestInitWritesKeyTokenAndValidConfig(t *testing.T) {
	dir := initTestRepo(t, RoleAgency)
	for _, name := range []string{identityFile, tokenFile, configFile} {
		fi, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", name, fi.Mode().Perm())
		}
	}
	c, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Parse()
	if err != nil {
		t.Fatal(err)
	}
	if len(n.Listen) != 1 || n.API != "127.0.0.1:0" || !n.AllowAll || c.Identity.PeerID == "" {
		t.Fatalf("parsed config %+v", n)
	}
}

// TestConfigGetSetValidates covers `auditnet config`: dotted keys, JSON
// values, and refusals that leave the file as it was.
func TestConfigGetSetValidates(t *testing.T) {
	dir := initTestRepo(t, RoleAgency)
	if err := SetConfigValue(dir, "Addresses.API", "127.0.0.1:6001", false); err != nil {
		t.Fatal(err)
	}
	v, err := GetConfigValue(dir, "Addresses.API")
	if err != nil || string(v) != `"127.0.0.1:6001"` {
		t.Fatalf("get: %s %v", v, err)
	}
	if err := SetConfigValue(dir, "Reprovide.Interval", "1h", false); err != nil {
		t.Fatal(err)
	}
	before, _ := os.ReadFile(filepath.Join(dir, configFile))
	for _, tc := range []struct {
		key, value string
		json       bool
		want       string
	}{
		{"Addresses.API", "0.0.0.0:5001", false, "loopback"},
		{"Addresses.API", "localhost:5001", false, "127.0.0.1"},
		{"Members", `["not-a-peer"]`, true, "Members[0]"},
		{"Members", "12D3KooW", false, "--json"},
		{"Bootstrap", `["/ip4/127.0.0.1/tcp/1"]`, true, "/p2p/PEERID"},
		{"Addresses.Swarm", `["/ip4/nope"]`, true, "Addresses.Swarm[0]"},
		{"Reprovide.Interval", "10s", false, "shorter than a minute"},
		{"Fetch.Freshness", "soon", false, "Fetch.Freshness"},
		{"Limits.ConnLow", "900", true, "above ConnHigh"},
		{"Nope", "1", true, "no such key"},
		{"Identity.PeerID", "x", false, "cannot be set"},
		{"Members", "{", true, "not JSON"},
	} {
		err := SetConfigValue(dir, tc.key, tc.value, tc.json)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("set %s=%s: %v, want an error saying %q", tc.key, tc.value, err, tc.want)
		}
	}
	after, _ := os.ReadFile(filepath.Join(dir, configFile))
	if string(before) != string(after) {
		t.Fatal("a refused change altered the config")
	}
	whole, err := GetConfigValue(dir, "")
	if err != nil {
		t.Fatal(err)
	}
	var c Config
	if err := json.Unmarshal(whole, &c); err != nil || c.Reprovide.Interval != "1h" {
		t.Fatalf("whole config: %v %+v", err, c.Reprovide)
	}
}

// TestVersion1ConfigIsUpgraded opens a repo written before the network
// existed: a writable open gives it a key, a token and network defaults,
// and keeps its role.
func TestVersion1ConfigIsUpgraded(t *testing.T) {
	dir := initTestRepo(t, RoleAuditor)
	for _, name := range []string{identityFile, tokenFile} {
		os.Remove(filepath.Join(dir, name))
	}
	os.WriteFile(filepath.Join(dir, configFile), []byte(`{"version": 1, "role": "auditor"}`), 0o600)
	if _, err := ReadConfig(dir); err == nil {
		t.Fatal("ReadConfig accepted a version 1 config")
	}
	r, err := OpenRepo(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	r.Close()
	c, err := ReadConfig(dir)
	if err != nil {
		t.Fatal(err)
	}
	if c.Role != RoleAuditor || c.Version != ConfigVersion || c.Identity.PeerID == "" {
		t.Fatalf("upgraded config %+v", c)
	}
	if _, err := os.Stat(filepath.Join(dir, identityFile)); err != nil {
		t.Fatal(err)
	}
}
