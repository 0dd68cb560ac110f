package main

import (
	"context"
	"fmt"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) pinCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "pin", Short: "Keep DAGs from garbage collection"}
	cmd.AddCommand(
		&cobra.Command{
			Use:   "add CID...",
			Short: "Pin DAGs: offline each must be complete in the repo; a daemon fetches what is missing",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				roots, err := parseCids(args)
				if err != nil {
					return err
				}
				if err := a.pinChange(cmd.Context(), roots, true); err != nil {
					return err
				}
				for _, c := range roots {
					fmt.Fprintf(a.stdout, "pinned %s recursively\n", c)
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "rm CID...",
			Short: "Unpin DAGs; 'repo gc' then reclaims their blocks",
			Args:  cobra.MinimumNArgs(1),
			RunE: func(cmd *cobra.Command, args []string) error {
				roots, err := parseCids(args)
				if err != nil {
					return err
				}
				if err := a.pinChange(cmd.Context(), roots, false); err != nil {
					return err
				}
				for _, c := range roots {
					fmt.Fprintf(a.stdout, "unpinned %s\n", c)
				}
				return nil
			},
		},
		&cobra.Command{
			Use:   "ls",
			Short: "List pinned roots",
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				pins, err := a.pins(cmd.Context())
				if err != nil {
					return err
				}
				for _, c := range pins {
					fmt.Fprintf(a.stdout, "%s recursive\n", c)
				}
				return nil
			},
		},
	)
	return cmd
}

func parseCids(args []string) ([]cid.Cid, error) {
	out := make([]cid.Cid, len(args))
	for i, s := range args {
		ref, err := node.ParseRef(s)
		if err != nil {
			return nil, err
		}
		if ref.Path != "" {
			return nil, fmt.Errorf("%q: give a CID, not a path", s)
		}
		out[i] = ref.Root
	}
	return out, nil
}

// pinChange pins or unpins, through the daemon when one runs.
func (a *app) pinChange(ctx context.Context, roots []cid.Cid, add bool) error {
	c, err := a.daemon(ctx)
	if err != nil {
		return err
	}
	if c != nil {
		if add {
			return c.PinAdd(ctx, roots)
		}
		return c.PinRm(ctx, roots)
	}
	repo, err := a.openRepo()
	if err != nil {
		return err
	}
	defer repo.Close()
	if add {
		return repo.PinAdd(ctx, roots)
	}
	return repo.PinRm(ctx, roots)
}

func (a *app) pins(ctx context.Context) ([]cid.Cid, error) {
	c, err := a.daemon(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return c.Pins(ctx)
	}
	repo, err := a.openRepoReadOnly()
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	return repo.Store.Pins(ctx)
}
