package e2e

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

func httpGet(t *testing.T, method, url string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// TestHTTPEndpoints checks the plain-HTTP endpoints of the client port, with
// etcd 3.6's bodies and status codes.
func TestHTTPEndpoints(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	base := m.ClientURL()
	cases := []struct {
		method, path string
		status       int
		body         string // exact, unless contains is set
		contains     []string
	}{
		{"GET", "/health", 200, `{"health":"true","reason":""}`, nil},
		{"GET", "/health?serializable=true", 200, `{"health":"true","reason":""}`, nil},
		{"POST", "/health", 405, "Method Not Allowed\n", nil},
		{"GET", "/version", 200, `{"etcdserver":"3.6.0","etcdcluster":"3.6.0","storage":"3.6.0"}`, nil},
		{"GET", "/livez", 200, "ok\n", nil},
		{"GET", "/readyz", 200, "ok\n", nil},
		{"GET", "/livez?verbose", 200, "[+]serializable_read ok\nok\n", nil},
		{"GET", "/readyz?verbose", 200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n", nil},
		{"GET", "/readyz/linearizable_read", 200, "ok\n", nil},
		{"GET", "/readyz?exclude=non_learner&verbose", 200, "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\nok\n", nil},
		{"GET", "/metrics", 200, "", []string{
			"etcd_server_has_leader 1",
			"etcd_server_is_leader 1",
			"etcd_server_proposals_committed_total",
			"etcd_server_proposals_applied_total",
			"etcd_mvcc_db_total_size_in_bytes",
			"etcd_mvcc_db_total_size_in_use_in_bytes",
			"etcd_disk_wal_fsync_duration_seconds_bucket",
			"etcd_disk_backend_commit_duration_seconds_bucket",
			"etcd_server_quota_backend_bytes 2.147483648e+09",
			"etcd_debugging_mvcc_keys_total",
		}},
		{"GET", "/debug/pprof/", 200, "", []string{"goroutine"}},
		{"GET", "/no/such/path", 404, "404 page not found\n", nil},
	}
	for _, tc := range cases {
		status, body := httpGet(t, tc.method, base+tc.path)
		if status != tc.status {
			t.Errorf("%s %s: status %d, want %d (body %q)", tc.method, tc.path, status, tc.status, body)
			continue
		}
		if tc.contains == nil && body != tc.body {
			t.Errorf("%s %s: body %q, want %q", tc.method, tc.path, body, tc.body)
		}
		for _, want := range tc.contains {
			if !strings.Contains(body, want) {
				t.Errorf("%s %s: body lacks %q", tc.method, tc.path, want)
			}
		}
	}
}

// TestNoSpace runs a member with a quota it is already over: writes that add
// data fail with etcd's "database space exceeded" and raise the NOSPACE
// alarm, which /health reports; reads and deletes still work; nothing
// acknowledged before is lost.
func TestNoSpace(t *testing.T) {
	m := framework.Start(t, framework.Config{Args: []string{"--quota-backend-bytes", "1"}})
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := cli.Put(ctx, "k", "v")
	if !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put over quota: got %v, want %v", err, rpctypes.ErrNoSpace)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("k", "v")).Commit(); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("txn put over quota: got %v, want %v", err, rpctypes.ErrNoSpace)
	}
	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm.String() != "NOSPACE" {
		t.Fatalf("alarms %v, want one NOSPACE", alarms.Alarms)
	}
	if _, err := cli.Get(ctx, "k"); err != nil {
		t.Fatalf("get under NOSPACE: %v", err)
	}
	if _, err := cli.Delete(ctx, "k"); err != nil {
		t.Fatalf("delete under NOSPACE: %v", err)
	}
	if _, err := cli.Txn(ctx).If(clientv3.Compare(clientv3.Version("k"), "=", 0)).Then(clientv3.OpGet("k")).Commit(); err != nil {
		t.Fatalf("read-only txn under NOSPACE: %v", err)
	}
	status, body := httpGet(t, "GET", m.ClientURL()+"/health")
	if status != 503 || body != "{\"health\":\"false\",\"reason\":\"ALARM NOSPACE\"}\n" {
		t.Fatalf("/health under NOSPACE: %d %q", status, body)
	}
	status, body = httpGet(t, "GET", m.ClientURL()+"/health?exclude=NOSPACE")
	if status != 200 || body != `{"health":"true","reason":""}` {
		t.Fatalf("/health?exclude=NOSPACE: %d %q", status, body)
	}
	st, err := cli.Status(ctx, m.Endpoint())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Errors) != 1 || !strings.Contains(st.Errors[0], "NOSPACE") {
		t.Fatalf("status errors %q, want the NOSPACE alarm", st.Errors)
	}
	// The alarm survives a restart.
	m.Restart(t)
	cli = m.Client(t)
	if _, err := cli.Put(ctx, "k", "v"); !errors.Is(err, rpctypes.ErrNoSpace) {
		t.Fatalf("put after restart under NOSPACE: got %v", err)
	}
}
