// Command auditnet runs an auditnet node: its daemon (libp2p host, private
// DHT, verified fetch, HTTP API) and the tools that import, fetch, export
// and check audit datasets. See README.md for the commands.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"auditnet/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// app carries what every command needs.
type app struct {
	repoDir string
	verbose bool
	stdin   io.Reader
	stdout  io.Writer
	stderr  io.Writer
}

// run executes the CLI and returns the exit code.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	if err := root.ExecuteContext(ctx); err != nil {
		fmt.Fprintln(stderr, "Error:", explain(err))
		return 1
	}
	return 0
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "auditnet",
		Short:         "auditnet: agencies keep their audit data, auditors fetch and verify it",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&a.repoDir, "repo", "", "repo directory (default $AUDITNET_REPO, else ~/.auditnet)")
	root.PersistentFlags().BoolVarP(&a.verbose, "verbose", "v", false, "log what the node does to stderr")
	root.AddCommand(
		a.initCommand(),
		a.addCommand(),
		a.catCommand(),
		a.getCommand(),
		a.lsCommand(),
		a.pinCommand(),
		a.repoCommand(),
		a.dagCommand(),
		a.daemonCommand(),
		a.idCommand(),
		a.swarmCommand(),
		a.providersCommand(),
		a.configCommand(),
		a.demoCommand(),
		a.testnetCommand(),
		a.statusCommand(),
		a.grantCommand(),
		a.revokeCommand(),
		a.logCommand(),
		a.membersCommand(),
		a.datasetsCommand(),
		a.proofCommand(),
		a.verifyProofCommand(),
		a.verifyDatasetCommand(),
		a.adminCommand(),
		a.benchCommand(),
	)
	return root
}

func (a *app) logger() *slog.Logger {
	if !a.verbose {
		return nil
	}
	return slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

func (a *app) dir() (string, error) {
	if a.repoDir != "" {
		return a.repoDir, nil
	}
	return node.DefaultRepoDir()
}

// openRepo opens the repo for a command that writes; the caller closes it.
func (a *app) openRepo() (*node.Repo, error) {
	return a.open(false)
}

// openRepoReadOnly opens the repo for a command that only reads: it
// writes nothing (so it works on a full disk) and shares the repo with
// other readers.
func (a *app) openRepoReadOnly() (*node.Repo, error) {
	return a.open(true)
}

func (a *app) open(readOnly bool) (*node.Repo, error) {
	dir, err := a.dir()
	if err != nil {
		return nil, err
	}
	r, err := node.OpenRepo(dir, node.OpenOptions{ReadOnly: readOnly, Logger: a.logger()})
	if err != nil {
		return nil, err
	}
	if r.ReserveReleased {
		fmt.Fprintln(a.stderr, "warning: the disk is full; released the repo's reserve space so this command can run (free space, or unpin and run 'auditnet repo gc')")
	}
	return r, nil
}

// daemon returns a client of the daemon running on the repo, or nil.
func (a *app) daemon(ctx context.Context) (*node.Client, error) {
	dir, err := a.dir()
	if err != nil {
		return nil, err
	}
	return node.DialDaemon(ctx, dir)
}

// explain adds the advice a user needs to the errors they can act on.
func explain(err error) string {
	switch {
	case errors.Is(err, node.ErrNotInitialised):
		return err.Error() + " (run 'auditnet init' first, or pass --repo)"
	case errors.Is(err, node.ErrLocked):
		return err.Error() + " (is a daemon or another command using it?)"
	case errors.Is(err, syscall.ENOSPC):
		return err.Error() + " (the disk is full; nothing already stored was lost)"
	case errors.Is(err, context.Canceled):
		return "interrupted (what this command had not yet acknowledged was not stored)"
	}
	return err.Error()
}
