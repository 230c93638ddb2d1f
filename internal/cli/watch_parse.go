package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The arguments of watch, on the command line and on the lines of
// interactive input ("watch [options] <key> [range_end] [-- command...]" or
// "progress"), with etcdctl's rules and messages.

// Argument errors, worded as etcdctl words them.
var (
	errWatchArgs         = errors.New("bad number of arguments")
	errWatchArgsEnv      = errors.New("bad number of arguments (found conflicting environment key)")
	errWatchArgsNoExec   = errors.New("bad number of arguments (found separator --, but no commands)")
	errWatchPrefixAndEnd = errors.New("`range_end` and `--prefix` are mutually exclusive")
)

// watchOptions are the flags of one watch.
type watchOptions struct {
	prefix         bool
	prevKV         bool
	progressNotify bool
	rev            int64
}

func (o *watchOptions) addFlags(fs *pflag.FlagSet) {
	fs.BoolVar(&o.prefix, "prefix", false, "watch every key that starts with <key>")
	fs.Int64Var(&o.rev, "rev", 0, "start from this revision, replaying the history since (default: now)")
	fs.BoolVar(&o.prevKV, "prev-kv", false, "print each changed key's previous value too")
	fs.BoolVar(&o.progressNotify, "progress-notify", false, "ask the server for periodic progress notifications")
}

// watchRequest is one watch to open: a key or range, its options, and the
// command to run for each event (none when exec is empty).
type watchRequest struct {
	key  string
	end  string // the range end; with hasEnd only
	opts watchOptions
	exec []string

	hasEnd bool
}

// newWatchRequest checks the key arguments (key and optional range end)
// against the options.
func newWatchRequest(keyArgs []string, opts watchOptions, exec []string) (watchRequest, error) {
	// etcdctl watches the first key and ignores any further arguments;
	// cairn refuses them.
	if len(keyArgs) < 1 || len(keyArgs) > 2 {
		return watchRequest{}, errWatchArgs
	}
	r := watchRequest{key: keyArgs[0], opts: opts, exec: exec}
	if len(keyArgs) == 2 {
		if opts.prefix {
			return watchRequest{}, errWatchPrefixAndEnd
		}
		r.end, r.hasEnd = keyArgs[1], true
	}
	return r, nil
}

// clientOptions returns the clientv3 options of the request.
func (r watchRequest) clientOptions() []clientv3.OpOption {
	opts := []clientv3.OpOption{clientv3.WithRev(r.opts.rev)}
	if r.hasEnd {
		opts = append(opts, clientv3.WithRange(r.end))
	}
	if r.opts.prefix {
		opts = append(opts, clientv3.WithPrefix())
	}
	if r.opts.prevKV {
		opts = append(opts, clientv3.WithPrevKV())
	}
	if r.opts.progressNotify {
		opts = append(opts, clientv3.WithProgressNotify())
	}
	return opts
}

// watchEnv is the key and range end set in the environment
// (CAIRN_WATCH_KEY or ETCDCTL_WATCH_KEY, and *_WATCH_RANGE_END), which
// stand for the key arguments.
type watchEnv struct {
	key, end string
}

// splitWatchArgs splits the positional arguments of a non-interactive
// watch into the key arguments and the command after "--"; dash is the
// number of arguments before the "--", or -1 without one.
func splitWatchArgs(args []string, dash int, env watchEnv) (keyArgs, exec []string, err error) {
	if dash >= 0 && dash == len(args) {
		return nil, nil, errWatchArgsNoExec
	}
	if dash < 0 && len(args) == 0 && env.key == "" {
		return nil, nil, errWatchArgs
	}
	keyArgs = args
	if dash >= 0 {
		keyArgs, exec = args[:dash], args[dash:]
	}
	if env.key != "" {
		if len(keyArgs) > 0 {
			return nil, nil, errWatchArgsEnv
		}
		keyArgs = env.keyArgs()
	}
	return keyArgs, exec, nil
}

func (e watchEnv) keyArgs() []string {
	if e.end != "" {
		return []string{e.key, e.end}
	}
	return []string{e.key}
}

// watchLine is one parsed line of interactive input: a watch to open, a
// progress request, or a line to report on stderr and skip.
type watchLine struct {
	req      *watchRequest
	progress bool
	invalid  string // the message for stderr
}

// parseWatchLine parses one line of interactive input (without its
// newline). progressNotify is the command line's --progress-notify, which
// applies to every watch. An error ends the command, as it ends etcdctl:
// a bad quoted word, a flag that does not parse, or missing arguments that
// only the flags revealed.
func parseWatchLine(line string, env watchEnv, progressNotify bool) (watchLine, error) {
	words, err := splitTxnWords(line)
	if err != nil {
		return watchLine{}, ctlErrorf(exitInvalidInput, "invalid watch request: %s (%v)", line, err)
	}
	if len(words) == 0 {
		return watchLine{invalid: fmt.Sprintf("Invalid command: %s (watch and progress supported)", line)}, nil
	}
	switch words[0] {
	case "progress":
		return watchLine{progress: true}, nil
	case "watch":
	default:
		return watchLine{invalid: fmt.Sprintf("Invalid command %s (only support watch)", line)}, nil
	}
	if len(words) < 2 && env.key == "" {
		return watchLine{invalid: fmt.Sprintf("Invalid command %s (command type or key is not provided)", line)}, nil
	}
	rest := words[1:]
	if len(rest) > 0 && rest[len(rest)-1] == "--" {
		return watchLine{}, ctlError(exitBadArgs, errWatchArgsNoExec)
	}
	var opts watchOptions
	var interactive bool
	fs := pflag.NewFlagSet("watch", pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.BoolVarP(&interactive, "interactive", "i", false, "")
	opts.addFlags(fs)
	if err := fs.Parse(rest); err != nil {
		return watchLine{}, ctlError(exitBadArgs, err)
	}
	opts.progressNotify = opts.progressNotify || progressNotify
	args, dash := fs.Args(), fs.ArgsLenAtDash()
	keyArgs, exec := args, []string(nil)
	if dash >= 0 {
		keyArgs, exec = args[:dash], args[dash:]
	}
	if dash < 0 {
		switch {
		case env.key == "" && len(keyArgs) == 0:
			return watchLine{}, ctlError(exitBadArgs, errWatchArgs)
		case env.key != "" && len(keyArgs) > 0:
			return watchLine{}, ctlError(exitBadArgs, errWatchArgsEnv)
		}
	}
	if env.key != "" {
		keyArgs = append(env.keyArgs(), keyArgs...)
	}
	req, err := newWatchRequest(keyArgs, opts, exec)
	if err != nil {
		return watchLine{invalid: fmt.Sprintf("Invalid command %s (%v)", line, err)}, nil
	}
	return watchLine{req: &req}, nil
}
