package main

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func (a *app) testnetCommand() *cobra.Command {
	var o node.TestnetOptions
	cmd := &cobra.Command{
		Use:   "testnet --dir D --validators N [--agencies A --auditors U | --followers M] [--admins M --admin-threshold K] [--base-port P]",
		Short: "Write a genesis and one repo per node for a network on this machine",
		Long: `Write, in an empty directory D, genesis.json and one initialised repo per
node of a network on 127.0.0.1, each repo named after its role (datacenter,
office-N, agency-N, auditor-N). Of the n validators the audit office (the data
center and office-N nodes) holds at least n − f and agencies at most f: with
--agencies A and --auditors U, min(f, A) agencies validate and the other
agencies and every auditor follow the chain; with --followers M (and neither
of those), f agencies validate and M followers alternate agency and auditor.
Admin transactions need K of M admin signatures. Node i listens on port P+i and
serves its API on P+100+i. Admin keys go to D/admins (outside every repo);
D/bench-keys.json holds the keys 'auditnet bench chain' signs with; D/testnet.json
lists the nodes. Start each node with 'auditnet --repo D/NAME daemon'.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Dir == "" {
				return fmt.Errorf("testnet: --dir is required")
			}
			f := cmd.Flags()
			o.ByRole = f.Changed("agencies") || f.Changed("auditors")
			if o.ByRole && f.Changed("followers") {
				return fmt.Errorf("testnet: give --agencies and --auditors, or --followers, not both")
			}
			if f.Changed("admins") != f.Changed("admin-threshold") {
				return fmt.Errorf("testnet: give --admins and --admin-threshold together")
			}
			tn, err := node.CreateTestnet(o)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "chain %s: genesis %s\n", tn.ChainID, tn.Genesis)
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "NAME\tROLE\tVALIDATOR\tPEER\tSWARM\tAPI")
			for _, n := range tn.Nodes {
				fmt.Fprintf(w, "%s\t%s\t%v\t%s\t%s\t%s\n", n.Name, n.Role, n.Validator, n.PeerID, n.Swarm, n.API)
			}
			w.Flush()
			fmt.Fprintf(a.stdout, "start a node: auditnet --repo %s daemon\n", tn.Nodes[0].Dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&o.Dir, "dir", "", "directory to write the network into (must be empty or absent)")
	cmd.Flags().IntVar(&o.Validators, "validators", 4, "number of validators (at least 4)")
	cmd.Flags().IntVar(&o.Followers, "followers", 0, "number of non-validator nodes (agencies and auditors, alternately)")
	cmd.Flags().IntVar(&o.Agencies, "agencies", 0, "number of agency nodes (up to f validate, the rest follow)")
	cmd.Flags().IntVar(&o.Auditors, "auditors", 0, "number of auditor nodes (followers)")
	cmd.Flags().IntVar(&o.Admins, "admins", 3, "number of admin keys (m)")
	cmd.Flags().IntVar(&o.AdminThreshold, "admin-threshold", 2, "admin signatures an admin transaction needs (k)")
	cmd.Flags().IntVar(&o.BasePort, "base-port", node.DefaultTestnetBasePort, "first swarm port; APIs start 100 above it")
	cmd.Flags().IntVar(&o.BenchSenders, "bench-senders", node.DefaultBenchSenders, "agency and auditor keys (each) for the bench")
	return cmd
}

func (a *app) statusCommand() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "status",
		Short: "Show the chain: id, height, view, leader, validators and their liveness",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			st, err := c.ChainStatus(cmd.Context())
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, st)
			}
			role := "follower"
			if st.Validator {
				role = "validator"
			}
			view := fmt.Sprint(st.View)
			if st.ViewChanging {
				view += " (changing)"
			}
			fmt.Fprintf(a.stdout, "chain:      %s\nthis node:  %s\nheight:     %d (lag %d)\nblock:      %s\nview:       %s\nepoch:      %d\nleader:     %s\nmempool:    %d\n",
				st.ChainID, role, st.Height, st.Lag, st.Block, view, st.Epoch, st.Leader, st.Mempool)
			quorum := "yes"
			if !st.HasQuorum {
				quorum = "NO: the chain cannot commit; strict fetches fail closed"
			}
			fmt.Fprintf(a.stdout, "quorum:     %d of %d live, %d needed: %s\n", st.Live, len(st.Validators), st.Quorum, quorum)
			w := tabwriter.NewWriter(a.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(w, "VALIDATOR\tHEIGHT\tLIVE\tLAST SEEN")
			for _, v := range st.Validators {
				var marks []string
				if v.Leader {
					marks = append(marks, "leader")
				}
				if v.Self {
					marks = append(marks, "this node")
				}
				name := v.PeerID
				if len(marks) > 0 {
					name += " (" + strings.Join(marks, ", ") + ")"
				}
				seen := "never"
				if v.LastSeenMs >= 0 {
					seen = fmt.Sprintf("%d ms ago", v.LastSeenMs)
				}
				fmt.Fprintf(w, "%s\t%d\t%v\t%s\n", name, v.Height, v.Live, seen)
			}
			return w.Flush()
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}

func (a *app) benchCommand() *cobra.Command {
	bench := &cobra.Command{Use: "bench", Short: "Measure a running network"}
	var o node.BenchOptions
	var asJSON bool
	chainCmd := &cobra.Command{
		Use:   "chain --testnet D --rate R --duration T [--mix anchor|mix|access]",
		Short: "Submit signed transactions at a rate and report committed txs/s and commit latency",
		Long: `Submit valid signed transactions to the validators of a running testnet
(written by 'auditnet testnet', started with 'auditnet daemon'), spread evenly
over them, at R transactions per second for T, then report the committed
transactions per second, how many were refused as busy (admission control),
and the commit latency (p50, p99, max) from submission to the block that
holds the transaction, as the first validator's block feed reports it.
--mix anchor sends single-signature Anchor transactions; --mix mix a third
each of Anchor, Grant and AccessRequest (after anchoring and granting the
datasets it uses); --mix access sends AccessRequests at R per second and,
for each that commits, its holder's Served with the auditor's signed
acknowledgement: whole access events, as holders and auditors send them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if o.Testnet == "" {
				return fmt.Errorf("bench chain: --testnet is required")
			}
			res, err := node.RunBench(cmd.Context(), o)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, res)
			}
			fmt.Fprintf(a.stdout, "mix %s at %d txs/s: submitted %d, accepted %d, busy %d, refused %d\n",
				res.Mix, res.Rate, res.Submitted, res.Accepted, res.Busy, res.Refused)
			fmt.Fprintf(a.stdout, "committed %d txs in %d blocks over %.1f s: %.0f txs/s\n", res.Committed, res.Blocks, res.Seconds, res.TxsPerSec)
			fmt.Fprintf(a.stdout, "commit latency: p50 %.1f ms, p99 %.1f ms, max %.1f ms\n", res.LatencyP50, res.LatencyP99, res.LatencyMax)
			if res.Served > 0 {
				fmt.Fprintf(a.stdout, "access events completed (request and Served committed): %d\n", res.Served)
			}
			if res.FirstRefuse != "" {
				fmt.Fprintf(a.stdout, "first refusal: %s\n", res.FirstRefuse)
			}
			return nil
		},
	}
	chainCmd.Flags().StringVar(&o.Testnet, "testnet", "", "the directory 'auditnet testnet' wrote")
	chainCmd.Flags().IntVar(&o.Rate, "rate", 1000, "transactions per second to submit")
	chainCmd.Flags().DurationVar(&o.Duration, "duration", 10*time.Second, "how long to submit")
	chainCmd.Flags().StringVar(&o.Mix, "mix", node.MixAnchor, "anchor (single-signature), mix (Anchor, Grant, AccessRequest) or access (AccessRequest, then its Served)")
	chainCmd.Flags().IntVar(&o.Validators, "validators", 0, "submit to only the first N validators (0: all)")
	chainCmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	bench.AddCommand(chainCmd, a.benchVerifyCommand())
	return bench
}

func (a *app) benchVerifyCommand() *cobra.Command {
	var validators, rounds int
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify [--validators N]",
		Short: "Measure signature verification here and the txs/s ceiling it puts on a chain of N validators",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			res, err := node.BenchVerify(cmd.Context(), validators, rounds)
			if err != nil {
				return err
			}
			if asJSON {
				return printJSON(a, res)
			}
			fmt.Fprintf(a.stdout, "Ed25519 verify: %.1f µs alone, %.1f µs per signature in batches of 1,024\n", res.SingleMicros, res.BatchMicros)
			fmt.Fprintf(a.stdout, "ceiling for %d validators on %d cores: %.0f txs/s (single), %.0f txs/s (batch)\n",
				res.Validators, res.Cores, res.CeilingSingle, res.CeilingBatch)
			return nil
		},
	}
	cmd.Flags().IntVar(&validators, "validators", 4, "validators that each verify every signature")
	cmd.Flags().IntVar(&rounds, "rounds", 5, "rounds to take the median of")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	return cmd
}
