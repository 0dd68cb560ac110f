package main

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"auditnet/chain"
	"auditnet/node"
	"auditnet/storage"
)

func (a *app) proofCommand() *cobra.Command {
	var access, agency, output string
	cmd := &cobra.Command{
		Use:   "proof CID [--access TX] [-o R.json]",
		Short: "Export a receipt: a self-contained proof of an anchor or an access",
		Long: `Export a receipt of the anchor of the dataset with root CID (the first
agency's, or --agency's), or with --access TX of that access request: the
transaction, its Merkle inclusion path, the block header, the commit
certificate of a quorum of the epoch's validators and every validator-set
change since genesis. Anyone can check it offline with 'auditnet
verify-proof R.json --genesis genesis.json'.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			tx := access
			if tx == "" {
				evs, err := c.Log(cmd.Context(), node.LogQuery{Dataset: args[0], Agency: agency, Kinds: []string{"anchor"}})
				if err != nil {
					return err
				}
				for _, e := range evs {
					if e.Code == chain.OutcomeOK {
						tx = e.Tx
						break
					}
				}
				if tx == "" {
					return fmt.Errorf("%s %w", args[0], node.ErrNotAnchored)
				}
			}
			raw, err := c.Proof(cmd.Context(), tx)
			if err != nil {
				return err
			}
			if output == "" {
				_, err = a.stdout.Write(append(raw, '\n'))
				return err
			}
			if err := storage.WriteFileAtomic(storage.OSFS{}, output, raw, 0o644); err != nil {
				return err
			}
			fmt.Fprintf(a.stderr, "wrote the receipt of tx %s to %s\n", tx, output)
			return nil
		},
	}
	cmd.Flags().StringVar(&access, "access", "", "prove this access request (its transaction ID) instead of the anchor")
	cmd.Flags().StringVar(&agency, "agency", "", "the anchor of this agency, when several anchored the same bytes")
	cmd.Flags().StringVarP(&output, "output", "o", "", "write the receipt here (default: stdout)")
	return cmd
}

func (a *app) verifyProofCommand() *cobra.Command {
	var genesis, checkpoint string
	cmd := &cobra.Command{
		Use:   "verify-proof R.json (--genesis G.json | --checkpoint C.json)",
		Short: "Check a receipt offline and say what it proves",
		Long: `Check a receipt with no node running, against the network's genesis file or
a trusted checkpoint: every validator-set change from there, the commit
certificate (a quorum of that epoch's validators), the block header, the
inclusion of the transaction and of its outcome, and the transaction's
signatures. It prints the facts the receipt proves, or exits 1 naming the
part that failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var anchor chain.TrustAnchor
			switch {
			case (genesis == "") == (checkpoint == ""):
				return fmt.Errorf("give --genesis or --checkpoint (one)")
			case genesis != "":
				g, err := chain.ReadGenesis(genesis)
				if err != nil {
					return err
				}
				if anchor, err = chain.AnchorFromGenesis(g); err != nil {
					return err
				}
			default:
				var err error
				if anchor, err = chain.ReadTrustAnchor(checkpoint); err != nil {
					return err
				}
			}
			raw, err := os.ReadFile(args[0])
			if err != nil {
				return err
			}
			rc, err := chain.DecodeReceiptJSON(raw)
			if err != nil {
				return err
			}
			p, err := chain.VerifyReceipt(rc, anchor)
			if err != nil {
				return err
			}
			a.printProven(p)
			return nil
		},
	}
	cmd.Flags().StringVar(&genesis, "genesis", "", "the network's genesis.json")
	cmd.Flags().StringVar(&checkpoint, "checkpoint", "", "a trusted checkpoint (JSON: Chain, Epoch, Height, Validators)")
	return cmd
}

// printProven says what a verified receipt proves.
func (a *app) printProven(p *chain.Proven) {
	w := a.stdout
	fmt.Fprintf(w, "receipt verified: on chain %s, transaction %s (%s) committed\n", p.Chain, p.Tx, p.Kind)
	fmt.Fprintf(w, "  in block %s at height %d (epoch %d), block time %s\n", p.Block, p.Height, p.Epoch, time.UnixMilli(p.Time).UTC().Format(time.RFC3339Nano))
	outcome := p.Code
	if p.Reason != "" {
		outcome += " (" + p.Reason + ")"
	}
	fmt.Fprintf(w, "  with outcome %s\n", outcome)
	var signers []string
	for _, s := range p.Signers {
		signers = append(signers, chain.PeerIDString(s))
	}
	if len(p.Sender) > 0 {
		fmt.Fprintf(w, "  sent and signed by %s\n", chain.PeerIDString(p.Sender))
	} else {
		fmt.Fprintf(w, "  signed by the admins %s\n", strings.Join(signers, ", "))
	}
	if an := p.Anchor; an != nil {
		fmt.Fprintf(w, "  it anchors dataset %s: %q, %d bytes, %s\n", an.Root.Cid, an.Name, an.Size, an.Policy)
	}
	if ac := p.Access; ac != nil {
		fmt.Fprintf(w, "  it asks for dataset %s of %s from %s, purpose %q, case %q\n", ac.Dataset.Root.Cid,
			chain.PeerIDString(ac.Dataset.Owner), chain.PeerIDString(ac.Provider), ac.Purpose, ac.Case)
	}
}

func (a *app) verifyDatasetCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "verify CID",
		Short: "Check a dataset this node holds end to end: every block, its anchor, the anchor's certificate",
		Long: `Check a dataset this node holds end to end: every block of its DAG read and
re-hashed against its CID, the dataset anchored on the chain, and each
anchor's receipt (inclusion, header, commit certificate, validator-set
changes) verified against the genesis. Exits 1 naming what failed.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			rep, err := c.VerifyDataset(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "verified %s: %d blocks, %d bytes, every block re-hashed\n", rep.Root, rep.Blocks, rep.Bytes)
			for _, an := range rep.Anchors {
				fmt.Fprintf(a.stdout, "  anchored by %s at height %d (tx %s): %q, %d bytes, %s; certificate of %d validators verified\n",
					an.Owner, an.Height, an.Tx, an.Name, an.Size, an.Policy, an.Signers)
			}
			return nil
		},
	}
}
