package framework_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// These tests validate the framework against the real etcd, so they pass
// whatever state cairn serve is in.

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestSingleMember(t *testing.T) {
	m := framework.Start(t, framework.Config{Binary: framework.EtcdBinary(t)})

	if !strings.HasPrefix(m.Endpoint(), "127.0.0.1:") || m.ClientURL() != "http://"+m.Endpoint() {
		t.Errorf("Endpoint %q, ClientURL %q", m.Endpoint(), m.ClientURL())
	}
	if !strings.HasPrefix(m.PeerURL(), "http://127.0.0.1:") || m.PeerURL() == m.ClientURL() {
		t.Errorf("PeerURL %q", m.PeerURL())
	}
	if _, err := os.Stat(filepath.Join(m.DataDir(), "member")); err != nil {
		t.Errorf("data dir %s not used: %v", m.DataDir(), err)
	}

	cli := m.Client(t)
	put, err := cli.Put(ctx(t), "k", "v1")
	if err != nil {
		t.Fatal(err)
	}
	// A fresh store is at revision 1, so the first write makes revision 2.
	if put.Header.Revision != 2 {
		t.Errorf("first put at revision %d, want 2", put.Header.Revision)
	}

	// The real etcdctl sees what the client wrote, and the reverse.
	out, errOut, err := framework.Etcdctl(t, []string{m.Endpoint()}, "get", "k", "--print-value-only")
	if err != nil || out != "v1\n" {
		t.Fatalf("etcdctl get: %q %q %v", out, errOut, err)
	}
	if _, errOut, err := framework.Etcdctl(t, []string{m.Endpoint()}, "put", "k2", "v2"); err != nil {
		t.Fatalf("etcdctl put: %q %v", errOut, err)
	}
	mustGet(t, cli, "k2", "v2")

	members, err := cli.MemberList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 1 || members.Members[0].Name != "m0" {
		t.Errorf("members %v, want one named m0", members.Members)
	}
	if !strings.Contains(m.Logs(), "m0") {
		t.Errorf("Logs() does not hold the member's output:\n%s", m.Logs())
	}
}

func TestCluster(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{Binary: framework.EtcdBinary(t)})
	if len(c.Members) != 3 || len(c.Endpoints()) != 3 {
		t.Fatalf("%d members, %d endpoints", len(c.Members), len(c.Endpoints()))
	}

	cli := c.Client(t)
	members, err := cli.MemberList(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(members.Members) != 3 {
		t.Fatalf("member list has %d members, want 3", len(members.Members))
	}
	if _, err := cli.Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	// Linearizable reads on each member see the write.
	for _, m := range c.Members {
		mustGet(t, m.Client(t), "k", "v")
	}

	out, errOut, err := framework.Etcdctl(t, c.Endpoints(), "endpoint", "health")
	if err != nil || strings.Count(out+errOut, "is healthy") != 3 {
		t.Errorf("etcdctl endpoint health: %q %q %v", out, errOut, err)
	}

	// Kill the leader: the other two elect a new one and keep serving.
	old := c.Leader(t)
	old.Kill(t)
	if old.Running() {
		t.Fatal("killed member still running")
	}
	leader := c.Leader(t)
	if leader == old {
		t.Fatal("killed member is still the leader")
	}
	if _, err := leader.Client(t).Put(ctx(t), "k", "v2"); err != nil {
		t.Fatal(err)
	}
	// The old leader comes back, catches up and serves the new value.
	old.Restart(t)
	mustGet(t, old.Client(t), "k", "v2")
}

func TestClusterRestartAll(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{Binary: framework.EtcdBinary(t), Name: "node"})
	if c.Members[2].Name() != "node2" {
		t.Errorf("member name %q, want node2", c.Members[2].Name())
	}
	if _, err := c.Client(t).Put(ctx(t), "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		m.Kill(t)
	}
	c.Restart(t)
	mustGet(t, c.Members[1].Client(t), "k", "v")
}

func TestKillRestartKeepsData(t *testing.T) {
	m := framework.Start(t, framework.Config{Binary: framework.EtcdBinary(t)})
	cli := m.Client(t)
	pid := m.PID()
	if pid <= 0 {
		t.Fatalf("PID of a running member: %d", pid)
	}
	var last int64
	for i := range 20 {
		resp, err := cli.Put(ctx(t), fmt.Sprintf("k%02d", i), fmt.Sprint(i))
		if err != nil {
			t.Fatal(err)
		}
		last = resp.Header.Revision
	}

	m.Kill(t)
	short, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if _, err := cli.Get(short, "k00"); err == nil {
		t.Fatal("Get succeeded against a killed member")
	}

	m.Restart(t)
	if m.PID() == pid || m.PID() <= 0 {
		t.Errorf("PID after a restart is %d, before it %d", m.PID(), pid)
	}
	resp, err := m.Client(t).Get(ctx(t), "k", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 20 || resp.Header.Revision != last {
		t.Fatalf("after kill -9 and restart: %d keys at revision %d, want 20 at %d", len(resp.Kvs), resp.Header.Revision, last)
	}

	// A clean stop keeps data too.
	m.Stop(t)
	m.Restart(t)
	mustGet(t, m.Client(t), "k19", "19")
}

func TestEtcdctl(t *testing.T) {
	out, _, err := framework.Etcdctl(t, nil, "version")
	if err != nil || !strings.Contains(out, "etcdctl version: 3.6.16") {
		t.Errorf("etcdctl version: %q %v", out, err)
	}
	out, _, err = framework.Etcdctl(t, []string{"127.0.0.1:1"}, "--dial-timeout=200ms", "--command-timeout=500ms", "get", "k")
	if err == nil {
		t.Errorf("etcdctl get against a closed port succeeded: %q", out)
	}
}

// TestCairnBinary builds cairn from this checkout and runs it as a tool.
func TestCairnBinary(t *testing.T) {
	out, _, err := framework.Cairn(t, "version")
	if err != nil || !strings.Contains(out, "cairn Version") {
		t.Errorf("cairn version: %q %v", out, err)
	}
}

func mustGet(t *testing.T, cli *clientv3.Client, key, want string) {
	t.Helper()
	resp, err := cli.Get(ctx(t), key)
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != want {
		t.Fatalf("get %s = %v, want %q", key, resp.Kvs, want)
	}
}
