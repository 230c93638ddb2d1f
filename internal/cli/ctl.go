package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"
)

// Exit codes of the client commands. They are etcdctl's, so scripts written
// against etcdctl can test them unchanged.
const (
	exitError         = 1   // the request failed (server error, timeout)
	exitBadConnection = 2   // the client could not be set up or authenticate
	exitInvalidInput  = 3   // txn input that does not parse
	exitBadFeature    = 4   // a valid flag with an unsupported value
	exitInterrupted   = 5   // a watch the server ended, a snapshot save that failed
	exitBadArgs       = 128 // wrong arguments or conflicting flags

	// exitSignal is not etcdctl's: it ends a streaming command (watch,
	// lease keep-alive) that was interrupted, with the status a shell
	// gives a process killed by SIGINT, as etcdctl is.
	exitSignal = 130
)

// addCtlCommands registers the etcdctl-shaped client commands.
func addCtlCommands(root *cobra.Command, s streams) {
	for _, cmd := range []*cobra.Command{
		newGetCommand(s),
		newPutCommand(s),
		newDelCommand(s),
		newTxnCommand(s),
		newCompactionCommand(s),
		newEndpointCommand(s),
		newWatchCommand(s),
		newLeaseCommand(s),
		newAlarmCommand(s),
		newDefragCommand(s),
		newSnapshotCommand(s),
	} {
		// etcdctl exits 1 on a flag it cannot parse (and names the flag,
		// as cobra does).
		cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
			return ctlError(exitError, err)
		})
		root.AddCommand(cmd)
	}
	// etcdctl's flags are global, so its users write them before the
	// command: "etcdctl --hex get k". Cobra finds the command by skipping
	// the flags before it, and takes a flag it does not know on the root as
	// one with a value: it would skip "get" after --hex. Declaring the
	// boolean client flags, hidden, on the root alone (not inherited, so not
	// on serve) makes it skip them correctly; the client command parses
	// them as usual.
	for _, name := range []string{"hex", "debug", "insecure-transport", "insecure-skip-tls-verify"} {
		if root.Flags().Lookup(name) == nil && root.PersistentFlags().Lookup(name) == nil {
			root.Flags().Bool(name, false, "")
			_ = root.Flags().MarkHidden(name)
		}
	}
}

// ctlError makes err end the command with the given etcdctl exit code; main
// prints it as "Error: <err>".
func ctlError(code int, err error) error {
	return ExitError{Code: code, Err: err}
}

// ctlErrorf is ctlError with a formatted message.
func ctlErrorf(code int, format string, args ...any) error {
	return ExitError{Code: code, Err: fmt.Errorf(format, args...)}
}

// rpcError turns an error from a client call into the command's result: the
// error exactly as the client library reports it (etcdctl prints it bare,
// e.g. "etcdserver: mvcc: required revision has been compacted"), exit 1.
func rpcError(err error) error {
	var exit ExitError
	if errors.As(err, &exit) {
		return err
	}
	return ctlError(exitError, err)
}
