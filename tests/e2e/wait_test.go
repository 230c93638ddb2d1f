package e2e

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// deadlineCtx returns a context that ends after d or with the test.
func deadlineCtx(t *testing.T, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// waitFor calls cond every interval until it reports done, and fails the
// test with cond's last explanation if that has not happened within limit.
func waitFor(t *testing.T, limit, interval time.Duration, what string, cond func() (done bool, status string)) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		done, status := cond()
		if done {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not so after %v: %s", what, limit, status)
		}
		time.Sleep(interval)
	}
}

// memberRSS reads the resident set size of process pid from /proc.
func memberRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skipf("cannot read the member's memory use: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "VmRSS:") {
			continue
		}
		fields := strings.Fields(strings.TrimPrefix(line, "VmRSS:"))
		if len(fields) != 2 || fields[1] != "kB" {
			t.Fatalf("unexpected VmRSS line %q", line)
		}
		kb, err := strconv.ParseInt(fields[0], 10, 64)
		if err != nil {
			t.Fatalf("VmRSS line %q: %v", line, err)
		}
		return kb << 10
	}
	t.Fatalf("no VmRSS in /proc/%d/status", pid)
	return 0
}

// scrapeMetric reads one unlabelled gauge from a member's /metrics.
func scrapeMetric(t *testing.T, clientURL, name string) (float64, error) {
	t.Helper()
	status, body := httpGet(t, "GET", clientURL+"/metrics")
	if status != 200 {
		return 0, fmt.Errorf("/metrics: status %d", status)
	}
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return strconv.ParseFloat(strings.TrimSpace(v), 64)
		}
	}
	return 0, fmt.Errorf("/metrics has no %s", name)
}

func inMiB(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }
