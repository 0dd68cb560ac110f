package main

import (
	"context"
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
				st, err := a.gc(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "removed %d blocks (%d bytes); pack files: %d punched, %d rewritten, %d deleted; freed %d bytes on disk\n",
					st.BlocksRemoved, st.BytesRemoved, st.PacksPunched, st.PacksRewritten, st.PacksRemoved, st.DiskFreed)
				return nil
			},
		},
		a.verifyCommand(),
	)
	return cmd
}

func (a *app) verifyCommand() *cobra.Command {
	var repair bool
	cmd := &cobra.Command{
		Use:   "verify [--repair]",
		Short: "Re-hash every block and walk every pinned DAG; list what is corrupt or missing",
		Long: `Re-hash every stored block and walk every pinned DAG, listing corrupt,
unreadable, missing and malformed blocks; exit 1 if there are any. With
--repair, also drop the index entries of corrupt and unreadable blocks, so
that adding (or fetching) their data again stores them afresh.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			open := a.openRepoReadOnly
			if repair {
				open = a.openRepo
			}
			repo, err := open()
			if err != nil {
				return err
			}
			defer repo.Close()
			report := func(p storage.Problem) { fmt.Fprintln(a.stdout, p) }
			var st storage.VerifyStats
			dropped := 0
			if repair {
				st, dropped, err = repo.Store.Repair(cmd.Context(), report)
			} else {
				st, err = repo.Store.Verify(cmd.Context(), report)
			}
			if err != nil {
				return err
			}
			if dropped > 0 {
				fmt.Fprintf(a.stdout, "dropped %d bad blocks from the index: add or fetch their data again to restore them\n", dropped)
			}
			if st.Problems > 0 {
				return fmt.Errorf("repo verify: %d problems in %d blocks (%d bytes) and %d pinned DAGs", st.Problems, st.Blocks, st.Bytes, st.Pins)
			}
			fmt.Fprintf(a.stdout, "verified %d blocks (%d bytes) and %d pinned DAGs: no problems\n", st.Blocks, st.Bytes, st.Pins)
			return nil
		},
	}
	cmd.Flags().BoolVar(&repair, "repair", false, "drop corrupt and unreadable blocks from the index so that they can be stored again")
	return cmd
}

// gc collects garbage, through the daemon when one runs.
func (a *app) gc(ctx context.Context) (storage.GCStats, error) {
	c, err := a.daemon(ctx)
	if err != nil {
		return storage.GCStats{}, err
	}
	if c != nil {
		return c.GC(ctx)
	}
	repo, err := a.openRepo()
	if err != nil {
		return storage.GCStats{}, err
	}
	defer repo.Close()
	return repo.Store.GC(ctx)
}
