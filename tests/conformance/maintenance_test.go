package conformance_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"

	"github.com/cairn-io/cairn/tests/framework"
)

var errCorrupt = rpcErr{codes.DataLoss, "etcdserver: corrupt cluster"}

// Maintenance steps. A member ID of 0 in an alarm step stands for the
// side's own member (except in alarmDisarm with NONE, where clientv3 takes
// 0 and NONE to mean every alarm).

func memberStatus() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Status(ctx, s.member.Endpoint())
			return err
		})
	}}
}

// settled waits until the member reports storage version 3.6.0. etcd
// starts at 3.5.0 and updates it shortly after it is elected, so a Status
// right after start is a race; scenarios that compare Status begin with it.
func settled() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		var last string
		for {
			st, err := s.cli.Status(ctx, s.member.Endpoint())
			if err == nil && st.StorageVersion == "3.6.0" {
				return outcome{method: "Status", resp: &sent{"(waited for storage version 3.6.0)"}}
			}
			if err != nil {
				last = err.Error()
			} else {
				last = "storage version " + st.StorageVersion
			}
			select {
			case <-ctx.Done():
				return outcome{method: "Status", err: toRPCErr(fmt.Errorf("storage version never became 3.6.0: %s", last))}
			case <-time.After(20 * time.Millisecond):
			}
		}
	}}
}

// alarm sends an AlarmRequest as it is (clientv3 cannot activate alarms).
func alarm(action pb.AlarmRequest_AlarmAction, member uint64, typ pb.AlarmType) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		id := member
		if id == 0 {
			id = s.self
		}
		return s.capture(func() error {
			_, err := pb.NewMaintenanceClient(s.cli.ActiveConnection()).Alarm(ctx, &pb.AlarmRequest{Action: action, MemberID: id, Alarm: typ})
			return err
		})
	}}
}

func alarmList() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.AlarmList(ctx)
			return err
		})
	}}
}

// alarmDisarm is clientv3's AlarmDisarm.
func alarmDisarm(member uint64, typ pb.AlarmType) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		id := member
		if id == 0 && typ != noAlarm {
			id = s.self
		}
		return s.capture(func() error {
			_, err := s.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: id, Alarm: typ})
			return err
		})
	}}
}

// disarmAll is clientv3's AlarmDisarm of every alarm (member 0, NONE).
func disarmAll() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		o := s.capture(func() error {
			_, err := s.cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
			return err
		})
		if o.err == nil {
			o.resp = &sent{"(every alarm disarmed)"}
		}
		return o
	}}
}

func hashKV(rev int64) step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.HashKV(ctx, s.member.Endpoint(), rev)
			return err
		})
	}}
}

func hash() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := pb.NewMaintenanceClient(s.cli.ActiveConnection()).Hash(ctx, &pb.HashRequest{})
			return err
		})
	}}
}

func defrag() step {
	return step{exec: func(ctx context.Context, s *side) outcome {
		return s.capture(func() error {
			_, err := s.cli.Defragment(ctx, s.member.Endpoint())
			return err
		})
	}}
}

// alarms states how many alarms etcd lists.
func (s step) alarms(n int) step {
	return s.with(func(o outcome) error {
		r, ok := o.resp.(*pb.AlarmResponse)
		if !ok {
			return fmt.Errorf("want an Alarm response, got %s", render(o))
		}
		if len(r.Alarms) != n {
			return fmt.Errorf("want %d alarms, got %d", n, len(r.Alarms))
		}
		return nil
	})
}

const (
	activate   = pb.AlarmRequest_ACTIVATE
	deactivate = pb.AlarmRequest_DEACTIVATE
	alarmGet   = pb.AlarmRequest_GET
	nospace    = pb.AlarmType_NOSPACE
	corrupt    = pb.AlarmType_CORRUPT
	noAlarm    = pb.AlarmType_NONE
)

func TestMaintenanceConformance(t *testing.T) {
	for _, sc := range maintenanceScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ref, sub := startPair(t, sc.args)
			runSteps(t, ref, sub, sc.steps)
		})
	}
}

func maintenanceScenarios() []scenario {
	return []scenario{
		{name: "maintenance/status", steps: []step{
			settled(),
			memberStatus(),
			put("a", "1").rev(2),
			memberStatus(),
		}},
		{name: "maintenance/status-quota", args: []string{"--quota-backend-bytes=100000000"}, steps: []step{
			settled(),
			memberStatus(),
		}},
		{name: "maintenance/alarm-nospace-round-trip", steps: []step{
			settled(),
			put("a", "1").rev(2),
			alarmList().alarms(0),
			alarm(activate, 0, nospace).alarms(1),
			alarmList().alarms(1),
			alarm(alarmGet, 0, nospace).alarms(1),
			alarm(alarmGet, 0, corrupt).alarms(0),
			memberStatus(), // lists the alarm in errors
			put("a", "2").fails(errNoSpace),
			put("b", "").fails(errNoSpace),
			txn(nil, ops{putOp("a", "2")}, nil).fails(errNoSpace),
			txn(ifs{value("a", "=", "x")}, ops{putOp("a", "2")}, ops{getOp("a")}).fails(errNoSpace), // a txn that could write
			txn(nil, ops{getOp("a")}, nil).rev(2),                                                   // a read-only txn is fine
			grant(60).fails(errNoSpace),
			grantID(7, 60).fails(errNoSpace),
			get("a").rev(2).kvs(1),
			del("a").rev(3), // deletes are allowed
			compact(2).rev(3),
			alarm(activate, 12345, nospace).alarms(1), // another member's
			alarmList().alarms(2),
			alarmDisarm(0, nospace).alarms(1),
			put("a", "3").fails(errNoSpace), // the other member's alarm still holds
			alarmDisarm(12345, nospace).alarms(1),
			alarmDisarm(12345, nospace).alarms(0), // not raised
			alarm(deactivate, 0, nospace).alarms(0),
			alarmList().alarms(0),
			put("a", "3").rev(4),
			grantID(7, 60).ttl(60),
			alarm(activate, 0, noAlarm).alarms(0), // NONE raises nothing
			alarmList().alarms(0),
			memberStatus(),
		}},
		{name: "maintenance/alarm-activate-twice", steps: []step{
			alarm(activate, 0, nospace).alarms(1),
			alarm(activate, 0, nospace).alarms(1), // already raised: etcd answers with it again
			alarm(activate, 12345, corrupt).alarms(1),
			alarm(activate, 12345, corrupt).alarms(1),
			alarmList().alarms(2),
		}},
		{name: "maintenance/alarm-disarm-all", steps: []step{
			alarm(activate, 0, nospace),
			alarm(activate, 99, nospace),
			// Member 0 and NONE: clientv3 lists the alarms and disarms them
			// one by one, returning the last answer; etcd lists them in map
			// order, so only the outcome is compared.
			disarmAll(),
			alarmList().alarms(0),
			put("a", "1").rev(2),
		}},
		{name: "maintenance/alarm-corrupt", steps: []step{
			put("a", "1").rev(2),
			alarm(activate, 0, corrupt).alarms(1),
			put("a", "2"),
			get("a"),
			txn(nil, ops{getOp("a")}, nil),
			alarm(deactivate, 0, corrupt).alarms(1),
			put("a", "3"),
			get("a"),
		}},
		{name: "maintenance/quota-exceeded", args: []string{"--quota-backend-bytes=1"}, steps: []step{
			settled(),
			get("a").rev(1),
			put("a", "1").fails(errNoSpace), // raises NOSPACE
			alarmList().alarms(1),
			grant(60).fails(errNoSpace),
			txn(nil, ops{getOp("a")}, nil).rev(1),
			del("a").rev(1),
			memberStatus(),
		}},
		{name: "maintenance/hash-kv", steps: []step{
			put("a", "1").rev(2),
			put("b", "1").rev(3),
			put("a", "2").rev(4),
			del("b").rev(5),
			txn(nil, ops{putOp("c", "1"), putOp("d", "1")}, nil).rev(6),
			hashKV(0),
			hashKV(6),
			hashKV(4),
			hashKV(1),
			hashKV(7).fails(errFutureRev),
			compact(4).rev(6),
			hashKV(0),
			hashKV(5),
			hashKV(3).fails(errCompacted),
			hash(),
			put("e", "1").rev(7),
			hashKV(0),
		}},
		{name: "maintenance/defragment", steps: []step{
			put("a", "1").rev(2),
			del("a").rev(3),
			compact(3).rev(3),
			defrag(), // etcd's answer has no header at all
			get("a").rev(3).kvs(0),
			hashKV(0),
		}},
		{name: "maintenance/hash-kv-negative-revision", steps: []step{
			put("a", "1").rev(2),
			hashKV(-1), // etcd hashes nothing and answers hash_revision -1
			hashKV(0),
		}},
		{name: "maintenance/hash-kv-at-compaction-revision", steps: []step{
			put("a", "1").rev(2),
			put("a", "2").rev(3),
			put("b", "1").rev(4),
			compact(3).rev(4),
			// etcd answers from the hash it took while compacting: that
			// hash covers up to revision 3 from the previous compaction
			// (none: -1), and says so.
			hashKV(3),
			compact(4).rev(4),
			hashKV(4),
			hashKV(0),
		}},
	}
}

// TestHashKVSameHistory checks that two members of the same kind that went
// through the same history report the same HashKV at every revision, while
// one write more changes the hash, for etcd and for cairn; and that the two
// kinds agree on everything in the answer but the hash itself.
func TestHashKVSameHistory(t *testing.T) {
	kinds := []struct {
		name   string
		binary func(testing.TB) string
	}{
		{"etcd", framework.EtcdBinary},
		{"cairn", framework.CairnBinary},
	}
	if selftest {
		kinds[1].binary = framework.EtcdBinary
	}
	answers := map[string][]*pb.HashKVResponse{}
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			a := framework.Start(t, framework.Config{Binary: k.binary(t), Name: "a"})
			b := framework.Start(t, framework.Config{Binary: k.binary(t), Name: "b"})
			ca, cb := a.Client(t), b.Client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
			defer cancel()
			for _, c := range []*clientv3.Client{ca, cb} {
				hashHistory(ctx, t, c)
			}
			hashOf := func(c *clientv3.Client, m *framework.Member, rev int64) *pb.HashKVResponse {
				t.Helper()
				r, err := c.HashKV(ctx, m.Endpoint(), rev)
				if err != nil {
					t.Fatalf("%s: HashKV(%d): %v", m.Name(), rev, err)
				}
				return (*pb.HashKVResponse)(r)
			}
			for _, rev := range []int64{0, 40, 30, 21} {
				ha, hb := hashOf(ca, a, rev), hashOf(cb, b, rev)
				if ha.Hash != hb.Hash || ha.HashRevision != hb.HashRevision || ha.CompactRevision != hb.CompactRevision {
					t.Errorf("HashKV(%d) after the same history: %s has hash=%d hash_revision=%d compact_revision=%d, %s has hash=%d hash_revision=%d compact_revision=%d",
						rev, a.Name(), ha.Hash, ha.HashRevision, ha.CompactRevision, b.Name(), hb.Hash, hb.HashRevision, hb.CompactRevision)
				}
				answers[k.name] = append(answers[k.name], ha)
			}
			// One more write on a only: the hash at the new revision differs
			// from b's at the same revision (b writes something else), while
			// the old revision still hashes the same.
			if _, err := ca.Put(ctx, "extra", "a"); err != nil {
				t.Fatal(err)
			}
			if _, err := cb.Put(ctx, "extra", "b"); err != nil {
				t.Fatal(err)
			}
			if ha, hb := hashOf(ca, a, 0), hashOf(cb, b, 0); ha.Hash == hb.Hash {
				t.Errorf("HashKV after different last writes is %d on both members: it does not cover the values", ha.Hash)
			}
			if ha, hb := hashOf(ca, a, 40), hashOf(cb, b, 40); ha.Hash != hb.Hash {
				t.Errorf("HashKV(40) changed on one member after a later write: %d against %d", ha.Hash, hb.Hash)
			}
		})
	}
	// The kinds agree on what was hashed.
	e, c := answers["etcd"], answers["cairn"]
	if len(e) != len(c) {
		return // a subtest failed already
	}
	for i := range e {
		if e[i].HashRevision != c[i].HashRevision || e[i].CompactRevision != c[i].CompactRevision || e[i].Header.Revision != c[i].Header.Revision {
			t.Errorf("HashKV answer %d: etcd hash_revision=%d compact_revision=%d header revision=%d; cairn %d, %d, %d",
				i, e[i].HashRevision, e[i].CompactRevision, e[i].Header.Revision, c[i].HashRevision, c[i].CompactRevision, c[i].Header.Revision)
		}
	}
}

// hashHistory writes the same 40 revisions to a fresh store: puts,
// overwrites, deletes, a multi-key txn, keys with a client-chosen lease, a
// lease revoke, and a compaction at revision 20.
func hashHistory(ctx context.Context, t *testing.T, c *clientv3.Client) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := pb.NewLeaseClient(c.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 77, TTL: 600})
	must(err)
	for i := 2; i <= 40; {
		var err error
		switch {
		case i%10 == 3:
			_, err = c.Txn(ctx).Then(clientv3.OpPut(fmt.Sprintf("t%d", i), "x"), clientv3.OpDelete(fmt.Sprintf("k%d", (i-1)%5))).Commit()
		case i%7 == 0 && i < 30:
			_, err = c.Put(ctx, fmt.Sprintf("l%d", i), "leased", clientv3.WithLease(77))
		case i == 30:
			_, err = c.Revoke(ctx, 77)
		default:
			_, err = c.Put(ctx, fmt.Sprintf("k%d", i%5), fmt.Sprint(i))
		}
		must(err)
		i++
		if i == 21 {
			_, err := c.Compact(ctx, 20, clientv3.WithCompactPhysical())
			must(err)
		}
	}
	r, err := c.Get(ctx, "k")
	must(err)
	if r.Header.Revision != 40 {
		t.Fatalf("the history ends at revision %d, want 40", r.Header.Revision)
	}
}
