package cli_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/cli"
	"github.com/cairn-io/cairn/tests/framework"
)

// testServer starts the store the client command tests talk to: cairn serve,
// or the reference etcd v3.6.16 when CAIRN_CLI_TEST_SERVER=etcd.
func testServer(t *testing.T) *framework.Member {
	t.Helper()
	var bin string
	switch kind := os.Getenv("CAIRN_CLI_TEST_SERVER"); kind {
	case "", "cairn":
		bin = framework.CairnBinary(t)
	case "etcd":
		bin = framework.EtcdBinary(t)
	default:
		t.Fatalf("CAIRN_CLI_TEST_SERVER=%q: want cairn or etcd", kind)
	}
	return framework.Start(t, framework.Config{Binary: bin})
}

// result is what one run of a command line produced.
type result struct {
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return fmt.Sprintf("exit %d\n--- stdout:\n%s--- stderr:\n%s", r.code, r.stdout, r.stderr)
}

// runCairn runs a cairn command line in process and reports it as the cairn
// binary would: main prints an error as "Error: <err>" and exits with the
// ExitError's code, or 1.
func runCairn(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	err := cli.Run(ctx, args, strings.NewReader(stdin), &out, &errOut)
	code := 0
	if err != nil {
		code = 1
		var exit cli.ExitError
		if errors.As(err, &exit) {
			code = exit.Code
			if exit.Err != nil {
				fmt.Fprintln(&errOut, "Error:", exit.Err)
			}
		} else {
			fmt.Fprintln(&errOut, "Error:", err)
		}
	}
	return result{stdout: out.String(), stderr: errOut.String(), code: code}
}

// zapLine matches the JSON log lines etcdctl's client writes to stderr
// (retries, warnings); cairn's client commands log nothing unless --debug.
var zapLine = regexp.MustCompile(`(?m)^\{"level":.*\n`)

// runEtcdctl runs the official etcdctl 3.6.16 with env added to a clean
// environment.
func runEtcdctl(t *testing.T, env []string, stdin string, args ...string) result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, framework.EtcdctlBinary(t), args...)
	cmd.Env = append(cleanEnv(), env...)
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err := cmd.Run()
	code := 0
	if err != nil {
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("etcdctl %q: %v", args, err)
		}
		code = exit.ExitCode()
	}
	return result{stdout: out.String(), stderr: zapLine.ReplaceAllString(errOut.String(), ""), code: code}
}

// cleanEnv is the test's environment without the variables etcdctl and the
// client commands read as flags.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "ETCDCTL_") && !strings.HasPrefix(kv, "CAIRN_") {
			env = append(env, kv)
		}
	}
	return env
}

// isolateEnv clears, for the rest of the test, every variable the in-process
// client commands would read as a flag.
func isolateEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ETCDCTL_") || (strings.HasPrefix(name, "CAIRN_") && name != "CAIRN_CLI_TEST_SERVER" && !strings.HasPrefix(name, "CAIRN_TEST_")) {
			t.Setenv(name, "")
		}
	}
}

// currentRevision is the store's revision now.
func currentRevision(t *testing.T, cli *clientv3.Client) int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "cairn-ctl-test-revision-probe")
	if err != nil {
		t.Fatal(err)
	}
	return resp.Header.Revision
}

// closedEndpoint returns a loopback address nothing listens on.
func closedEndpoint(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

var (
	// Revisions in json and fields output; normalize rewrites them relative
	// to the revision the run started at.
	jsonRevision   = regexp.MustCompile(`"(revision|create_revision|mod_revision|compact_revision)":(\d+)`)
	fieldsRevision = regexp.MustCompile(`"((?:Prev)?(?:Revision|CreateRevision|ModRevision))" : (\d+)`)
	compactedRev   = regexp.MustCompile(`compacted revision (\d+)`)

	// Durations measured by endpoint health.
	tookSimple = regexp.MustCompile(`took = \S+`)
	tookJSON   = regexp.MustCompile(`"took":"[^"]*"`)
	tookFields = regexp.MustCompile(`(?m)^"Took" : .*$`)
	duration   = regexp.MustCompile(`\b\d+(\.\d+)?(ns|µs|ms|s|m)\b`)
	spaceRun   = regexp.MustCompile(` +`)
	dashRun    = regexp.MustCompile(`-+`)
)

// normalize makes two runs comparable: revisions become offsets from base,
// the revision the run started at, and measured durations are blanked. In a
// table with a duration the column widths depend on it, so runs of spaces
// and dashes are collapsed too.
func normalize(s string, base int64) string {
	rel := func(n string) string {
		v, _ := strconv.ParseInt(n, 10, 64)
		return fmt.Sprintf("R%+d", v-base)
	}
	s = jsonRevision.ReplaceAllStringFunc(s, func(m string) string {
		sub := jsonRevision.FindStringSubmatch(m)
		return fmt.Sprintf("%q:%s", sub[1], rel(sub[2]))
	})
	s = fieldsRevision.ReplaceAllStringFunc(s, func(m string) string {
		sub := fieldsRevision.FindStringSubmatch(m)
		return fmt.Sprintf("%q : %s", sub[1], rel(sub[2]))
	})
	s = compactedRev.ReplaceAllStringFunc(s, func(m string) string {
		return "compacted revision " + rel(compactedRev.FindStringSubmatch(m)[1])
	})
	s = tookSimple.ReplaceAllString(s, "took = T")
	s = tookJSON.ReplaceAllString(s, `"took":"T"`)
	s = tookFields.ReplaceAllString(s, `"Took" : T`)
	if strings.HasPrefix(s, "+-") && duration.MatchString(s) {
		s = duration.ReplaceAllString(s, "T")
		s = spaceRun.ReplaceAllString(s, " ")
		s = dashRun.ReplaceAllString(s, "-")
	}
	return s
}
