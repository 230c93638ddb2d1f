package cli

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The get, put and del commands. Their flags and argument rules live in the
// *Options types so that txn requests ("get k --prefix") parse exactly like
// the commands do.

type getOptions struct {
	consistency    string
	order          string
	sortBy         string
	limit          int64
	rev            int64
	prefix         bool
	fromKey        bool
	keysOnly       bool
	countOnly      bool
	printValueOnly bool
	minCreateRev   int64
	maxCreateRev   int64
	minModRev      int64
	maxModRev      int64
}

func (o *getOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.consistency, "consistency", "l", "l for a linearizable read, s for a serializable one")
	fs.StringVar(&o.order, "order", "", "ASCEND or DESCEND (default ASCEND)")
	fs.StringVar(&o.sortBy, "sort-by", "", "sort by CREATE, KEY, MODIFY, VALUE or VERSION")
	fs.Int64Var(&o.limit, "limit", 0, "return at most this many keys")
	fs.Int64Var(&o.rev, "rev", 0, "read at this revision")
	fs.BoolVar(&o.prefix, "prefix", false, "get every key that starts with <key>")
	fs.BoolVar(&o.fromKey, "from-key", false, "get every key byte-wise greater than or equal to <key>")
	fs.BoolVar(&o.keysOnly, "keys-only", false, "return the keys without their values")
	fs.BoolVar(&o.countOnly, "count-only", false, "return only the number of keys (with --write-out=fields)")
	fs.BoolVar(&o.printValueOnly, "print-value-only", false, "print only the values (with --write-out=simple)")
	fs.Int64Var(&o.minCreateRev, "min-create-rev", 0, "only keys created at or after this revision")
	fs.Int64Var(&o.maxCreateRev, "max-create-rev", 0, "only keys created at or before this revision")
	fs.Int64Var(&o.minModRev, "min-mod-rev", 0, "only keys last modified at or after this revision")
	fs.Int64Var(&o.maxModRev, "max-mod-rev", 0, "only keys last modified at or before this revision")
}

// op checks the arguments and flags in etcdctl's order and returns the key
// and the request options.
func (o *getOptions) op(args []string) (string, []clientv3.OpOption, error) {
	if len(args) == 0 {
		return "", nil, ctlErrorf(exitBadArgs, "get command needs one argument as key and an optional argument as range_end")
	}
	if o.prefix && o.fromKey {
		return "", nil, ctlErrorf(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	if o.keysOnly && o.countOnly {
		return "", nil, ctlErrorf(exitBadArgs, "`--keys-only` and `--count-only` cannot be set at the same time, choose one")
	}
	var opts []clientv3.OpOption
	switch o.consistency {
	case "l":
	case "s":
		opts = append(opts, clientv3.WithSerializable())
	default:
		return "", nil, ctlErrorf(exitBadFeature, "unknown consistency flag %q", o.consistency)
	}
	key := args[0]
	if len(args) > 1 {
		if o.prefix || o.fromKey {
			return "", nil, ctlErrorf(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, clientv3.WithRange(args[1]))
	}
	opts = append(opts, clientv3.WithLimit(o.limit))
	if o.rev > 0 {
		opts = append(opts, clientv3.WithRev(o.rev))
	}

	order := clientv3.SortNone
	switch strings.ToUpper(o.order) {
	case "":
	case "ASCEND":
		order = clientv3.SortAscend
	case "DESCEND":
		order = clientv3.SortDescend
	default:
		return "", nil, ctlErrorf(exitBadFeature, "bad sort order %v", o.order)
	}
	target := clientv3.SortByKey
	switch strings.ToUpper(o.sortBy) {
	case "", "KEY":
	case "CREATE":
		target = clientv3.SortByCreateRevision
	case "MODIFY":
		target = clientv3.SortByModRevision
	case "VALUE":
		target = clientv3.SortByValue
	case "VERSION":
		target = clientv3.SortByVersion
	default:
		return "", nil, ctlErrorf(exitBadFeature, "bad sort target %v", o.sortBy)
	}
	opts = append(opts, clientv3.WithSort(target, order))

	key, opts = rangeOptions(key, opts, o.prefix, o.fromKey)
	if o.keysOnly {
		opts = append(opts, clientv3.WithKeysOnly())
	}
	if o.countOnly {
		opts = append(opts, clientv3.WithCountOnly())
	}
	if o.minCreateRev > 0 {
		opts = append(opts, clientv3.WithMinCreateRev(o.minCreateRev))
	}
	if o.maxCreateRev > 0 {
		if o.minCreateRev > o.maxCreateRev {
			return "", nil, ctlErrorf(exitBadFeature, "getMinCreateRev(=%v) > getMaxCreateRev(=%v)", o.minCreateRev, o.maxCreateRev)
		}
		opts = append(opts, clientv3.WithMaxCreateRev(o.maxCreateRev))
	}
	if o.minModRev > 0 {
		opts = append(opts, clientv3.WithMinModRev(o.minModRev))
	}
	if o.maxModRev > 0 {
		if o.minModRev > o.maxModRev {
			return "", nil, ctlErrorf(exitBadFeature, "getMinModRev(=%v) > getMaxModRev(=%v)", o.minModRev, o.maxModRev)
		}
		opts = append(opts, clientv3.WithMaxModRev(o.maxModRev))
	}
	return key, opts, nil
}

// rangeOptions applies --prefix or --from-key. An empty key with either of
// them means the whole keyspace, which starts at "\x00".
func rangeOptions(key string, opts []clientv3.OpOption, prefix, fromKey bool) (string, []clientv3.OpOption) {
	if prefix {
		if key == "" {
			key = "\x00"
			opts = append(opts, clientv3.WithFromKey())
		} else {
			opts = append(opts, clientv3.WithPrefix())
		}
	}
	if fromKey {
		if key == "" {
			key = "\x00"
		}
		opts = append(opts, clientv3.WithFromKey())
	}
	return key, opts
}

type putOptions struct {
	lease       string
	prevKV      bool
	ignoreValue bool
	ignoreLease bool
}

func (o *putOptions) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&o.lease, "lease", "0", "lease ID, in hex, to attach the key to")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "return the key-value pair as it was before the put")
	fs.BoolVar(&o.ignoreValue, "ignore-value", false, "keep the key's current value")
	fs.BoolVar(&o.ignoreLease, "ignore-lease", false, "keep the key's current lease")
}

const putArgsError = "put command needs 1 argument and input from stdin or 2 arguments"

// op checks the arguments and returns the key, the value and the request
// options. Without a value argument the value is all of stdin; stdin may be
// nil where there is none to read (inside a txn).
func (o *putOptions) op(args []string, stdin io.Reader) (string, string, []clientv3.OpOption, error) {
	if len(args) == 0 {
		return "", "", nil, ctlErrorf(exitBadArgs, putArgsError)
	}
	key := args[0]
	if o.ignoreValue && len(args) > 1 {
		return "", "", nil, ctlErrorf(exitBadArgs, "put command needs only 1 argument when 'ignore-value' is set")
	}
	var value string
	if !o.ignoreValue {
		if len(args) > 1 {
			value = args[1]
		} else {
			if stdin == nil {
				return "", "", nil, ctlErrorf(exitBadArgs, putArgsError)
			}
			b, err := io.ReadAll(stdin)
			if err != nil || len(b) == 0 {
				return "", "", nil, ctlErrorf(exitBadArgs, putArgsError)
			}
			value = string(b)
		}
	}
	id, err := strconv.ParseInt(o.lease, 16, 64)
	if err != nil {
		return "", "", nil, ctlErrorf(exitBadArgs, "bad lease ID (%w), expecting ID in Hex", err)
	}
	var opts []clientv3.OpOption
	if id != 0 {
		opts = append(opts, clientv3.WithLease(clientv3.LeaseID(id)))
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.ignoreValue {
		opts = append(opts, clientv3.WithIgnoreValue())
	}
	if o.ignoreLease {
		opts = append(opts, clientv3.WithIgnoreLease())
	}
	return key, value, opts, nil
}

type delOptions struct {
	prefix  bool
	prevKV  bool
	fromKey bool
	isRange bool
}

func (o *delOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "delete every key that starts with <key>")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "return the deleted key-value pairs")
	fs.BoolVar(&o.fromKey, "from-key", false, "delete every key byte-wise greater than or equal to <key>")
	fs.BoolVar(&o.isRange, "range", false, "confirm that [key, range_end) is to be deleted, skipping the two-second warning")
}

// delRange is a [key, end) deletion that was not confirmed with --range: it
// is announced and delayed so that a mistyped command can be interrupted.
type delRange struct{ key, end string }

// rangeDeleteDelay is how long an unconfirmed range deletion waits.
var rangeDeleteDelay = 2 * time.Second

// warn announces the deletion on w and waits, unless ctx ends first.
func (r *delRange) warn(ctx context.Context, w io.Writer) error {
	fmt.Fprintf(w, "Warning: Keys between %q and %q will be deleted. Please interrupt the command within next %v seconds to cancel. "+
		"You can provide `--range` flag to avoid the delay.\n", r.key, r.end, rangeDeleteDelay.Seconds())
	t := time.NewTimer(rangeDeleteDelay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctlError(exitError, ctx.Err())
	}
}

// op checks the arguments and returns the key and the request options, and a
// non-nil delRange when the deletion must be announced first.
func (o *delOptions) op(args []string) (string, []clientv3.OpOption, *delRange, error) {
	if len(args) == 0 || len(args) > 2 {
		return "", nil, nil, ctlErrorf(exitBadArgs, "del command needs one argument as key and an optional argument as range_end")
	}
	if o.prefix && o.fromKey {
		return "", nil, nil, ctlErrorf(exitBadArgs, "`--prefix` and `--from-key` cannot be set at the same time, choose one")
	}
	var (
		opts []clientv3.OpOption
		warn *delRange
	)
	key := args[0]
	if len(args) > 1 {
		if o.prefix || o.fromKey {
			return "", nil, nil, ctlErrorf(exitBadArgs, "too many arguments, only accept one argument when `--prefix` or `--from-key` is set")
		}
		opts = append(opts, clientv3.WithRange(args[1]))
		if !o.isRange {
			warn = &delRange{key: args[0], end: args[1]}
		}
	}
	if o.prefix {
		key, opts = rangeOptions(key, opts, true, false)
	}
	if o.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if o.fromKey {
		key, opts = rangeOptions(key, opts, false, true)
	}
	return key, opts, warn, nil
}

func newGetCommand(s streams) *cobra.Command {
	var o getOptions
	cmd := &cobra.Command{
		Use:   "get [options] <key> [range_end]",
		Short: "Get a key, or the keys in [key, range_end)",
	}
	o.addFlags(cmd.Flags())
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, opts, err := o.op(args)
		if err != nil {
			return err
		}
		sess, err := newCtlSession(cmd, s, g, kvOutput)
		if err != nil {
			return err
		}
		if o.countOnly {
			if _, ok := sess.printer.(*fieldsPrinter); !ok {
				return ctlErrorf(exitBadArgs, "--count-only is only for `--write-out=fields`")
			}
		}
		if o.printValueOnly {
			sp, ok := sess.printer.(*simplePrinter)
			if !ok {
				return ctlErrorf(exitBadArgs, "print-value-only is only for `--write-out=simple`")
			}
			sp.valueOnly = true
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		resp, err := cli.Get(ctx, key, opts...)
		if err != nil {
			return rpcError(err)
		}
		sess.printer.get(resp)
		return nil
	}
	return cmd
}

func newPutCommand(s streams) *cobra.Command {
	var o putOptions
	cmd := &cobra.Command{
		Use:   "put [options] <key> [<value>]",
		Short: "Put a key; the value is read from stdin when not given",
		Long: `Put a key into the store.

Without a <value> argument (and without --ignore-value) the value is all of
standard input, so 'cairn put <key> < file' stores the file.

A value that starts with '-' would be read as a flag; put '--' before it:
  cairn put <key> -- -value`,
	}
	o.addFlags(cmd.Flags())
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, value, opts, err := o.op(args, ctlStdin(s.in))
		if err != nil {
			return err
		}
		sess, err := newCtlSession(cmd, s, g, kvOutput)
		if err != nil {
			return err
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		resp, err := cli.Put(ctx, key, value, opts...)
		if err != nil {
			return rpcError(err)
		}
		sess.printer.put(resp)
		return nil
	}
	return cmd
}

func newDelCommand(s streams) *cobra.Command {
	var o delOptions
	cmd := &cobra.Command{
		Use:   "del [options] <key> [range_end]",
		Short: "Delete a key, or the keys in [key, range_end)",
	}
	o.addFlags(cmd.Flags())
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		key, opts, warn, err := o.op(args)
		if err != nil {
			return err
		}
		if warn != nil {
			if err := warn.warn(cmd.Context(), s.err); err != nil {
				return err
			}
		}
		sess, err := newCtlSession(cmd, s, g, kvOutput)
		if err != nil {
			return err
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		resp, err := cli.Delete(ctx, key, opts...)
		if err != nil {
			return rpcError(err)
		}
		sess.printer.del(resp)
		return nil
	}
	return cmd
}

func newCompactionCommand(s streams) *cobra.Command {
	var physical bool
	cmd := &cobra.Command{
		Use:   "compaction [options] <revision>",
		Short: "Discard the key-value history older than <revision>",
	}
	cmd.Flags().BoolVar(&physical, "physical", false, "wait until the compacted revisions are removed from the backend")
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return ctlErrorf(exitBadArgs, "compaction command needs 1 argument")
		}
		rev, err := strconv.ParseInt(args[0], 10, 64)
		if err != nil {
			return ctlError(exitError, err)
		}
		var opts []clientv3.CompactOption
		if physical {
			opts = append(opts, clientv3.WithCompactPhysical())
		}
		sess, err := newCtlSession(cmd, s, g, noOutput)
		if err != nil {
			return err
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		defer cli.Close()
		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		if _, err := cli.Compact(ctx, rev, opts...); err != nil {
			return rpcError(err)
		}
		fmt.Fprintln(s.out, "compacted revision", rev)
		return nil
	}
	return cmd
}

// ctlStdin never returns nil, so that a command run without stdin sees an
// empty one.
func ctlStdin(r io.Reader) io.Reader {
	if r == nil {
		return strings.NewReader("")
	}
	return r
}
