package cli_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/tests/framework"
)

// The auth fixture: root, alice (role r1), bob (no roles), carol (no
// password); r1 can read and write the prefix /a/, read k1, write
// [w1, w5) and read and write from z on; r2 has nothing.
const (
	rootPW  = "rootpw"
	alicePW = "alicepw"
)

func rootClient(t *testing.T, m *framework.Member) *clientv3.Client {
	t.Helper()
	c, err := clientv3.New(clientv3.Config{
		Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second,
		Username: "root", Password: rootPW, Logger: zap.NewNop(),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// resetAuth brings users and roles back to the fixture, with auth on or off.
func resetAuth(t *testing.T, cli *clientv3.Client, enable bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(cli.AuthDisable(ctx))
	users, err := cli.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users.Users {
		must(cli.UserDelete(ctx, u))
	}
	roles, err := cli.RoleList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Roles {
		must(cli.RoleDelete(ctx, r))
	}
	must(cli.UserAdd(ctx, "root", rootPW))
	must(cli.UserGrantRole(ctx, "root", "root"))
	must(cli.UserAdd(ctx, "alice", alicePW))
	must(cli.UserAdd(ctx, "bob", "bobpw"))
	must(cli.UserAddWithOptions(ctx, "carol", "", &clientv3.UserAddOptions{NoPassword: true}))
	must(cli.RoleAdd(ctx, "r1"))
	must(cli.RoleAdd(ctx, "r2"))
	must(cli.RoleGrantPermission(ctx, "r1", "/a/", clientv3.GetPrefixRangeEnd("/a/"), clientv3.PermissionType(clientv3.PermReadWrite)))
	must(cli.RoleGrantPermission(ctx, "r1", "k1", "", clientv3.PermissionType(clientv3.PermRead)))
	must(cli.RoleGrantPermission(ctx, "r1", "w1", "w5", clientv3.PermissionType(clientv3.PermWrite)))
	must(cli.RoleGrantPermission(ctx, "r1", "z", "\x00", clientv3.PermissionType(clientv3.PermReadWrite)))
	must(cli.UserGrantRole(ctx, "alice", "r1"))
	if enable {
		must(cli.AuthEnable(ctx))
	}
}

var authFormats = []string{"simple", "json", "fields", "protobuf", "table"}

// authServer is testServer with the cheapest bcrypt cost, since the
// fixture is rebuilt (and its passwords hashed) before every command.
func authServer(t *testing.T) *framework.Member {
	t.Helper()
	bin := framework.CairnBinary(t)
	if os.Getenv("CAIRN_CLI_TEST_SERVER") == "etcd" {
		bin = framework.EtcdBinary(t)
	}
	return framework.Start(t, framework.Config{Binary: bin, Args: []string{"--bcrypt-cost=4"}})
}

// TestAuthReadCommandsMatchEtcdctl compares the commands that read the auth
// state, with auth on, as root, as a user and as nobody.
func TestAuthReadCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := authServer(t)
	cli := m.Client(t)
	mustPut(t, cli, "/a/x", "1")
	mustPut(t, cli, "k1", "2")
	mustPut(t, cli, "/b", "3")
	root := rootClient(t, m)
	resetAuth(t, root, true)
	s := &compatSuite{m: m, cli: root}

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	asRoot := func(args ...string) { add(append([]string{"--user=root:" + rootPW}, args...)...) }
	asAlice := func(args ...string) { add(append([]string{"--user=alice:" + alicePW}, args...)...) }
	for _, w := range authFormats {
		asRoot("auth", "status", "-w", w)
		asRoot("user", "get", "alice", "-w", w)
		asRoot("user", "get", "alice", "--detail", "-w", w)
		asRoot("user", "get", "root", "--detail", "-w", w)
		asRoot("user", "list", "-w", w)
		asRoot("role", "get", "r1", "-w", w)
		asRoot("role", "get", "root", "-w", w)
		asRoot("role", "get", "r2", "-w", w)
		asRoot("role", "list", "-w", w)
	}
	asRoot("user", "get", "nobody")
	asRoot("role", "get", "nobody")
	asRoot("user", "get")
	asRoot("user", "get", "a", "b")
	asRoot("user", "list", "x")
	asRoot("role", "list", "x")
	asRoot("role", "get")
	asRoot("auth", "status", "x")
	asAlice("user", "get", "alice")
	asAlice("user", "get", "bob")
	asAlice("role", "get", "r1")
	asAlice("role", "get", "r2")
	asAlice("user", "list")
	asAlice("role", "list")
	asAlice("auth", "status")
	add("--user=alice:wrong", "user", "get", "alice")
	add("--user=nobody:x", "get", "k1")
	add("--user=carol:x", "get", "k1")
	add("--user=alice", "--password="+alicePW, "role", "get", "r1")
	add("user", "list")
	add("auth", "status")
	// Key permissions through the KV commands.
	asAlice("get", "/a/x")
	asAlice("get", "/a/", "--prefix")
	asAlice("get", "/a", "--prefix")
	asAlice("get", "", "--prefix")
	asAlice("get", "/a/", "--from-key")
	asAlice("get", "z", "--from-key")
	asAlice("get", "/b")
	asAlice("get", "k1")
	asAlice("get", "k1", "k2")
	asAlice("get", "k1", "-w", "json")
	add("get", "k1")
	add("--user=bob:bobpw", "get", "k1")
	s.runAll(t, cases)
}

// TestAuthWriteCommandsMatchEtcdctl compares the commands that change users,
// roles and the auth switch; each run starts from the fixture.
func TestAuthWriteCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := authServer(t)
	root := rootClient(t, m)
	s := &compatSuite{m: m, cli: root}
	s.reset = func(t *testing.T) { resetAuth(t, root, false) }

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	for _, w := range authFormats {
		add("user", "add", "dave:pw", "-w", w)
		add("user", "add", "dave", "--no-password", "-w", w)
		add("user", "delete", "bob", "-w", w)
		add("user", "grant-role", "alice", "r2", "-w", w)
		add("user", "revoke-role", "alice", "r1", "-w", w)
		add("role", "add", "r3", "-w", w)
		add("role", "delete", "r1", "-w", w)
		add("role", "grant-permission", "r2", "read", "/p", "--prefix", "-w", w)
		add("role", "revoke-permission", "r1", "/a/", "--prefix", "-w", w)
		cases = append(cases, ctlCase{args: []string{"user", "passwd", "alice", "--interactive=false", "-w", w}, stdin: "newpw\n"})
	}
	for _, args := range [][]string{
		{"user", "add", "alice:x"},
		{"user", "add", ":pw"},
		{"user", "add", "dave", "--new-user-password=xyz"},
		{"user", "add"},
		{"user", "add", "a", "b"},
		{"user", "delete", "nobody"},
		{"user", "delete"},
		{"user", "grant-role", "alice", "nope"},
		{"user", "grant-role", "nobody", "r1"},
		{"user", "grant-role", "alice", "r1"},
		{"user", "grant-role", "alice"},
		{"user", "revoke-role", "alice", "r2"},
		{"user", "revoke-role", "alice"},
		{"user", "passwd"},
		{"role", "add", "r1"},
		{"role", "add"},
		{"role", "delete", "nope"},
		{"role", "grant-permission", "r2", "write", "/p", "/q"},
		{"role", "grant-permission", "r2", "readwrite", "", "--from-key"},
		{"role", "grant-permission", "r2", "readwrite", "", "--prefix"},
		{"role", "grant-permission", "r2", "read", ""},
		{"role", "grant-permission", "r2", "read", "x", "--from-key"},
		{"role", "grant-permission", "r2", "read", "x", "a"},
		{"role", "grant-permission", "r2", "rw", "x"},
		{"role", "grant-permission", "r2", "read"},
		{"role", "grant-permission", "r2", "read", "x", "y", "--prefix"},
		{"role", "grant-permission", "r2", "read", "x", "y", "--from-key"},
		{"role", "grant-permission", "r2", "read", "x", "--prefix", "--from-key"},
		{"role", "grant-permission", "r2", "read", "", "--prefix", "--from-key"},
		{"role", "grant-permission", "nope", "read", "x"},
		{"role", "revoke-permission", "r1", "k1"},
		{"role", "revoke-permission", "r1", "w1", "w5"},
		{"role", "revoke-permission", "r1", "z", "--from-key"},
		{"role", "revoke-permission", "r1", "k2"},
		{"role", "revoke-permission", "r1", "", "--prefix"},
		{"role", "revoke-permission", "r1"},
		{"role", "revoke-permission", "nope", "k1"},
		{"auth", "enable"},
		{"auth", "disable"},
		{"auth", "enable", "x"},
		{"auth", "disable", "x"},
	} {
		add(args...)
	}
	cases = append(cases,
		ctlCase{args: []string{"user", "add", "dave", "--interactive=false"}, stdin: "pw extra\n"},
		ctlCase{args: []string{"user", "add", "dave", "--interactive=false"}},
	)
	s.runAll(t, cases)

	// With auth on: root may, alice may not.
	s.reset = func(t *testing.T) {
		resetAuth(t, root, true)
		for _, k := range []string{"/a/1", "w3", "k1"} {
			mustPut(t, root, k, "v")
		}
	}
	cases = nil
	asRoot := func(args ...string) { add(append([]string{"--user=root:" + rootPW}, args...)...) }
	asAlice := func(args ...string) { add(append([]string{"--user=alice:" + alicePW}, args...)...) }
	asRoot("user", "add", "dave:pw")
	asRoot("user", "delete", "root")
	asRoot("user", "revoke-role", "root", "root")
	asRoot("role", "delete", "root")
	asRoot("auth", "enable")
	asRoot("auth", "disable")
	asRoot("put", "anything", "v")
	asAlice("user", "add", "dave:pw")
	asAlice("role", "add", "r3")
	asAlice("auth", "disable")
	asAlice("put", "/a/1", "v")
	asAlice("put", "k1", "v")
	asAlice("put", "w3", "v")
	asAlice("put", "w5", "v")
	asAlice("del", "w1", "w5")
	asAlice("del", "w1", "w6")
	asAlice("del", "/a/", "--prefix")
	asAlice("del", "/a/", "--prefix", "--prev-kv")
	asAlice("compaction", "1")
	add("put", "k", "v")
	s.runAll(t, cases)
}

// The interactive password prompts go to stdout, as etcdctl's do. (etcdctl
// also runs stty on a stdin that is no terminal, which complains on
// stderr; only stdout and the exit code are compared.)
func TestUserAddPromptsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := authServer(t)
	root := rootClient(t, m)
	for _, tc := range []struct{ stdin string }{
		{"pw\npw\n"},
		{"pw\nother\n"},
		{"\n"},
		{" pw \npw\n"},
	} {
		resetAuth(t, root, false)
		want := runEtcdctl(t, nil, tc.stdin, "--endpoints="+m.Endpoint(), "user", "add", "dave")
		resetAuth(t, root, false)
		got := runCairn(t, tc.stdin, "--endpoints="+m.Endpoint(), "user", "add", "dave")
		if got.code != want.code || got.stdout != want.stdout {
			t.Errorf("stdin %q:\ngot %v\nwant %v", tc.stdin, got, want)
		}
		if want.code != 0 && !strings.Contains(got.stderr, strings.TrimSpace(lastLine(want.stderr))) {
			t.Errorf("stdin %q: error %q, etcdctl's %q", tc.stdin, got.stderr, want.stderr)
		}
	}
}

func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return lines[len(lines)-1]
}
