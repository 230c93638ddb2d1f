package cli_test

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// revokeAll revokes every lease, so that lease list sees only the ones a
// run grants.
func revokeAll(t *testing.T, cli *clientv3.Client) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range resp.Leases {
		if _, err := cli.Revoke(ctx, l.ID); err != nil {
			t.Fatal(err)
		}
	}
}

func grant(t *testing.T, cli *clientv3.Client, ttl int64) clientv3.LeaseID {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	return resp.ID
}

// TestLeaseCommandsMatchEtcdctl covers lease grant, revoke, timetolive,
// list and keep-alive --once in every format, put --lease, and their
// argument errors. Before each tool runs, every lease is revoked and two
// fresh ones granted: {lease} with keys l/a and l/b, {bare} with none;
// {gone} is a lease that no longer exists.
func TestLeaseCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	gone := grant(t, cli, 60)
	s := &shotSuite{m: m, cli: cli, norm: normalizeLeases}
	s.prepare = func(t *testing.T) map[string]string {
		revokeAll(t, cli)
		lease := grant(t, cli, 600)
		bare := grant(t, cli, 300)
		mustPut(t, cli, "l/a", "1", clientv3.WithLease(lease))
		mustPut(t, cli, "l/b", "2", clientv3.WithLease(lease))
		return map[string]string{
			"lease": fmt.Sprintf("%x", lease),
			"bare":  fmt.Sprintf("%x", bare),
			"gone":  fmt.Sprintf("%x", gone),
		}
	}

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	for _, w := range []string{"simple", "json", "fields"} {
		add("lease", "grant", "60", "-w", w)
		add("lease", "timetolive", "{lease}", "-w", w)
		add("lease", "timetolive", "{lease}", "--keys", "-w", w)
		add("lease", "timetolive", "{bare}", "--keys", "-w", w)
		add("lease", "timetolive", "{gone}", "-w", w)
		add("lease", "list", "-w", w)
		add("lease", "keep-alive", "--once", "{lease}", "-w", w)
		add("lease", "revoke", "{lease}", "-w", w)
	}
	for _, args := range [][]string{
		{"lease", "grant", "60", "-w", "fields", "--hex"},
		{"lease", "timetolive", "{lease}", "--keys", "-w", "fields", "--hex"},
		{"lease", "list", "-w", "fields", "--hex"},
		{"lease", "keep-alive", "--once", "{lease}", "-w", "fields", "--hex"},
		{"--hex", "lease", "grant", "60", "-w", "fields"},
		{"lease", "grant", "0"},
		{"lease", "grant", "9999999999"},
		{"lease", "revoke", "{gone}"},
		{"lease", "revoke", "0"},
		{"lease", "keep-alive", "--once", "{gone}"},
		{"lease", "timetolive", "0"},
		{"lease", "list", "-w", "table"},
		{"lease", "grant", "60", "-w", "table"},
		{"lease", "grant", "60", "-w", "yaml"},
		// Argument errors.
		{"lease", "grant"},
		{"lease", "grant", "x"},
		{"lease", "grant", "1", "2"},
		{"lease", "grant", "1.5"},
		{"lease", "revoke"},
		{"lease", "revoke", "zz"},
		{"lease", "revoke", "1", "2"},
		{"lease", "revoke", "10000000000000000"},
		{"lease", "timetolive"},
		{"lease", "timetolive", "g"},
		{"lease", "keep-alive"},
		{"lease", "keep-alive", "--once"},
		{"lease", "keep-alive", "--once", "xyz"},
		// put --lease.
		{"put", "l/c", "v", "--lease={lease}"},
		{"put", "l/c", "v", "--lease={lease}", "-w", "json"},
		{"put", "l/c", "v", "--lease={gone}"},
		{"put", "l/c", "v", "--lease=zz"},
		{"get", "l/a", "-w", "fields", "--hex"},
	} {
		add(args...)
	}
	cases = append(cases,
		ctlCase{args: []string{"lease", "grant", "60", "--bogus"}, usageOnStdout: true},
		ctlCase{args: []string{"lease", "timetolive", "{lease}", "--keys=maybe"}, usageOnStdout: true},
		ctlCase{args: []string{"lease", "grant", "60", "--command-timeout=1s"}, endpoint: closedEndpoint(t)},
	)
	s.runAll(t, cases)

	// The protobuf format writes the response header, revision included,
	// in binary: these runs must not write, so that both see the same
	// revision. The leases have no keys, so revoking them writes nothing.
	t.Run("protobuf", func(t *testing.T) {
		s := &shotSuite{m: m, cli: cli, norm: normalizeLeases}
		s.prepare = func(t *testing.T) map[string]string {
			revokeAll(t, cli)
			return map[string]string{"lease": fmt.Sprintf("%x", grant(t, cli, 600)), "gone": fmt.Sprintf("%x", gone)}
		}
		var cases []ctlCase
		for _, args := range [][]string{
			{"lease", "grant", "60"},
			{"lease", "timetolive", "{lease}"},
			{"lease", "timetolive", "{lease}", "--keys"},
			{"lease", "timetolive", "{gone}"},
			{"lease", "list"},
			{"lease", "keep-alive", "--once", "{lease}"},
			{"lease", "revoke", "{lease}"},
		} {
			cases = append(cases, ctlCase{args: append(args, "-w", "protobuf")})
		}
		s.runAll(t, cases)
	})
}

// TestLeaseKeepAliveMatchesEtcdctl runs lease keep-alive until the lease is
// revoked from outside: it prints the renewal, then (in the simple format)
// that the lease is gone, and exits 0.
func TestLeaseKeepAliveMatchesEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	for _, w := range []string{"simple", "json", "fields"} {
		t.Run(w, func(t *testing.T) {
			run := func(start func(args ...string) *running) result {
				// A short TTL: the client renews every third of it, and
				// learns of the revocation at the next renewal.
				id := grant(t, cli, 6)
				r := start("--endpoints="+m.Endpoint(), "lease", "keep-alive", fmt.Sprintf("%x", id), "-w", w)
				if !r.waitOutput(func(s string) bool { return s != "" }, 10*time.Second) {
					t.Fatalf("no renewal printed: %v", r.result(t))
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if _, err := cli.Revoke(ctx, id); err != nil {
					t.Fatal(err)
				}
				if !r.wait(20 * time.Second) {
					t.Errorf("keep-alive did not end after the lease was revoked")
				}
				return r.result(t)
			}
			want := run(func(args ...string) *running { return startEtcdctl(t, nil, nil, args...) })
			got := run(func(args ...string) *running { return startCairn(t, nil, args...) })
			sameRun(t, "keep-alive", got, want, normalizeLeases)
		})
	}
	t.Run("no such lease", func(t *testing.T) {
		args := []string{"--endpoints=" + m.Endpoint(), "lease", "keep-alive", "123456"}
		want := startEtcdctl(t, nil, nil, args...)
		want.wait(20 * time.Second)
		got := startCairn(t, nil, args...)
		got.wait(20 * time.Second)
		sameRun(t, "keep-alive of no lease", got.result(t), want.result(t), normalizeLeases)
	})
}

// TestLeaseLifecycle drives a lease through cairn alone: grant, attach a
// key with put --lease, see it in timetolive --keys and list, renew it,
// revoke it, and find the key gone.
func TestLeaseLifecycle(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	ep := "--endpoints=" + m.Endpoint()
	must := func(want string, args ...string) string {
		t.Helper()
		r := runCairn(t, "", append([]string{ep}, args...)...)
		if r.code != 0 || !regexp.MustCompile(want).MatchString(r.stdout) {
			t.Fatalf("cairn %s: %v\nwant stdout matching %q", strings.Join(args, " "), r, want)
		}
		return r.stdout
	}
	out := must(`^lease [0-9a-f]{16} granted with TTL\(120s\)\n$`, "lease", "grant", "120")
	id := strings.Fields(out)[1]
	must(`^OK\n$`, "put", "lk", "v", "--lease="+id)
	must(`^OK\n$`, "put", "lk2", "v2", "--lease="+id)
	// etcd lists the attached keys in no particular order.
	must(`^lease `+id+` granted with TTL\(120s\), remaining\(1[12][0-9]s\), attached keys\(\[(lk lk2|lk2 lk)\]\)\n$`, "lease", "timetolive", id, "--keys")
	must(`(?m)^`+id+`$`, "lease", "list")
	must(`^lease `+id+` keepalived with TTL\(120\)\n$`, "lease", "keep-alive", "--once", id)
	must(`^lk\nv\n$`, "get", "lk")
	must(`^lease `+id+` revoked\n$`, "lease", "revoke", id)
	must(`^$`, "get", "lk", "--prefix")
	// etcd answers TimeToLive of a lease it does not know with TTL -1,
	// which etcdctl and cairn print as "already expired".
	if r := runCairn(t, "", ep, "lease", "timetolive", id); r.code != 0 || r.stdout != "lease "+id+" already expired\n" {
		t.Errorf("server defect: LeaseTimeToLive of a revoked lease fails (%q, exit %d) instead of answering TTL -1 as etcd does; "+
			"cairn lease timetolive %s: %v\nwant exit 0 and \"lease %s already expired\"", strings.TrimSpace(r.stderr), r.code, id, r, id)
	}
	r := runCairn(t, "", ep, "lease", "revoke", id)
	if r.code != 1 || r.stderr != "Error: failed to revoke lease (etcdserver: requested lease not found)\n" {
		t.Errorf("second revoke: %v", r)
	}
}
