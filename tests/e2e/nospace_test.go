package e2e

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestQuotaRecovery fills a member with a 4 MiB --quota-backend-bytes until
// writes fail with etcd's "database space exceeded", checks what still works
// under the NOSPACE alarm (reads, deletes, compaction, defragmentation) and
// what does not (puts, txns that write, lease grants), then frees the space
// the way etcd's documentation says (delete, compact, defragment, disarm)
// and expects writes to succeed again.
func TestQuotaRecovery(t *testing.T) {
	const quota = 4 << 20
	m := framework.Start(t, framework.Config{Args: []string{"--quota-backend-bytes", fmt.Sprint(quota)}})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 5*time.Minute)
	isNoSpace := func(err error) bool {
		st, ok := status.FromError(err)
		return errors.Is(err, rpctypes.ErrNoSpace) || ok && st.Code() == codes.ResourceExhausted && st.Message() == "etcdserver: mvcc: database space exceeded"
	}

	// Fill: 100 KiB values under new keys, at most five times the quota.
	value := strings.Repeat("q", 100<<10)
	var written int
	for {
		_, err := cli.Put(ctx, fmt.Sprintf("big/%04d", written), value)
		if err != nil {
			if !isNoSpace(err) {
				t.Fatalf("put %d over the quota: %v, want etcd's database space exceeded", written, err)
			}
			break
		}
		written++
		if written*len(value) > 5*quota {
			t.Fatalf("wrote %s with a %s quota and no put failed", inMiB(int64(written*len(value))), inMiB(quota))
		}
	}
	t.Logf("NOSPACE after %d puts (%s of values); Status db size %s", written, inMiB(int64(written*len(value))), inMiB(statusDBSize(t, cli, m)))

	alarms, err := cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms.Alarms) != 1 || alarms.Alarms[0].Alarm != pb.AlarmType_NOSPACE {
		t.Fatalf("alarms %v, want one NOSPACE", alarms.Alarms)
	}
	self := alarms.Alarms[0].MemberID

	// Refused under the alarm.
	if _, err := cli.Put(ctx, "small", "x"); !isNoSpace(err) {
		t.Errorf("a small put under NOSPACE: %v, want database space exceeded", err)
	}
	if _, err := cli.Txn(ctx).Then(clientv3.OpPut("small", "x")).Commit(); !isNoSpace(err) {
		t.Errorf("a txn put under NOSPACE: %v, want database space exceeded", err)
	}
	if _, err := cli.Grant(ctx, 60); !isNoSpace(err) {
		t.Errorf("a lease grant under NOSPACE: %v, want database space exceeded", err)
	}
	// Allowed under the alarm.
	got, err := cli.Get(ctx, "big/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatalf("a range under NOSPACE: %v", err)
	}
	if got.Count != int64(written) {
		t.Errorf("%d keys under big/, want the %d acknowledged", got.Count, written)
	}
	del, err := cli.Delete(ctx, "big/", clientv3.WithPrefix())
	if err != nil {
		t.Fatalf("a delete under NOSPACE: %v", err)
	}
	if del.Deleted != int64(written) {
		t.Errorf("deleted %d keys, want %d", del.Deleted, written)
	}
	if _, err := cli.Compact(ctx, del.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
		t.Fatalf("a compaction under NOSPACE: %v", err)
	}
	if _, err := cli.Defragment(ctx, m.Endpoint()); err != nil {
		t.Fatalf("defragment under NOSPACE: %v", err)
	}

	// The space must come back below the quota, or the alarm would be
	// raised again by the first write after the disarm.
	var size int64
	waitFor(t, time.Minute, 250*time.Millisecond, "db size falls below the quota after delete, compaction and defragmentation", func() (bool, string) {
		size = statusDBSize(t, cli, m)
		return size < quota, fmt.Sprintf("Status db size %s, quota %s (the member can never leave NOSPACE)", inMiB(size), inMiB(quota))
	})
	t.Logf("db size %s after delete, compaction and defragmentation", inMiB(size))

	if _, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: self, Alarm: pb.AlarmType_NOSPACE}); err != nil {
		t.Fatalf("AlarmDisarm: %v", err)
	}
	alarms, err = cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms.Alarms) != 0 {
		t.Fatalf("alarms after the disarm: %v", alarms.Alarms)
	}
	if _, err := cli.Put(ctx, "small", "x"); err != nil {
		t.Fatalf("put after the disarm: %v", err)
	}
	if _, err := cli.Grant(ctx, 60); err != nil {
		t.Fatalf("lease grant after the disarm: %v", err)
	}
	alarms, err = cli.AlarmList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(alarms.Alarms) != 0 {
		t.Fatalf("a small write raised the alarm again: %v", alarms.Alarms)
	}
}

// statusDBSize is the member's Status db size.
func statusDBSize(t *testing.T, cli *clientv3.Client, m *framework.Member) int64 {
	t.Helper()
	st, err := cli.Status(deadlineCtx(t, 10*time.Second), m.Endpoint())
	if err != nil {
		t.Fatalf("status: %v", err)
	}
	return st.DbSize
}
