package framework

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Cluster is a set of members started together.
type Cluster struct {
	// Members are the members the cluster's waits (Leader, Restart) look
	// at. A test that adds or removes a member updates it.
	Members []*Member

	cfg Config // StartCluster's, with defaults filled in
}

// StartCluster starts n members that form one new cluster (--initial-cluster
// naming all of them, --initial-cluster-state new, a cluster token unique to
// this call) and waits until every member serves a linearizable Get and all
// of them report the same leader. Member names are cfg.Name (default "m")
// followed by the index.
func StartCluster(t testing.TB, n int, cfg Config) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("StartCluster: n = %d", n)
	}
	prefix := cfg.Name
	if prefix == "" {
		prefix = "m"
	}
	cfg = withDefaults(t, cfg)
	earlier := make([]string, n) // the logs of failed attempts
	for attempt := 1; ; attempt++ {
		c := &Cluster{cfg: cfg}
		var peers []string
		for i := range n {
			name := prefix + strconv.Itoa(i)
			dataDir := t.TempDir()
			if cfg.DataDir != "" {
				dataDir = filepath.Join(cfg.DataDir, name)
			}
			m := newMember(t, cfg, name, dataDir)
			m.logs.marker(earlier[i])
			c.Members = append(c.Members, m)
			peers = append(peers, name+"="+m.AdvertisedPeerURL())
		}
		token := clusterToken()
		for _, m := range c.Members {
			m.args = append(m.args,
				"--initial-cluster", strings.Join(peers, ","),
				"--initial-cluster-state", "new",
				"--initial-cluster-token", token,
			)
			m.args = append(m.args, cfg.Args...)
		}
		err := c.launchAll()
		if err == nil {
			if _, err = c.waitLeader(time.Now().Add(startTimeout())); err == nil {
				return c
			}
		}
		clash := false
		for _, m := range c.Members {
			m.halt()
			clash = clash || m.portClash()
		}
		if !clash || attempt == startAttempts {
			t.Fatalf("cluster did not start: %v (member logs follow)", err)
		}
		t.Logf("a cluster member lost a port to another process; retrying on fresh ports")
		for i, m := range c.Members {
			earlier[i] = m.retire()
		}
	}
}

// Endpoints returns every member's client endpoint.
func (c *Cluster) Endpoints() []string {
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.Endpoint())
	}
	return eps
}

// Client returns a clientv3 client over all members' endpoints, closed when
// the test ends.
func (c *Cluster) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, c.Endpoints(), c.cfg.Security)
}

// FollowerOf returns the first member that is not leader.
func (c *Cluster) FollowerOf(leader *Member) *Member {
	for _, m := range c.Members {
		if m != leader {
			return m
		}
	}
	return nil
}

// Leader waits until the running members agree on a leader and returns it.
func (c *Cluster) Leader(t testing.TB) *Member {
	t.Helper()
	m, err := c.waitLeader(time.Now().Add(startTimeout()))
	if err != nil {
		t.Fatalf("no leader: %v", err)
	}
	return m
}

// Restart starts every member that is not running, all at once (a cluster
// whose quorum is down cannot serve until enough members are back), and waits
// for a leader.
func (c *Cluster) Restart(t testing.TB) {
	t.Helper()
	for _, m := range c.Members {
		if m.Running() {
			continue
		}
		if err := m.launch(); err != nil {
			t.Fatalf("restart member %s: %v", m.name, err)
		}
	}
	if _, err := c.waitLeader(time.Now().Add(startTimeout())); err != nil {
		t.Fatalf("cluster did not come back: %v (member logs follow)", err)
	}
}

func (c *Cluster) launchAll() error {
	for _, m := range c.Members {
		if err := m.launch(); err != nil {
			return fmt.Errorf("member %s: %w", m.name, err)
		}
	}
	return nil
}

// waitLeader waits until every running member serves a linearizable Get and
// they all name the same leader, which must be one of them.
func (c *Cluster) waitLeader(deadline time.Time) (*Member, error) {
	var running []*Member
	for _, m := range c.Members {
		if m.Running() {
			running = append(running, m)
		}
	}
	if len(running) == 0 {
		return nil, fmt.Errorf("no member is running")
	}
	errs := make([]error, len(running))
	var wg sync.WaitGroup
	for i, m := range running {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.waitServing(deadline); err != nil {
				errs[i] = fmt.Errorf("member %s: %w", m.name, err)
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, err
		}
	}

	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		leader, err := c.agreedLeader(running)
		if err == nil {
			return leader, nil
		}
		last = err
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("members do not agree on a leader after %v: %w", startTimeout(), last)
		}
		<-tick.C
	}
}

func (c *Cluster) agreedLeader(running []*Member) (*Member, error) {
	var leaderID uint64
	ids := map[uint64]*Member{}
	for _, m := range running {
		st, err := m.status()
		if err != nil {
			return nil, fmt.Errorf("member %s: status: %w", m.name, err)
		}
		if st.leader == 0 {
			return nil, fmt.Errorf("member %s has no leader", m.name)
		}
		if leaderID != 0 && st.leader != leaderID {
			return nil, fmt.Errorf("members name different leaders %x and %x", leaderID, st.leader)
		}
		leaderID = st.leader
		ids[st.id] = m
	}
	if m, ok := ids[leaderID]; ok {
		return m, nil
	}
	return nil, fmt.Errorf("leader %x is not a running member", leaderID)
}

type memberStatus struct{ id, leader uint64 }

func (m *Member) status() (memberStatus, error) {
	cli, err := newProbeClient(m.Endpoint(), m.sec)
	if err != nil {
		return memberStatus{}, err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.Endpoint())
	if err != nil {
		return memberStatus{}, err
	}
	return memberStatus{id: st.Header.MemberId, leader: st.Leader}, nil
}

func clusterToken() string {
	b := make([]byte, 8)
	rand.Read(b)
	return "cairn-test-" + hex.EncodeToString(b)
}

// NewMember prepares a member that joins the running cluster: fresh ports, a
// data directory of its own, the cluster's Config, and --initial-cluster
// naming every member in c.Members and the new one, with
// --initial-cluster-state existing. It is not started. Add it to the cluster
// first (etcdctl member add NAME --peer-urls=ADVERTISED_PEER_URL, optionally --learner),
// then start it with Launch, or Restart to wait for a linearizable Get (which
// a learner refuses). NewMember does not add it to c.Members.
func (c *Cluster) NewMember(t testing.TB, name string) *Member {
	t.Helper()
	dataDir := t.TempDir()
	if c.cfg.DataDir != "" {
		dataDir = filepath.Join(c.cfg.DataDir, name)
	}
	m := newMember(t, c.cfg, name, dataDir)
	var peers []string
	for _, x := range c.Members {
		peers = append(peers, x.name+"="+x.AdvertisedPeerURL())
	}
	peers = append(peers, name+"="+m.AdvertisedPeerURL())
	m.args = append(m.args,
		"--initial-cluster", strings.Join(peers, ","),
		"--initial-cluster-state", "existing",
	)
	m.args = append(m.args, c.cfg.Args...)
	return m
}
