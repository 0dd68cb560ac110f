package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) logCommand() *cobra.Command {
	var (
		q            node.LogQuery
		since, until string
		kinds        string
		asJSON       bool
	)
	cmd := &cobra.Command{
		Use:   "log [--dataset CID] [--auditor PEER] [--agency PEER] [--since T] [--json]",
		Short: "The audit trail: anchors, grants, accesses and their outcomes, from the chain",
		Long: `Print the audit trail the chain holds, oldest first: every anchor, grant and
revocation, every access request with the chain's decision (authorised, or
denied and why), every served access with what the auditor acknowledged, and
every recorded non-service. --since and --until take an RFC 3339 time or a
duration before now (24h); --kind a comma-separated list (anchor, grant,
revoke, access, served, non-service, member, params, evidence).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			now := time.Now()
			if q.Since, err = parseWhen(since, now); err != nil {
				return fmt.Errorf("--since: %w", err)
			}
			if q.Until, err = parseWhen(until, now); err != nil {
				return fmt.Errorf("--until: %w", err)
			}
			q.Kinds = node.ParseKinds(kinds)
			evs, err := c.Log(cmd.Context(), q)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, evs)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "HEIGHT\tTIME\tKIND\tOUTCOME\tDATASET\tAUDITOR\tAGENCY\tTX")
			for _, e := range evs {
				outcome := e.Code
				if e.Reason != "" {
					outcome += " (" + e.Reason + ")"
				}
				fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Height, e.Time.Format(time.RFC3339), e.Kind, outcome,
					dash(e.Dataset), dash(e.Auditor), dash(e.Agency), e.Tx)
			}
			return w.Flush()
		},
	}
	f := cmd.Flags()
	f.StringVar(&q.Dataset, "dataset", "", "only events about the dataset with this root CID")
	f.StringVar(&q.Auditor, "auditor", "", "only events naming this auditor")
	f.StringVar(&q.Agency, "agency", "", "only events about this agency's datasets")
	f.StringVar(&since, "since", "", "only events from this time on (RFC 3339, or a duration before now)")
	f.StringVar(&until, "until", "", "only events before this time (RFC 3339, or a duration before now)")
	f.StringVar(&kinds, "kind", "", "only events of these kinds (comma-separated)")
	f.IntVar(&q.Limit, "limit", 0, "at most this many events, the earliest (0: all, up to 100,000)")
	f.BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) membersCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "members [--json]",
		Short: "The network's members, their roles and which validate, from the chain",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			ms, err := c.Members(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, ms)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tVALIDATOR\tPEER")
			for _, m := range ms {
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\n", m.Name, m.Role, m.Validator, m.PeerID)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) datasetsCommand() *cobra.Command {
	var (
		agency string
		asJSON bool
	)
	cmd := &cobra.Command{
		Use:   "datasets [--agency PEER] [--json]",
		Short: "The anchored datasets: root, owner, name, size, policy, when",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			ds, err := c.Datasets(cmd.Context(), agency)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, ds)
			}
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "ROOT\tNAME\tSIZE\tPOLICY\tHEIGHT\tANCHORED\tOWNER")
			for _, d := range ds {
				fmt.Fprintf(w, "%s\t%s\t%d\t%s\t%d\t%s\t%s\n", d.Root, d.Name, d.Size, d.Policy, d.Height, d.Time.Format(time.RFC3339), d.Owner)
			}
			return w.Flush()
		},
	}
	cmd.Flags().StringVar(&agency, "agency", "", "only this agency's datasets")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// parseWhen reads a time: empty (none), an RFC 3339 time, or a duration
// before now.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(strings.TrimPrefix(s, "-")); err == nil {
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q: want an RFC 3339 time or a duration before now (24h)", s)
	}
	return t, nil
}
