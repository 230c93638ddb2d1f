package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/cli"
	"github.com/cairn-io/cairn/tests/framework"
)

// Helpers for the commands that run until they are stopped (watch, lease
// keep-alive) or read their input over time (watch --interactive): both
// tools are started, watched while they print, and stopped.

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// running is a command started in the background.
type running struct {
	out, errOut syncBuffer
	done        chan struct{}
	code        int
	stop        func() // asks the command to end, as Ctrl-C would
}

func (r *running) stdout() string { return r.out.String() }

// wait waits up to d for the command to end and reports whether it did.
func (r *running) wait(d time.Duration) bool {
	select {
	case <-r.done:
		return true
	default:
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-r.done:
		return true
	case <-t.C:
		return false
	}
}

// result stops the command if it still runs and returns what it printed.
// A command that had to be stopped reports exit code -1.
func (r *running) result(t *testing.T) result {
	t.Helper()
	stopped := false
	if !r.wait(0) {
		stopped = true
		r.stop()
		if !r.wait(30 * time.Second) {
			t.Fatal("the command did not stop")
		}
	}
	code := r.code
	if stopped {
		code = -1
	}
	return result{stdout: r.out.String(), stderr: zapLine.ReplaceAllString(r.errOut.String(), ""), code: code}
}

// startCairn runs a cairn command line in process; stop cancels its
// context, as the binary's SIGINT handler does.
func startCairn(t *testing.T, stdin io.Reader, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	r := &running{done: make(chan struct{}), stop: cancel}
	if stdin == nil {
		stdin = strings.NewReader("")
	}
	go func() {
		defer close(r.done)
		defer cancel()
		err := cli.Run(ctx, args, stdin, &r.out, &r.errOut)
		if err != nil {
			r.code = 1
			var exit cli.ExitError
			if errors.As(err, &exit) {
				r.code = exit.Code
				if exit.Err != nil {
					fmt.Fprintln(&r.errOut, "Error:", exit.Err)
				}
			} else {
				fmt.Fprintln(&r.errOut, "Error:", err)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		r.wait(30 * time.Second)
	})
	return r
}

// startEtcdctl runs the official etcdctl with env added to a clean
// environment; stop sends it SIGINT.
func startEtcdctl(t *testing.T, env []string, stdin io.Reader, args ...string) *running {
	t.Helper()
	cmd := exec.Command(framework.EtcdctlBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = stdin
	r := &running{done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = &r.out, &r.errOut
	if err := cmd.Start(); err != nil {
		t.Fatalf("etcdctl %q: %v", args, err)
	}
	r.stop = func() { cmd.Process.Signal(syscall.SIGINT) }
	go func() {
		defer close(r.done)
		err := cmd.Wait()
		var exit *exec.ExitError
		if errors.As(err, &exit) {
			r.code = exit.ExitCode()
		}
	}()
	t.Cleanup(func() {
		cmd.Process.Kill()
		r.wait(30 * time.Second)
	})
	return r
}

// settle waits until the command has ended, or it has printed something
// and its stdout has not changed for quiet, or max has passed.
func (r *running) settle(quiet, max time.Duration) {
	deadline := time.Now().Add(max)
	last, since := r.stdout(), time.Now()
	for time.Now().Before(deadline) {
		if r.wait(20 * time.Millisecond) {
			return
		}
		if out := r.stdout(); out != last {
			last, since = out, time.Now()
		} else if last != "" && time.Since(since) >= quiet {
			return
		}
	}
}

// waitOutput waits up to max for the command's stdout to satisfy ok.
func (r *running) waitOutput(ok func(string) bool, max time.Duration) bool {
	deadline := time.Now().Add(max)
	for time.Now().Before(deadline) {
		if ok(r.stdout()) {
			return true
		}
		if r.wait(20 * time.Millisecond) {
			return ok(r.stdout())
		}
	}
	return false
}

// scriptStep is a piece of stdin, given after a pause.
type scriptStep struct {
	pause time.Duration
	text  string
}

// scriptedStdin gives each step's text after its pause, then ends after a
// last pause: long enough for the watches opened to print.
type scriptedStdin struct {
	steps []scriptStep
	end   time.Duration
	pend  []byte
}

func newScriptedStdin(end time.Duration, steps ...scriptStep) *scriptedStdin {
	return &scriptedStdin{steps: steps, end: end}
}

func (s *scriptedStdin) Read(p []byte) (int, error) {
	for len(s.pend) == 0 {
		if len(s.steps) == 0 {
			if s.end > 0 {
				time.Sleep(s.end)
				s.end = 0
			}
			return 0, io.EOF
		}
		st := s.steps[0]
		s.steps = s.steps[1:]
		time.Sleep(st.pause)
		s.pend = []byte(st.text)
	}
	n := copy(p, s.pend)
	s.pend = s.pend[n:]
	return n, nil
}

// Lease IDs and remaining TTLs differ between two runs; normalizeLeases
// blanks them. Hex IDs are 16 digits in the lease commands' output.
var (
	hexID        = regexp.MustCompile(`\b[0-9a-f]{16}\b`)
	jsonLeaseID  = regexp.MustCompile(`"(ID|id)":\d+`)
	fieldsID     = regexp.MustCompile(`(?m)^"ID" : \d+$`)
	remainingTTL = regexp.MustCompile(`remaining\(-?\d+s\)`)
	jsonTTL      = regexp.MustCompile(`"ttl":-?\d+`)
	fieldsTTL    = regexp.MustCompile(`(?m)^"TTL" : -?\d+\n"GrantedTTL"`)
	tookDefrag   = regexp.MustCompile(`took [0-9.]+(ns|µs|ms|s|m[0-9.]+s)`)
	pbRevision   = regexp.MustCompile(`revision:\d+`)
)

func normalizeLeases(s string) string {
	s = hexID.ReplaceAllString(s, "<ID>")
	s = jsonLeaseID.ReplaceAllString(s, `"$1":<ID>`)
	s = fieldsID.ReplaceAllString(s, `"ID" : <ID>`)
	s = remainingTTL.ReplaceAllString(s, "remaining(<TTL>)")
	s = jsonTTL.ReplaceAllString(s, `"ttl":<TTL>`)
	s = fieldsTTL.ReplaceAllString(s, "\"TTL\" : <TTL>\n\"GrantedTTL\"")
	// A header printed as protobuf text, in an error.
	s = pbRevision.ReplaceAllString(s, "revision:<REV>")
	return sortAttachedKeys(s)
}

var (
	simpleKeys = regexp.MustCompile(`attached keys\(\[([^]]*)\]\)`)
	jsonKeys   = regexp.MustCompile(`"keys":\[([^]]*)\]`)
	fieldsKeys = regexp.MustCompile(`(?m)(^"Key" : .*\n)+`)
)

// sortAttachedKeys sorts the keys lease timetolive --keys lists: etcd
// lists them in no particular order.
func sortAttachedKeys(s string) string {
	sorted := func(items []string, sep string) string {
		slices.Sort(items)
		return strings.Join(items, sep)
	}
	s = simpleKeys.ReplaceAllStringFunc(s, func(m string) string {
		return "attached keys([" + sorted(strings.Fields(simpleKeys.FindStringSubmatch(m)[1]), " ") + "])"
	})
	s = jsonKeys.ReplaceAllStringFunc(s, func(m string) string {
		return `"keys":[` + sorted(strings.Split(jsonKeys.FindStringSubmatch(m)[1], ","), ",") + "]"
	})
	return fieldsKeys.ReplaceAllStringFunc(s, func(m string) string {
		return sorted(strings.Split(strings.TrimSuffix(m, "\n"), "\n"), "\n") + "\n"
	})
}

// sameRun compares two results after norm; a code of -1 (stopped) is not
// compared.
func sameRun(t *testing.T, desc string, got, want result, norm func(string) string) {
	t.Helper()
	gotOut, wantOut := norm(got.stdout), norm(want.stdout)
	gotErr, wantErr := norm(got.stderr), norm(want.stderr)
	codes := got.code == want.code || (got.code == -1 && want.code == -1)
	if !codes || gotOut != wantOut || gotErr != wantErr {
		t.Errorf("%s:\ncairn got %v\netcdctl gave %v", desc, got, want)
	}
}

// testServerArgs is testServer with extra server flags.
func testServerArgs(t *testing.T, args ...string) *framework.Member {
	t.Helper()
	bin := framework.CairnBinary
	if os.Getenv("CAIRN_CLI_TEST_SERVER") == "etcd" {
		bin = framework.EtcdBinary
	}
	return framework.Start(t, framework.Config{Binary: bin(t), Args: args})
}

// serverIsEtcd reports whether the tests run against etcd.
func serverIsEtcd() bool { return os.Getenv("CAIRN_CLI_TEST_SERVER") == "etcd" }

// A shotSuite runs ctlCases like compatSuite, with a prepare step that
// sets up fresh state before each tool's run (a new lease, a raised alarm)
// and returns the values {name} stands for in the arguments, and a
// normaliser for what differs between runs beyond revisions.
type shotSuite struct {
	m       *framework.Member
	cli     *clientv3.Client
	prepare func(t *testing.T) map[string]string
	norm    func(string) string
}

func (s *shotSuite) run(t *testing.T, c ctlCase) {
	t.Helper()
	norm := s.norm
	if norm == nil {
		norm = func(s string) string { return s }
	}
	do := func(tool func(args []string, stdin string) result) (result, []string) {
		var vars map[string]string
		if s.prepare != nil {
			vars = s.prepare(t)
		}
		base := currentRevision(t, s.cli)
		expand := func(text string) string {
			text = strings.ReplaceAll(text, "{rev}", fmt.Sprint(base))
			for k, v := range vars {
				text = strings.ReplaceAll(text, "{"+k+"}", v)
			}
			return text
		}
		var args []string
		if !c.noEndpoint {
			ep := s.m.Endpoint()
			if c.endpoint != "" {
				ep = c.endpoint
			}
			args = append(args, "--endpoints="+ep)
		}
		for _, a := range c.args {
			args = append(args, expand(a))
		}
		r := tool(args, expand(c.stdin))
		r.stdout = norm(normalize(r.stdout, base))
		r.stderr = norm(normalize(r.stderr, base))
		return r, args
	}
	want, args := do(func(args []string, stdin string) result { return runEtcdctl(t, c.env, stdin, args...) })
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	got, _ := do(func(args []string, stdin string) result { return runCairn(t, stdin, args...) })

	switch {
	case c.usageOnStdout:
		if got.code == want.code && got.stdout == "" && strings.Contains(want.stderr, got.stderr) {
			return
		}
	case got.code != want.code || got.stdout != want.stdout:
	case c.clearerError && strings.Contains(got.stderr, "Error: "):
		return
	case !c.clearerError && got.stderr == want.stderr:
		return
	}
	t.Errorf("cairn %s\ngot %v\netcdctl %s\nwant %v", strings.Join(args, " "), got, strings.Join(args, " "), want)
}

func (s *shotSuite) runAll(t *testing.T, cases []ctlCase) {
	t.Helper()
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		if len(c.env) > 0 {
			name = strings.Join(c.env, " ") + " " + name
		}
		t.Run(name, func(t *testing.T) { s.run(t, c) })
	}
}
