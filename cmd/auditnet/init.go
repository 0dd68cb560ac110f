package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) initCommand() *cobra.Command {
	var (
		role, api, network string
		listen             []string
	)
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repo: node key, config and block store",
		Long: `Create a repo: an Ed25519 node key (identity.key, mode 0600; its peer ID is
the node's identity), an API token, the block store and config.json.
--listen and --api set the node's addresses, so that several nodes can run
on one machine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := node.ParseRole(role)
			if err != nil {
				return err
			}
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if err := node.InitRepo(dir, node.InitOptions{Role: r, Listen: listen, API: api, Network: network}); err != nil {
				return err
			}
			cfg, err := node.ReadConfig(dir)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "initialised %s repo at %s\npeer identity: %s\n", r, dir, cfg.Identity.PeerID)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&role, "role", string(node.RoleAgency), "node role: agency, datacenter, office or auditor")
	f.StringArrayVar(&listen, "listen", nil, "libp2p listen multiaddr (repeatable; default TCP and QUIC on port 4040, all interfaces)")
	f.StringVar(&api, "api", "", "HTTP API address HOST:PORT on loopback (default 127.0.0.1:5040)")
	f.StringVar(&network, "network", node.DefaultNetwork, "network name; nodes refuse fetch requests made for another network")
	return cmd
}
