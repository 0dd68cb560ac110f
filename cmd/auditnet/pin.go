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
				if err := a.pinAdd(cmd.Context(), roots); err != nil {
					return err
				}
				for _, c := range roots {
					fmt.Fprintf(a.stdout, "pinned %s recursively\n", c)
				}
				return nil
			},
		},
		a.pinRmCommand(),
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
func (a *app) pinRmCommand() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm CID...",
		Short: "Unpin DAGs; 'repo gc' then reclaims their blocks",
		Long: `Unpin DAGs; 'repo gc' then reclaims their blocks. A dataset this node
anchored on the chain is refused: the chain names this node its holder, and
auditors fetch it from here. --force unpins it anyway, with a warning.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			roots, err := parseCids(args)
			if err != nil {
				return err
			}
			warnings, err := a.pinRm(cmd.Context(), roots, force)
			if err != nil {
				return err
			}
			for _, w := range warnings {
				fmt.Fprintln(a.stderr, w)
			}
			for _, c := range roots {
				fmt.Fprintf(a.stdout, "unpinned %s\n", c)
			}
			return nil
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "unpin datasets this node anchored on the chain too")
	return cmd
}

func (a *app) pinRm(ctx context.Context, roots []cid.Cid, force bool) ([]string, error) {
	c, err := a.daemon(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return c.PinRm(ctx, roots, force)
	}
	repo, err := a.openRepo()
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	return node.PinRmOffline(ctx, repo, roots, force)
}

func (a *app) pinAdd(ctx context.Context, roots []cid.Cid) error {
	c, err := a.daemon(ctx)
	if err != nil {
		return err
	}
	if c != nil {
		return c.PinAdd(ctx, roots)
	}
	repo, err := a.openRepo()
	if err != nil {
		return err
	}
	defer repo.Close()
	return repo.PinAdd(ctx, roots)
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
