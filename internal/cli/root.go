// Package cli implements every cairn subcommand: the store server (serve) and
// the etcdctl-shaped client commands (get, put, del, txn, compaction,
// endpoint, ...). The binary's main only calls Run and maps its error to an
// exit code.
package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/spf13/cobra"
)

// ExitError asks main to exit with Code after printing Err (when non-nil).
type ExitError struct {
	Code int
	Err  error
}

func (e ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e ExitError) Unwrap() error { return e.Err }

// streams carries the process's standard streams to the commands so tests can
// run them in process.
type streams struct {
	in  io.Reader
	out io.Writer
	err io.Writer
}

// Run executes the cairn command line. args excludes the program name.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	root := newRootCommand(streams{in: stdin, out: stdout, err: stderr})
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	return root.ExecuteContext(ctx)
}

func newRootCommand(s streams) *cobra.Command {
	root := &cobra.Command{
		Use:   "cairn",
		Short: "cairn: the CoreOS cluster stack (etcd-compatible store, locksmith, fleet, updates, flannel) in one binary",
		Long: "cairn is a Raft-replicated, etcd-compatible key-value store and the cluster services built on it.\n\n" +
			"Start a member with 'cairn serve'; talk to it with the etcdctl-shaped commands below.",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.CompletionOptions.DisableDefaultCmd = true
	// A bad flag is a usage error: exit status 2, as etcd and etcdctl do.
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		return ExitError{Code: 2, Err: err}
	})
	root.AddCommand(newServeCommand(s))
	root.AddCommand(newVersionCommand(s))
	addCtlCommands(root, s)
	addAuthCommands(root, s)
	addMemberCommands(root, s)
	addLocksmithCommands(root, s)
	return root
}
