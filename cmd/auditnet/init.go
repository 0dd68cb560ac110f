package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) initCommand() *cobra.Command {
	var role string
	cmd := &cobra.Command{
		Use:   "init",
		Short: "Create a repo: config and block store",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, err := node.ParseRole(role)
			if err != nil {
				return err
			}
			dir, err := a.dir()
			if err != nil {
				return err
			}
			if err := node.InitRepo(dir, r); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "initialised %s repo at %s\n", r, dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&role, "role", string(node.RoleAgency), "node role: agency, datacenter, office or auditor")
	return cmd
}
