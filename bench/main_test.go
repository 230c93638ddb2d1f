package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestParseBenchmark(t *testing.T) {
	ok, err := os.ReadFile("testdata/benchmark-put.txt")
	if err != nil {
		t.Fatal(err)
	}
	failed, err := os.ReadFile("testdata/benchmark-errors.txt")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		out     string
		want    values
		wantErr string
	}{
		{"success", string(ok), values{keyRate: 370.0052998449134, keyP99: 0.290718548}, ""},
		{"some errors", string(ok) + "\nError distribution:\n  [3]\tcontext deadline exceeded\n  [2]\tetcdserver: too many requests\n",
			values{keyRate: 370.0052998449134, keyP99: 0.290718548, keyErrs: 5}, ""},
		{"every request failed", string(failed), nil, "all 20 requests failed"},
		{"no summary", "dial error: connection refused\n", nil, errNoSummary.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBenchmark(tt.out)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for k, want := range tt.want {
				if got[k] != want {
					t.Errorf("%s = %v, want %v", k, got[k], want)
				}
			}
			if len(got) != len(tt.want) && !(len(got) == len(tt.want)+1 && got[keyErrs] == 0) {
				t.Errorf("got %v, want %v", got, tt.want)
			}
		})
	}
}

func TestMedian(t *testing.T) {
	c := &cell{runs: map[int]values{1: {"x": 3}, 2: {"x": 1}, 3: {"x": 2}}}
	if m, ok := c.median("x"); !ok || m != 2 {
		t.Errorf("median of 3,1,2 = %v, %v; want 2", m, ok)
	}
	c.runs[4] = values{"x": 10}
	if m, _ := c.median("x"); m != 2.5 {
		t.Errorf("median of 3,1,2,10 = %v; want 2.5", m)
	}
	if _, ok := c.median("y"); ok {
		t.Error("median of a missing key reported ok")
	}
}

func TestSelectWorkloads(t *testing.T) {
	all := workloads(false)
	ids := func(ws []*workload) string {
		var s []string
		for _, w := range ws {
			s = append(s, w.id)
		}
		return strings.Join(s, ",")
	}
	for _, tt := range []struct{ patterns, want string }{
		{"put-1-*", "put-1-seq,put-1-rand"},
		{"range-1-s,lease-keepalive", "range-1-s,lease-keepalive"},
		{"*-rand", "put-1-rand,put-100-rand,put-1000-rand"},
		{"nothing", ""},
	} {
		if got := ids(selectWorkloads(all, strings.Split(tt.patterns, ","))); got != tt.want {
			t.Errorf("%q selects %q, want %q", tt.patterns, got, tt.want)
		}
	}
	if got := len(selectWorkloads(all, []string{"*"})); got != len(all) {
		t.Errorf("* selects %d of %d workloads", got, len(all))
	}
	seen := map[string]bool{}
	for _, w := range all {
		if seen[w.id] {
			t.Errorf("workload ID %s appears twice", w.id)
		}
		seen[w.id] = true
	}
}

// The versions the report names must be the ones the nested modules build.
func TestVersionsMatchModules(t *testing.T) {
	for _, tt := range []struct{ gomod, module, version string }{
		{"../tests/tools/etcd/go.mod", "go.etcd.io/etcd/server/v3", etcdVersion},
		{"tools/benchmark/go.mod", "go.etcd.io/etcd/v3", benchmarkVersion},
		{"go.mod", "go.etcd.io/etcd/client/v3", clientVersion},
	} {
		data, err := os.ReadFile(tt.gomod)
		if err != nil {
			t.Fatal(err)
		}
		re := regexp.MustCompile(`(?m)^\s*(?:require\s+)?` + regexp.QuoteMeta(tt.module) + `\s+(\S+)`)
		m := re.FindSubmatch(data)
		if m == nil {
			t.Errorf("%s does not require %s", tt.gomod, tt.module)
		} else if string(m[1]) != tt.version {
			t.Errorf("%s requires %s %s; the report says %s", tt.gomod, tt.module, m[1], tt.version)
		}
	}
}

func TestCommandLine(t *testing.T) {
	got := commandLine([]string{"-quick", "-workloads", "put-*,range-1-s", "-markdown", "/tmp/a b.md"})
	want := `cd bench && go run . -quick -workloads 'put-*,range-1-s' -markdown '/tmp/a b.md'`
	if got != want {
		t.Errorf("commandLine = %q, want %q", got, want)
	}
}

// TestQuickRun runs the harness end to end in -quick mode on a few cheap
// workloads of both kinds and checks that its table and Markdown parse.
// It builds cairn, etcd and the benchmark tool (into bench/bin); set
// CAIRN_TEST_CAIRN_BINARY, CAIRN_TEST_ETCD_BINARY or
// CAIRN_BENCH_TEST_BENCHMARK_BINARY to use prebuilt ones.
func TestQuickRun(t *testing.T) {
	if testing.Short() {
		t.Skip("starts servers; skipped with -short")
	}
	md := filepath.Join(t.TempDir(), "bench.md")
	args := []string{
		"-quick", "-rounds", "1", "-cluster", "single",
		"-workloads", "put-1-rand,range-1-s,watch-fanout,disk-overwrite",
		"-settle", "1s",
		"-data-root", t.TempDir(),
		"-markdown", md,
	}
	for flag, env := range map[string]string{
		"-cairn":     "CAIRN_TEST_CAIRN_BINARY",
		"-etcd":      "CAIRN_TEST_ETCD_BINARY",
		"-benchmark": "CAIRN_BENCH_TEST_BENCHMARK_BINARY",
	} {
		if p := os.Getenv(env); p != "" {
			args = append(args, flag, p)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	var stdout, stderr bytes.Buffer
	if err := run(ctx, args, &stdout, &stderr); err != nil {
		t.Fatalf("run: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	t.Logf("stderr:\n%s", &stderr)
	t.Logf("stdout:\n%s", &stdout)

	tables := parseTextTables(t, stdout.String())
	through := tables["single member: throughput"]
	if len(through) != 3 {
		t.Fatalf("throughput table has %d rows, want 3: %q", len(through), through)
	}
	for _, row := range through {
		if len(row) != 7 {
			t.Fatalf("row %q has %d columns, want 7", row, len(row))
		}
		for _, i := range []int{1, 2} {
			if n := leadingNumber(t, row[i]); n <= 0 {
				t.Errorf("%s: throughput %q is not positive", row[0], row[i])
			}
		}
		for _, i := range []int{4, 5} {
			if !strings.HasSuffix(row[i], " ms") && !strings.HasSuffix(row[i], " s") {
				t.Errorf("%s: p99 %q has no unit", row[0], row[i])
			}
			leadingNumber(t, row[i])
		}
		for _, i := range []int{3, 6} {
			if _, err := strconv.ParseFloat(row[i], 64); err != nil {
				t.Errorf("%s: ratio %q: %v", row[0], row[i], err)
			}
		}
	}
	res := tables["single member: resources"]
	if len(res) != 4 {
		t.Fatalf("resource table has %d rows, want 4: %q", len(res), res)
	}
	for _, row := range res {
		if len(row) != 4 || !strings.HasSuffix(row[1], " MiB") || !strings.HasSuffix(row[2], " MiB") {
			t.Errorf("resource row %q: want figure, cairn MiB, etcd MiB, ratio", row)
			continue
		}
		if leadingNumber(t, row[1]) <= 0 || leadingNumber(t, row[2]) <= 0 {
			t.Errorf("resource row %q has a size that is not positive", row)
		}
	}

	data, err := os.ReadFile(md)
	if err != nil {
		t.Fatal(err)
	}
	doc := string(data)
	for _, want := range []string{"| CPU |", "| Memory |", "| Kernel |", "| Disk (data root) |", "| Go |", "| Date |", "| Command | `cd bench && go run . -quick", "## Single member"} {
		if !strings.Contains(doc, want) {
			t.Errorf("Markdown lacks %q:\n%s", want, doc)
		}
	}
	rows := 0
	for _, line := range strings.Split(doc, "\n") {
		if strings.HasPrefix(line, "| put, 1 client") || strings.HasPrefix(line, "| data dir after") {
			rows++
			if n := strings.Count(line, " | "); n != 6 && n != 3 {
				t.Errorf("Markdown row has %d cells: %s", n+1, line)
			}
		}
	}
	if rows != 2 {
		t.Errorf("found %d of 2 expected Markdown rows:\n%s", rows, doc)
	}
}

// parseTextTables splits the printed report into its "== title" sections
// and each data row into its columns (separated by two or more spaces).
func parseTextTables(t *testing.T, out string) map[string][][]string {
	t.Helper()
	tables := map[string][][]string{}
	var cur string
	header := false
	sep := regexp.MustCompile(`\s{2,}`)
	for _, line := range strings.Split(out, "\n") {
		switch {
		case strings.HasPrefix(line, "== "):
			cur, header = strings.TrimPrefix(line, "== "), true
		case cur == "" || strings.TrimSpace(line) == "":
			cur = ""
		case header:
			header = false // the column names
		default:
			tables[cur] = append(tables[cur], sep.Split(strings.TrimSpace(line), -1))
		}
	}
	return tables
}

// leadingNumber parses "12,345 req/s" or "3.5 ms" as its number.
func leadingNumber(t *testing.T, s string) float64 {
	t.Helper()
	num, _, _ := strings.Cut(s, " ")
	f, err := strconv.ParseFloat(strings.ReplaceAll(num, ",", ""), 64)
	if err != nil {
		t.Errorf("%q does not start with a number: %v", s, err)
	}
	return f
}
