package cli

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sync"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func newWatchCommand(s streams) *cobra.Command {
	var (
		o           watchOptions
		interactive bool
	)
	cmd := &cobra.Command{
		Use:   "watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]",
		Short: "Print the changes to a key, a range or a prefix as they happen",
		Long: `Print each change to a key, to the keys in [key, range_end), or with --prefix
to the keys under a prefix, until the command is interrupted. With --rev the
changes since that revision are replayed first.

Each event prints as PUT or DELETE, the key and the value (with --prev-kv the
previous key and value in between). After "--", a command runs for each event
with ETCD_WATCH_REVISION, ETCD_WATCH_EVENT_TYPE, ETCD_WATCH_KEY and
ETCD_WATCH_VALUE in its environment:

  cairn watch config/ --prefix -- sh -c 'echo "$ETCD_WATCH_KEY changed"'

The key and range end can also come from CAIRN_WATCH_KEY and
CAIRN_WATCH_RANGE_END (or ETCDCTL_WATCH_KEY and ETCDCTL_WATCH_RANGE_END).

With --interactive, watch requests are read from stdin, one a line, each
opening another watch: "watch [options] <key> [range_end] [-- command...]",
or "progress" to ask every watch for a progress notification. The command
ends when stdin does.

The command exits 5 when the server cancels the watch (e.g. its revision was
compacted).`,
	}
	cmd.Flags().BoolVarP(&interactive, "interactive", "i", false, "read watch requests from stdin, one a line")
	o.addFlags(cmd.Flags())
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		env, err := watchEnvironment(os.Getenv)
		if err != nil {
			return err
		}
		var req watchRequest
		if interactive {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "watch --interactive takes no arguments: give the watch requests on stdin")
			}
		} else {
			keyArgs, execArgs, err := splitWatchArgs(args, cmd.ArgsLenAtDash(), env)
			if err != nil {
				return ctlError(exitBadArgs, err)
			}
			if req, err = newWatchRequest(keyArgs, o, execArgs); err != nil {
				return ctlError(exitBadArgs, err)
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
		w := &watcher{sess: sess, cli: cli, out: s.out, errOut: s.err}
		if interactive {
			return w.interactive(cmd.Context(), ctlStdin(s.in), env, o.progressNotify)
		}
		ctx := cmd.Context()
		if err := w.watch(ctx, req); err != nil {
			return err
		}
		if ctx.Err() != nil {
			return interrupted(ctx)
		}
		if err := cli.Close(); err != nil {
			return ctlError(exitBadConnection, err)
		}
		return ctlErrorf(exitInterrupted, "watch is canceled by the server")
	}
	return cmd
}

// watchEnvironment reads the key and range end from the environment:
// CAIRN_WATCH_KEY and CAIRN_WATCH_RANGE_END, or when the key is unset the
// ETCDCTL_ ones.
func watchEnvironment(getenv func(string) string) (watchEnv, error) {
	for _, prefix := range ctlEnvPrefixes {
		keyVar, endVar := ctlEnvKey(prefix, "watch-key"), ctlEnvKey(prefix, "watch-range-end")
		env := watchEnv{key: getenv(keyVar), end: getenv(endVar)}
		if env.key == "" && env.end != "" {
			return watchEnv{}, ctlErrorf(exitBadArgs, "%s is empty but got %s=%q", keyVar, endVar, env.end)
		}
		if env.key != "" {
			return env, nil
		}
	}
	return watchEnv{}, nil
}

// watcher prints the events of one or more watches. Several watches (in
// interactive mode) print through it at once: each response is written
// whole, under mu.
type watcher struct {
	sess        *ctlSession
	cli         *clientv3.Client
	out, errOut io.Writer
	// shared is set when several watches run: the commands run for their
	// events then write through mu too.
	shared bool

	mu sync.Mutex
}

// watch opens req and prints its responses until the watch ends: ctx is
// done or the server canceled it. The error is a failed exec command's.
func (w *watcher) watch(ctx context.Context, req watchRequest) error {
	ch := w.cli.Watch(clientv3.WithRequireLeader(ctx), req.key, req.clientOptions()...)
	var buf bytes.Buffer
	p, err := newPrinter(w.sess.g.writeOut, w.sess.g.hex, &buf, &buf)
	if err != nil {
		return err
	}
	for resp := range ch {
		buf.Reset()
		if resp.Canceled {
			w.write(w.errOut, fmt.Sprintf("watch was canceled (%v)\n", resp.Err()))
		}
		if resp.IsProgressNotify() {
			fmt.Fprintf(&buf, "progress notify: %d\n", resp.Header.Revision)
		}
		p.watch(resp)
		w.write(w.out, buf.String())
		if len(req.exec) > 0 {
			if err := w.exec(ctx, req.exec, resp); err != nil {
				return err
			}
		}
	}
	return nil
}

func (w *watcher) write(to io.Writer, text string) {
	if text == "" {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	io.WriteString(to, text)
}

// exec runs the command once for each event of resp, with the event in its
// environment. A command that fails ends the watch command.
func (w *watcher) exec(ctx context.Context, argv []string, resp clientv3.WatchResponse) error {
	for _, ev := range resp.Events {
		cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
		cmd.Env = append(os.Environ(),
			fmt.Sprintf("ETCD_WATCH_REVISION=%d", resp.Header.Revision),
			fmt.Sprintf("ETCD_WATCH_EVENT_TYPE=%q", ev.Type),
			fmt.Sprintf("ETCD_WATCH_KEY=%q", ev.Kv.Key),
			fmt.Sprintf("ETCD_WATCH_VALUE=%q", ev.Kv.Value),
		)
		cmd.Stdout, cmd.Stderr = w.out, w.errOut
		if w.shared {
			cmd.Stdout = &lockedWriter{w: w.out, mu: &w.mu}
			cmd.Stderr = &lockedWriter{w: w.errOut, mu: &w.mu}
		}
		if err := cmd.Run(); err != nil {
			w.write(w.errOut, fmt.Sprintf("command %q error (%v)\n", argv, err))
			return ExitError{Code: exitError}
		}
	}
	return nil
}

// interactive reads watch requests from in, one a line, and opens each as
// another watch, until in ends (an error, as in etcdctl), a command run for
// an event fails or ctx is done.
func (w *watcher) interactive(ctx context.Context, in io.Reader, env watchEnv, progressNotify bool) error {
	w.shared = true
	ctx, cancel := context.WithCancel(ctx)
	type readResult struct {
		line string
		err  error
	}
	lines := make(chan readResult)
	go func() {
		r := bufio.NewReader(in)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				line = ""
			}
			select {
			case lines <- readResult{line: line, err: err}:
			case <-ctx.Done():
				return
			}
			if err != nil {
				return
			}
		}
	}()
	failed := make(chan error, 1)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for {
		var rr readResult
		select {
		case rr = <-lines:
		case err := <-failed:
			return err
		case <-ctx.Done():
			return interrupted(ctx)
		}
		if rr.err != nil {
			return ctlErrorf(exitInvalidInput, "error reading watch request line: %w", rr.err)
		}
		line := rr.line[:len(rr.line)-1]
		parsed, err := parseWatchLine(line, env, progressNotify)
		switch {
		case err != nil:
			return err
		case parsed.invalid != "":
			w.write(w.errOut, parsed.invalid+"\n")
		case parsed.progress:
			if err := w.cli.RequestProgress(clientv3.WithRequireLeader(ctx)); err != nil {
				return rpcError(err)
			}
		default:
			req := *parsed.req
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := w.watch(ctx, req); err != nil {
					select {
					case failed <- err:
					default:
					}
				}
			}()
		}
	}
}

// lockedWriter serialises writes to w under mu.
type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
