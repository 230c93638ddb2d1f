package e2e

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestServeRejectsBadFlags checks that every kind of bad flag or
// environment value stops cairn serve before it touches anything, with exit
// status 2 and a message naming what is wrong.
func TestServeRejectsBadFlags(t *testing.T) {
	bin := framework.CairnBinary(t)
	cases := []struct {
		name string
		args []string
		env  []string
		want string
	}{
		{"cluster state", []string{"--initial-cluster-state", "bogus"}, nil, `invalid value "bogus" for flag --initial-cluster-state`},
		{"client URL", []string{"--listen-client-urls", "localhost:2379"}, nil, "--listen-client-urls"},
		{"peer URL without port", []string{"--listen-peer-urls", "http://127.0.0.1"}, nil, "--listen-peer-urls"},
		{"initial cluster", []string{"--initial-cluster", "nonsense"}, nil, "--initial-cluster"},
		{"initial cluster without self", []string{"--initial-cluster", "other=http://127.0.0.1:1"}, nil, "no member named"},
		{"log level", []string{"--log-level", "verbose"}, nil, "--log-level"},
		{"log format", []string{"--log-format", "xml"}, nil, "--log-format"},
		{"snapshot count", []string{"--snapshot-count", "0"}, nil, "--snapshot-count"},
		{"negative quota", []string{"--quota-backend-bytes", "-1"}, nil, "--quota-backend-bytes"},
		{"max request bytes", []string{"--max-request-bytes", "0"}, nil, "--max-request-bytes"},
		{"max txn ops", []string{"--max-txn-ops", "0"}, nil, "--max-txn-ops"},
		{"compaction mode", []string{"--auto-compaction-mode", "hourly"}, nil, "--auto-compaction-mode"},
		{"compaction retention", []string{"--auto-compaction-mode", "revision", "--auto-compaction-retention", "1h"}, nil, "--auto-compaction-retention"},
		{"election timeout", []string{"--heartbeat-interval", "500", "--election-timeout", "1000"}, nil, "--election-timeout"},
		{"cors origin", []string{"--cors", "example.com"}, nil, "--cors"},
		{"unknown flag", []string{"--no-such-flag"}, nil, "unknown flag"},
		{"not a number", []string{"--snapshot-count", "many"}, nil, "--snapshot-count"},
		{"bad env", nil, []string{"CAIRN_SNAPSHOT_COUNT=abc"}, "CAIRN_SNAPSHOT_COUNT"},
		{"bad etcd env", nil, []string{"ETCD_MAX_TXN_OPS=x"}, "ETCD_MAX_TXN_OPS"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			cmd := exec.Command(bin, append([]string{"serve", "--data-dir", filepath.Join(dir, "data")}, tc.args...)...)
			cmd.Env = append(os.Environ(), tc.env...)
			out, err := cmd.CombinedOutput()
			var exit *exec.ExitError
			if !errors.As(err, &exit) || exit.ExitCode() != 2 {
				t.Fatalf("exit: %v, want status 2; output:\n%s", err, out)
			}
			if !strings.Contains(string(out), tc.want) {
				t.Fatalf("output does not mention %q:\n%s", tc.want, out)
			}
			if _, err := os.Stat(filepath.Join(dir, "data")); err == nil {
				t.Fatalf("a rejected configuration created the data directory")
			}
		})
	}
}

// TestServeEnvironment configures a member from CAIRN_* variables and
// checks that it took them, that a flag beats the environment, and that an
// empty variable is no value (it neither fails the start nor hides the
// ETCD_ one). internal/cli's TestServeFlagsFromEnvironment checks every
// flag the README lists.
func TestServeEnvironment(t *testing.T) {
	m := framework.Start(t, framework.Config{
		Name: "envname",
		Env: []string{"CAIRN_MAX_TXN_OPS=", "ETCD_MAX_TXN_OPS=3", "CAIRN_NAME=ignored-because-the-flag-wins",
			"CAIRN_SNAPSHOT_COUNT="},
	})
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ops := []clientv3.Op{clientv3.OpPut("a", "1"), clientv3.OpPut("b", "1"), clientv3.OpPut("c", "1"), clientv3.OpPut("d", "1")}
	if _, err := cli.Txn(ctx).Then(ops...).Commit(); err == nil || !strings.Contains(err.Error(), "too many operations in txn request") {
		t.Fatalf("txn of 4 ops with ETCD_MAX_TXN_OPS=3 behind an empty CAIRN_MAX_TXN_OPS: got %v, want too many operations", err)
	}
	if _, err := cli.Txn(ctx).Then(ops[:3]...).Commit(); err != nil {
		t.Fatalf("txn of 3 ops: %v", err)
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 1 || ml.Members[0].Name != "envname" {
		t.Fatalf("members %v, want one named envname", ml.Members)
	}
}

// TestServeRefusesBusyPortAndDataDir starts a second member on a port or a
// data directory the first one holds: each must fail with a clear message.
func TestServeRefusesBusyPortAndDataDir(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	bin := framework.CairnBinary(t)
	free := func() string { return framework.FreeURL(t) }
	peer := free()
	out, err := exec.Command(bin, "serve", "--data-dir", t.TempDir(), "--listen-client-urls", m.ClientURL(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "address already in use") || !strings.Contains(string(out), "listen for clients") {
		t.Fatalf("second member on a busy client port: err %v, output:\n%s", err, out)
	}
	peer = free()
	out, err = exec.Command(bin, "serve", "--data-dir", m.DataDir(), "--listen-client-urls", free(),
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "in use by another process") {
		t.Fatalf("second member on a busy data dir: err %v, output:\n%s", err, out)
	}
	// The first member is unharmed.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := m.Client(t).Put(ctx, "still", "here"); err != nil {
		t.Fatalf("first member after the refused starts: %v", err)
	}
}

// TestServeDefaultDataDir runs cairn serve without --data-dir in an empty
// working directory: the data must go to ./default.cairn there.
func TestServeDefaultDataDir(t *testing.T) {
	dir := t.TempDir()
	client, peer := framework.FreeURL(t), framework.FreeURL(t)
	cmd := exec.Command(framework.CairnBinary(t), "serve", "--listen-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer, "--log-level", "warn")
	cmd.Dir = dir
	var logs strings.Builder
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{strings.TrimPrefix(client, "http://")}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_, err := cli.Put(ctx, "k", "v")
		cancel()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("member did not serve: %v\n%s", err, logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if _, err := os.Stat(filepath.Join(dir, "default.cairn", "member", "db")); err != nil {
		t.Fatalf("no ./default.cairn after a start without --data-dir: %v", err)
	}
}
