package main

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/spf13/cobra"

	"auditnet/chain"
	"auditnet/internal/dagcbor"
	"auditnet/node"
	"auditnet/storage"
)

// An admin transaction (membership, parameters, a grant or revoke on any
// dataset) needs k of the m admins' signatures. It travels between them
// as a file: `admin new` writes it unsigned, each admin adds a signature
// with `admin sign` (the key stays in its own file, never in a node
// repo), and any member's node submits it with `admin submit`.

// adminTxFile is the file an admin transaction travels in: its canonical
// encoding, and what it does in words for the admins who sign it.
type adminTxFile struct {
	Summary string `json:"Summary"`
	// Body is what the admins sign: the transaction's body, canonical
	// DAG-CBOR, base64; Sigs their signatures so far.
	Body []byte            `json:"Body"`
	Sigs []chain.Signature `json:"Sigs"`
}

func (a *app) adminCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "admin", Short: "Admin transactions, signed by k of the m admins"}
	newCmd := &cobra.Command{Use: "new", Short: "Write an unsigned admin transaction to a file"}
	var out, owner, expires, role, name string
	var validator bool
	grant := &cobra.Command{
		Use:   "grant CID AUDITOR --owner PEER [--expires T] -o TX.json",
		Short: "A grant by the admins on any agency's dataset",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := a.adminDataset(cmd, args[0], owner)
			if err != nil {
				return err
			}
			auditor, err := chain.ParsePeerID(args[1])
			if err != nil {
				return err
			}
			exp, err := parseExpiry(expires, time.Now())
			if err != nil {
				return err
			}
			return a.writeAdminTx(cmd, out, chain.TxBody{Kind: chain.KindGrant, Grant: &chain.Grant{Dataset: ds, Auditor: auditor, Expires: exp}},
				fmt.Sprintf("grant auditor %s read access to dataset %s of %s%s", args[1], args[0], chain.PeerIDString(ds.Owner), expirySuffix(exp)))
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke CID AUDITOR --owner PEER -o TX.json",
		Short: "A revocation by the admins of a grant on any agency's dataset",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			ds, err := a.adminDataset(cmd, args[0], owner)
			if err != nil {
				return err
			}
			auditor, err := chain.ParsePeerID(args[1])
			if err != nil {
				return err
			}
			return a.writeAdminTx(cmd, out, chain.TxBody{Kind: chain.KindRevoke, Revoke: &chain.Revoke{Dataset: ds, Auditor: auditor}},
				fmt.Sprintf("revoke auditor %s's grant on dataset %s of %s", args[1], args[0], chain.PeerIDString(ds.Owner)))
		},
	}
	member := &cobra.Command{
		Use:   "member add|remove|role PEER [--role R] [--name N] [--validator] -o TX.json",
		Short: "A membership change: add a member, remove one, or change its role",
		Args:  cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			op := chain.MemberOp(args[0])
			if op != chain.MemberAdd && op != chain.MemberRemove && op != chain.MemberRole {
				return fmt.Errorf("member %q: want add, remove or role", args[0])
			}
			peer, err := chain.ParsePeerID(args[1])
			if err != nil {
				return err
			}
			if op != chain.MemberRemove {
				if _, err := node.ParseRole(role); err != nil {
					return err
				}
			}
			summary := fmt.Sprintf("%s member %s", op, args[1])
			if op != chain.MemberRemove {
				summary += fmt.Sprintf(" as %s %q (validator: %v)", role, name, validator)
			}
			return a.writeAdminTx(cmd, out, chain.TxBody{Kind: chain.KindMember,
				Member: &chain.Member{Op: op, Peer: peer, Role: role, Name: name, Validator: validator}}, summary)
		},
	}
	for _, c := range []*cobra.Command{grant, revoke, member} {
		c.Flags().StringVarP(&out, "output", "o", "", "the transaction file to write (required)")
		c.MarkFlagRequired("output")
	}
	for _, c := range []*cobra.Command{grant, revoke} {
		c.Flags().StringVar(&owner, "owner", "", "the agency that anchored the dataset (default: its only anchorer)")
	}
	grant.Flags().StringVar(&expires, "expires", "", "when the grant ends: a duration from now (720h) or an RFC 3339 time")
	member.Flags().StringVar(&role, "role", "", "the member's role: agency, datacenter, office or auditor")
	member.Flags().StringVar(&name, "name", "", "the member's name")
	member.Flags().BoolVar(&validator, "validator", false, "the member validates from the next epoch")
	newCmd.AddCommand(grant, revoke, member)

	var key string
	sign := &cobra.Command{
		Use:   "sign TX.json --key ADMIN.key",
		Short: "Add this admin's signature to a transaction file",
		Long: `Check the signatures the transaction already carries, show what it does, and
add a signature with the admin key in ADMIN.key (hex, as 'auditnet testnet'
writes to D/admins). The file is rewritten in place.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, tx, err := readAdminTx(args[0])
			if err != nil {
				return err
			}
			signer, err := readAdminKey(key)
			if err != nil {
				return err
			}
			for _, s := range tx.Sigs {
				if string(s.Signer) == string(signer.ID()) {
					return fmt.Errorf("%s already carries the signature of %s", args[0], chain.PeerIDString(signer.ID()))
				}
			}
			if err := tx.Sign(signer); err != nil {
				return err
			}
			f.Sigs = tx.Sigs
			if err := writeAdminTxFile(args[0], f); err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "signed by %s (%d signatures): %s\n", chain.PeerIDString(signer.ID()), len(tx.Sigs), f.Summary)
			return nil
		},
	}
	sign.Flags().StringVar(&key, "key", "", "the admin's key file (required)")
	sign.MarkFlagRequired("key")
	submit := &cobra.Command{
		Use:   "submit TX.json",
		Short: "Submit a signed admin transaction through this node and wait for it to commit",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, tx, err := readAdminTx(args[0])
			if err != nil {
				return err
			}
			if len(tx.Sigs) == 0 {
				return errors.New("the transaction carries no admin signatures yet ('auditnet admin sign')")
			}
			raw, err := chain.EncodeTx(tx)
			if err != nil {
				return err
			}
			c, err := a.needDaemon(cmd)
			if err != nil {
				return err
			}
			res, err := c.Submit(cmd.Context(), node.SubmitRequest{Txs: [][]byte{raw}, Wait: true, WaitTimeout: "60s"})
			if err != nil {
				return err
			}
			r := res[0]
			switch {
			case r.Error != "":
				return fmt.Errorf("the chain refused it: %s", r.Error)
			case r.Commit == nil:
				return fmt.Errorf("%w (tx %s not committed within 60 s)", node.ErrNoQuorum, r.ID)
			}
			outcome := ""
			if o := r.Commit.Outcome; o != nil {
				outcome = o.Code
				if o.Reason != "" {
					outcome += " (" + o.Reason + ")"
				}
			}
			fmt.Fprintf(a.stdout, "committed at height %d with %d admin signatures, outcome %s (tx %s): %s\n", r.Commit.Height, len(tx.Sigs), outcome, r.ID, f.Summary)
			return nil
		},
	}
	cmd.AddCommand(newCmd, sign, submit)
	return cmd
}

func expirySuffix(ms int64) string {
	if ms == 0 {
		return ""
	}
	return " until " + time.UnixMilli(ms).UTC().Format(time.RFC3339)
}

// adminDataset resolves a dataset for an admin transaction: root and the
// owner given, or the only agency that anchored root.
func (a *app) adminDataset(cmd *cobra.Command, root, owner string) (chain.Dataset, error) {
	c, err := cid.Decode(root)
	if err != nil {
		return chain.Dataset{}, fmt.Errorf("%w: %v", node.ErrBadRef, err)
	}
	if owner == "" {
		cl, err := a.needDaemon(cmd)
		if err != nil {
			return chain.Dataset{}, err
		}
		ds, err := cl.Datasets(cmd.Context(), "")
		if err != nil {
			return chain.Dataset{}, err
		}
		for _, d := range ds {
			if d.Root == root {
				if owner != "" {
					return chain.Dataset{}, fmt.Errorf("%s was anchored by several agencies: give --owner", root)
				}
				owner = d.Owner
			}
		}
		if owner == "" {
			return chain.Dataset{}, fmt.Errorf("%s %w", root, node.ErrNotAnchored)
		}
	}
	o, err := chain.ParsePeerID(owner)
	if err != nil {
		return chain.Dataset{}, err
	}
	return chain.Dataset{Owner: o, Root: dagcbor.Link{Cid: c}}, nil
}

// writeAdminTx fills in the chain, an expiry a replay window from the
// node's current height and a random nonce, and writes the unsigned
// transaction file.
func (a *app) writeAdminTx(cmd *cobra.Command, out string, body chain.TxBody, summary string) error {
	c, err := a.needDaemon(cmd)
	if err != nil {
		return err
	}
	st, err := c.ChainStatus(cmd.Context())
	if err != nil {
		return err
	}
	dir, err := a.dir()
	if err != nil {
		return err
	}
	g, err := chain.ReadGenesis(filepath.Join(dir, "genesis.json"))
	if err != nil {
		return err
	}
	var nonce [8]byte
	rand.Read(nonce[:])
	body.Chain, body.Expires, body.Nonce = st.ChainID, st.Height+g.Params.ReplayWindow, binary.BigEndian.Uint64(nonce[:])
	raw, err := chain.Marshal(&body)
	if err != nil {
		return err
	}
	summary = fmt.Sprintf("%s (chain %s, valid until height %d)", summary, st.ChainID, body.Expires)
	if err := writeAdminTxFile(out, adminTxFile{Summary: summary, Body: raw, Sigs: []chain.Signature{}}); err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "wrote %s: %s; it needs %d admin signatures ('auditnet admin sign %s --key ADMIN.key')\n",
		out, summary, g.Admins.Threshold, out)
	return nil
}

func readAdminTx(path string) (adminTxFile, *chain.Tx, error) {
	var f adminTxFile
	raw, err := os.ReadFile(path)
	if err != nil {
		return f, nil, err
	}
	if err := json.Unmarshal(raw, &f); err != nil {
		return f, nil, fmt.Errorf("%s: not an admin transaction file: %w", path, err)
	}
	tx := &chain.Tx{Sigs: f.Sigs}
	if err := dagcbor.Unmarshal(f.Body, &tx.Body); err != nil {
		return f, nil, fmt.Errorf("%s: the transaction body: %w", path, err)
	}
	if len(tx.Body.Sender) != 0 {
		return f, nil, fmt.Errorf("%s: a transaction with a sender is not an admin transaction", path)
	}
	if len(tx.Sigs) > 0 {
		if err := tx.VerifySignatures(); err != nil {
			return f, nil, fmt.Errorf("%s: %w", path, err)
		}
	}
	return f, tx, nil
}

func writeAdminTxFile(path string, f adminTxFile) error {
	raw, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return storage.WriteFileAtomic(storage.OSFS{}, path, append(raw, '\n'), 0o600)
}

// readAdminKey reads an admin key file: the Ed25519 private key in hex.
func readAdminKey(path string) (chain.Signer, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := chain.ParseHexKey(string(raw))
	if err != nil {
		return nil, fmt.Errorf("%s: not an admin key: %w", path, err)
	}
	return s, nil
}
