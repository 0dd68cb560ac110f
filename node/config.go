package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	ma "github.com/multiformats/go-multiaddr"

	"auditnet/chain/pbft"
	"auditnet/p2p"
	"auditnet/storage"
)

// ConfigVersion is the version of config.json this program writes.
// Version 1 (the local-only repo) is upgraded when the repo is opened.
const ConfigVersion = 2

// Default ports: auditnet's own, so a node runs beside kubo (4001, 5001).
const (
	DefaultSwarmPort = 4040
	DefaultAPIPort   = 5040
	DefaultNetwork   = "auditnet"
)

// Config is a repo's config.json. Keys are read and set with `auditnet
// config KEY [VALUE]`, KEY being a dotted path such as Addresses.API.
// A running daemon applies changes to Members, Bootstrap and Fetch.Allow
// at once; other changes take effect when it starts. docs/config.md lists
// every key.
type Config struct {
	Version int `json:"Version"`
	// Role is what the node does: agency, datacenter, office or auditor.
	Role     Role           `json:"Role"`
	Identity IdentityConfig `json:"Identity"`
	// Network names the network; a node refuses fetch requests made for
	// another. The chain's id takes its place once there is a chain.
	Network   string          `json:"Network"`
	Addresses AddressesConfig `json:"Addresses"`
	// Bootstrap lists the DHT bootstrap peers, as multiaddrs ending in
	// /p2p/PEERID. There is no public default.
	Bootstrap []string `json:"Bootstrap"`
	// Members lists the peer IDs that may connect, in either direction.
	// The chain's member list replaces it once there is a chain.
	Members   []string        `json:"Members"`
	Fetch     FetchConfig     `json:"Fetch"`
	Reprovide ReprovideConfig `json:"Reprovide"`
	Limits    LimitsConfig    `json:"Limits"`
	// Chain holds the consensus core's local timers; the rules every node
	// shares are in genesis.json.
	Chain ChainConfig `json:"Chain"`
}

// DefaultMempoolTxs is the mempool a new repo gets: one full block at the
// default MaxBlockTxs. It is the admission control beyond saturation:
// clients are told "busy" at once instead of queueing behind the backlog,
// so commit latency stays about one block's processing time however hard
// the chain is pushed (CometBFT behaves the same way with a small mempool,
// ../shared/ANCHORS.md). Measured with 4 daemons at 6,500-8,000 txs/s
// offered (docs/benchmarks.md): a mempool of 10,000 gave p50 1.7 s, p99
// 2.2 s; 3,000 gave p50 0.5-0.7 s, p99 1.1-1.2 s; 2,000 gave p50 0.4 s,
// p99 0.7 s, and as many committed transactions.
const DefaultMempoolTxs = 2_000

// ChainConfig holds a node's consensus timers (durations such as "1s";
// empty means the default).
type ChainConfig struct {
	// ViewChangeTimeout is how long a proposal may stay uncommitted, or the
	// leader silent, before this validator asks for a new view.
	ViewChangeTimeout string `json:"ViewChangeTimeout"`
	// Heartbeat is how often a validator sends its signed height.
	Heartbeat string `json:"Heartbeat"`
	// RequestTimeout is how long a transaction may wait before its holder
	// suspects the leader of censoring it.
	RequestTimeout string `json:"RequestTimeout"`
	// IdleBlock paces the empty blocks an idle chain makes while a
	// deadline is pending.
	IdleBlock string `json:"IdleBlock"`
	// MempoolTxs bounds the transactions waiting for a block; beyond it
	// submissions get a "busy" error.
	MempoolTxs int `json:"MempoolTxs"`
}

// IdentityConfig shows the node's peer ID; the key is in identity.key.
type IdentityConfig struct {
	PeerID string `json:"PeerID"`
}

// AddressesConfig holds the node's addresses.
type AddressesConfig struct {
	// Swarm are the libp2p listen addresses.
	Swarm []string `json:"Swarm"`
	// Announce, if not empty, replace the listen addresses in what the node
	// tells its peers.
	Announce []string `json:"Announce"`
	// API is the HTTP API's HOST:PORT, on a loopback address.
	API string `json:"API"`
}

// FetchConfig governs the fetch service.
type FetchConfig struct {
	// Allow lists the peers whose fetch requests this node serves; "*"
	// allows every member. The chain decides instead once there is one.
	Allow []string `json:"Allow"`
	// MaxConcurrent bounds the fetches served at once, MaxPerPeer those
	// served to one peer.
	MaxConcurrent int `json:"MaxConcurrent"`
	MaxPerPeer    int `json:"MaxPerPeer"`
	// Freshness is how old (or how far ahead) a request's time may be,
	// e.g. "2m".
	Freshness string `json:"Freshness"`
}

// ReprovideConfig governs the DHT announcements of the node's datasets.
type ReprovideConfig struct {
	// Interval between announcements of every dataset root, e.g. "12h"
	// (provider records live 48 h). The schedule survives restarts.
	Interval string `json:"Interval"`
}

// LimitsConfig bounds the resources peers can take (0: the default).
type LimitsConfig struct {
	MaxConns          int `json:"MaxConns"`
	MaxConnsPerPeer   int `json:"MaxConnsPerPeer"`
	MaxStreams        int `json:"MaxStreams"`
	MaxStreamsPerPeer int `json:"MaxStreamsPerPeer"`
	MaxMemoryMiB      int `json:"MaxMemoryMiB"`
	ConnLow           int `json:"ConnLow"`
	ConnHigh          int `json:"ConnHigh"`
}

// InitOptions are the choices `auditnet init` offers.
type InitOptions struct {
	Role Role
	// Listen replaces the default swarm addresses.
	Listen []string
	// API replaces the default API address (HOST:PORT).
	API     string
	Network string
}

// defaultConfig is what init writes.
func defaultConfig(opts InitOptions, id peer.ID) Config {
	lim := p2p.DefaultLimits()
	c := Config{
		Version:  ConfigVersion,
		Role:     opts.Role,
		Identity: IdentityConfig{PeerID: id.String()},
		Network:  opts.Network,
		Addresses: AddressesConfig{
			Swarm:    opts.Listen,
			Announce: []string{},
			API:      opts.API,
		},
		Bootstrap: []string{},
		Members:   []string{},
		Fetch: FetchConfig{
			Allow: []string{"*"}, MaxConcurrent: p2p.DefaultMaxConcurrent, MaxPerPeer: p2p.DefaultMaxPerPeer,
			Freshness: p2p.DefaultFreshness.String(),
		},
		Reprovide: ReprovideConfig{Interval: "12h"},
		Chain: ChainConfig{
			ViewChangeTimeout: (pbft.DefaultViewChangeTimeoutMs * time.Millisecond).String(),
			Heartbeat:         (pbft.DefaultHeartbeatIntervalMs * time.Millisecond).String(),
			RequestTimeout:    (pbft.DefaultRequestTimeoutMs * time.Millisecond).String(),
			IdleBlock:         (pbft.DefaultIdleBlockIntervalMs * time.Millisecond).String(),
			MempoolTxs:        DefaultMempoolTxs,
		},
		Limits: LimitsConfig{
			MaxConns: lim.MaxConns, MaxConnsPerPeer: lim.MaxConnsPerPeer, MaxStreams: lim.MaxStreams,
			MaxStreamsPerPeer: lim.MaxStreamsPerPeer, MaxMemoryMiB: int(lim.MaxMemory >> 20),
			ConnLow: lim.ConnLow, ConnHigh: lim.ConnHigh,
		},
	}
	if c.Network == "" {
		c.Network = DefaultNetwork
	}
	if len(c.Addresses.Swarm) == 0 {
		c.Addresses.Swarm = []string{
			fmt.Sprintf("/ip4/0.0.0.0/tcp/%d", DefaultSwarmPort),
			fmt.Sprintf("/ip4/0.0.0.0/udp/%d/quic-v1", DefaultSwarmPort),
		}
	}
	if c.Addresses.API == "" {
		c.Addresses.API = fmt.Sprintf("127.0.0.1:%d", DefaultAPIPort)
	}
	return c
}

// NetConfig is a validated config, parsed into what the daemon uses.
type NetConfig struct {
	Listen, Announce []ma.Multiaddr
	API              string
	Bootstrap        []peer.AddrInfo
	Members          []peer.ID
	AllowAll         bool
	Allow            []peer.ID
	MaxConcurrent    int
	MaxPerPeer       int
	Freshness        time.Duration
	Reprovide        time.Duration
	Limits           p2p.Limits
	Chain            ChainTimers
}

// Parse validates the config and returns it parsed; each error names the
// key at fault.
func (c *Config) Parse() (NetConfig, error) {
	var n NetConfig
	var errs []error
	bad := func(key string, err error) { errs = append(errs, fmt.Errorf("config %s: %w", key, err)) }
	if _, err := ParseRole(string(c.Role)); err != nil {
		bad("Role", err)
	}
	if c.Network == "" {
		bad("Network", errors.New("empty"))
	}
	if _, err := peer.Decode(c.Identity.PeerID); err != nil {
		bad("Identity.PeerID", err)
	}
	for i, s := range c.Addresses.Swarm {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			bad(fmt.Sprintf("Addresses.Swarm[%d]", i), err)
			continue
		}
		n.Listen = append(n.Listen, a)
	}
	if len(c.Addresses.Swarm) == 0 {
		bad("Addresses.Swarm", errors.New("no listen address"))
	}
	for i, s := range c.Addresses.Announce {
		a, err := ma.NewMultiaddr(s)
		if err != nil {
			bad(fmt.Sprintf("Addresses.Announce[%d]", i), err)
			continue
		}
		n.Announce = append(n.Announce, a)
	}
	if err := checkLoopback(c.Addresses.API); err != nil {
		bad("Addresses.API", err)
	}
	n.API = c.Addresses.API
	for i, s := range c.Bootstrap {
		ai, err := peer.AddrInfoFromString(s)
		if err != nil {
			bad(fmt.Sprintf("Bootstrap[%d]", i), fmt.Errorf("%q: want a multiaddr ending in /p2p/PEERID: %w", s, err))
			continue
		}
		n.Bootstrap = append(n.Bootstrap, *ai)
	}
	for i, s := range c.Members {
		id, err := peer.Decode(s)
		if err != nil {
			bad(fmt.Sprintf("Members[%d]", i), err)
			continue
		}
		n.Members = append(n.Members, id)
	}
	for i, s := range c.Fetch.Allow {
		if s == "*" {
			n.AllowAll = true
			continue
		}
		id, err := peer.Decode(s)
		if err != nil {
			bad(fmt.Sprintf("Fetch.Allow[%d]", i), err)
			continue
		}
		n.Allow = append(n.Allow, id)
	}
	n.MaxConcurrent, n.MaxPerPeer = c.Fetch.MaxConcurrent, c.Fetch.MaxPerPeer
	if n.MaxConcurrent < 0 {
		bad("Fetch.MaxConcurrent", errors.New("negative"))
	}
	if n.MaxPerPeer < 0 {
		bad("Fetch.MaxPerPeer", errors.New("negative"))
	}
	var err error
	if n.Freshness, err = parseDuration(c.Fetch.Freshness, p2p.DefaultFreshness); err != nil {
		bad("Fetch.Freshness", err)
	}
	if n.Reprovide, err = parseDuration(c.Reprovide.Interval, 12*time.Hour); err != nil {
		bad("Reprovide.Interval", err)
	} else if n.Reprovide < time.Minute {
		bad("Reprovide.Interval", errors.New("shorter than a minute"))
	}
	for _, f := range []struct {
		key string
		s   string
		def int64
		dst *time.Duration
	}{
		{"ViewChangeTimeout", c.Chain.ViewChangeTimeout, pbft.DefaultViewChangeTimeoutMs, &n.Chain.ViewChangeTimeout},
		{"Heartbeat", c.Chain.Heartbeat, pbft.DefaultHeartbeatIntervalMs, &n.Chain.Heartbeat},
		{"RequestTimeout", c.Chain.RequestTimeout, pbft.DefaultRequestTimeoutMs, &n.Chain.RequestTimeout},
		{"IdleBlock", c.Chain.IdleBlock, pbft.DefaultIdleBlockIntervalMs, &n.Chain.IdleBlock},
	} {
		d, err := parseDuration(f.s, time.Duration(f.def)*time.Millisecond)
		if err == nil && d < time.Millisecond {
			err = errors.New("shorter than a millisecond")
		}
		if err != nil {
			bad("Chain."+f.key, err)
		}
		*f.dst = d
	}
	if n.Chain.MempoolTxs = c.Chain.MempoolTxs; n.Chain.MempoolTxs < 0 {
		bad("Chain.MempoolTxs", errors.New("negative"))
	}
	l := c.Limits
	for key, v := range map[string]int{"MaxConns": l.MaxConns, "MaxConnsPerPeer": l.MaxConnsPerPeer, "MaxStreams": l.MaxStreams,
		"MaxStreamsPerPeer": l.MaxStreamsPerPeer, "MaxMemoryMiB": l.MaxMemoryMiB, "ConnLow": l.ConnLow, "ConnHigh": l.ConnHigh} {
		if v < 0 {
			bad("Limits."+key, errors.New("negative"))
		}
	}
	if l.ConnHigh > 0 && l.ConnLow > l.ConnHigh {
		bad("Limits.ConnLow", errors.New("above ConnHigh"))
	}
	n.Limits = p2p.Limits{
		MaxConns: l.MaxConns, MaxConnsPerPeer: l.MaxConnsPerPeer, MaxStreams: l.MaxStreams,
		MaxStreamsPerPeer: l.MaxStreamsPerPeer, MaxMemory: int64(l.MaxMemoryMiB) << 20,
		ConnLow: l.ConnLow, ConnHigh: l.ConnHigh,
	}
	return n, errors.Join(errs...)
}

func parseDuration(s string, def time.Duration) (time.Duration, error) {
	if s == "" {
		return def, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d <= 0 {
		return 0, errors.New("not positive")
	}
	return d, nil
}

// checkLoopback accepts HOST:PORT on a loopback address only: the API
// controls the node and is never exposed to the network.
func checkLoopback(hostport string) error {
	host, port, err := net.SplitHostPort(hostport)
	if err != nil {
		return fmt.Errorf("%q: want HOST:PORT: %w", hostport, err)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: bad port", hostport)
	}
	ip := net.ParseIP(host)
	if host == "localhost" {
		return fmt.Errorf("%q: use 127.0.0.1 rather than a name", hostport)
	}
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the API listens on a loopback address only", hostport)
	}
	return nil
}

// readConfig reads config.json, upgrading a version 1 config in memory.
func readConfig(dir string) (Config, bool, error) {
	raw, err := os.ReadFile(filepath.Join(dir, configFile))
	if err != nil {
		return Config{}, false, err
	}
	var c Config
	if err := json.Unmarshal(raw, &c); err != nil {
		return Config{}, false, fmt.Errorf("read config %s: %w", filepath.Join(dir, configFile), err)
	}
	switch c.Version {
	case ConfigVersion:
		return c, false, nil
	case 1:
		return defaultConfig(InitOptions{Role: c.Role}, ""), true, nil
	}
	return Config{}, false, fmt.Errorf("repo %s has config version %d, this program reads %d", dir, c.Version, ConfigVersion)
}

// writeConfig replaces config.json atomically.
func writeConfig(dir string, c Config) error {
	raw, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	if err := storage.WriteFileAtomic(storage.OSFS{}, filepath.Join(dir, configFile), append(raw, '\n'), 0o600); err != nil {
		return fmt.Errorf("write config: %w", err)
	}
	return nil
}

// ReadConfig returns the config of the repo in dir.
func ReadConfig(dir string) (Config, error) {
	c, upgrade, err := readConfig(dir)
	if errors.Is(err, os.ErrNotExist) {
		return Config{}, fmt.Errorf("%s: %w", dir, ErrNotInitialised)
	}
	if err != nil {
		return Config{}, err
	}
	if upgrade {
		return Config{}, fmt.Errorf("repo %s has a version 1 config: run any command that writes (e.g. 'auditnet repo stat') with the daemon stopped to upgrade it", dir)
	}
	return c, nil
}

// GetConfigValue returns the JSON value at a dotted key ("" for the whole
// config).
func GetConfigValue(dir, key string) (json.RawMessage, error) {
	c, err := ReadConfig(dir)
	if err != nil {
		return nil, err
	}
	if key == "" {
		return json.MarshalIndent(c, "", "  ")
	}
	tree, err := toTree(c)
	if err != nil {
		return nil, err
	}
	v, err := lookupKey(tree, key)
	if err != nil {
		return nil, err
	}
	return json.MarshalIndent(v, "", "  ")
}

// SetConfigValue sets the value at a dotted key: raw is JSON when isJSON,
// else a string. The result must still be a valid config.
func SetConfigValue(dir, key, raw string, isJSON bool) error {
	c, err := ReadConfig(dir)
	if err != nil {
		return err
	}
	if key == "" || key == "Version" || strings.HasPrefix(key, "Identity") {
		return fmt.Errorf("config %s cannot be set", key)
	}
	var v any = raw
	if isJSON {
		if err := json.Unmarshal([]byte(raw), &v); err != nil {
			return fmt.Errorf("config %s: value is not JSON: %w", key, err)
		}
	}
	tree, err := toTree(c)
	if err != nil {
		return err
	}
	parts := strings.Split(key, ".")
	parent, err := lookupKey(tree, strings.Join(parts[:len(parts)-1], "."))
	if err != nil {
		return err
	}
	m, ok := parent.(map[string]any)
	if !ok {
		return fmt.Errorf("config %s: not an object", strings.Join(parts[:len(parts)-1], "."))
	}
	last := parts[len(parts)-1]
	if _, ok := m[last]; !ok {
		return fmt.Errorf("config %s: no such key", key)
	}
	m[last] = v
	b, err := json.Marshal(tree)
	if err != nil {
		return err
	}
	var next Config
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&next); err != nil {
		return fmt.Errorf("config %s: %w (a list or number needs --json)", key, err)
	}
	if _, err := next.Parse(); err != nil {
		return err
	}
	return writeConfig(dir, next)
}

func toTree(c Config) (map[string]any, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	var tree map[string]any
	return tree, json.Unmarshal(b, &tree)
}

func lookupKey(tree map[string]any, key string) (any, error) {
	var v any = tree
	if key == "" {
		return v, nil
	}
	for _, part := range strings.Split(key, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("config %s: no such key", key)
		}
		if v, ok = m[part]; !ok {
			return nil, fmt.Errorf("config %s: no such key", key)
		}
	}
	return v, nil
}
