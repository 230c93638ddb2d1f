package cli

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newTxnCommand(s streams) *cobra.Command {
	var interactive bool
	cmd := &cobra.Command{
		Use:   "txn [options]",
		Short: "Apply compares and requests read from stdin as one atomic transaction",
		Long: `Read a transaction from standard input and apply it atomically.

The input has three sections, each ended by an empty line (the last one
too): the compares, the requests to run if every compare holds, and the
requests to run otherwise. A compare is target("key") op "value" with
target one of version, create, mod, value or lease and op one of = != < >.
A request is a get, put or del command line with its flags.

  $ cairn txn <<'EOF'
  mod("counter") > "0"

  put counter "updated"

  put counter "created"
  put other "also created"

  EOF

With --interactive each section is announced on stdout first.`,
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "announce each section of the input")
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 0 {
			return ctlErrorf(exitBadArgs, "txn command does not accept argument")
		}
		// Like etcdctl, set up the client before reading the input, so a
		// configuration error is reported first.
		sess, err := newCtlSession(cmd, s, g, kvOutput)
		if err != nil {
			return err
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		defer cli.Close()

		prompt := func(text string) {
			if interactive {
				fmt.Fprintln(s.out, text)
			}
		}
		in := bufio.NewReader(ctlStdin(s.in))

		prompt("compares:")
		cmps, err := readCompares(in)
		if err != nil {
			return err
		}
		prompt("success requests (get, put, del):")
		thenOps, err := readTxnOps(in, "success requests")
		if err != nil {
			return err
		}
		prompt("failure requests (get, put, del):")
		elseOps, err := readTxnOps(in, "failure requests")
		if err != nil {
			return err
		}
		for _, op := range append(thenOps, elseOps...) {
			if op.warn != nil {
				if err := op.warn.warn(cmd.Context(), s.err); err != nil {
					return err
				}
			}
		}

		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		resp, err := cli.Txn(ctx).If(cmps...).Then(txnOps(thenOps)...).Else(txnOps(elseOps)...).Commit()
		if err != nil {
			return rpcError(err)
		}
		sess.printer.txn(resp)
		return nil
	}
	return cmd
}

// readTxnLines reads the lines of one section up to its empty line, trimmed.
// Input that ends before the empty line is an error, as in etcdctl.
func readTxnLines(in *bufio.Reader, section string, each func(line string) error) error {
	for {
		line, err := in.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ctlErrorf(exitInvalidInput, "unexpected end of input in the %s: every section of a txn, the last one too, ends with an empty line", section)
			}
			return ctlError(exitInvalidInput, fmt.Errorf("read %s: %w", section, err))
		}
		line = strings.TrimSpace(line)
		if line == "" {
			return nil
		}
		if err := each(line); err != nil {
			return err
		}
	}
}

func readCompares(in *bufio.Reader) ([]clientv3.Cmp, error) {
	var cmps []clientv3.Cmp
	err := readTxnLines(in, "compares", func(line string) error {
		cmp, err := parseCompare(line)
		if err != nil {
			return ctlError(exitInvalidInput, err)
		}
		cmps = append(cmps, cmp)
		return nil
	})
	return cmps, err
}

func readTxnOps(in *bufio.Reader, section string) ([]txnOp, error) {
	var ops []txnOp
	err := readTxnLines(in, section, func(line string) error {
		op, err := parseTxnOp(line)
		if err != nil {
			return err
		}
		ops = append(ops, op)
		return nil
	})
	return ops, err
}

func txnOps(ops []txnOp) []clientv3.Op {
	out := make([]clientv3.Op, len(ops))
	for i, op := range ops {
		out[i] = op.op
	}
	return out
}
