package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cairn-io/cairn/tests/framework"
)

// The cluster tests run cairn by default. CAIRN_E2E_SERVER=etcd runs them
// against etcd v3.6.16 instead, which checks the tests themselves: whatever
// they expect of cairn, etcd must do.
func onEtcd() bool { return os.Getenv("CAIRN_E2E_SERVER") == "etcd" }

// Timing of the clusters under test: etcd's defaults.
const (
	electionTimeout = time.Second
	// reqTimeout is how long a server may take to answer a request it
	// cannot serve: etcd's request timeout (5s plus two election
	// timeouts).
	reqTimeout = 5*time.Second + 2*electionTimeout
)

// clusterConfig is the framework configuration of the cluster tests: the
// server under test, quiet logs, and extra flags.
func clusterConfig(t *testing.T, args ...string) framework.Config {
	t.Helper()
	cfg := framework.Config{Args: append([]string{"--log-level", "warn"}, args...)}
	if onEtcd() {
		cfg.Binary = framework.EtcdBinary(t)
	}
	// Both keep 5000 entries after a snapshot for slow followers unless
	// told; a test that wants snapshots sent keeps as few as it snapshots.
	if i := slices.Index(args, "--snapshot-count"); i >= 0 {
		cfg.Args = append(cfg.Args, "--snapshot-catchup-entries", args[i+1])
	}
	return cfg
}

// testCtx returns a context that ends after d or with the test.
func testCtx(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// statusOf returns a member's Status, failing the test if it has none.
func statusOf(t *testing.T, m *framework.Member) *clientv3.StatusResponse {
	t.Helper()
	st, err := m.Client(t).Status(testCtx(t, 10*time.Second), m.Endpoint())
	if err != nil {
		t.Fatalf("status of %s: %v", m.Name(), err)
	}
	return st
}

// memberID returns a member's ID, as its Status reports it.
func memberID(t *testing.T, m *framework.Member) uint64 {
	t.Helper()
	return statusOf(t, m).Header.MemberId
}

// poll is framework.Poll.
func poll(t *testing.T, d time.Duration, what string, cond func() error) {
	t.Helper()
	framework.Poll(t, d, what, cond)
}

// revisions returns the revision each member has applied (a serializable
// read of a key that does not exist).
func revisions(ctx context.Context, clis []*clientv3.Client) ([]int64, error) {
	revs := make([]int64, len(clis))
	for i, cli := range clis {
		resp, err := cli.Get(ctx, "\x00no-such-key", clientv3.WithSerializable())
		if err != nil {
			return nil, err
		}
		revs[i] = resp.Header.Revision
	}
	return revs, nil
}

// waitSameHash waits until every member has applied the same revision and
// then checks that they hash their key-value history at it to the same
// value. Nothing may be writing.
func waitSameHash(t *testing.T, members []*framework.Member) int64 {
	t.Helper()
	clis := make([]*clientv3.Client, len(members))
	for i, m := range members {
		clis[i] = m.Client(t)
	}
	var rev int64
	poll(t, 60*time.Second, "members reaching the same revision", func() error {
		revs, err := revisions(testCtx(t, 5*time.Second), clis)
		if err != nil {
			return err
		}
		for _, r := range revs {
			if r != revs[0] {
				return fmt.Errorf("revisions %v", revs)
			}
		}
		rev = revs[0]
		return nil
	})
	var first *clientv3.HashKVResponse
	for i, m := range members {
		h, err := clis[i].HashKV(testCtx(t, 10*time.Second), m.Endpoint(), rev)
		if err != nil {
			t.Fatalf("HashKV of %s at %d: %v", m.Name(), rev, err)
		}
		if first == nil {
			first = h
			continue
		}
		if h.Hash != first.Hash || h.CompactRevision != first.CompactRevision {
			t.Fatalf("HashKV at revision %d: %s has hash %x (compacted at %d), %s has %x (compacted at %d)",
				rev, members[0].Name(), first.Hash, first.CompactRevision, m.Name(), h.Hash, h.CompactRevision)
		}
	}
	return rev
}

// writers put unique keys from several goroutines until stopped, and
// record what was acknowledged. Failed writes (a leader lost, a member
// killed) are retried under new keys: whether they happened is unknown and
// not checked.
type writers struct {
	t      *testing.T
	prefix string
	stopc  chan struct{}
	wg     sync.WaitGroup

	mu      sync.Mutex
	acks    []ack
	started []time.Time // when the request of each ack was sent
	errs    map[string]int
}

// startWriters starts n writers through cli, writing keys under prefix.
func startWriters(t *testing.T, cli *clientv3.Client, prefix string, n int) *writers {
	w := &writers{t: t, prefix: prefix, stopc: make(chan struct{}), errs: map[string]int{}}
	for g := range n {
		w.wg.Add(1)
		go func() {
			defer w.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-w.stopc:
					return
				default:
				}
				k := fmt.Sprintf("%sw%d/%06d", prefix, g, i)
				v := fmt.Sprintf("v-%d-%d", g, i)
				start := time.Now()
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
				resp, err := cli.Put(ctx, k, v)
				cancel()
				w.mu.Lock()
				if err != nil {
					w.errs[err.Error()]++
				} else {
					w.acks = append(w.acks, ack{k, v, resp.Header.Revision})
					w.started = append(w.started, start)
				}
				w.mu.Unlock()
				if err != nil {
					select {
					case <-w.stopc:
						return
					case <-time.After(20 * time.Millisecond):
					}
				}
			}
		}()
	}
	t.Cleanup(w.halt)
	return w
}

func (w *writers) halt() {
	select {
	case <-w.stopc:
	default:
		close(w.stopc)
	}
	w.wg.Wait()
}

// stop stops the writers and returns the acknowledged writes.
func (w *writers) stop() []ack {
	w.halt()
	w.mu.Lock()
	defer w.mu.Unlock()
	if len(w.errs) > 0 {
		w.t.Logf("writers under %s: %d acknowledged; failed writes by error: %v", w.prefix, len(w.acks), w.errs)
	}
	return slices.Clone(w.acks)
}

// count returns how many writes were acknowledged so far.
func (w *writers) count() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acks)
}

// waitAcks waits until at least n writes are acknowledged.
func (w *writers) waitAcks(n int, d time.Duration) {
	w.t.Helper()
	poll(w.t, d, fmt.Sprintf("%d acknowledged writes under %s", n, w.prefix), func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		if len(w.acks) < n {
			return fmt.Errorf("%d acknowledged, failures %v", len(w.acks), w.errs)
		}
		return nil
	})
}

// waitAckSentAfter waits until a write sent after t0 is acknowledged and
// returns how long after t0 its acknowledgement came.
func (w *writers) waitAckSentAfter(t0 time.Time, d time.Duration) time.Duration {
	w.t.Helper()
	var took time.Duration
	poll(w.t, d, fmt.Sprintf("a write under %s sent after %s acknowledged", w.prefix, t0.Format(time.StampMilli)), func() error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for i := len(w.started) - 1; i >= 0; i-- {
			if w.started[i].After(t0) {
				took = time.Since(t0)
				return nil
			}
		}
		return fmt.Errorf("failures so far %v", w.errs)
	})
	return took
}

// checkAcks reads everything under prefix through cli (linearizably unless
// serializable) and checks that every acknowledged write is there, created
// at the revision it was acknowledged with, and that no revision was
// acknowledged twice.
func checkAcks(t *testing.T, cli *clientv3.Client, prefix string, acks []ack, serializable bool) {
	t.Helper()
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if serializable {
		opts = append(opts, clientv3.WithSerializable())
	}
	resp, err := cli.Get(testCtx(t, 30*time.Second), prefix, opts...)
	if err != nil {
		t.Fatalf("read %s: %v", prefix, err)
	}
	got := map[string]*struct {
		value    string
		mod, ver int64
		create   int64
	}{}
	for _, kv := range resp.Kvs {
		got[string(kv.Key)] = &struct {
			value    string
			mod, ver int64
			create   int64
		}{string(kv.Value), kv.ModRevision, kv.Version, kv.CreateRevision}
	}
	revs := map[int64]string{}
	for _, a := range acks {
		kv := got[a.key]
		if kv == nil {
			t.Fatalf("acknowledged write %s (revision %d) is lost: %d of %d acknowledged keys under %s remain",
				a.key, a.rev, countPresent(got, acks), len(acks), prefix)
		}
		if kv.value != a.value || kv.mod != a.rev || kv.create != a.rev || kv.ver != 1 {
			t.Fatalf("key %s: value %q mod %d create %d version %d; acknowledged %q at revision %d",
				a.key, kv.value, kv.mod, kv.create, kv.ver, a.value, a.rev)
		}
		if other, dup := revs[a.rev]; dup {
			t.Fatalf("revision %d acknowledged for both %s and %s", a.rev, other, a.key)
		}
		revs[a.rev] = a.key
	}
}

func countPresent[V any](got map[string]V, acks []ack) int {
	n := 0
	for _, a := range acks {
		if _, ok := got[a.key]; ok {
			n++
		}
	}
	return n
}

// etcdctl runs the real etcdctl against endpoints and fails the test if it
// fails.
func etcdctl(t *testing.T, endpoints []string, args ...string) string {
	t.Helper()
	out, errOut, err := framework.Etcdctl(t, endpoints, args...)
	if err != nil {
		t.Fatalf("etcdctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errOut)
	}
	return out
}

// etcdctlReconfig runs a membership change with etcdctl, retrying while
// the members answer "unhealthy cluster": etcd refuses changes until the
// member has been connected to its peers for five seconds.
func etcdctlReconfig(t *testing.T, endpoints []string, args ...string) string {
	t.Helper()
	var out string
	poll(t, 30*time.Second, "etcdctl "+strings.Join(args, " "), func() error {
		o, errOut, err := framework.Etcdctl(t, endpoints, args...)
		if err != nil && strings.Contains(errOut, rpctypes.ErrorDesc(rpctypes.ErrGRPCUnhealthy)) {
			return fmt.Errorf("%v: %s", err, errOut)
		}
		if err != nil {
			t.Fatalf("etcdctl %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, o, errOut)
		}
		out = o
		return nil
	})
	return out
}

var memberAddedRE = regexp.MustCompile(`Member +([0-9a-f]+) added (?:as learner )?to cluster +([0-9a-f]+)`)

// memberAdd adds m to the cluster with etcdctl member add (as a learner if
// asked) and returns its new ID.
func memberAdd(t *testing.T, endpoints []string, m *framework.Member, learner bool) uint64 {
	t.Helper()
	args := []string{"member", "add", m.Name(), "--peer-urls=" + m.PeerURL()}
	if learner {
		args = append(args, "--learner")
	}
	out := etcdctlReconfig(t, endpoints, args...)
	sub := memberAddedRE.FindStringSubmatch(out)
	if sub == nil {
		t.Fatalf("etcdctl member add printed no member ID:\n%s", out)
	}
	id, err := strconv.ParseUint(sub[1], 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// etcdctlError returns the error etcdctl printed (its "Error: " line),
// without the client's log lines.
func etcdctlError(stderr string) string {
	if i := strings.LastIndex(stderr, "Error: "); i >= 0 {
		return strings.TrimSpace(stderr[i+len("Error: "):])
	}
	return strings.TrimSpace(stderr)
}

// endpointStatus is one line of etcdctl endpoint status -w json.
type endpointStatus struct {
	Endpoint string
	Status   struct {
		Header struct {
			MemberID uint64 `json:"member_id"`
			RaftTerm uint64 `json:"raft_term"`
		} `json:"header"`
		Leader    uint64 `json:"leader"`
		IsLearner bool   `json:"isLearner"`
	}
}

// etcdctlStatus runs etcdctl endpoint status -w json against endpoints.
func etcdctlStatus(t *testing.T, endpoints []string) []endpointStatus {
	t.Helper()
	out := etcdctl(t, endpoints, "endpoint", "status", "-w", "json")
	var sts []endpointStatus
	if err := json.Unmarshal([]byte(out), &sts); err != nil {
		t.Fatalf("etcdctl endpoint status -w json: %v\n%s", err, out)
	}
	return sts
}

// snapshotsSent sums etcd_network_snapshot_send_success over the members'
// /metrics: how many snapshots they sent to followers.
func snapshotsSent(t *testing.T, members []*framework.Member) float64 {
	t.Helper()
	var sum float64
	for _, m := range members {
		if !m.Running() {
			continue
		}
		resp, err := http.Get(m.ClientURL() + "/metrics")
		if err != nil {
			t.Fatalf("metrics of %s: %v", m.Name(), err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(body), "\n") {
			if !strings.HasPrefix(line, "etcd_network_snapshot_send_success{") {
				continue
			}
			f := strings.Fields(line)
			v, err := strconv.ParseFloat(f[len(f)-1], 64)
			if err != nil {
				t.Fatalf("metrics of %s: %q: %v", m.Name(), line, err)
			}
			sum += v
		}
	}
	return sum
}

// rawConn returns a plain gRPC connection to a member, without clientv3's
// retries, so that a test sees the first error the member answers with.
func rawConn(t *testing.T, m *framework.Member) *grpc.ClientConn {
	t.Helper()
	conn, err := grpc.NewClient(m.Endpoint(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// rawKV returns the KV service of a member over rawConn.
func rawKV(t *testing.T, m *framework.Member) pb.KVClient {
	t.Helper()
	return pb.NewKVClient(rawConn(t, m))
}

// errorIs reports whether err carries the server error want: a gRPC status
// error as a raw client sees it, or the error clientv3 turns it into.
func errorIs(err error, want error) bool {
	return err != nil && (errors.Is(err, want) || strings.Contains(err.Error(), rpctypes.ErrorDesc(want)))
}
