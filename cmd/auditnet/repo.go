package main

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"auditnet/storage"
)

func (a *app) repoCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "repo", Short: "Maintain the block store"}
	var asJSON bool
	stat := &cobra.Command{
		Use:   "stat",
		Short: "Block count, bytes, disk use and pinned roots",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			repo, err := a.openRepoReadOnly()
			if err != nil {
				return err
			}
			defer repo.Close()
			st, err := repo.Store.Stat(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				pins := make([]string, len(st.Pins))
				for i, c := range st.Pins {
					pins[i] = c.String()
				}
				return json.NewEncoder(a.stdout).Encode(map[string]any{
					"blocks": st.Blocks, "block_bytes": st.BlockBytes, "disk_bytes": st.DiskBytes,
					"packs": st.Packs, "pinned_roots": pins, "repo": repo.Dir,
				})
			}
			fmt.Fprintf(a.stdout, "Repo:         %s\n", repo.Dir)
			fmt.Fprintf(a.stdout, "Blocks:       %d\n", st.Blocks)
			fmt.Fprintf(a.stdout, "BlockBytes:   %d\n", st.BlockBytes)
			fmt.Fprintf(a.stdout, "DiskBytes:    %d\n", st.DiskBytes)
			fmt.Fprintf(a.stdout, "PackFiles:    %d\n", st.Packs)
			fmt.Fprintf(a.stdout, "PinnedRoots:  %d\n", len(st.Pins))
			for _, c := range st.Pins {
				fmt.Fprintf(a.stdout, "  %s\n", c)
			}
			return nil
		},
	}
	stat.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	cmd.AddCommand(stat,
		&cobra.Command{
			Use:   "gc",
			Short: "Remove unpinned blocks and reclaim their disk space",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				repo, err := a.openRepo()
				if err != nil {
					return err
				}
				defer repo.Close()
				st, err := repo.Store.GC(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed %d blocks (%d bytes); pack files: %d punched, %d rewritten, %d deleted; freed %d bytes on disk\n",
					st.BlocksRemoved, st.BytesRemoved, st.PacksPunched, st.PacksRewritten, st.PacksRemoved, st.DiskFreed)
				return nil
			},
		},
		&cobra.Command{
			Use:   "verify",
			Short: "Re-hash every block and walk every pinned DAG; list what is corrupt or missing",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				repo, err := a.openRepoReadOnly()
				if err != nil {
					return err
				}
				defer repo.Close()
				st, err := repo.Store.Verify(cmd.Context(), func(p storage.Problem) {
					fmt.Fprintln(a.stdout, p)
				})
				if err != nil {
					return err
				}
				if st.Problems > 0 {
					return fmt.Errorf("repo verify: %d problems in %d blocks (%d bytes) and %d pinned DAGs", st.Problems, st.Blocks, st.Bytes, st.Pins)
				}
				fmt.Fprintf(a.stdout, "verified %d blocks (%d bytes) and %d pinned DAGs: no problems\n", st.Blocks, st.Bytes, st.Pins)
				return nil
			},
		},
	)
	return cmd
}
