package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) daemonCommand() *cobra.Command {
	var recoverWAL bool
	cmd := &cobra.Command{
		Use:   "daemon",
		Short: "Run the node: libp2p host, private DHT, fetch service and HTTP API",
		Long: `Run the node until SIGINT or SIGTERM: the libp2p host (members only), the
private DHT (server mode except for auditors), the fetch service, the
announcement of this node's datasets, the chain when the repo has a
genesis.json (consensus if this node is a validator, else following the
validators), and the HTTP API on the loopback address in the config. While it runs, add, cat, get and ls go through it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			logger := a.logger()
			if logger == nil {
				logger = infoLogger(a.stderr)
			}
			daemonGC()
			return node.RunDaemon(cmd.Context(), dir, node.DaemonOptions{
				Logger:     logger,
				RecoverWAL: recoverWAL,
				Ready: func(api string) {
					fmt.Fprintf(a.stdout, "API server listening on %s\nDaemon is ready\n", api)
				},
			})
		},
	}
	cmd.Flags().BoolVar(&recoverWAL, "recover-wal", false,
		"start a validator whose chain WAL is missing with an empty one (only if it has not voted since its last committed block)")
	return cmd
}

// daemonGCPercent is the garbage collector's target the daemon runs with
// unless GOGC is set. The chain's state is an in-memory tree of pointers
// that grows with the chain, and at Go's default of 100 marking it again
// and again became the largest cost that grows with the chain: with 4
// daemons held at 5,000 txs/s for 40 s, 200 kept 3,990 txs/s committed
// (445 µs of validator CPU per tx) where 100 fell to 3,030 (569 µs), for
// about half as much memory again (950 MB per daemon against 650 MB); 400
// gained little more for twice the memory (docs/benchmarks.md).
const daemonGCPercent = 200

// daemonGC sets the daemon's garbage-collector target, leaving one set
// through GOGC as it is.
func daemonGC() {
	if os.Getenv("GOGC") == "" {
		debug.SetGCPercent(daemonGCPercent)
	}
}

func (a *app) idCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "id",
		Short: "Print the node's peer ID and addresses as JSON",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.daemon(cmd.Context())
			if err != nil {
				return err
			}
			var info node.IDInfo
			if c != nil {
				if info, err = c.ID(cmd.Context()); err != nil {
					return err
				}
			} else {
				// Offline: the identity and the configured addresses.
				dir, err := a.dir()
				if err != nil {
					return err
				}
				cfg, err := node.ReadConfig(dir)
				if err != nil {
					return err
				}
				info = node.IDInfo{ID: cfg.Identity.PeerID, Role: cfg.Role, Addresses: []string{}}
				for _, addr := range append(cfg.Addresses.Announce, cfg.Addresses.Swarm...) {
					info.Addresses = append(info.Addresses, addr+"/p2p/"+cfg.Identity.PeerID)
				}
			}
			return printJSON(a, info)
		},
	}
}

func printJSON(a *app, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(a.stdout, string(b))
	return err
}

// errNeedsDaemon is returned by commands that only a running node can
// answer.
var errNeedsDaemon = errors.New("this command needs a running daemon (start one with 'auditnet daemon')")

func (a *app) needDaemon(cmd *cobra.Command) (*node.Client, error) {
	c, err := a.daemon(cmd.Context())
	if err != nil {
		return nil, err
	}
	if c == nil {
		return nil, errNeedsDaemon
	}
	return c, nil
}

func (a *app) swarmCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "swarm", Short: "The node's connections"}
	var asJSON bool
	peers := &cobra.Command{
		Use:   "peers",
		Short: "List the connected peers",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			ps, err := c.Peers(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, ps)
			}
			for _, p := range ps {
				fmt.Fprintf(a.stdout, "%s/p2p/%s\n", p.Addr, p.Peer)
			}
			return nil
		},
	}
	peers.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	connect := &cobra.Command{
		Use:   "connect MULTIADDR/p2p/PEERID",
		Short: "Connect to a peer (it must be a member)",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			if err := c.Connect(cmd.Context(), args[0]); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "connected %s\n", args[0])
			return nil
		},
	}
	cmd.AddCommand(peers, connect)
	return cmd
}

func (a *app) providersCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "providers CID",
		Short: "List the peers the DHT names as holders of a dataset root",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := node.ParseRef(args[0])
			if err != nil {
				return err
			}
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			ps, err := c.Providers(cmd.Context(), ref.Root.String())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, ps)
			}
			for _, p := range ps {
				fmt.Fprintln(a.stdout, p.ID)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON, with each provider's addresses")
	return cmd
}

func (a *app) configCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "config [KEY [VALUE]]",
		Short: "Read or change the repo's config (KEY is dotted: Addresses.API)",
		Long: `With no argument, print the whole config; with KEY, its value; with KEY and
VALUE, set it (VALUE is a string unless --json is given, as for lists and
numbers). The config is checked before it is written. A running daemon
applies Members, Bootstrap and Fetch.Allow within two seconds (removed
members are disconnected) and the rest at its next start.`,
		Args: cobra.MaximumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if len(args) == 2 {
				return node.SetConfigValue(dir, args[0], args[1], asJSON)
			}
			key := ""
			if len(args) == 1 {
				key = args[0]
			}
			v, err := node.GetConfigValue(dir, key)
			if err != nil {
				return err
			}
			var s string
			if json.Unmarshal(v, &s) == nil {
				fmt.Fprintln(a.stdout, s)
				return nil
			}
			_, err = fmt.Fprintln(a.stdout, string(v))
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "parse VALUE as JSON")
	return cmd
}

// infoLogger logs the daemon's lifecycle and warnings to w.
func infoLogger(w io.Writer) *slog.Logger {
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}
