package e2e

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestMemberIdentity: members keep to the cluster they were bootstrapped
// in, and a member that lost its identity cannot pass for itself.
func TestMemberIdentity(t *testing.T) {
	c := framework.StartCluster(t, 3, clusterConfig(t))
	_ = t.Run("OtherClusterRefused", func(t *testing.T) { otherClusterRefused(t, c) }) &&
		t.Run("WipedMemberRestartedAsNew", func(sub *testing.T) { wipedMemberRestartedAsNew(sub, t, c) }) &&
		t.Run("RemovedWhileDown", func(t *testing.T) { removedWhileDown(t, c) })
}

// otherClusterRefused starts a member of another cluster (another
// --initial-cluster-token) whose --initial-cluster names the running
// members' peer URLs: they refuse its requests ("cluster ID mismatch"), it
// never gets a leader or any of their data, and their membership and data
// are unchanged.
func otherClusterRefused(t *testing.T, c *framework.Cluster) {
	cli := c.Client(t)
	put, err := cli.Put(testCtx(t, 10*time.Second), "identity/before", "x")
	if err != nil {
		t.Fatal(err)
	}
	before, err := cli.MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}

	peers := []string{}
	for _, m := range c.Members {
		peers = append(peers, m.Name()+"="+m.AdvertisedPeerURL())
	}
	s := startStranger(t, "stranger", peers, "another-cluster-token")
	// etcd logs the refusal in other words, and serves clients only once
	// it has a leader, which the stranger never gets.
	if !onEtcd() {
		poll(t, 30*time.Second, "the members to refuse the stranger's streams", func() error {
			logs := s.logs()
			if strings.Contains(logs, "cluster ID mismatch: cluster ID mismatch") {
				t.Fatalf("the refusal is reported with its reason twice:\n%s", logs)
			}
			if !strings.Contains(logs, "cluster ID mismatch") {
				return fmt.Errorf("no refusal in the stranger's log yet")
			}
			return nil
		})
		strangerIsolated(t, s)
	}

	after, err := cli.MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if len(after.Members) != len(before.Members) {
		t.Fatalf("the cluster has %d members after the stranger tried to join, %d before", len(after.Members), len(before.Members))
	}
	for i := range after.Members {
		if after.Members[i].ID != before.Members[i].ID || !slices.Equal(after.Members[i].PeerURLs, before.Members[i].PeerURLs) {
			t.Fatalf("the member list changed: %v, before %v", after.Members, before.Members)
		}
	}
	if _, err := cli.Put(testCtx(t, 10*time.Second), "identity/after", "x"); err != nil {
		t.Fatalf("put after the stranger tried to join: %v", err)
	}
	if rev := waitSameHash(t, c.Members); rev != put.Header.Revision+1 {
		t.Fatalf("the members are at revision %d, want %d: something else was written", rev, put.Header.Revision+1)
	}
	s.stop(t)
}

// strangerIsolated: the stranger never gets a leader (it is given a few
// election timeouts to try) or the cluster's data.
func strangerIsolated(t *testing.T, s *stranger) {
	t.Helper()
	scli := newClient(t, []string{s.endpoint})
	// It never gets a leader: give it a few election timeouts to try.
	poll(t, 30*time.Second, "the stranger to serve Status", func() error {
		_, err := scli.Status(testCtx(t, 5*time.Second), s.endpoint)
		return err
	})
	deadline := time.Now().Add(5 * electionTimeout)
	for time.Now().Before(deadline) {
		st, err := scli.Status(testCtx(t, 5*time.Second), s.endpoint)
		if err != nil {
			t.Fatalf("status of the stranger: %v", err)
		}
		if st.Leader != 0 {
			t.Fatalf("the stranger found a leader %x", st.Leader)
		}
		if !s.running() {
			t.Fatalf("the stranger exited:\n%s", s.logs())
		}
		time.Sleep(electionTimeout / 2)
	}
	get, err := scli.Get(testCtx(t, 5*time.Second), "identity/before", clientv3.WithSerializable())
	if err != nil {
		t.Fatalf("serializable read on the stranger: %v", err)
	}
	if len(get.Kvs) != 0 {
		t.Fatalf("the stranger has the cluster's data: %v", get.Kvs)
	}
}

// wipedMemberRestartedAsNew: a follower whose data directory was wiped,
// started again with --initial-cluster-state new, refuses to start ("member
// ... has already been bootstrapped", as etcd): with an empty raft state it
// could vote twice in a term. The others serve on; the member is then
// replaced (removed and added back with its name and a new ID). The test
// runs in t; the replacement lives as long as the cluster's test, top.
func wipedMemberRestartedAsNew(t, top *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	id := memberID(t, f)
	f.Stop(t)
	if err := os.RemoveAll(f.DataDir()); err != nil {
		t.Fatal(err)
	}
	logged := len(f.Logs())
	f.Launch(t)
	if code := f.WaitExit(t, 60*time.Second); code == 0 {
		t.Fatalf("the wiped member started anew exited with status 0, want a failure:\n%s", f.Logs()[logged:])
	}
	if out := f.Logs()[logged:]; !strings.Contains(out, fmt.Sprintf("member %x has already been bootstrapped", id)) {
		t.Fatalf("the wiped member started anew did not say it was bootstrapped before (as member %x):\n%s", id, out)
	}

	rest := slices.DeleteFunc(slices.Clone(c.Members), func(m *framework.Member) bool { return m == f })
	var eps []string
	for _, m := range rest {
		eps = append(eps, m.Endpoint())
	}
	rcli := newClient(t, eps)
	if _, err := rcli.Put(testCtx(t, 10*time.Second), "identity/wiped", "x"); err != nil {
		t.Fatalf("put with the wiped member refused: %v", err)
	}
	ml, err := rcli.MemberList(testCtx(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(ml.Members, func(m *pb.Member) bool { return m.ID == id }) || len(ml.Members) != len(c.Members) {
		t.Fatalf("member list after the refused start: %v, want the %d members, %x among them", ml.Members, len(c.Members), id)
	}

	// Replace it: out with the old identity, in with a new one.
	etcdctlReconfig(t, eps, "member", "remove", strconv.FormatUint(id, 16))
	c.Members = rest
	nm := c.NewMember(top, f.Name())
	memberAdd(t, eps, nm, false)
	nm.Restart(t)
	c.Members = append(c.Members, nm)
	waitSameHash(t, c.Members)
}

// removedWhileDown: a follower removed while it was stopped, restarted on
// its data, learns from its peers that it was removed and exits with status
// 0, saying so; the others serve on.
func removedWhileDown(t *testing.T, c *framework.Cluster) {
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	id := memberID(t, f)
	f.Stop(t)
	rest := slices.DeleteFunc(slices.Clone(c.Members), func(m *framework.Member) bool { return m == f })
	var eps []string
	for _, m := range rest {
		eps = append(eps, m.Endpoint())
	}
	etcdctlReconfig(t, eps, "member", "remove", strconv.FormatUint(id, 16))
	c.Members = rest
	logged := len(f.Logs())
	f.Launch(t)
	code := f.WaitExit(t, 60*time.Second)
	switch {
	case onEtcd():
		// etcd 3.6 may exit 1 here: when it learns of its removal before
		// it serves clients ("listener failed: server is stopping").
		t.Logf("etcd, removed while down, exited with status %d on restart", code)
	case code != 0:
		t.Fatalf("the member removed while down exited with status %d on restart, want 0:\n%s", code, f.Logs()[logged:])
	case !strings.Contains(f.Logs()[logged:], "removed from the cluster"):
		t.Fatalf("the member removed while down did not say it was removed:\n%s", f.Logs()[logged:])
	}
	if _, err := newClient(t, eps).Put(testCtx(t, 10*time.Second), "identity/removed", "x"); err != nil {
		t.Fatalf("put after the removed member exited: %v", err)
	}
	waitSameHash(t, c.Members)
}

// stranger is a member process started outside the framework, with a
// command line of the test's making.
type stranger struct {
	cmd      *exec.Cmd
	endpoint string
	done     chan struct{}
	mu       sync.Mutex
	out      bytes.Buffer
}

func (s *stranger) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.Write(p)
}

func (s *stranger) logs() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.out.String()
}

func (s *stranger) running() bool {
	select {
	case <-s.done:
		return false
	default:
		return true
	}
}

func (s *stranger) stop(t *testing.T) {
	t.Helper()
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		s.cmd.Process.Kill()
		<-s.done
		t.Errorf("the stranger ignored SIGTERM")
	}
}

// startStranger starts a new member named name of a cluster with the given
// token, whose --initial-cluster names it and peers ("name=url").
func startStranger(t *testing.T, name string, peers []string, token string) *stranger {
	t.Helper()
	client, peer := framework.FreeURL(t), framework.FreeURL(t)
	bin, args := framework.CairnBinary(t), []string{"serve"}
	if onEtcd() {
		bin, args = framework.EtcdBinary(t), nil
	}
	args = append(args,
		"--name", name,
		"--data-dir", filepath.Join(t.TempDir(), name),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", strings.Join(append([]string{name + "=" + peer}, peers...), ","),
		"--initial-cluster-state", "new",
		"--initial-cluster-token", token,
	)
	s := &stranger{endpoint: strings.TrimPrefix(client, "http://"), done: make(chan struct{})}
	s.cmd = exec.Command(bin, args...)
	s.cmd.Stdout, s.cmd.Stderr = s, s
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() {
		if s.running() {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("log of %s:\n%s", name, s.logs())
		}
	})
	return s
}
