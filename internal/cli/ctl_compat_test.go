package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-io/cairn/tests/framework"
)

// A ctlCase runs one command line through cairn (in process) and through the
// official etcdctl against the same server, and expects the same stdout,
// stderr and exit code, up to the revisions a write consumes and measured
// durations (see normalize).
type ctlCase struct {
	args  []string // after --endpoints; {name} is replaced from vars
	stdin string   // {name} is replaced from vars
	env   []string // KEY=VALUE for both tools
	// endpoint replaces the server's endpoint (e.g. a dead one); noEndpoint
	// leaves --endpoints off altogether (for the environment to set).
	endpoint   string
	noEndpoint bool
	// clearerError marks a case whose error message is deliberately more
	// specific than etcdctl's: stderr must then hold an "Error:" line, but
	// not the same words.
	clearerError bool
	// usageOnStdout marks a flag that cobra rejects: etcdctl then prints
	// its usage on stdout, cairn only the error. The exit code and the
	// error line must match.
	usageOnStdout bool
}

// compatSuite holds the server and the values the cases refer to.
type compatSuite struct {
	m    *framework.Member
	cli  *clientv3.Client
	vars map[string]string
	// reset, when set, runs before each tool's run so that a command that
	// writes finds the same data both times.
	reset func(t *testing.T)
}

func (s *compatSuite) expand(text string, rev int64) string {
	text = strings.ReplaceAll(text, "{rev}", fmt.Sprint(rev))
	for k, v := range s.vars {
		text = strings.ReplaceAll(text, "{"+k+"}", v)
	}
	return text
}

func (s *compatSuite) run(t *testing.T, c ctlCase) {
	t.Helper()
	prepare := func() (args []string, stdin string, base int64) {
		if s.reset != nil {
			s.reset(t)
		}
		base = currentRevision(t, s.cli)
		if !c.noEndpoint {
			ep := s.m.Endpoint()
			if c.endpoint != "" {
				ep = c.endpoint
			}
			args = append(args, "--endpoints="+ep)
		}
		for _, a := range c.args {
			args = append(args, s.expand(a, base))
		}
		return args, s.expand(c.stdin, base), base
	}

	args, stdin, base := prepare()
	want := runEtcdctl(t, c.env, stdin, args...)
	want.stdout, want.stderr = normalize(want.stdout, base), normalize(want.stderr, base)

	args, stdin, base = prepare()
	for _, kv := range c.env {
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
	}
	got := runCairn(t, stdin, args...)
	got.stdout, got.stderr = normalize(got.stdout, base), normalize(got.stderr, base)

	c.compare(t, args, got, want)
}

// compare reports where cairn's result differs from etcdctl's in a way the
// case does not allow.
func (c ctlCase) compare(t *testing.T, args []string, got, want result) {
	t.Helper()
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

func (s *compatSuite) runAll(t *testing.T, cases []ctlCase) {
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		if c.stdin != "" {
			name += " <" + strings.ReplaceAll(c.stdin, "\n", `\n`)
		}
		t.Run(name, func(t *testing.T) { s.run(t, c) })
	}
}

func mustPut(t *testing.T, cli *clientv3.Client, key, val string, opts ...clientv3.OpOption) *clientv3.PutResponse {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Put(ctx, key, val, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// tryGrant grants a lease, or returns false when the server has no lease
// service yet; the cases that need a lease are then left out.
func tryGrant(t *testing.T, cli *clientv3.Client) (clientv3.LeaseID, bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Grant(ctx, 3600)
	if status.Code(err) == codes.Unimplemented {
		t.Logf("the server has no leases (%v): leaving out the cases that need one", err)
		return 0, false
	}
	if err != nil {
		t.Fatal(err)
	}
	return resp.ID, true
}

// hasAuth reports whether the server implements the auth service; without
// it a client given --user cannot even connect.
func hasAuth(t *testing.T, cli *clientv3.Client) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := cli.AuthStatus(ctx)
	if status.Code(err) == codes.Unimplemented {
		t.Logf("the server has no auth service (%v): leaving out --user", err)
		return false
	}
	if err != nil {
		t.Fatal(err)
	}
	return true
}

// TestReadCommandsMatchEtcdctl covers the commands that do not change the
// store: get in every form and format, read-only txns, endpoint health and
// status, and every argument error.
func TestReadCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	lease, leases := tryGrant(t, cli)
	auth := hasAuth(t, cli)
	mustPut(t, cli, "a", "1")
	mustPut(t, cli, "b", "2")
	firstC := mustPut(t, cli, "c", "3").Header.Revision
	mustPut(t, cli, "c", "33")
	mustPut(t, cli, "c", "333")
	mid := mustPut(t, cli, "foo/1", "x").Header.Revision
	mustPut(t, cli, "foo/2", "y")
	mustPut(t, cli, "foo/3", "z")
	mustPut(t, cli, "bin\xff\x00", "\x01\x02\xfe")
	if leases {
		mustPut(t, cli, "leased", "v", clientv3.WithLease(lease))
	}
	mustPut(t, cli, "sp ace", "multi\nline value\n")
	s := &compatSuite{m: m, cli: cli, vars: map[string]string{
		"firstC": fmt.Sprint(firstC),
		"mid":    fmt.Sprint(mid),
		"midm1":  fmt.Sprint(mid - 1),
		"lease":  fmt.Sprintf("%x", lease),
	}}
	dead := closedEndpoint(t)

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	for _, w := range []string{"simple", "json", "fields", "protobuf"} {
		add("get", "a", "-w", w)
		add("get", "foo/", "--prefix", "-w", w)
		add("get", "missing", "-w", w)
		add("get", "bin", "--prefix", "-w", w)
		add("get", "bin", "--prefix", "-w", w, "--hex")
		if leases {
			add("get", "leased", "-w", w)
			add("get", "leased", "-w", w, "--hex")
		}
		add("get", "sp ace", "-w", w)
		add("get", "", "--prefix", "--keys-only", "-w", w)
	}
	for _, args := range [][]string{
		{"get", "a", "c"},
		{"get", "a", "c", "extra"},
		{"get", "", "--from-key"},
		{"get", "b", "--from-key", "--limit=2", "-w", "fields"},
		{"get", "foo/", "--prefix", "--limit", "2", "-w", "json"},
		{"get", "", "--prefix", "--count-only", "-w", "fields"},
		{"get", "foo/", "--prefix", "--sort-by=MODIFY", "--order=DESCEND"},
		{"get", "foo/", "--prefix", "--sort-by=create", "--order=descend"},
		{"get", "", "--prefix", "--sort-by=VALUE"},
		{"get", "", "--prefix", "--sort-by=VERSION", "--order=ASCEND", "--keys-only"},
		{"get", "foo/", "--prefix", "--sort-by=KEY", "--order=DESCEND"},
		{"get", "a", "--consistency=s"},
		{"get", "c", "--rev={firstC}"},
		{"get", "c", "--rev={firstC}", "-w", "json"},
		{"get", "", "--prefix", "--min-mod-rev={mid}"},
		{"get", "", "--prefix", "--max-mod-rev={mid}"},
		{"get", "", "--prefix", "--min-create-rev={mid}", "--keys-only"},
		{"get", "", "--prefix", "--max-create-rev={midm1}", "--keys-only"},
		{"get", "", "--prefix", "--min-mod-rev={mid}", "--max-mod-rev={mid}"},
		{"get", "foo/", "--prefix", "--print-value-only"},
		{"get", "c", "--print-value-only", "--hex"},
		{"--hex", "get", "a"},
		{"-w", "json", "get", "a"},
		// Argument and flag errors.
		{"get"},
		{"get", "a", "--prefix", "--from-key"},
		{"get", "a", "b", "--prefix"},
		{"get", "a", "b", "--from-key"},
		{"get", "a", "--keys-only", "--count-only"},
		{"get", "a", "--count-only"},
		{"get", "a", "--print-value-only", "-w", "json"},
		{"get", "a", "--consistency=x"},
		{"get", "a", "--order=up"},
		{"get", "a", "--sort-by=size"},
		{"get", "a", "--min-create-rev=5", "--max-create-rev=2"},
		{"get", "a", "--min-mod-rev=5", "--max-mod-rev=2"},
		{"get", "a", "-w", "table"},
		{"get", "a", "-w", "yaml"},
		{"get", "a", "--cert="},
		{"get", "a", "--cacert=/nonexistent/ca.pem"},
		{"endpoint", "health", "--cacert=/nonexistent/ca.pem"},
		{"endpoint", "status", "--key=/nonexistent/key.pem", "--cert=/nonexistent/cert.pem"},
		{"txn", "--cacert=/nonexistent/ca.pem"},
		{"compaction"},
		{"compaction", "x"},
		{"compaction", "1", "2"},
		{"put"},
		{"put", "k", "v", "--ignore-value"},
		{"put", "k", "v", "--lease=zz"},
		{"del"},
		{"del", "a", "b", "c"},
		{"del", "a", "--prefix", "--from-key"},
		{"del", "a", "b", "--prefix"},
		{"txn", "extra"},
		// Endpoints.
		{"endpoint", "health"},
		{"endpoint", "health", "--cluster"},
		{"endpoint", "health", "-w", "json"},
		{"endpoint", "health", "-w", "fields"},
		{"endpoint", "health", "-w", "table"},
		{"endpoint", "health", "-w", "protobuf"},
		{"endpoint", "status"},
		{"endpoint", "status", "--cluster"},
		{"endpoint", "status", "-w", "json"},
		{"endpoint", "status", "-w", "fields"},
		{"endpoint", "status", "-w", "fields", "--hex"},
		{"endpoint", "status", "-w", "table"},
		{"endpoint", "status", "-w", "table", "--cluster"},
		{"endpoint", "status", "-w", "protobuf"},
		{"--write-out=table", "endpoint", "status"},
	} {
		add(args...)
	}

	if auth {
		// Auth is not enabled: the client ignores the credentials.
		add("get", "a", "--user=root:secret")
		add("get", "a", "--user=root", "--password=secret")
	}

	// Transactions that only read, and transaction input errors (nothing is
	// committed then).
	txn := func(stdin string, args ...string) {
		cases = append(cases, ctlCase{args: append([]string{"txn"}, args...), stdin: stdin})
	}
	readTxn := "mod(\"a\") > \"0\"\nvalue(\"c\") = \"333\"\nversion(\"c\") = \"3\"\ncreate(\"a\") < \"{mid}\"\nlease(\"a\") = \"0\"\n\nget a\nget foo/ --prefix --limit=1\nget bin --prefix\n\nget b\n\n"
	if leases {
		readTxn = "lease(\"leased\") = \"{lease}\"\n" + readTxn
	}
	for _, w := range []string{"simple", "json", "fields", "protobuf"} {
		txn(readTxn, "-w", w)
		txn("value(\"a\") = \"nope\"\n\nget a\n\nget b --keys-only\nget foo/ --prefix --count-only\n\n", "-w", w)
	}
	txn(readTxn, "--hex")
	txn(readTxn, "-w", "fields", "--hex")
	txn(readTxn, "-i")
	txn(readTxn, "--interactive", "-w", "json")
	txn("\n\n\n")
	txn("mod(\"a\") > \"0\"\r\n\r\ng a\r\n\r\nge b\r\n\r\n")
	txn("   m(\"a\") > \"0\"   \n\n   get a   \n\n\n")
	txn("c(`a`) != \"0\"\nver(\"a\") > \"0\"\nval(\"a\") != \"\"\n\nget 'sp ace'\nget \"sp ace\" --print-value-only\n\n\n")
	txn("mod(\"a\") > \"0\"\n\nget a -- --x\n\n\n")
	for _, stdin := range []string{
		"mod(\"a\") > \"0\"\n\nget a\n",        // no empty line after the success requests
		"mod(\"a\") > \"0\"\n\nget a\n\nget b", // nor after the failure requests
		"",
		"mod\"a\" > \"0\"\n\n\n\n",
		"nonsense(\"a\") > \"0\"\n\n\n\n",
		"mod(\"a\") > \"x\"\n\n\n\n",
		"lease(\"a\") = \"xyz\"\n\n\n\n",
		"\nfoo a\n\n\n",
		"\nget\n\n\n",
		"\nget a --bogus\n\n\n",
		"\nget a -w json\n\n\n",
	} {
		cases = append(cases, ctlCase{args: []string{"txn"}, stdin: stdin, clearerError: true})
	}
	for _, stdin := range []string{
		"\n\nget a --prefix --from-key\n\n",
		"\n\nget a --consistency=x\n\n",
		"\n\nput k\n\n",
	} {
		cases = append(cases, ctlCase{args: []string{"txn"}, stdin: stdin, clearerError: true})
	}

	// A server that is not there.
	for _, args := range [][]string{
		{"get", "a", "--command-timeout=1s"},
		{"endpoint", "health", "--command-timeout=1s"},
		{"endpoint", "health", "--command-timeout=1s", "-w", "table"},
		{"endpoint", "status", "--command-timeout=1s"},
		{"endpoint", "status", "--command-timeout=1s", "-w", "json"},
	} {
		cases = append(cases, ctlCase{args: args, endpoint: dead})
	}

	// Flags from the environment.
	cases = append(cases,
		ctlCase{args: []string{"get", "a"}, env: []string{"ETCDCTL_WRITE_OUT=json"}},
		ctlCase{args: []string{"get", "a"}, env: []string{"ETCDCTL_HEX=true", "ETCDCTL_WRITE_OUT=fields"}},
		ctlCase{args: []string{"get", "a"}, env: []string{"ETCDCTL_ENDPOINTS=" + m.Endpoint()}, noEndpoint: true},
		ctlCase{args: []string{"endpoint", "status"}, env: []string{"ETCDCTL_ENDPOINTS=" + m.Endpoint(), "ETCDCTL_WRITE_OUT=table"}, noEndpoint: true},
	)

	// Flags etcdctl and cairn both reject, with cobra's own wording.
	for _, args := range [][]string{
		{"get", "a", "--bogus"},
		{"get", "a", "--dial-timeout=abc"},
		{"get", "a", "--limit=many"},
	} {
		cases = append(cases, ctlCase{args: args, usageOnStdout: true})
	}
	s.runAll(t, cases)
}

// TestWriteCommandsMatchEtcdctl covers put, del, txns that write, and
// compaction. Before each tool runs, the keys under m/ are reset, so both
// find the same data.
func TestWriteCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	lease, leases := tryGrant(t, cli)
	s := &compatSuite{m: m, cli: cli, vars: map[string]string{"lease": fmt.Sprintf("%x", lease)}}
	var leaseOpts []clientv3.OpOption
	if leases {
		leaseOpts = append(leaseOpts, clientv3.WithLease(lease))
	}
	s.reset = func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := cli.Delete(ctx, "m/", clientv3.WithPrefix()); err != nil {
			t.Fatal(err)
		}
		mustPut(t, cli, "m/a", "1")
		mustPut(t, cli, "m/b", "2")
		mustPut(t, cli, "m/c", "3", leaseOpts...)
		mustPut(t, cli, "m/\xff", "\x00")
	}

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	for _, w := range []string{"simple", "json", "fields"} {
		add("put", "m/a", "10", "-w", w)
		add("put", "m/a", "10", "--prev-kv", "-w", w)
		add("put", "m/a", "10", "--prev-kv", "-w", w, "--hex")
		add("put", "m/new", "v", "--prev-kv", "-w", w)
		add("put", "m/c", "v", "--prev-kv", "--ignore-lease", "-w", w)
		add("put", "m/a", "--ignore-value", "--prev-kv", "-w", w)
		if leases {
			add("put", "m/a", "v", "--lease={lease}", "-w", w)
		}
		add("del", "m/a", "-w", w)
		add("del", "m/a", "--prev-kv", "-w", w)
		add("del", "m/a", "--prev-kv", "-w", w, "--hex")
		add("del", "m/", "--prefix", "--prev-kv", "-w", w)
		add("del", "m/b", "--from-key", "--prev-kv", "-w", w)
		add("del", "m/a", "m/c", "--range", "--prev-kv", "-w", w)
		add("del", "m/zz", "-w", w)
	}
	for _, args := range [][]string{
		{"put", "m/a", "--", "-v"},
		{"put", "--", "m/a", "v"},
		{"put", "m/zz", "--ignore-value"},
		{"put", "m/a", "v", "--ignore-lease"},
		{"put", "m/a", strings.Repeat("v", 200), "--max-request-bytes=100"},
		{"put", "m/a", "v", "extra"},
		{"del", "m/a", "m/c"}, // warns and waits two seconds first
		{"del", "m/a", "m/c", "-w", "json"},
	} {
		add(args...)
	}
	cases = append(cases,
		ctlCase{args: []string{"put", "m/a"}, stdin: "from stdin\n"},
		ctlCase{args: []string{"put", "m/a", "--prev-kv", "-w", "json"}, stdin: "multi\nline"},
		ctlCase{args: []string{"put", "m/a"}},
	)

	txn := func(stdin string, args ...string) {
		cases = append(cases, ctlCase{args: append([]string{"txn"}, args...), stdin: stdin})
	}
	for _, w := range []string{"simple", "json", "fields"} {
		txn("mod(\"m/a\") > \"0\"\n\nput m/a x\nget m/a\ndel m/b --prev-kv\nput m/new \"with space\" --prev-kv\n\nput m/a y\n\n", "-w", w)
		txn("value(\"m/a\") = \"nope\"\n\nput m/a x\n\nput m/a y --prev-kv\nget m/ --prefix\ndel m/ --prefix --prev-kv\n\n", "-w", w)
		if leases {
			txn("lease(\"m/c\") = \"{lease}\"\nlease(\"m/a\") = \"0\"\n\nput m/a v --lease={lease}\nput m/c w --ignore-lease --prev-kv\n\n\n", "-w", w)
		}
	}
	if leases {
		add("put", "m/a", "v", "--lease=123456") // no such lease
	}
	txn("version(\"m/a\") = \"1\"\n\nput m/a x --prev-kv\n\n\n", "-w", "fields", "--hex")
	txn("mod(\"m/a\") > \"0\"\n\nput m/a x\n\nput m/a y\n\n", "-i")
	txn("\n\ndel m/a m/c\n\n\n") // warns and waits, as del does

	// Compaction, then reads of the compacted history.
	add("compaction", "{rev}")
	add("compaction", "{rev}", "--physical")
	add("compaction", "{rev}", "-w", "json")
	add("compaction", "1")
	add("compaction", "999999999")
	add("get", "m/a", "--rev=1")
	add("get", "m/a", "--rev=999999999")
	s.runAll(t, cases)
}
