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
		Short: "Run a small network on this machine and walk through a verified fetch",
		Long: `Start three agencies and an auditor as daemons on 127.0.0.1 (each with its
own repo, all members of one network), add a dataset on two agencies, and
have the auditor find both in the private DHT and fetch from both at once,
verifying every block; then show a non-member refused. The chain (anchors,
grants, access events) joins the demo in a later issue.`,
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
	f.IntVar(&size, "size-mib", 64, "size of the dataset's large file")
	f.BoolVar(&keep, "keep", false, "keep the temporary directory")
	return cmd
}
