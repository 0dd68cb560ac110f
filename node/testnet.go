package node

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"auditnet/chain"
	"auditnet/storage"
)

// TestnetOptions describe a network on this machine.
type TestnetOptions struct {
	Dir        string
	Validators int
	// Followers is the number of non-validator nodes, agencies and
	// auditors alternately; or, with ByRole, Agencies and Auditors say
	// how many of each role the network has.
	Followers int
	// ByRole gives the network Agencies agency nodes, of which up to f
	// are validators and the rest followers, and Auditors auditor nodes,
	// all followers. Followers must then be 0.
	ByRole             bool
	Agencies, Auditors int
	// BasePort is the first swarm port: node i listens on BasePort+i
	// (TCP and QUIC) and serves its API on BasePort+100+i.
	BasePort int
	// BenchSenders is how many agency keys and how many auditor keys the
	// bench gets, as members of the network that are not nodes.
	BenchSenders int
	// Admins and AdminThreshold are the k-of-m admin keys.
	Admins, AdminThreshold int
}

// Testnet defaults.
const (
	DefaultTestnetBasePort = 4100
	DefaultBenchSenders    = 16
	maxTestnetNodes        = 100
)

// TestnetNode is one node of a testnet, as testnet.json lists it.
type TestnetNode struct {
	Name      string `json:"Name"`
	Dir       string `json:"Dir"`
	Role      Role   `json:"Role"`
	PeerID    string `json:"PeerID"`
	Validator bool   `json:"Validator"`
	Swarm     string `json:"Swarm"`
	API       string `json:"API"`
}

// BenchKey is a signing key the bench sends transactions with.
type BenchKey struct {
	Role   string `json:"Role"`
	PeerID string `json:"PeerID"`
	// Key is the Ed25519 private key (seed and public key), hex.
	Key string `json:"Key"`
}

// Testnet is what CreateTestnet wrote: testnet.json in its directory.
type Testnet struct {
	ChainID string        `json:"ChainID"`
	Genesis string        `json:"Genesis"`
	Nodes   []TestnetNode `json:"Nodes"`
	Admins  []string      `json:"Admins"`
	// Bench is the file of the bench's signing keys.
	Bench string `json:"Bench"`
}

// Files of a testnet directory.
const (
	TestnetFile   = "testnet.json"
	benchKeysFile = "bench-keys.json"
	adminsDir     = "admins"
)

// CreateTestnet writes a genesis and one initialised repo per node for a
// network on 127.0.0.1. The audit office (the data center and office-N
// nodes) holds n − f of the n validators and agencies the other f, as
// DESIGN's trust model asks; followers alternate between agencies and
// auditors. Admin keys live in their own files outside every repo, and the
// bench's senders are members of the network that run no node.
func CreateTestnet(o TestnetOptions) (*Testnet, error) {
	if o.Validators < 4 || o.Validators > chain.MaxValidators {
		return nil, fmt.Errorf("testnet: --validators %d: want 4 to %d", o.Validators, chain.MaxValidators)
	}
	switch {
	case o.Followers < 0 || o.Agencies < 0 || o.Auditors < 0:
		return nil, errors.New("testnet: a negative number of nodes")
	case o.ByRole && o.Followers != 0:
		return nil, errors.New("testnet: give --agencies and --auditors, or --followers, not both")
	case !o.ByRole && (o.Agencies != 0 || o.Auditors != 0):
		return nil, errors.New("testnet: agencies and auditors given without ByRole")
	}
	if nodes := o.Validators + o.Followers + o.Auditors + max(0, o.Agencies-chain.Faults(o.Validators)); nodes > maxTestnetNodes {
		return nil, fmt.Errorf("testnet: %d nodes, at most %d", nodes, maxTestnetNodes)
	}
	if o.BasePort == 0 {
		o.BasePort = DefaultTestnetBasePort
	}
	if o.BasePort < 1024 || o.BasePort+100+maxTestnetNodes > 65535 {
		return nil, fmt.Errorf("testnet: --base-port %d out of range", o.BasePort)
	}
	if o.BenchSenders == 0 {
		o.BenchSenders = DefaultBenchSenders
	}
	if o.Admins == 0 {
		o.Admins, o.AdminThreshold = 3, 2
	}
	if o.AdminThreshold < 1 || o.AdminThreshold > o.Admins {
		return nil, fmt.Errorf("testnet: admin threshold %d of %d", o.AdminThreshold, o.Admins)
	}
	if entries, err := os.ReadDir(o.Dir); err == nil && len(entries) > 0 {
		return nil, fmt.Errorf("testnet: %s is not empty", o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	nodes := testnetLayout(o)
	tn := &Testnet{Genesis: filepath.Join(o.Dir, genesisFile), Bench: filepath.Join(o.Dir, benchKeysFile)}
	tag := make([]byte, 4)
	rand.Read(tag)
	g := &chain.Genesis{
		ChainID: "auditnet-testnet-" + hex.EncodeToString(tag),
		Time:    time.Now().UnixMilli(),
		Params:  testnetParams(),
	}
	tn.ChainID = g.ChainID
	for i := range nodes {
		n := &nodes[i]
		n.Dir = filepath.Join(o.Dir, n.Name)
		port := o.BasePort + i
		n.Swarm = fmt.Sprintf("/ip4/127.0.0.1/tcp/%d", port)
		n.API = fmt.Sprintf("127.0.0.1:%d", o.BasePort+100+i)
		err := InitRepo(n.Dir, InitOptions{
			Role: n.Role, API: n.API, Network: g.ChainID,
			Listen: []string{n.Swarm, fmt.Sprintf("/ip4/127.0.0.1/udp/%d/quic-v1", port)},
		})
		if err != nil {
			return nil, fmt.Errorf("testnet: init %s: %w", n.Name, err)
		}
		cfg, err := ReadConfig(n.Dir)
		if err != nil {
			return nil, err
		}
		n.PeerID = cfg.Identity.PeerID
		g.Members = append(g.Members, chain.GenesisMember{PeerID: n.PeerID, Role: string(n.Role), Name: n.Name})
		if n.Validator {
			g.Validators = append(g.Validators, chain.Validator{PeerID: n.PeerID, Addrs: []string{n.Swarm + "/p2p/" + n.PeerID}})
		}
	}
	var bench []BenchKey
	for _, role := range []Role{RoleAgency, RoleAuditor} {
		for k := 1; k <= o.BenchSenders; k++ {
			key, id, err := newSigningKey()
			if err != nil {
				return nil, err
			}
			bench = append(bench, BenchKey{Role: string(role), PeerID: id, Key: hex.EncodeToString(key)})
			g.Members = append(g.Members, chain.GenesisMember{PeerID: id, Role: string(role), Name: fmt.Sprintf("bench-%s-%d", role, k)})
		}
	}
	if err := os.MkdirAll(filepath.Join(o.Dir, adminsDir), 0o700); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	for k := 1; k <= o.Admins; k++ {
		key, id, err := newSigningKey()
		if err != nil {
			return nil, err
		}
		path := filepath.Join(o.Dir, adminsDir, fmt.Sprintf("admin-%d.key", k))
		if err := storage.WriteFileAtomic(storage.OSFS{}, path, []byte(hex.EncodeToString(key)+"\n"), 0o600); err != nil {
			return nil, fmt.Errorf("testnet: write %s: %w", path, err)
		}
		g.Admins.Keys = append(g.Admins.Keys, id)
		tn.Admins = append(tn.Admins, path)
	}
	g.Admins.Threshold = o.AdminThreshold
	if err := g.Validate(); err != nil {
		return nil, fmt.Errorf("testnet: %w", err)
	}
	gjson, err := json.MarshalIndent(g, "", "  ")
	if err != nil {
		return nil, err
	}
	gjson = append(gjson, '\n')
	if err := writeJSONFile(tn.Genesis, gjson); err != nil {
		return nil, err
	}
	for i := range nodes {
		n := &nodes[i]
		if err := writeJSONFile(filepath.Join(n.Dir, genesisFile), gjson); err != nil {
			return nil, err
		}
		if err := setBootstrap(n.Dir, nodes, i); err != nil {
			return nil, err
		}
	}
	tn.Nodes = nodes
	bjson, err := json.MarshalIndent(bench, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeJSONFile(tn.Bench, append(bjson, '\n')); err != nil {
		return nil, err
	}
	tjson, err := json.MarshalIndent(tn, "", "  ")
	if err != nil {
		return nil, err
	}
	if err := writeJSONFile(filepath.Join(o.Dir, TestnetFile), append(tjson, '\n')); err != nil {
		return nil, err
	}
	return tn, nil
}

// testnetLayout names the nodes: the audit office's validators (the data
// center, then office-1…), at least n − f of them; agency validators, at
// most f (with ByRole, no more than there are agencies); then followers:
// with ByRole the other agencies and then the auditors, else Followers
// nodes alternating agency and auditor.
func testnetLayout(o TestnetOptions) []TestnetNode {
	agencyValidators := chain.Faults(o.Validators)
	if o.ByRole {
		agencyValidators = min(agencyValidators, o.Agencies)
	}
	var nodes []TestnetNode
	nodes = append(nodes, TestnetNode{Name: "datacenter", Role: RoleDatacenter, Validator: true})
	for k := 1; k < o.Validators-agencyValidators; k++ {
		nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("office-%d", k), Role: RoleOffice, Validator: true})
	}
	agency, auditor := 0, 0
	for range agencyValidators {
		agency++
		nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("agency-%d", agency), Role: RoleAgency, Validator: true})
	}
	if o.ByRole {
		for agency < o.Agencies {
			agency++
			nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("agency-%d", agency), Role: RoleAgency})
		}
		for auditor < o.Auditors {
			auditor++
			nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("auditor-%d", auditor), Role: RoleAuditor})
		}
		return nodes
	}
	for k := range o.Followers {
		if k%2 == 0 {
			agency++
			nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("agency-%d", agency), Role: RoleAgency})
		} else {
			auditor++
			nodes = append(nodes, TestnetNode{Name: fmt.Sprintf("auditor-%d", auditor), Role: RoleAuditor})
		}
	}
	return nodes
}

// testnetParams are the default parameters with caps a bench can reach:
// thousands of transactions per second from a few senders.
func testnetParams() chain.Params {
	p := chain.DefaultParams()
	p.MaxPendingPerSender = 50_000
	p.MaxAccessPerWindow = 1_000_000
	return p
}

func newSigningKey() (ed25519.PrivateKey, string, error) {
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", err
	}
	return key, chain.PeerIDString(chain.PeerIDFromPublicKey(pub)), nil
}

func writeJSONFile(path string, b []byte) error {
	if err := storage.WriteFileAtomic(storage.OSFS{}, path, b, 0o600); err != nil {
		return fmt.Errorf("testnet: write %s: %w", path, err)
	}
	return nil
}

// setBootstrap points a node's DHT at the validators (other than itself).
func setBootstrap(dir string, nodes []TestnetNode, self int) error {
	cfg, err := ReadConfig(dir)
	if err != nil {
		return err
	}
	cfg.Bootstrap = nil
	for i, n := range nodes {
		if n.Validator && i != self {
			cfg.Bootstrap = append(cfg.Bootstrap, n.Swarm+"/p2p/"+n.PeerID)
		}
	}
	return writeConfig(dir, cfg)
}

// ReadTestnet reads testnet.json from a testnet directory.
func ReadTestnet(dir string) (*Testnet, error) {
	b, err := os.ReadFile(filepath.Join(dir, TestnetFile))
	if err != nil {
		return nil, fmt.Errorf("read testnet: %w", err)
	}
	var tn Testnet
	if err := json.Unmarshal(b, &tn); err != nil {
		return nil, fmt.Errorf("read testnet %s: %w", dir, err)
	}
	if len(tn.Nodes) == 0 {
		return nil, errors.New("read testnet: no nodes")
	}
	return &tn, nil
}

// ReadBenchKeys reads the bench's signing keys.
func ReadBenchKeys(path string) ([]BenchKey, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read bench keys: %w", err)
	}
	var keys []BenchKey
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("read bench keys %s: %w", path, err)
	}
	return keys, nil
}
