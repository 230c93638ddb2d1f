package cli_test

import (
	"context"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// A streamCase runs one command line through cairn (in process) and
// etcdctl, each on its own, against the same server. A command that does
// not end by itself is stopped once its output has settled (etcdctl's) or
// matches etcdctl's (cairn's); then only the output is compared.
type streamCase struct {
	args []string
	env  []string
	// stdin makes each run's input; nil for none.
	stdin func() io.Reader
	// ends marks a command that ends by itself: it is awaited, not stopped.
	ends bool
	// clearerError marks a case whose error message is deliberately more
	// specific than etcdctl's: stderr must hold an "Error:" line, and the
	// exit code and stdout must match.
	clearerError bool
	// usageOnStdout marks a flag cobra rejects: etcdctl prints its usage
	// on stdout, cairn only the error line.
	usageOnStdout bool
}

func (c streamCase) name() string {
	name := strings.Join(c.args, " ")
	if len(c.env) > 0 {
		name = strings.Join(c.env, " ") + " " + name
	}
	return name
}

func runStreamCase(t *testing.T, m *framework.Member, c streamCase, norm func(string) string) {
	t.Helper()
	if norm == nil {
		norm = func(s string) string { return s }
	}
	args := append([]string{"--endpoints=" + m.Endpoint()}, c.args...)
	input := func() io.Reader {
		if c.stdin == nil {
			return strings.NewReader("")
		}
		return c.stdin()
	}

	etcdctl := startEtcdctl(t, c.env, input(), args...)
	if c.ends {
		etcdctl.wait(time.Minute)
	} else {
		etcdctl.settle(600*time.Millisecond, 20*time.Second)
	}
	want := etcdctl.result(t)
	if !c.ends && want.stdout == "" {
		t.Fatalf("etcdctl %s printed nothing: %v", strings.Join(args, " "), want)
	}

	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	cairn := startCairn(t, input(), args...)
	if c.ends {
		cairn.wait(time.Minute)
	} else {
		cairn.waitOutput(func(s string) bool { return norm(s) == norm(want.stdout) }, 15*time.Second)
		cairn.settle(300*time.Millisecond, 5*time.Second)
	}
	got := cairn.result(t)

	switch {
	case c.usageOnStdout:
		if got.code == want.code && got.stdout == "" && strings.Contains(want.stderr, got.stderr) {
			return
		}
	case c.clearerError:
		if got.code == want.code && norm(got.stdout) == norm(want.stdout) && strings.Contains(got.stderr, "Error: ") {
			return
		}
	default:
		sameRun(t, "cairn "+strings.Join(args, " "), got, want, norm)
		return
	}
	t.Errorf("cairn %s\ngot %v\netcdctl gave %v", strings.Join(args, " "), got, want)
}

func runStreamCases(t *testing.T, m *framework.Member, cases []streamCase, norm func(string) string) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name(), func(t *testing.T) { runStreamCase(t, m, c, norm) })
	}
}

// script returns a stdin factory for a scripted interactive session: the
// lines one by one, pause apart, then the end of input after end.
func script(pause, end time.Duration, lines ...string) func() io.Reader {
	return func() io.Reader {
		steps := make([]scriptStep, len(lines))
		for i, l := range lines {
			steps[i] = scriptStep{pause: pause, text: l}
		}
		return newScriptedStdin(end, steps...)
	}
}

// TestWatchMatchesEtcdctl covers watch: replaying history from an old
// revision in every format, ranges, prefixes, previous values, the
// environment keys, commands run per event, interactive sessions, live
// events, every argument error, and a watch of a compacted revision.
func TestWatchMatchesEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	first := mustPut(t, cli, "w/a", "1").Header.Revision
	mustPut(t, cli, "w/b", "2")
	mustPut(t, cli, "w/a", "11")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "w/b"); err != nil {
		t.Fatal(err)
	}
	mustPut(t, cli, "w/c", "sp ace\nnew line")
	mustPut(t, cli, "w/\xff", "\x00\x01")
	mustPut(t, cli, "other", "x")
	last := mustPut(t, cli, "w/a", "111").Header.Revision
	rev := fmt.Sprintf("--rev=%d", first)

	var cases []streamCase
	add := func(args ...string) { cases = append(cases, streamCase{args: args}) }
	for _, w := range []string{"simple", "json", "fields", "protobuf"} {
		add("watch", "w/a", rev, "-w", w)
		add("watch", "w/", "--prefix", rev, "--prev-kv", "-w", w)
		add("watch", "w/", "--prefix", rev, "--prev-kv", "-w", w, "--hex")
	}
	add("watch", "w/a", "w/c", rev)
	add("watch", "w/b", "w/d", rev, "--prev-kv")
	add("watch", "", "--prefix", rev)
	add("watch", "w/a", fmt.Sprintf("--rev=%d", last))
	add("watch", "--prefix", "w/", rev)
	add("watch", "w/", "--prefix", rev, "--progress-notify")
	add("--hex", "watch", "w/", "--prefix", rev)
	add("watch", "w/a", rev, "--", "sh", "-c", `echo "$ETCD_WATCH_REVISION $ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE"`)
	add("watch", "w/", "--prefix", rev, "--", "echo", "event")
	cases = append(cases,
		streamCase{args: []string{"watch", rev}, env: []string{"ETCDCTL_WATCH_KEY=w/a"}},
		streamCase{args: []string{"watch", rev, "--prev-kv"}, env: []string{"ETCDCTL_WATCH_KEY=w/a", "ETCDCTL_WATCH_RANGE_END=w/z"}},
		streamCase{args: []string{"watch", rev, "--", "echo", "from env"}, env: []string{"ETCDCTL_WATCH_KEY=w/c"}},
	)

	// Commands that end by themselves: argument errors, a failing command
	// run for an event, and interactive sessions that end with stdin.
	end := func(args ...string) { cases = append(cases, streamCase{args: args, ends: true}) }
	end("watch")
	end("watch", "--prefix")
	end("watch", "a", "b", "--prefix")
	end("watch", "a", "--")
	end("watch", "a", "b", "--")
	end("watch", "--", "echo", "x")
	end("watch", "w/a", "-w", "table", rev)
	end("watch", "w/a", "-w", "yaml")
	end("watch", "w/a", rev, "--", "false")
	end("watch", "w/a", "--cert=")
	cases = append(cases,
		streamCase{args: []string{"watch", "w/b"}, env: []string{"ETCDCTL_WATCH_KEY=w/a"}, ends: true},
		streamCase{args: []string{"watch", "w/b", "--", "echo"}, env: []string{"ETCDCTL_WATCH_KEY=w/a"}, ends: true},
		streamCase{args: []string{"watch"}, env: []string{"ETCDCTL_WATCH_RANGE_END=w/z"}, ends: true},
		streamCase{args: []string{"watch", "w/a", "--rev=many"}, ends: true, usageOnStdout: true},
		streamCase{args: []string{"watch", "w/a", "--bogus"}, ends: true, usageOnStdout: true},
	)

	interactive := func(args []string, lines ...string) {
		cases = append(cases, streamCase{
			args:  append([]string{"watch", "-i"}, args...),
			stdin: script(600*time.Millisecond, 1200*time.Millisecond, lines...),
			ends:  true,
		})
	}
	interactive(nil, "watch w/a "+rev+"\n")
	interactive(nil, "watch w/a "+rev+"\n", "watch w/ --prefix --prev-kv "+rev+"\n")
	interactive([]string{"-w", "json"}, "watch w/c "+rev+"\n")
	interactive([]string{"-w", "fields", "--hex"}, "watch w/ --prefix "+rev+"\n")
	interactive(nil, "\n", "nonsense\n", "watch\n", "watch a b --prefix "+rev+"\n", "watch w/a "+rev+"\n")
	interactive(nil, "watch 'w/c' "+rev+"\r\n")
	interactive(nil, `watch "w/\xff" `+rev+" --prev-kv\n")
	interactive(nil, "watch w/a "+rev+` -- sh -c 'echo "$ETCD_WATCH_KEY=$ETCD_WATCH_VALUE"'`+"\n")
	interactive(nil, "watch w/a --bogus\n", "watch w/a "+rev+"\n")
	interactive(nil, "watch --prefix\n")
	interactive(nil, "watch w/a --\n")
	interactive(nil, "watch w/a -w json\n")
	interactive(nil, "watch w/a --rev=x\n")
	interactive(nil, "watch w/a "+rev) // no newline: never read as a line
	interactive(nil, "watch w/a "+rev+"\n", "progress\n")
	cases = append(cases, streamCase{
		args:  []string{"watch", "-i"},
		env:   []string{"ETCDCTL_WATCH_KEY=w/a"},
		stdin: script(600*time.Millisecond, 1200*time.Millisecond, "watch "+rev+"\n", "watch w/c "+rev+"\n"),
		ends:  true,
	})
	cases = append(cases, streamCase{
		args:         []string{"watch", "-i"},
		stdin:        script(100*time.Millisecond, 500*time.Millisecond, `watch "w/\q"`+"\n"),
		ends:         true,
		clearerError: true,
	})
	runStreamCases(t, m, cases, nil)

	t.Run("live events", func(t *testing.T) {
		// The watch starts at the next revision, so that the events are
		// all seen even if it opens after the first write; it is given a
		// moment to open first, so that it mostly waits for them.
		args := func() []string {
			return []string{"--endpoints=" + m.Endpoint(), "watch", "live/", "--prefix", "--prev-kv",
				fmt.Sprintf("--rev=%d", currentRevision(t, cli)+1)}
		}
		run := func(start func() *running) result {
			r := start()
			time.Sleep(500 * time.Millisecond)
			mustPut(t, cli, "live/1", "one")
			mustPut(t, cli, "live/2", "two")
			dctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := cli.Delete(dctx, "live/", clientv3.WithPrefix()); err != nil {
				t.Fatal(err)
			}
			r.waitOutput(func(s string) bool { return strings.Count(s, "\n") >= 8 }, 10*time.Second)
			r.settle(300*time.Millisecond, 3*time.Second)
			return r.result(t)
		}
		want := run(func() *running { return startEtcdctl(t, nil, nil, args()...) })
		got := run(func() *running { return startCairn(t, nil, args()...) })
		sameRun(t, "live watch", got, want, func(s string) string { return s })
		if want.stdout == "" {
			t.Error("etcdctl saw no live events")
		}
	})

	// The history before first+2 is compacted away: a watch from before it
	// is canceled by the server, with etcdctl's messages and exit code 5.
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel2()
	if _, err := cli.Compact(ctx2, first+2); err != nil {
		t.Fatal(err)
	}
	cases = nil
	for _, w := range []string{"simple", "json", "fields", "protobuf"} {
		end("watch", "w/a", rev, "-w", w)
	}
	end("watch", "w/", "--prefix", "--rev=1", "--prev-kv")
	interactive(nil, "watch w/a "+rev+"\n", "watch w/c "+fmt.Sprintf("--rev=%d", first+2)+"\n")
	t.Run("compacted", func(t *testing.T) { runStreamCases(t, m, cases, nil) })

	// A watch from the compacted revision itself still works.
	t.Run("at the compaction", func(t *testing.T) {
		runStreamCase(t, m, streamCase{args: []string{"watch", "w/", "--prefix", fmt.Sprintf("--rev=%d", first+2)}}, nil)
	})
}

// TestWatchExtraArguments checks the one argument rule cairn keeps stricter
// than etcdctl, which watches the first key and ignores the rest.
func TestWatchExtraArguments(t *testing.T) {
	isolateEnv(t)
	got := runCairn(t, "", "watch", "a", "b", "c", "--endpoints="+closedEndpoint(t))
	if got.code != 128 || got.stderr != "Error: bad number of arguments\n" {
		t.Errorf("watch a b c: %v, want exit 128 and a bad-arguments error", got)
	}
	got = runCairn(t, "", "watch", "-i", "a", "--endpoints="+closedEndpoint(t))
	if got.code != 128 || !strings.Contains(got.stderr, "stdin") {
		t.Errorf("watch -i a: %v, want exit 128 and an error pointing at stdin", got)
	}
}

// TestWatchHistory checks what a watch from an old revision prints against
// the writes themselves, not only against etcdctl: exactly that history, in
// order, with previous values, and nothing more; and a watch from before
// the compaction ends with etcdctl's compacted error.
func TestWatchHistory(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	first := mustPut(t, cli, "h/a", "1").Header.Revision
	mustPut(t, cli, "h/b", "2")
	mustPut(t, cli, "zz", "outside")
	mustPut(t, cli, "h/a", "3")
	if _, err := cli.Delete(ctx, "h/b"); err != nil {
		t.Fatal(err)
	}
	want := "PUT\nh/a\n1\nPUT\nh/b\n2\nPUT\nh/a\n1\nh/a\n3\nDELETE\nh/b\n2\nh/b\n\n"
	r := startCairn(t, nil, "--endpoints="+m.Endpoint(), "watch", "h/", "--prefix", "--prev-kv", fmt.Sprintf("--rev=%d", first))
	r.waitOutput(func(s string) bool { return s == want }, 10*time.Second)
	r.settle(500*time.Millisecond, 3*time.Second)
	if got := r.result(t); got.stdout != want || got.stderr != "" {
		t.Errorf("watch from revision %d: %v\nwant stdout:\n%s", first, got, want)
	}

	if _, err := cli.Compact(ctx, first+2); err != nil {
		t.Fatal(err)
	}
	r = startCairn(t, nil, "--endpoints="+m.Endpoint(), "watch", "h/", "--prefix", fmt.Sprintf("--rev=%d", first))
	if !r.wait(10 * time.Second) {
		t.Fatal("a watch of a compacted revision did not end")
	}
	wantErr := "watch was canceled (etcdserver: mvcc: required revision has been compacted)\nError: watch is canceled by the server\n"
	if got := r.result(t); got.code != 5 || got.stdout != "" || got.stderr != wantErr {
		t.Errorf("watch of a compacted revision: %v\nwant exit 5 and stderr:\n%s", got, wantErr)
	}
}
