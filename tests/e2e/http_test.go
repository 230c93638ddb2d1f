package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
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

	// The values mean what etcd's do: the applied and committed indexes
	// (equal once the member has caught up, and still after a restart),
	// fsyncs counted, the database measured.
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)
	if _, err := cli.Put(ctx, "metrics", "v"); err != nil {
		t.Fatal(err)
	}
	var applied float64
	indexesMeet := func(after float64) func() error {
		return func() error {
			fams := scrapeMetrics(t, base)
			committed := metricValue(t, fams, "etcd_server_proposals_committed_total")
			applied = metricValue(t, fams, "etcd_server_proposals_applied_total")
			if applied != committed || applied <= after {
				return fmt.Errorf("proposals applied %v, committed %v: want them equal and above %v", applied, committed, after)
			}
			return nil
		}
	}
	poll(t, 30*time.Second, "applied meets committed after a put", indexesMeet(0))
	fams := scrapeMetrics(t, base)
	if n := histogramCount(t, fams, "etcd_disk_wal_fsync_duration_seconds"); n == 0 {
		t.Errorf("etcd_disk_wal_fsync_duration_seconds counted no fsync after a put")
	}
	if n := histogramCount(t, fams, "etcd_disk_backend_commit_duration_seconds"); n == 0 {
		t.Errorf("etcd_disk_backend_commit_duration_seconds counted no commit after a put")
	}
	if v := metricValue(t, fams, "etcd_mvcc_db_total_size_in_bytes"); v <= 0 {
		t.Errorf("etcd_mvcc_db_total_size_in_bytes is %v after a put", v)
	}
	if v := metricValue(t, fams, "etcd_debugging_mvcc_current_revision"); v < 2 {
		t.Errorf("etcd_debugging_mvcc_current_revision is %v after a put", v)
	}
	before := applied
	m.Restart(t)
	poll(t, 30*time.Second, "applied meets committed after a restart", indexesMeet(before))
}

// scrapeMetrics reads a member's /metrics.
func scrapeMetrics(t *testing.T, clientURL string) map[string]*dto.MetricFamily {
	t.Helper()
	status, body := httpGet(t, "GET", clientURL+"/metrics")
	if status != 200 {
		t.Fatalf("GET %s/metrics: status %d", clientURL, status)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(strings.NewReader(body))
	if err != nil {
		t.Fatalf("parse %s/metrics: %v", clientURL, err)
	}
	return fams
}

// metricValue returns the value of an unlabelled gauge or counter.
func metricValue(t *testing.T, fams map[string]*dto.MetricFamily, name string) float64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok || len(mf.Metric) != 1 {
		t.Fatalf("/metrics has no single %s", name)
	}
	switch m := mf.Metric[0]; mf.GetType() {
	case dto.MetricType_GAUGE:
		return m.GetGauge().GetValue()
	case dto.MetricType_COUNTER:
		return m.GetCounter().GetValue()
	}
	t.Fatalf("%s is a %v, not a gauge or counter", name, mf.GetType())
	return 0
}

// histogramCount returns the sample count of an unlabelled histogram.
func histogramCount(t *testing.T, fams map[string]*dto.MetricFamily, name string) uint64 {
	t.Helper()
	mf, ok := fams[name]
	if !ok || len(mf.Metric) != 1 || mf.GetType() != dto.MetricType_HISTOGRAM {
		t.Fatalf("/metrics has no single histogram %s", name)
	}
	return mf.Metric[0].GetHistogram().GetSampleCount()
}

// promisedMetrics reads the table of etcd metrics cairn promises from
// docs/metrics.md: name and type.
func promisedMetrics(t *testing.T) map[string]dto.MetricType {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	start := strings.Index(doc, "## The etcd metrics cairn promises")
	end := strings.Index(doc, "## cairn's own")
	if start < 0 || end < start {
		t.Fatalf("docs/metrics.md lost its sections")
	}
	out := map[string]dto.MetricType{}
	for _, line := range strings.Split(doc[start:end], "\n") {
		cells := strings.Split(line, "|")
		if len(cells) < 4 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		name := strings.Trim(strings.TrimSpace(cells[1]), "`")
		typ, ok := dto.MetricType_value[strings.ToUpper(strings.TrimSpace(cells[2]))]
		if !ok {
			t.Fatalf("docs/metrics.md: %s has type %q", name, cells[2])
		}
		out[name] = dto.MetricType(typ)
	}
	if len(out) < 30 {
		t.Fatalf("docs/metrics.md lists only %d metrics", len(out))
	}
	return out
}

// TestMetricsMatchEtcd holds cairn to the metric names it promises in
// docs/metrics.md: a real etcd 3.6 cluster and a cairn cluster are started
// alike (three members, --metrics=extensive, a write, a compaction, one
// follower stopped so the leader has a peer to fail sending to), and the
// leader of each must serve every promised metric with the documented type
// and the same label names and histogram buckets as etcd's.
func TestMetricsMatchEtcd(t *testing.T) {
	promised := promisedMetrics(t)
	leaderMetrics := func(t *testing.T, binary string) map[string]*dto.MetricFamily {
		c := framework.StartCluster(t, 3, framework.Config{Binary: binary, Args: []string{"--metrics", "extensive"}})
		cli := c.Client(t)
		ctx := deadlineCtx(t, 2*time.Minute)
		var rev int64
		for i := range 3 {
			r, err := cli.Put(ctx, "k", fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			rev = r.Header.Revision
		}
		if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
			t.Fatal(err)
		}
		leader := c.Leader(t)
		for _, m := range c.Members {
			if m != leader {
				m.Stop(t)
				break
			}
		}
		var fams map[string]*dto.MetricFamily
		poll(t, time.Minute, "every promised metric on the leader", func() error {
			fams = scrapeMetrics(t, leader.ClientURL())
			var missing []string
			for name := range promised {
				if _, ok := fams[name]; !ok {
					missing = append(missing, name)
				}
			}
			if len(missing) > 0 {
				sort.Strings(missing)
				return fmt.Errorf("missing %v", missing)
			}
			return nil
		})
		return fams
	}
	var etcd, cairn map[string]*dto.MetricFamily
	t.Run("etcd", func(t *testing.T) { etcd = leaderMetrics(t, framework.EtcdBinary(t)) })
	t.Run("cairn", func(t *testing.T) { cairn = leaderMetrics(t, framework.CairnBinary(t)) })
	if etcd == nil || cairn == nil {
		t.FailNow()
	}
	names := make([]string, 0, len(promised))
	for name := range promised {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		e, c := etcd[name], cairn[name]
		if e.GetType() != promised[name] {
			t.Errorf("%s: etcd has a %v, docs/metrics.md says %v", name, e.GetType(), promised[name])
		}
		if c.GetType() != e.GetType() {
			t.Errorf("%s: cairn has a %v, etcd a %v", name, c.GetType(), e.GetType())
		}
		if el, cl := labelNames(e), labelNames(c); el != cl {
			t.Errorf("%s: cairn's labels are {%s}, etcd's {%s}", name, cl, el)
		}
		if e.GetType() == dto.MetricType_HISTOGRAM {
			if eb, cb := bucketBounds(e), bucketBounds(c); eb != cb {
				t.Errorf("%s: cairn's buckets are %s, etcd's %s", name, cb, eb)
			}
		}
	}
}

func labelNames(mf *dto.MetricFamily) string {
	set := map[string]bool{}
	for _, m := range mf.Metric {
		for _, l := range m.Label {
			set[l.GetName()] = true
		}
	}
	var names []string
	for n := range set {
		names = append(names, n)
	}
	sort.Strings(names)
	return strings.Join(names, ",")
}

func bucketBounds(mf *dto.MetricFamily) string {
	if len(mf.Metric) == 0 {
		return ""
	}
	var bounds []string
	for _, b := range mf.Metric[0].GetHistogram().GetBucket() {
		bounds = append(bounds, fmt.Sprint(b.GetUpperBound()))
	}
	return strings.Join(bounds, " ")
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
