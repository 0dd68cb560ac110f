package main

import (
	"context"
	"fmt"
	"path/filepath"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) catCommand() *cobra.Command {
	var o node.AccessOptions
	cmd := &cobra.Command{
		Use:   "cat CID[/PATH]",
		Short: "Write a file's content to stdout, re-hashing every block",
		Long: `Write a file's content to stdout. Every block is checked against its CID.
With a daemon running, a file the node does not hold is fetched from the
providers the DHT names, verified as it streams, and not stored. On a chain,
the fetch is an access: the auditor's request (with --purpose and --case) goes
on the chain first, which authorises or denies it, and only the holder the
chain names serves it; the access and what was served are recorded.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := node.ParseRef(args[0])
			if err != nil {
				return err
			}
			c, err := a.daemon(cmd.Context())
			if err != nil {
				return err
			}
			if c != nil {
				return c.Cat(cmd.Context(), ref.String(), a.stdout, o)
			}
			repo, err := a.openRepoReadOnly()
			if err != nil {
				return err
			}
			defer repo.Close()
			return repo.Cat(cmd.Context(), ref, a.stdout)
		},
	}
	accessFlags(cmd, &o)
	return cmd
}

// accessFlags are the flags that say why an auditor reads a dataset.
func accessFlags(cmd *cobra.Command, o *node.AccessOptions) {
	cmd.Flags().StringVar(&o.Purpose, "purpose", "audit", "why the dataset is read (recorded on the chain)")
	cmd.Flags().StringVar(&o.Case, "case", "", "the audit case this read belongs to (recorded on the chain)")
	cmd.Flags().StringVar(&o.Request, "request", "", "fetch under this access request of yours, already authorised (to finish a fetch that failed), instead of a new one")
}

func (a *app) getCommand() *cobra.Command {
	var output string
	var maxEntries int
	var o node.AccessOptions
	cmd := &cobra.Command{
		Use:   "get CID[/PATH] [-o PATH] [--purpose P] [--case C]",
		Short: "Write a file or directory to disk, re-hashing every block",
		Long: `Write a file, directory or symlink to disk. Every block is checked against
its CID. With a daemon running, a dataset the node does not hold is first
fetched from the providers the DHT names (in parallel when there are
several) into the repo, where it is kept but never served or announced. On a
chain, the fetch is an access, decided by the chain first, as for cat.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := node.ParseRef(args[0])
			if err != nil {
				return err
			}
			if output == "" {
				output = ref.Root.String()
				if ref.Path != "" {
					output = filepath.Base(ref.Path)
				}
			}
			c, err := a.daemon(cmd.Context())
			if err != nil {
				return err
			}
			if c != nil {
				abs, err := filepath.Abs(output)
				if err != nil {
					return err
				}
				res, err := c.Get(cmd.Context(), node.GetRequest{Ref: ref.String(), Output: abs, MaxEntries: maxEntries, Purpose: o.Purpose, Case: o.Case, Request: o.Request}, nil)
				if err != nil {
					return err
				}
				if f := res.Fetched; f.Bytes > 0 {
					providers := "1 provider"
					if n := len(f.FromProvider); n != 1 {
						providers = fmt.Sprintf("%d providers", n)
					}
					fmt.Fprintf(a.stderr, "fetched %d bytes in %d blocks from %s, every block verified\n", f.Bytes, f.Blocks, providers)
				}
				if f := res.Fetched; f.Request != "" {
					fmt.Fprintf(a.stderr, "access recorded on the chain: request %s\n", f.Request)
				}
				fmt.Fprintf(a.stderr, "saved %s to %s\n", ref, output)
				return nil
			}
			repo, err := a.openRepoReadOnly()
			if err != nil {
				return err
			}
			defer repo.Close()
			// The bar's total is the size Get measures before writing.
			var bar *progress
			defer func() { bar.finish() }()
			err = repo.Get(cmd.Context(), ref, output, node.GetOptions{
				MaxEntries: maxEntries,
				Measured: func(size uint64) {
					bar = newProgress(a.stderr, func() int64 { return int64(size) }, "getting")
				},
				Progress: func(n int) { bar.add(n) },
			})
			if err != nil {
				return err
			}
			bar.finish()
			fmt.Fprintf(a.stderr, "saved %s to %s\n", ref, output)
			return nil
		},
	}
	cmd.Flags().StringVarP(&output, "output", "o", "", "where to write it (must not exist; default: the CID or the path's last name)")
	cmd.Flags().IntVar(&maxEntries, "max-entries", node.DefaultMaxEntries, "refuse a DAG that would write more files and directories than this (-1: no limit)")
	accessFlags(cmd, &o)
	return cmd
}

func (a *app) lsCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "ls CID[/PATH]",
		Short: "List a directory: CID, size and name of each entry",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ref, err := node.ParseRef(args[0])
			if err != nil {
				return err
			}
			entries, err := a.ls(cmd.Context(), ref)
			if err != nil {
				return err
			}
			// Columns as kubo's `ipfs ls` aligns them.
			tw := tabwriter.NewWriter(a.stdout, 1, 2, 1, ' ', 0)
			for _, e := range entries {
				if e.Kind.String() == "directory" {
					fmt.Fprintf(tw, "%s\t-\t%s/\n", e.Cid, e.Name)
				} else {
					fmt.Fprintf(tw, "%s\t%d\t%s\n", e.Cid, e.Size, e.Name)
				}
			}
			return tw.Flush()
		},
	}
}

func (a *app) ls(ctx context.Context, ref node.Ref) ([]node.LsEntry, error) {
	c, err := a.daemon(ctx)
	if err != nil {
		return nil, err
	}
	if c != nil {
		return c.Ls(ctx, ref.String())
	}
	repo, err := a.openRepoReadOnly()
	if err != nil {
		return nil, err
	}
	defer repo.Close()
	return repo.Ls(ctx, ref)
}
