package main

import (
	"bufio"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
)

func (a *app) dagCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "dag", Short: "Export and import DAGs as CAR v1 archives"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "export CID",
			Short: "Write a DAG as a CAR v1 to stdout (as 'ipfs dag export')",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				roots, err := parseCids(args)
				if err != nil {
					return err
				}
				repo, err := a.openRepoReadOnly()
				if err != nil {
					return err
				}
				defer repo.Close()
				return repo.DagExport(cmd.Context(), roots[0], a.stdout)
			},
		},
		&cobra.Command{
			Use:   "import FILE|-",
			Short: "Import a CAR (every block verified) and pin its roots (as 'ipfs dag import')",
			Args:  cobra.ExactArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				var in io.Reader = a.stdin
				if args[0] != "-" {
					f, err := os.Open(args[0])
					if err != nil {
						return err
					}
					defer f.Close()
					in = f
				}
				repo, err := a.openRepo()
				if err != nil {
					return err
				}
				defer repo.Close()
				res, err := repo.DagImport(cmd.Context(), bufio.NewReader(in))
				if err != nil {
					return fmt.Errorf("dag import: %w", err)
				}
				for _, r := range res.Roots {
					fmt.Fprintf(a.stdout, "Pinned root\t%s\tsuccess\n", r)
				}
				fmt.Fprintf(a.stdout, "Imported %d blocks (%d bytes)\n", res.Blocks, res.Bytes)
				return nil
			},
		},
	)
	return cmd
}
