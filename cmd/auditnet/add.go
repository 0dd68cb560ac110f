package main

import (
	"context"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/spf13/cobra"

	"auditnet/chain"
	"auditnet/node"
)

func (a *app) addCommand() *cobra.Command {
	var (
		quiet, onlyHash, recursive, storeSymlinks, skipSpecial bool
		pin                                                    bool
		symlinks, policy                                       string
	)
	cmd := &cobra.Command{
		Use:   "add [-Q] [-n] [-r] PATH...",
		Short: "Import files or directories as UnixFS DAGs (kubo-compatible CIDs) and pin them",
		Long: `Import files or directories into the repo as UnixFS DAGs with the CIDs of
kubo's 'ipfs add --cid-version=1' (256 KiB chunks, raw leaves, balanced
layout, HAMT-sharded directories past 256 KiB of entries). Hidden files are
always included. Symbolic links and special files are refused unless
--symlinks=store or --skip-special says otherwise. The CIDs are printed only
once the data, its index and its pin are on disk.

On an agency's node whose daemon runs the chain, each root is then anchored:
its CID, encoded size, name and --policy go on the chain, and add returns
once the anchor has committed, printing its height and transaction. Adding
the same bytes again anchors nothing new. Only open datasets are announced
in the DHT; restricted ones are found from the chain.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, paths []string) error {
			switch symlinks {
			case "refuse":
			case "store":
				storeSymlinks = true
			default:
				return fmt.Errorf("--symlinks=%s: want refuse or store", symlinks)
			}
			pol, err := node.ParsePolicy(policy)
			if err != nil {
				return err
			}
			opts := node.AddOptions{
				Policy:    pol,
				Recursive: recursive, StoreSymlinks: storeSymlinks, SkipSpecial: skipSpecial, NoPin: !pin,
				Skipped: func(path string) { fmt.Fprintf(a.stderr, "skipped special file %s\n", path) },
			}
			bar := newProgress(a.stderr, func() int64 { return totalSize(paths) }, "adding")
			if bar != nil {
				opts.Progress = bar.add
				defer bar.finish()
			}
			var res node.AddResult
			if onlyHash {
				res, err = node.Add(cmd.Context(), nil, paths, opts)
			} else {
				res, err = a.add(cmd.Context(), paths, opts, bar)
			}
			if err != nil {
				return err
			}
			bar.finish()
			if quiet {
				for _, r := range res.Roots {
					fmt.Fprintln(a.stdout, r.Cid)
				}
				return nil
			}
			for _, e := range res.Entries {
				fmt.Fprintf(a.stdout, "added %s %s\n", e.Cid, e.Path)
			}
			for _, r := range res.Roots {
				switch an := r.Anchor; {
				case an == nil:
				case an.Existing:
					fmt.Fprintf(a.stdout, "anchored %s already at height %d (tx %s, %s)\n", r.Cid, an.Height, an.Tx, an.Policy)
				default:
					fmt.Fprintf(a.stdout, "anchored %s at height %d (tx %s, %s)\n", r.Cid, an.Height, an.Tx, an.Policy)
				}
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.BoolVarP(&quiet, "quieter", "Q", false, "print only the root CID of each path")
	f.BoolVarP(&onlyHash, "only-hash", "n", false, "compute the CIDs and write nothing (no repo needed)")
	f.BoolVarP(&recursive, "recursive", "r", false, "add directories")
	f.StringVar(&symlinks, "symlinks", "refuse", "symbolic links: refuse, or store them as UnixFS symlinks")
	f.BoolVar(&skipSpecial, "skip-special", false, "skip devices, sockets and named pipes (each is reported) instead of failing")
	f.BoolVar(&pin, "pin", true, "pin the added DAGs")
	f.StringVar(&policy, "policy", string(chain.PolicyRestricted), "who may read an anchored dataset: restricted (grantees) or open (every auditor)")
	return cmd
}

// add imports through the daemon when one runs (it holds the repo, and
// announces what it adds), else into the repo directly.
func (a *app) add(ctx context.Context, paths []string, opts node.AddOptions, bar *progress) (node.AddResult, error) {
	c, err := a.daemon(ctx)
	if err != nil {
		return node.AddResult{}, err
	}
	if c == nil {
		repo, err := a.openRepo()
		if err != nil {
			return node.AddResult{}, err
		}
		defer repo.Close()
		return node.Add(ctx, repo, paths, opts)
	}
	req := node.AddRequest{Policy: string(opts.Policy), Recursive: opts.Recursive, NoPin: opts.NoPin, SkipSpecial: opts.SkipSpecial, StoreSymlinks: opts.StoreSymlinks}
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		if err != nil {
			return node.AddResult{}, err
		}
		req.Paths = append(req.Paths, abs)
	}
	var done int64
	return c.Add(ctx, req, func(total int64) {
		bar.add(int(total - done))
		done = total
	}, opts.Skipped)
}

// totalSize sums the sizes of the regular files under paths, for the
// progress bar; unreadable entries count as zero (the add reports them).
func totalSize(paths []string) int64 {
	var total int64
	for _, p := range paths {
		filepath.WalkDir(p, func(_ string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				if info, err := d.Info(); err == nil {
					total += info.Size()
				}
			}
			return nil
		})
	}
	return total
}
