package e2e

import (
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestMembership changes the members of one running cluster with the real
// etcdctl: a learner joins while writes continue and is promoted once it
// has caught up, then a member is removed, one moves to a new peer URL,
// leadership is moved, and the leader is removed. Members snapshot every 100 entries, so the learner
// can only catch up from a snapshot.
func TestMembership(t *testing.T) {
	c := framework.StartCluster(t, 3, clusterConfig(t, "--snapshot-count", "100"))

	// Each step starts from the membership the one before left.
	_ = t.Run("Learner", func(sub *testing.T) { learner(sub, t, c) }) &&
		t.Run("Remove", func(t *testing.T) { removeMember(t, c) }) &&
		t.Run("UpdatePeerURL", func(t *testing.T) { updatePeerURL(t, c) }) &&
		t.Run("MoveLeader", func(t *testing.T) { moveLeader(t, c) }) &&
		t.Run("RemoveLeader", func(t *testing.T) { removeLeader(t, c) })
}

const learnerNotReady = "can only promote a learner member which is in sync with leader"

// learner runs in subtest t; the new member lives as long as the cluster's
// test, top.
func learner(t, top *testing.T, c *framework.Cluster) {
	voters := slices.Clone(c.Members)
	cli := c.Client(t)
	prefix := fmt.Sprintf("learner/%d/", time.Now().UnixNano())
	w := startWriters(t, cli, prefix, 4)
	// Far more entries than the 100 the leader keeps after a snapshot.
	w.waitAcks(600, 60*time.Second)
	sentBefore := snapshotsSent(t, voters)

	l := c.NewMember(top, "learner")
	id := memberAdd(t, c.Endpoints(), l, true)
	hexID := strconv.FormatUint(id, 16)

	// Not started: it has nothing, and promoting it must fail, whether
	// the leader is asked or a follower (which forwards to the leader).
	leader := c.Leader(t)
	var follower *framework.Member
	for _, m := range voters {
		if m != leader {
			follower = m
			break
		}
	}
	for _, m := range []*framework.Member{leader, follower} {
		if out, errOut, err := framework.Etcdctl(t, []string{m.Endpoint()}, "member", "promote", hexID); err == nil || !strings.Contains(errOut, learnerNotReady) {
			t.Fatalf("etcdctl member promote, through %s, of a learner that never started: err %v\nstdout: %s\nstderr: %s\nwant %q",
				m.Name(), err, out, errOut, learnerNotReady)
		}
	}
	// A learner cannot lead.
	if _, errOut, err := framework.Etcdctl(t, c.Endpoints(), "move-leader", hexID); err == nil || !strings.Contains(errOut, rpctypes.ErrorDesc(rpctypes.ErrGRPCBadLeaderTransferee)) {
		t.Fatalf("etcdctl move-leader to a learner: %v %q, want %q", err, errOut, rpctypes.ErrorDesc(rpctypes.ErrGRPCBadLeaderTransferee))
	}

	l.Launch(t)
	lcli := l.Client(t)
	poll(t, 60*time.Second, "the learner to serve Status", func() error {
		st, err := lcli.Status(testCtx(t, 5*time.Second), l.Endpoint())
		if err != nil {
			return err
		}
		if !st.IsLearner || st.Header.MemberId != id {
			return fmt.Errorf("status: member %x, learner %v; want learner %x", st.Header.MemberId, st.IsLearner, id)
		}
		return nil
	})
	learnerRefuses(t, l)

	// While writes continue, promotion fails only with etcd's "not in
	// sync" error until it succeeds; the learner must get there.
	leaderCli := leader.Client(t)
	var refusals int
	promoted := false
	caughtUp := func() (bool, error) {
		lr, err := revisions(testCtx(t, 5*time.Second), []*clientv3.Client{lcli})
		if err != nil {
			return false, err
		}
		vr, err := revisions(testCtx(t, 5*time.Second), []*clientv3.Client{leaderCli})
		if err != nil {
			return false, err
		}
		return lr[0] >= vr[0]-int64(vr[0]/10), nil
	}
	poll(t, 60*time.Second, "the learner to catch up with writes going on", func() error {
		ok, err := caughtUp()
		if err != nil || ok {
			return err
		}
		_, errOut, err := framework.Etcdctl(t, c.Endpoints(), "member", "promote", hexID)
		if err == nil {
			promoted = true
			return nil
		}
		if !strings.Contains(errOut, learnerNotReady) {
			t.Fatalf("etcdctl member promote of a learner catching up: %v: %s", err, errOut)
		}
		refusals++
		return fmt.Errorf("not caught up")
	})
	acks := w.stop()
	t.Logf("promotion refused %d times while the learner caught up", refusals)

	if !promoted {
		// Caught up and nothing is written now: it must be in sync.
		poll(t, 30*time.Second, "the learner to reach the leader's revision", func() error {
			revs, err := revisions(testCtx(t, 5*time.Second), []*clientv3.Client{lcli, leaderCli})
			if err != nil {
				return err
			}
			if revs[0] != revs[1] {
				return fmt.Errorf("learner at %d, leader at %d", revs[0], revs[1])
			}
			return nil
		})
		// Through a follower, which forwards to the leader.
		out, errOut, err := framework.Etcdctl(t, []string{follower.Endpoint()}, "member", "promote", hexID)
		if err != nil {
			t.Fatalf("etcdctl member promote, through %s, of a learner at the leader's revision: %v\nstdout: %s\nstderr: %s", follower.Name(), err, out, errOut)
		}
		if !strings.Contains(out, "promoted") {
			t.Fatalf("etcdctl member promote printed %q", out)
		}
	}
	poll(t, 10*time.Second, "a snapshot sent to the learner", func() error {
		if snapshotsSent(t, voters) == sentBefore {
			return fmt.Errorf("the learner joined after 600 writes, past the retained log, but no member reports a snapshot sent")
		}
		return nil
	})

	c.Members = append(c.Members, l)
	poll(t, 30*time.Second, "the promoted member to know it votes", func() error {
		if st := statusOf(t, l); st.IsLearner {
			return fmt.Errorf("still a learner")
		}
		return nil
	})
	ml, err := cli.MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != 4 {
		t.Fatalf("member list after promotion: %v", ml.Members)
	}
	for _, m := range ml.Members {
		if m.IsLearner {
			t.Fatalf("member list after promotion still has a learner: %v", m)
		}
	}
	c.Leader(t)
	waitSameHash(t, c.Members)
	checkAcks(t, lcli, prefix, acks, true)
	// It is a voter now: linearizable reads and writes work on it.
	if _, err := lcli.Put(testCtx(t, 10*time.Second), "learner/after", "x"); err != nil {
		t.Fatalf("put on the promoted member: %v", err)
	}
	if _, err := lcli.Get(testCtx(t, 10*time.Second), "learner/after"); err != nil {
		t.Fatalf("linearizable read on the promoted member: %v", err)
	}
}

// learnerRefuses checks etcd's learner restrictions: everything but
// serializable reads and Status is refused with "rpc not supported for
// learner". Requests go without clientv3's retries, which would retry that
// error.
func learnerRefuses(t *testing.T, l *framework.Member) {
	ctx := testCtx(t, 30*time.Second)
	conn := rawConn(t, l)
	kv, lease := pb.NewKVClient(conn), pb.NewLeaseClient(conn)
	cluster, maint := pb.NewClusterClient(conn), pb.NewMaintenanceClient(conn)
	refused := []struct {
		name string
		call func() error
	}{
		{"Put", func() error { _, err := kv.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte("v")}); return err }},
		{"linearizable Range", func() error { _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k")}); return err }},
		{"DeleteRange", func() error { _, err := kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte("k")}); return err }},
		{"Txn", func() error { _, err := kv.Txn(ctx, &pb.TxnRequest{}); return err }},
		{"Compact", func() error { _, err := kv.Compact(ctx, &pb.CompactionRequest{Revision: 1}); return err }},
		{"LeaseGrant", func() error { _, err := lease.LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: 10}); return err }},
		{"MemberList", func() error { _, err := cluster.MemberList(ctx, &pb.MemberListRequest{}); return err }},
		{"HashKV", func() error { _, err := maint.HashKV(ctx, &pb.HashKVRequest{}); return err }},
		{"Watch", func() error {
			ws, err := pb.NewWatchClient(conn).Watch(ctx)
			if err != nil {
				return err
			}
			// A stream the server ended makes Send fail with io.EOF;
			// Recv then returns the server's error.
			if err := ws.Send(&pb.WatchRequest{RequestUnion: &pb.WatchRequest_CreateRequest{CreateRequest: &pb.WatchCreateRequest{Key: []byte("k")}}}); err != nil && err != io.EOF {
				return err
			}
			_, err = ws.Recv()
			return err
		}},
	}
	for _, r := range refused {
		if err := r.call(); !errorIs(err, rpctypes.ErrGRPCNotSupportedForLearner) {
			t.Errorf("%s on a learner: %v; want %q", r.name, err, rpctypes.ErrGRPCNotSupportedForLearner.Error())
		}
	}
	if _, err := kv.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Serializable: true}); err != nil {
		t.Errorf("serializable Range on a learner: %v", err)
	}
	if _, err := maint.Status(ctx, &pb.StatusRequest{}); err != nil {
		t.Errorf("Status on a learner: %v", err)
	}
	// The real etcdctl sees the same.
	if _, errOut, err := framework.Etcdctl(t, []string{l.Endpoint()}, "put", "k", "v"); err == nil || !strings.Contains(errOut, "rpc not supported for learner") {
		t.Errorf("etcdctl put on a learner: %v %q; want rpc not supported for learner", err, errOut)
	}
	if _, _, err := framework.Etcdctl(t, []string{l.Endpoint()}, "get", "k", "--consistency=s"); err != nil {
		t.Errorf("etcdctl get --consistency=s on a learner: %v", err)
	}
}

// removeMember removes a follower with etcdctl member remove: its process
// must exit by itself with status 0, the member list loses it, and the
// others keep serving.
func removeMember(t *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	victim := c.FollowerOf(leader)
	id := memberID(t, victim)
	var rest []*framework.Member
	var eps []string
	for _, m := range c.Members {
		if m != victim {
			rest = append(rest, m)
			eps = append(eps, m.Endpoint())
		}
	}
	out := etcdctlReconfig(t, eps, "member", "remove", strconv.FormatUint(id, 16))
	if !strings.Contains(out, "removed from cluster") {
		t.Fatalf("etcdctl member remove printed %q", out)
	}
	if code := victim.WaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("the removed member exited with status %d, want 0", code)
	}
	c.Members = rest
	ml, err := leader.Client(t).MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != len(rest) {
		t.Fatalf("member list after removal has %d members, want %d", len(ml.Members), len(rest))
	}
	for _, m := range ml.Members {
		if m.ID == id {
			t.Fatalf("member list after removal still has %x", id)
		}
	}
	c.Leader(t)
	if _, err := newClient(t, eps).Put(testCtx(t, 10*time.Second), "remove/after", "x"); err != nil {
		t.Fatalf("put after the removal: %v", err)
	}
	waitSameHash(t, c.Members)
}

// updatePeerURL moves a follower to a new peer port: stop it, tell the
// cluster with etcdctl member update, restart it there. It must serve
// linearizable reads again, which needs the leader to reach it at the new
// URL, and the member list must show the new URL.
func updatePeerURL(t *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	id := memberID(t, f)
	f.Stop(t)
	url := f.MovePeerURL(t)
	var eps []string
	for _, m := range c.Members {
		if m != f {
			eps = append(eps, m.Endpoint())
		}
	}
	out := etcdctlReconfig(t, eps, "member", "update", strconv.FormatUint(id, 16), "--peer-urls="+url)
	if !strings.Contains(out, "updated in cluster") {
		t.Fatalf("etcdctl member update printed %q", out)
	}
	f.Restart(t)
	c.Leader(t)
	ml, err := f.Client(t).MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		if m.ID == id && !slices.Equal(m.PeerURLs, []string{url}) {
			t.Fatalf("member list shows %s with peer URLs %v, want [%s]", f.Name(), m.PeerURLs, url)
		}
	}
	put, err := leader.Client(t).Put(testCtx(t, 10*time.Second), "update/after", "x")
	if err != nil {
		t.Fatal(err)
	}
	get, err := f.Client(t).Get(testCtx(t, 10*time.Second), "update/after")
	if err != nil || len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("linearizable read on the moved member: %v, %v; want the write at revision %d", get, err, put.Header.Revision)
	}
	waitSameHash(t, c.Members)
}

// moveLeader hands leadership to each follower in turn with etcdctl
// move-leader: every member must then name it, and writes continue.
func moveLeader(t *testing.T, c *framework.Cluster) {
	for range 2 {
		leader := c.Leader(t)
		target := c.FollowerOf(leader)
		id := memberID(t, target)
		out := etcdctl(t, c.Endpoints(), "move-leader", strconv.FormatUint(id, 16))
		if !strings.Contains(out, "Leadership transferred") {
			t.Fatalf("etcdctl move-leader printed %q", out)
		}
		if now := c.Leader(t); now != target {
			t.Fatalf("after move-leader to %s the leader is %s", target.Name(), now.Name())
		}
		if _, err := c.Client(t).Put(testCtx(t, 10*time.Second), "move/after", "x"); err != nil {
			t.Fatalf("put after move-leader: %v", err)
		}
	}
	// Asking a follower to move leadership is refused, as in etcd.
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	_, err := f.Client(t).MoveLeader(testCtx(t, 10*time.Second), memberID(t, leader))
	if !errorIs(err, rpctypes.ErrGRPCNotLeader) {
		t.Fatalf("MoveLeader on a follower: %v, want %v", err, rpctypes.ErrGRPCNotLeader)
	}
}

func newClient(t *testing.T, eps []string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// removeLeader removes the leader itself: etcdctl reports success, the old
// leader's process exits by itself with status 0, and the others elect a
// new leader and keep serving.
func removeLeader(t *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	id := memberID(t, leader)
	var rest []*framework.Member
	var eps []string
	for _, m := range c.Members {
		if m != leader {
			rest = append(rest, m)
			eps = append(eps, m.Endpoint())
		}
	}
	// Asked through the others: etcd's leader, asked to remove itself,
	// stops before it answers ("server stopped").
	out := etcdctlReconfig(t, eps, "member", "remove", strconv.FormatUint(id, 16))
	if !strings.Contains(out, "removed from cluster") {
		t.Fatalf("etcdctl member remove printed %q", out)
	}
	if code := leader.WaitExit(t, 30*time.Second); code != 0 {
		t.Fatalf("the removed leader exited with status %d, want 0", code)
	}
	c.Members = rest
	if now := c.Leader(t); now == leader {
		t.Fatal("the removed member is still the leader")
	}
	cli := c.Client(t)
	if _, err := cli.Put(testCtx(t, 10*time.Second), "remove-leader/after", "x"); err != nil {
		t.Fatalf("put after removing the leader: %v", err)
	}
	ml, err := cli.MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(ml.Members) != len(rest) {
		t.Fatalf("member list after removing the leader: %v", ml.Members)
	}
	waitSameHash(t, c.Members)
}

// TestReconfigurationNeedsActiveQuorum: with one of three members down, etcd
// refuses a change that would leave the cluster without a quorum of running
// voters (its strict reconfiguration check) with "unhealthy cluster":
// removing a running voter (two voters, one running) and adding a voter
// (four voters, two running). The requests go to the two members running.
func TestReconfigurationNeedsActiveQuorum(t *testing.T) {
	c := framework.StartCluster(t, 3, clusterConfig(t))
	leader := c.Leader(t)
	var down, other *framework.Member
	for _, m := range c.Members {
		switch {
		case m == leader:
		case down == nil:
			down = m
		default:
			other = m
		}
	}
	eps := []string{leader.Endpoint(), other.Endpoint()}
	if onEtcd() {
		// etcd also refuses changes until its peers have been connected
		// for five seconds; wait that out so that only the member down
		// can be the reason.
		time.Sleep(6 * time.Second)
	}
	down.Stop(t)
	// Members judge their peers by their connections, which nothing
	// outside shows: give them a few election timeouts to see the
	// connections to the stopped member closed.
	time.Sleep(3 * electionTimeout)
	unhealthy := rpctypes.ErrorDesc(rpctypes.ErrGRPCUnhealthy)

	t.Run("RemoveRunningVoter", func(t *testing.T) {
		id := strconv.FormatUint(memberID(t, other), 16)
		out, errOut, err := framework.Etcdctl(t, eps, "member", "remove", id)
		if err != nil {
			if !strings.Contains(errOut, unhealthy) {
				t.Errorf("member remove of a running voter with one of three down refused with %q, want etcd's %q", etcdctlError(errOut), unhealthy)
			}
			return
		}
		_, werr := leader.Client(t).Put(testCtx(t, 10*time.Second), "quorum/after-remove", "x")
		t.Errorf("member remove of a running voter with one of three members down was accepted (etcd refuses it with %q): "+
			"two voters are left, one running; a write after it: %v\n%s", unhealthy, werr, out)
		if code := other.WaitExit(t, 30*time.Second); code != 0 {
			t.Errorf("the removed member exited with status %d", code)
		}
		c.Members = slices.DeleteFunc(c.Members, func(m *framework.Member) bool { return m == other })
		t.SkipNow() // AddVoter needs the three members
	})
	if !slices.Contains(c.Members, other) {
		c.Restart(t)
		t.Fatal("AddVoter not run: a member was removed")
	}

	t.Run("AddVoter", func(t *testing.T) {
		extra := c.NewMember(t, "extra")
		out, errOut, err := framework.Etcdctl(t, eps, "member", "add", "extra", "--peer-urls="+extra.PeerURL())
		if err != nil {
			if !strings.Contains(errOut, unhealthy) {
				t.Errorf("member add with one of three down refused with %q, want etcd's %q", etcdctlError(errOut), unhealthy)
			}
			return
		}
		// Accepted: four voters, two running, no quorum.
		_, werr := leader.Client(t).Put(testCtx(t, 10*time.Second), "quorum/after-add", "x")
		t.Errorf("member add of a voter with one of three members down was accepted (etcd refuses it with %q): "+
			"the cluster now has four voters of which two run; a write after it: %v\n%s", unhealthy, werr, out)
		// Bring the member back for a quorum of three of four, and
		// take the new voter out again.
		c.Restart(t)
		id := memberAddedRE.FindStringSubmatch(out)
		if id == nil {
			t.Fatalf("no member ID in %q", out)
		}
		etcdctlReconfig(t, c.Endpoints(), "member", "remove", id[1])
	})
	c.Restart(t)
	if _, err := c.Client(t).Put(testCtx(t, 10*time.Second), "quorum/after", "x"); err != nil {
		t.Fatalf("put with every member back: %v", err)
	}
}
