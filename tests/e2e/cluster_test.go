package e2e

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestThreeMembers runs one three-member cluster through failures in turn.
// Members snapshot every 100 entries, so a member that was down for long
// is caught up by a snapshot rather than the log. Each subtest leaves every
// member running and agreeing on a leader.
func TestThreeMembers(t *testing.T) {
	c := framework.StartCluster(t, 3, clusterConfig(t, "--snapshot-count", "100"))
	cli := c.Client(t)
	// run runs a subtest on the whole cluster, bringing back any member
	// an earlier, failed subtest left down.
	run := func(name string, f func(t *testing.T)) {
		t.Run(name, func(t *testing.T) {
			c.Restart(t)
			f(t)
		})
	}
	run("OneLeader", func(t *testing.T) { oneLeader(t, c) })
	run("LinearizableReadOnFollower", func(t *testing.T) { linearizableReadOnFollower(t, c) })
	run("KillLeader", func(t *testing.T) { killLeader(t, c, cli, 1) })
	run("FollowerCatchesUpFromLog", func(t *testing.T) { followerCatchesUp(t, c, cli, 20, false) })
	run("FollowerCatchesUpFromSnapshot", func(t *testing.T) { followerCatchesUp(t, c, cli, 400, true) })
	run("Minority", func(t *testing.T) { minority(t, c) })
	run("PeerPortRefusesStrangers", func(t *testing.T) { peerPortRefusesStrangers(t, c) })
	run("LeasesAcrossLeaderKill", func(t *testing.T) { leasesAcrossLeaderKill(t, c) })
	run("RestartAll", func(t *testing.T) { restartAll(t, c, cli) })
}

// TestFiveMembersTolerateTwoFailures kills the leader and one follower of
// five while writes continue: the other three keep the cluster writable,
// lose nothing acknowledged, and the two catch up when they return.
func TestFiveMembersTolerateTwoFailures(t *testing.T) {
	c := framework.StartCluster(t, 5, clusterConfig(t))
	killLeader(t, c, c.Client(t), 2)
}

// oneLeader: every member names the same leader, which is one of them, at
// the same term; the real etcdctl agrees.
func oneLeader(t *testing.T, c *framework.Cluster) {
	ids := map[uint64]string{}
	var leader, term uint64
	leaders := 0
	for _, m := range c.Members {
		st := statusOf(t, m)
		ids[st.Header.MemberId] = m.Name()
		if leader != 0 && st.Leader != leader {
			t.Fatalf("%s names leader %x, another member %x", m.Name(), st.Leader, leader)
		}
		if term != 0 && st.RaftTerm != term {
			t.Fatalf("%s is at term %d, another member at %d", m.Name(), st.RaftTerm, term)
		}
		leader, term = st.Leader, st.RaftTerm
		if st.Leader == st.Header.MemberId {
			leaders++
		}
	}
	if leaders != 1 || ids[leader] == "" {
		t.Fatalf("%d members call themselves leader; the leader named is %x, members are %v", leaders, leader, ids)
	}
	sts := etcdctlStatus(t, c.Endpoints())
	if len(sts) != 3 {
		t.Fatalf("etcdctl endpoint status listed %d endpoints", len(sts))
	}
	for _, st := range sts {
		if st.Status.Leader != leader {
			t.Fatalf("etcdctl endpoint status: %s names leader %x, want %x", st.Endpoint, st.Status.Leader, leader)
		}
		if st.Status.IsLearner {
			t.Fatalf("etcdctl endpoint status: %s is a learner", st.Endpoint)
		}
	}
	out := etcdctl(t, c.Endpoints(), "member", "list")
	if n := strings.Count(out, ", started, "); n != 3 {
		t.Fatalf("etcdctl member list shows %d started members:\n%s", n, out)
	}
}

// linearizableReadOnFollower: a write acknowledged by one member is seen by
// a linearizable read on another right after, round after round, rotating
// through the members (so every follower reads what the leader and the
// other follower acknowledged).
func linearizableReadOnFollower(t *testing.T, c *framework.Cluster) {
	kvs := make([]pb.KVClient, len(c.Members))
	for i, m := range c.Members {
		kvs[i] = rawKV(t, m)
	}
	ctx := testCtx(t, 60*time.Second)
	const rounds = 300
	for r := range rounds {
		w, rd := r%3, (r+1+r/3%2)%3
		key := []byte(fmt.Sprintf("lin/%d", r%7))
		val := []byte(fmt.Sprint(r))
		put, err := kvs[w].Put(ctx, &pb.PutRequest{Key: key, Value: val})
		if err != nil {
			t.Fatalf("round %d: put on %s: %v", r, c.Members[w].Name(), err)
		}
		get, err := kvs[rd].Range(ctx, &pb.RangeRequest{Key: key})
		if err != nil {
			t.Fatalf("round %d: linearizable read on %s: %v", r, c.Members[rd].Name(), err)
		}
		if len(get.Kvs) != 1 || string(get.Kvs[0].Value) != string(val) || get.Kvs[0].ModRevision != put.Header.Revision {
			t.Fatalf("round %d: %s acknowledged %s=%s at revision %d; a linearizable read on %s right after returned %v (header revision %d)",
				r, c.Members[w].Name(), key, val, put.Header.Revision, c.Members[rd].Name(), get.Kvs, get.Header.Revision)
		}
		if get.Header.Revision < put.Header.Revision {
			t.Fatalf("round %d: read on %s at revision %d, below the acknowledged write's %d", r, c.Members[rd].Name(), get.Header.Revision, put.Header.Revision)
		}
	}
}

// killLeader kills the leader with SIGKILL (and, for kills > 1, followers
// too) while eight writers write through a client of every member: a new
// leader is elected and writes sent after the kill are acknowledged within
// a few election timeouts; no acknowledged write is lost; the killed
// members come back and hash the same as the others.
func killLeader(t *testing.T, c *framework.Cluster, cli *clientv3.Client, kills int) {
	prefix := fmt.Sprintf("failover/%d/", time.Now().UnixNano())
	w := startWriters(t, cli, prefix, 8)
	w.waitAcks(300, 60*time.Second)

	old := c.Leader(t)
	oldID := memberID(t, old)
	victims := []*framework.Member{old}
	for _, m := range c.Members {
		if len(victims) < kills && m != old {
			victims = append(victims, m)
		}
	}
	killedAt := time.Now()
	for _, m := range victims {
		m.Kill(t)
	}
	took := w.waitAckSentAfter(killedAt, 30*time.Second)
	leader := c.Leader(t)
	elected := time.Since(killedAt)
	if leader == old || memberID(t, leader) == oldID {
		t.Fatal("the killed member is still the leader")
	}
	t.Logf("killed %d of %d members (the leader among them): first write sent after the kill acknowledged after %v; members agreed on a new leader %v after the kill",
		kills, len(c.Members), took.Round(time.Millisecond), elected.Round(time.Millisecond))
	if limit := 5 * electionTimeout; took > limit {
		t.Errorf("writes resumed %v after the kill, more than %v (5 election timeouts)", took, limit)
	}
	w.waitAcks(w.count()+200, 60*time.Second)
	acks := w.stop()
	checkAcks(t, leader.Client(t), prefix, acks, false)

	c.Restart(t)
	waitSameHash(t, c.Members)
	for _, m := range c.Members {
		checkAcks(t, m.Client(t), prefix, acks, true)
	}
}

// followerCatchesUp stops a follower, writes n keys without it, and
// restarts it: it must reach the same state as the others. With
// bySnapshot, the writes outrun the log the leader keeps (--snapshot-count
// 100) and the leader must have sent a snapshot.
func followerCatchesUp(t *testing.T, c *framework.Cluster, cli *clientv3.Client, n int, bySnapshot bool) {
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	f.Stop(t)
	sentBefore := snapshotsSent(t, c.Members)
	ctx := testCtx(t, 60*time.Second)
	prefix := fmt.Sprintf("catchup/%d/", time.Now().UnixNano())
	var acks []ack
	for i := range n {
		k, v := fmt.Sprintf("%s%05d", prefix, i), fmt.Sprint(i)
		resp, err := cli.Put(ctx, k, v)
		if err != nil {
			t.Fatalf("put %s with %s down: %v", k, f.Name(), err)
		}
		acks = append(acks, ack{k, v, resp.Header.Revision})
	}
	f.Restart(t)
	waitSameHash(t, c.Members)
	checkAcks(t, f.Client(t), prefix, acks, true)
	// etcd skips compacting its log while a snapshot it sent earlier may
	// still be in use ("skip compaction since there is an inflight
	// snapshot"), so it may catch the follower up from the log here.
	if bySnapshot && !onEtcd() {
		// The sender counts a snapshot once the receiver answered, which
		// may be after the receiver caught up.
		poll(t, 10*time.Second, "a snapshot sent (etcd_network_snapshot_send_success)", func() error {
			if snapshotsSent(t, c.Members) == sentBefore {
				return fmt.Errorf("%s caught up after %d writes, past the retained log, but no member reports a snapshot sent", f.Name(), n)
			}
			return nil
		})
	}
}

// minority stops two of three members, keeping the leader: the one left
// cannot write, answers writes and linearizable reads with an error within
// the request timeout, and still serves serializable reads of everything
// acknowledged before. Requests that require a leader
// (clientv3.WithRequireLeader) get etcd's "no leader": a call at once, an
// open watch within a few election timeouts. The others then return.
func minority(t *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	cli := leader.Client(t)
	put, err := cli.Put(testCtx(t, 10*time.Second), "minority/before", "x")
	if err != nil {
		t.Fatal(err)
	}
	// A watch that requires a leader (as etcdctl watch does), opened while
	// there is one.
	wch := cli.Watch(clientv3.WithRequireLeader(testCtx(t, 2*time.Minute)), "minority/watched", clientv3.WithCreatedNotify())
	if wr := <-wch; !wr.Created {
		t.Fatalf("watch requiring a leader: %+v (%v), want it created", wr, wr.Err())
	}
	for _, m := range c.Members {
		if m != leader {
			m.Stop(t)
		}
	}
	kv := rawKV(t, leader)

	// The first write after the quorum is gone, and others once the member
	// knows there is no leader. A write refused with "no leader" was never
	// proposed: it must not appear once the quorum is back (one that timed
	// out may or may not).
	var refused []string
	try := func(what, key string, op func() error) {
		t.Helper()
		start := time.Now()
		err := op()
		took := time.Since(start)
		if err == nil {
			t.Fatalf("%s on a member without quorum succeeded", what)
		}
		t.Logf("minority: %s failed after %v: %v", what, took.Round(time.Millisecond), err)
		switch {
		case errorIs(err, rpctypes.ErrGRPCNoLeader):
			if key != "" {
				refused = append(refused, key)
			}
		case errorIs(err, rpctypes.ErrGRPCTimeout), errorIs(err, rpctypes.ErrGRPCTimeoutDueToLeaderFail),
			errorIs(err, rpctypes.ErrGRPCTimeoutDueToConnectionLost), errorIs(err, context.DeadlineExceeded):
		default:
			t.Errorf("%s on a member without quorum: %v; want etcd's no leader or a timeout", what, err)
		}
		// etcd 3.6 leaves a write that reaches a member knowing there is
		// no leader waiting until the client gives up.
		if limit := reqTimeout + 2*time.Second; took > limit && !onEtcd() {
			t.Errorf("%s on a member without quorum took %v to fail, more than the request timeout %v", what, took, reqTimeout)
		}
	}
	put1 := func(key string) func() error {
		return func() error {
			_, err := kv.Put(testCtx(t, 20*time.Second), &pb.PutRequest{Key: []byte(key), Value: []byte("x")})
			return err
		}
	}
	try("first put", "minority/k1", put1("minority/k1"))
	poll(t, 30*time.Second, "the member to see it has no leader", func() error {
		if st := statusOf(t, leader); st.Leader != 0 {
			return fmt.Errorf("still names leader %x", st.Leader)
		}
		return nil
	})
	noLeader := time.Now()
	// A call that requires a leader fails at once, even a serializable
	// read the member could serve.
	_, err = kv.Range(clientv3.WithRequireLeader(testCtx(t, 2*electionTimeout)),
		&pb.RangeRequest{Key: []byte("minority/before"), Serializable: true})
	if !errorIs(err, rpctypes.ErrGRPCNoLeader) {
		t.Errorf("serializable read requiring a leader on a member without one: %v, want %v", err, rpctypes.ErrGRPCNoLeader)
	}
	// The watch ends with "no leader" once the member has gone three
	// election timeouts without one (checked once per election timeout).
	select {
	case wr, ok := <-wch:
		if !ok || !wr.Canceled || !errors.Is(wr.Err(), rpctypes.ErrNoLeader) {
			t.Errorf("watch requiring a leader on a member without one: %+v (open %v, err %v), want it canceled with %v",
				wr, ok, wr.Err(), rpctypes.ErrNoLeader)
		} else {
			t.Logf("minority: the watch requiring a leader ended %v after the member reported no leader: %v",
				time.Since(noLeader).Round(time.Millisecond), wr.Err())
		}
	case <-time.After(6 * electionTimeout):
		t.Errorf("watch requiring a leader still open %v after the member reported no leader", 6*electionTimeout)
	}
	try("put without a leader", "minority/k2", put1("minority/k2"))
	try("linearizable read without a leader", "", func() error {
		_, err := kv.Range(testCtx(t, 20*time.Second), &pb.RangeRequest{Key: []byte("minority/before")})
		return err
	})
	try("etcdctl put without a leader", "minority/k3", func() error {
		_, errOut, err := framework.Etcdctl(t, []string{leader.Endpoint()}, "put", "minority/k3", "x")
		if err != nil {
			return errors.New(etcdctlError(errOut))
		}
		return nil
	})
	get, err := cli.Get(testCtx(t, 10*time.Second), "minority/before", clientv3.WithSerializable())
	if err != nil {
		t.Fatalf("serializable read on a member without quorum: %v", err)
	}
	if len(get.Kvs) != 1 || get.Kvs[0].ModRevision != put.Header.Revision {
		t.Fatalf("serializable read on a member without quorum: %v, want minority/before at revision %d", get.Kvs, put.Header.Revision)
	}
	if out := etcdctl(t, []string{leader.Endpoint()}, "get", "minority/before", "--consistency=s", "--print-value-only"); out != "x\n" {
		t.Fatalf("etcdctl get --consistency=s on a member without quorum: %q", out)
	}

	c.Restart(t)
	if _, err := c.Client(t).Put(testCtx(t, 10*time.Second), "minority/after", "x"); err != nil {
		t.Fatalf("put after the quorum is back: %v", err)
	}
	waitSameHash(t, c.Members)
	for _, k := range refused {
		get, err := c.Client(t).Get(testCtx(t, 10*time.Second), k)
		if err != nil {
			t.Fatal(err)
		}
		if len(get.Kvs) != 0 {
			t.Errorf("%s was refused with \"no leader\" on the minority, but is there once the quorum is back: %v", k, get.Kvs)
		}
	}
}

// restartAll kills every member with SIGKILL while writers write, restarts
// them all together, and checks that every acknowledged write is there on
// every member.
func restartAll(t *testing.T, c *framework.Cluster, cli *clientv3.Client) {
	prefix := fmt.Sprintf("restart-all/%d/", time.Now().UnixNano())
	w := startWriters(t, cli, prefix, 8)
	w.waitAcks(500, 60*time.Second)
	for _, m := range c.Members {
		m.Kill(t)
	}
	acks := w.stop()
	c.Restart(t)
	checkAcks(t, c.Client(t), prefix, acks, false)
	waitSameHash(t, c.Members)
	for _, m := range c.Members {
		checkAcks(t, m.Client(t), prefix, acks, true)
	}
}

// peerPortRefusesStrangers: the peer-port endpoints a follower forwards to
// the leader (member changes, lease renewals and time-to-live) refuse a
// request that does not name the cluster (412, as raft's streams do), one
// from another cluster (412) and one from a member ID the cluster does not
// have (403), on the leader and on a follower alike; the membership is
// unchanged afterwards. (A change forwarded by a follower still works: see
// TestMembership.)
func peerPortRefusesStrangers(t *testing.T, c *framework.Cluster) {
	if onEtcd() {
		t.Skip("etcd's peer port has no such endpoints")
	}
	leader := c.Leader(t)
	st := statusOf(t, leader)
	cid, self := strconv.FormatUint(st.Header.ClusterId, 16), strconv.FormatUint(st.Header.MemberId, 16)
	const bogusPeer = "http://127.0.0.1:1"
	bodies := map[string]string{
		"/members/change": `{"op":"add","peerURLs":["` + bogusPeer + `"],"isLearner":true}`,
		"/leases/renew":   "",
		"/leases/ttl":     "",
	}
	for _, m := range c.Members {
		for path, body := range bodies {
			for _, tc := range []struct {
				name    string
				headers map[string]string
				want    int
			}{
				{"without headers", nil, http.StatusPreconditionFailed},
				{"from another cluster", map[string]string{"X-Cairn-Cluster-ID": "1234", "X-Cairn-From": self}, http.StatusPreconditionFailed},
				{"from a stranger", map[string]string{"X-Cairn-Cluster-ID": cid, "X-Cairn-From": "99"}, http.StatusForbidden},
			} {
				req, err := http.NewRequest(http.MethodPost, m.PeerURL()+path, strings.NewReader(body))
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range tc.headers {
					req.Header.Set(k, v)
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatalf("POST %s on %s: %v", path, m.Name(), err)
				}
				out, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != tc.want {
					t.Errorf("POST %s on %s %s: %s %q, want %d", path, m.Name(), tc.name, resp.Status, out, tc.want)
				}
			}
		}
	}
	list, err := leader.Client(t).MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(list.Members) != len(c.Members) {
		t.Fatalf("%d members after refused member changes, want %d: %v", len(list.Members), len(c.Members), list.Members)
	}
	for _, m := range list.Members {
		if slices.Contains(m.PeerURLs, bogusPeer) {
			t.Fatalf("a refused member change added %x at %v", m.ID, m.PeerURLs)
		}
	}
}
