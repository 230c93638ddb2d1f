package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestCompactionGivesSpaceBack checks cairn's claim that Defragment is not
// needed to get space back: after writing and overwriting a few MiB and a
// physical compaction, the member's etcd_mvcc_db_total_size_in_bytes must
// fall below what it was before the compaction on its own. If it does not,
// the test also reports whether a Defragment would have helped.
func TestCompactionGivesSpaceBack(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)

	// 8 keys overwritten 10 times with 64 KiB values: 5 MiB written, of
	// which 512 KiB is live.
	value := strings.Repeat("s", 64<<10)
	var rev int64
	for i := range 80 {
		r, err := cli.Put(ctx, fmt.Sprintf("space/%d", i%8), value)
		if err != nil {
			t.Fatal(err)
		}
		rev = r.Header.Revision
	}
	size := func() int64 {
		v, err := scrapeMetric(t, m.ClientURL(), "etcd_mvcc_db_total_size_in_bytes")
		if err != nil {
			t.Fatal(err)
		}
		return int64(v)
	}
	// The gauge may lag the writes: take it once it has held still for 2s.
	var before int64
	var stillSince time.Time
	waitFor(t, 30*time.Second, 250*time.Millisecond, "the db size settles after the writes", func() (bool, string) {
		now := size()
		if now != before || stillSince.IsZero() {
			before, stillSince = now, time.Now()
		}
		return time.Since(stillSince) >= 2*time.Second, fmt.Sprintf("still changing, at %s", inMiB(now))
	})
	t.Logf("before compaction: etcd_mvcc_db_total_size_in_bytes %s, Status db size %s", inMiB(before), inMiB(statusDBSize(t, cli, m)))
	if _, err := cli.Compact(ctx, rev, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}

	const limit = time.Minute
	compacted := time.Now()
	deadline := compacted.Add(limit)
	var now int64
	for {
		now = size()
		if now < before {
			t.Logf("after compaction, without Defragment: %s after %v", inMiB(now), time.Since(compacted).Round(100*time.Millisecond))
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("etcd_mvcc_db_total_size_in_bytes stayed at %s (%s before a physical compaction that dropped 4.5 MiB of overwritten values) for %v without Defragment",
		inMiB(now), inMiB(before), limit)

	// What a Defragment does, for the report.
	if _, err := cli.Defragment(ctx, m.Endpoint()); err != nil {
		t.Fatalf("defragment: %v", err)
	}
	deadline = time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if now = size(); now < before {
			t.Logf("a Defragment brought it down to %s", inMiB(now))
			return
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Errorf("even after a Defragment, etcd_mvcc_db_total_size_in_bytes is %s, not below %s", inMiB(now), inMiB(before))
	m.Restart(t)
	t.Logf("after a restart: %s", inMiB(size()))
}

// TestAutoCompactionPeriodic runs a member with etcd's periodic auto
// compaction and a 2s retention: a revision that was overwritten becomes
// unreadable (ErrCompacted) with nobody asking for a compaction, not before
// the retention has passed since it was overwritten, and the current value
// stays readable. CAIRN_E2E_SERVER=etcd runs it against etcd.
func TestAutoCompactionPeriodic(t *testing.T) {
	const retention = 2 * time.Second
	m := framework.Start(t, clusterConfig(t, "--auto-compaction-mode", "periodic", "--auto-compaction-retention", retention.String()))
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)
	first, err := cli.Put(ctx, "ac", "1")
	if err != nil {
		t.Fatal(err)
	}
	overwritten := time.Now()
	if _, err := cli.Put(ctx, "ac", "2"); err != nil {
		t.Fatal(err)
	}
	old := first.Header.Revision
	poll(t, time.Minute, "auto compaction past the overwritten revision", func() error {
		_, err := cli.Get(ctx, "ac", clientv3.WithRev(old))
		switch {
		case errors.Is(err, rpctypes.ErrCompacted):
			return nil
		case err != nil:
			t.Fatalf("get at revision %d: %v", old, err)
		}
		return fmt.Errorf("revision %d still readable %v after it was overwritten", old, time.Since(overwritten).Round(100*time.Millisecond))
	})
	if took := time.Since(overwritten); took < retention {
		t.Errorf("revision %d compacted %v after it was overwritten, within the %v retention", old, took, retention)
	}
	r, err := cli.Get(ctx, "ac")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 || string(r.Kvs[0].Value) != "2" {
		t.Fatalf("after auto compaction: %v, want ac=2", r.Kvs)
	}
}
