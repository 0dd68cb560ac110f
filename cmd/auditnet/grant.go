package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) grantCommand() *cobra.Command {
	var expires string
	cmd := &cobra.Command{
		Use:   "grant CID PEER [--expires T]",
		Short: "Let an auditor read a dataset this node anchored",
		Long: `Put a grant on the chain: the auditor PEER may read the dataset this node
anchored with root CID until --expires (a duration from now such as 720h, or
an RFC 3339 time; by default the grant does not expire). Returns once the
grant has committed. Only the dataset's owner (or k of m admins) grants.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return err
			}
			return a.sendGrant(cmd, "granted", node.GrantRequest{Dataset: args[0], Auditor: args[1], Expires: exp})
		},
	}
	cmd.Flags().StringVar(&expires, "expires", "", "when the grant ends: a duration from now (720h) or an RFC 3339 time")
	return cmd
}

func (a *app) revokeCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "revoke CID PEER",
		Short: "Withdraw a grant this node made",
		Long: `Put a revocation on the chain: from the next block on, the auditor PEER's
requests for the dataset this node anchored with root CID are denied, and a
request the chain authorised earlier is no longer served. Returns once the
revocation has committed. Only the grantor (or k of m admins) revokes.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.sendGrant(cmd, "revoked", node.GrantRequest{Dataset: args[0], Auditor: args[1]})
		},
	}
}

func (a *app) sendGrant(cmd *cobra.Command, verb string, req node.GrantRequest) error {
	c, err := a.needDaemon(cmd)
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var done node.TxDone
	if verb == "granted" {
		done, err = c.Grant(ctx, req)
	} else {
		done, err = c.Revoke(ctx, req)
	}
	if err != nil {
		return err
	}
	if verb == "granted" {
		fmt.Fprintf(a.stdout, "granted %s to %s at height %d (tx %s)\n", req.Dataset, req.Auditor, done.Height, done.Tx)
	} else {
		fmt.Fprintf(a.stdout, "revoked the grant of %s to %s at height %d (tx %s)\n", req.Dataset, req.Auditor, done.Height, done.Tx)
	}
	return nil
}

// parseExpiry reads --expires: empty (never, 0), a duration from now, or
// an RFC 3339 time; the result is ms since 1970 UTC.
func parseExpiry(s string, now time.Time) (int64, error) {
	if s == "" {
		return 0, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return 0, fmt.Errorf("--expires %s: not in the future", s)
		}
		return now.Add(d).UnixMilli(), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return 0, fmt.Errorf("--expires %q: want a duration (720h) or an RFC 3339 time (2027-01-31T00:00:00Z)", s)
	}
	if !t.After(now) {
		return 0, fmt.Errorf("--expires %s: not in the future", s)
	}
	return t.UnixMilli(), nil
}
