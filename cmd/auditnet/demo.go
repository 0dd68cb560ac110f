package main

import (
	"os"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) demoCommand() *cobra.Command {
	var (
		dir            string
		basePort, size int
		keep           bool
	)
	cmd := &cobra.Command{
		Use:   "demo",
		Short: "Run the default testnet on this machine and walk through anchoring, access and receipts",
		Long: `Start the default testnet as daemons on 127.0.0.1, each with its own repo: the
audit office's validators (datacenter, office-1, office-2), an agency
validator (agency-1), a follower agency (agency-2) and an auditor
(auditor-1). Each agency adds a dataset, anchored on the chain; the owners
grant the auditor; the auditor fetches, every access decided by the chain
before a byte leaves the holder and recorded with its acknowledgement; a
revoked grant is refused on the chain; a receipt is exported and verified
offline; a non-member is refused. It prints the audit trail and the data
center's disk use beside the data the agencies hold, stops every node and
removes its files.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dir == "" {
				tmp, err := os.MkdirTemp("", "auditnet-demo-")
				if err != nil {
					return err
				}
				if !keep {
					defer os.RemoveAll(tmp)
				}
				dir = tmp + "/net"
			}
			return node.RunDemo(cmd.Context(), node.DemoOptions{Dir: dir, BasePort: basePort, SizeMiB: size, Out: a.stdout})
		},
	}
	f := cmd.Flags()
	f.StringVar(&dir, "dir", "", "directory for the demo's repos (default: a temporary one, removed afterwards)")
	f.IntVar(&basePort, "base-port", 4600, "first loopback port (swarm from it, API from it + 100)")
	f.IntVar(&size, "size-mib", 16, "size of each agency's restricted dataset")
	f.BoolVar(&keep, "keep", false, "keep the temporary directory")
	return cmd
}
