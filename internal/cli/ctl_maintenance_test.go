package cli_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestAlarmMatchesEtcdctl covers alarm list and disarm with no alarm, and
// with the NOSPACE alarm a member with a one-byte quota raises on its first
// write.
func TestAlarmMatchesEtcdctl(t *testing.T) {
	isolateEnv(t)
	t.Run("none", func(t *testing.T) {
		m := testServer(t)
		s := &shotSuite{m: m, cli: m.Client(t)}
		var cases []ctlCase
		for _, w := range []string{"simple", "json", "fields", "protobuf"} {
			cases = append(cases, ctlCase{args: []string{"alarm", "list", "-w", w}})
		}
		// etcdctl alarm disarm -w fields crashes when it disarms nothing
		// (the response has no header); cairn prints a zero header.
		for _, w := range []string{"simple", "json", "protobuf"} {
			cases = append(cases, ctlCase{args: []string{"alarm", "disarm", "-w", w}})
		}
		for _, args := range [][]string{
			{"alarm", "list", "extra"},
			{"alarm", "disarm", "extra"},
			{"alarm", "list", "-w", "table"},
			{"alarm", "list", "-w", "yaml"},
		} {
			cases = append(cases, ctlCase{args: args})
		}
		cases = append(cases, ctlCase{args: []string{"alarm", "list", "--command-timeout=1s"}, endpoint: closedEndpoint(t)})
		s.runAll(t, cases)

		r := runCairn(t, "", "--endpoints="+m.Endpoint(), "alarm", "disarm", "-w", "fields")
		if r.code != 0 || !strings.HasPrefix(r.stdout, "\"ClusterID\" : ") {
			t.Errorf("alarm disarm -w fields with no alarm: %v, want a header and exit 0", r)
		}
	})

	t.Run("NOSPACE", func(t *testing.T) {
		m := testServerArgs(t, "--quota-backend-bytes", "1")
		cli := m.Client(t)
		raise := func(t *testing.T) map[string]string {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cli.Put(ctx, "k", "v") // fails with NOSPACE and raises the alarm
			resp, err := cli.AlarmList(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(resp.Alarms) != 1 {
				t.Fatalf("alarms %v after a write over the quota, want one NOSPACE", resp.Alarms)
			}
			return nil
		}
		s := &shotSuite{m: m, cli: cli, prepare: raise}
		var cases []ctlCase
		for _, w := range []string{"simple", "json", "fields", "protobuf"} {
			cases = append(cases, ctlCase{args: []string{"alarm", "list", "-w", w}})
			cases = append(cases, ctlCase{args: []string{"alarm", "list", "-w", w, "--hex"}})
		}
		for _, w := range []string{"simple", "json", "protobuf"} {
			cases = append(cases, ctlCase{args: []string{"alarm", "disarm", "-w", w}})
		}
		cases = append(cases, ctlCase{args: []string{"endpoint", "health"}})
		s.runAll(t, cases)

		raise(t)
		ep := "--endpoints=" + m.Endpoint()
		if r := runCairn(t, "", ep, "alarm", "disarm"); r.code != 0 || !strings.Contains(r.stdout, "alarm:NOSPACE") {
			t.Errorf("alarm disarm: %v, want the NOSPACE alarm listed", r)
		}
		if r := runCairn(t, "", ep, "alarm", "list"); r.code != 0 || r.stdout != "" {
			t.Errorf("alarm list after disarm: %v, want no alarm", r)
		}
	})
}

// TestDefragAndHashKVMatchEtcdctl covers defrag and endpoint hashkv: every
// format, --cluster, --rev in and outside the history, a member that does
// not answer, and argument errors.
func TestDefragAndHashKVMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	for i := range 20 {
		mustPut(t, cli, fmt.Sprintf("h/%02d", i%5), strings.Repeat("v", i*50))
	}
	mid := mustPut(t, cli, "h/mid", "m").Header.Revision
	for i := range 10 {
		mustPut(t, cli, fmt.Sprintf("h/%02d", i), "after")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := cli.Delete(ctx, "h/0", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, mid-10); err != nil {
		t.Fatal(err)
	}
	dead := closedEndpoint(t)
	s := &shotSuite{m: m, cli: cli, norm: func(s string) string { return tookDefrag.ReplaceAllString(s, "took T") }}
	s.prepare = func(*testing.T) map[string]string {
		return map[string]string{
			"mid":       fmt.Sprint(mid),
			"compacted": fmt.Sprint(mid - 11),
			"future":    fmt.Sprint(mid + 1000),
			"dead":      dead,
			"ep":        m.Endpoint(),
		}
	}
	var cases []ctlCase
	add := func(args ...string) {
		// A case that names its endpoints gets no other.
		cases = append(cases, ctlCase{args: args, noEndpoint: strings.HasPrefix(args[0], "--endpoints=")})
	}
	for _, w := range []string{"simple", "json", "fields", "table", "protobuf"} {
		add("endpoint", "hashkv", "-w", w)
		add("endpoint", "hashkv", "--rev={mid}", "-w", w)
		add("defrag", "-w", w)
	}
	for _, args := range [][]string{
		{"endpoint", "hashkv", "--cluster"},
		{"endpoint", "hashkv", "--cluster", "-w", "table"},
		{"endpoint", "hashkv", "-w", "fields", "--hex"},
		{"endpoint", "hashkv", "--rev={compacted}"},
		{"endpoint", "hashkv", "--rev={future}"},
		{"endpoint", "hashkv", "--rev={future}", "-w", "json"},
		{"endpoint", "hashkv", "--rev=-1"},
		{"endpoint", "hashkv", "-w", "yaml"},
		{"--endpoints={ep},{dead}", "endpoint", "hashkv", "--command-timeout=1s"},
		{"--endpoints={ep},{dead}", "endpoint", "hashkv", "--command-timeout=1s", "-w", "table"},
		{"--endpoints={ep},{dead}", "endpoint", "hashkv", "--command-timeout=1s", "-w", "json"},
		{"defrag", "--cluster"},
		{"defrag", "-w", "yaml"},
		{"--endpoints={ep},{dead}", "defrag", "--command-timeout=1s"},
		{"endpoint", "status", "-w", "json"},
	} {
		add(args...)
	}
	cases = append(cases,
		ctlCase{args: []string{"endpoint", "hashkv", "--rev=x"}, usageOnStdout: true},
		ctlCase{args: []string{"defrag", "--cluster=maybe"}, usageOnStdout: true},
	)
	s.runAll(t, cases)

	// Stricter than etcdctl, which ignores extra arguments.
	for _, args := range [][]string{{"defrag", "extra"}, {"endpoint", "hashkv", "extra"}} {
		r := runCairn(t, "", append([]string{"--endpoints=" + m.Endpoint()}, args...)...)
		if r.code != 128 || !strings.Contains(r.stderr, "accepts no arguments") {
			t.Errorf("cairn %s: %v, want exit 128 and an argument error", strings.Join(args, " "), r)
		}
	}
}
