package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestLocksmithdRollingReboot runs five locksmithd processes (the real
// binary) that all need a reboot, against a three-member cairn cluster with
// two slots. The reboot command records the call and "reboots" the node:
// it clears the sentinel (as /run is cleared), moves to a new boot ID and
// reports the call, upon which the test kills the daemon (power off) and
// starts it again (the boot). It checks, from every revision of the
// semaphore: never more than two holders; every node rebooted exactly once;
// each lock was released by the daemon of the new boot, after its health
// command passed.
func TestLocksmithdRollingReboot(t *testing.T) {
	const nodes, slots = 5, 2
	c := framework.StartCluster(t, 3, framework.Config{})
	eps := strings.Join(c.Endpoints(), ",")
	bin := framework.CairnBinary(t)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	out, stderr, err := framework.Cairn(t, "locksmith", "--endpoints", eps, "set-max", "2")
	if err != nil || out != "Old-Max: 1\nMax: 2\n" {
		t.Fatalf("set-max: %v %q %q", err, out, stderr)
	}
	const key = "coreos.com/updateengine/rebootlock/semaphore"
	start, err := cli.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	history := lsWatchHolders(ctx, t, cli, key, start.Header.Revision+1)

	ns := make([]*lsNode, nodes)
	for i := range ns {
		n := &lsNode{t: t, bin: bin, id: fmt.Sprintf("node-%d", i), dir: t.TempDir()}
		n.write("boot_id", "boot-0\n")
		ns[i] = n
		if i < 3 {
			n.write("reboot-required", "") // the sentinel
		} else {
			out, stderr, err := framework.Cairn(t, "locksmith", "send-need-reboot", "--state-dir", n.path("state"), "--boot-id-file", n.path("boot_id"))
			if err != nil {
				t.Fatalf("send-need-reboot: %v %s %s", err, out, stderr)
			}
		}
		// The reboot command clears the sentinel, moves to a new boot
		// and, last, records the call the test watches for.
		reboot := fmt.Sprintf(`date +%%s.%%N > %[1]s/rebooted_at && rm -f %[1]s/reboot-required && echo boot-1 > %[1]s/boot_id && echo %[2]s >> %[1]s/calls`, n.dir, n.id)
		n.args = []string{"locksmithd", "--config=", "--strategy", "etcd-lock", "--endpoints", eps,
			"--id", n.id, "--state-dir", n.path("state"), "--sentinel", n.path("reboot-required"), "--boot-id-file", n.path("boot_id"),
			"--reboot-command", reboot, "--health-command", "sleep 1",
			"--check-interval", "100ms", "--lock-retry-min", "100ms", "--lock-retry-max", "500ms", "--lock-ttl", "30s"}
	}
	for _, n := range ns {
		n.boot()
	}
	// The harness: when a node records its reboot call, power it off
	// and boot it.
	var wg sync.WaitGroup
	for _, n := range ns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.simulateReboot(ctx)
		}()
	}
	defer wg.Wait()
	defer cancel()

	// Done when every node rebooted, its second daemon released the lock
	// and is idle again, and nothing holds the semaphore.
	var last int64
	poll(t, 2*time.Minute, "every node rebooted and released", func() error {
		for _, n := range ns {
			if n.boots() < 2 {
				return fmt.Errorf("%s has not rebooted", n.id)
			}
			log := n.currentLog()
			if !strings.Contains(log, "released the reboot lock") || !strings.Contains(log, `msg="no reboot needed"`) {
				return fmt.Errorf("%s has not released the lock after the boot", n.id)
			}
		}
		resp, err := cli.Get(ctx, key)
		if err != nil {
			return err
		}
		var v struct{ Holders []string }
		if len(resp.Kvs) == 0 || json.Unmarshal(resp.Kvs[0].Value, &v) != nil || len(v.Holders) != 0 {
			return fmt.Errorf("semaphore still %s", resp.Kvs)
		}
		last = resp.Kvs[0].ModRevision
		return nil
	})
	poll(t, 30*time.Second, "the watch to catch up", func() error {
		if !history.seen(last) {
			return fmt.Errorf("revision %d not delivered", last)
		}
		return nil
	})

	for _, n := range ns {
		if calls := strings.Fields(n.read("calls")); !slices.Equal(calls, []string{n.id}) {
			t.Errorf("%s reboot calls %v, want exactly one", n.id, calls)
		}
		if n.boots() != 2 {
			t.Errorf("%s booted %d times", n.id, n.boots())
		}
		if _, err := os.Stat(n.path("state/state.json")); !os.IsNotExist(err) {
			t.Errorf("%s state file left: %v", n.id, err)
		}
		first := n.logOf(0)
		if strings.Contains(first, "released the reboot lock") || !strings.Contains(first, "took the reboot lock") {
			t.Errorf("%s: the first boot's daemon should take and not release the lock:\n%s", n.id, first)
		}
		second := n.logOf(1)
		if !strings.Contains(second, "back from the reboot") || !strings.Contains(second, "node is healthy") {
			t.Errorf("%s: the second boot's daemon did not finish the reboot:\n%s", n.id, second)
		}
	}

	// Every revision of the semaphore.
	revs, errs := history.stop()
	for _, err := range errs {
		t.Errorf("watching the semaphore: %v", err)
	}
	peak := 0
	acquired := map[string]int{}
	released := map[string]int{}
	prev := []string{}
	for _, r := range revs {
		if len(r.holders) > slots {
			t.Errorf("revision %d has %d holders: %v", r.rev, len(r.holders), r.holders)
		}
		peak = max(peak, len(r.holders))
		for _, h := range r.holders {
			if !slices.Contains(prev, h) {
				acquired[h]++
			}
		}
		for _, h := range prev {
			if !slices.Contains(r.holders, h) {
				released[h]++
			}
		}
		prev = r.holders
	}
	for _, n := range ns {
		if acquired[n.id] != 1 || released[n.id] != 1 {
			t.Errorf("%s took the lock %d times and released it %d times, want once each", n.id, acquired[n.id], released[n.id])
		}
	}
	// In real time: each node is down from its reboot command until its
	// next daemon found it healthy, a span inside the one in which it held
	// its slot. No more than two such spans may overlap.
	var spans [][2]time.Time
	for _, n := range ns {
		down, up, err := n.rebootSpan()
		if err != nil {
			t.Errorf("%s: %v", n.id, err)
			continue
		}
		spans = append(spans, [2]time.Time{down, up})
	}
	for _, s := range spans {
		overlapping := 0
		for _, o := range spans {
			if !o[0].After(s[0]) && o[1].After(s[0]) {
				overlapping++ // o is down when s goes down
			}
		}
		if overlapping > slots {
			t.Errorf("%d nodes down at %v: %v", overlapping, s[0], spans)
		}
	}
	if peak < slots {
		t.Errorf("at most %d holders at once: the nodes never rebooted in parallel", peak)
	}
	t.Logf("%d revisions of the semaphore, at most %d holders", len(revs), peak)
	if t.Failed() {
		for _, n := range ns {
			t.Logf("--- %s:\n%s", n.id, n.allLogs())
		}
	}
}

// TestLocksmithdDeadHolder: a node that takes the lock and never comes back
// from its reboot frees its slot once its lease's TTL has passed, and the
// next node reboots; one whose slot is bound to no lease (--lock-ttl 0, as
// in locksmith) keeps it, at least as long, until it is unlocked by hand.
func TestLocksmithdDeadHolder(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{})
	eps := strings.Join(c.Endpoints(), ",")
	bin := framework.CairnBinary(t)
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	newNode := func(id, group, ttl string) *lsNode {
		n := &lsNode{t: t, bin: bin, id: id, dir: t.TempDir()}
		n.write("boot_id", "boot-0\n")
		n.write("reboot-required", "")
		n.args = []string{"locksmithd", "--config=", "--strategy", "etcd-lock", "--endpoints", eps, "--group", group,
			"--id", id, "--state-dir", n.path("state"), "--sentinel", n.path("reboot-required"), "--boot-id-file", n.path("boot_id"),
			"--reboot-command", "echo " + id + " >> " + n.path("calls"),
			"--check-interval", "100ms", "--lock-retry-min", "100ms", "--lock-retry-max", "500ms", "--lock-ttl", ttl}
		return n
	}
	rebooted := func(n *lsNode, group string) func() error {
		return func() error {
			if n.read("calls") == "" {
				return fmt.Errorf("no call yet; status %s", lsStatus(ctx, cli, group))
			}
			return nil
		}
	}
	dies := newNode("dies", "dead", "3s")
	stays := newNode("stays", "kept", "0")
	dies.boot()
	stays.boot()
	poll(t, time.Minute, "the first nodes' reboot calls", func() error {
		if err := rebooted(dies, "dead")(); err != nil {
			return err
		}
		return rebooted(stays, "kept")()
	})
	// They never come back.
	dies.procs[0].kill()
	stays.procs[0].kill()
	killed := time.Now()

	next := newNode("next", "dead", "30s")
	waits := newNode("waits", "kept", "30s")
	next.boot()
	waits.boot()
	poll(t, time.Minute, "the second node's reboot call", rebooted(next, "dead"))
	if waited := time.Since(killed); waited < 2*time.Second {
		t.Fatalf("the slot freed %v after the holder died, before its 3s TTL", waited)
	}
	out, _, err := framework.Cairn(t, "locksmith", "--endpoints", eps, "--group", "dead", "status")
	if err != nil || !strings.HasPrefix(out, "Available: 0\nMax: 1\n\nMACHINE ID\nnext\tlease=") {
		t.Fatalf("status: %v\n%s", err, out)
	}

	// The holder bound to no lease died as long ago, and still holds.
	out, _, err = framework.Cairn(t, "locksmith", "--endpoints", eps, "--group", "kept", "status")
	if err != nil || out != "Available: 0\nMax: 1\n\nMACHINE ID\nstays\n" {
		t.Fatalf("status of the group whose holder has no lease: %v\n%s", err, out)
	}
	if waits.read("calls") != "" || !strings.Contains(waits.currentLog(), "waiting for a free slot") {
		t.Fatalf("the node behind a dead holder without a lease did not wait:\n%s", waits.currentLog())
	}
	// locksmith's remedy: unlock it by hand.
	if out, stderr, err := framework.Cairn(t, "locksmith", "--endpoints", eps, "--group", "kept", "unlock", "stays"); err != nil {
		t.Fatalf("unlock: %v %s %s", err, out, stderr)
	}
	poll(t, time.Minute, "the reboot after the unlock", rebooted(waits, "kept"))
}

// TestFleetlockCommand runs "cairn fleetlock" as a process against a
// three-member cluster, next to a locksmithd of the same group: the
// FleetLock server uses the very semaphore locksmithd holds and that
// "cairn locksmith set-max" sizes, and its /metrics shows it.
func TestFleetlockCommand(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{})
	eps := strings.Join(c.Endpoints(), ",")
	bin := framework.CairnBinary(t)

	// A locksmithd of group workers takes the group's only slot and
	// "reboots": the reboot command only records the call, so the daemon
	// keeps holding the slot, waiting for a shutdown.
	n := &lsNode{t: t, bin: bin, id: "node-a", dir: t.TempDir()}
	n.write("boot_id", "boot-0\n")
	n.write("reboot-required", "")
	n.args = []string{"locksmithd", "--config=", "--strategy", "etcd-lock", "--endpoints", eps, "--group", "workers",
		"--id", n.id, "--state-dir", n.path("state"), "--sentinel", n.path("reboot-required"), "--boot-id-file", n.path("boot_id"),
		"--reboot-command", "echo " + n.id + " >> " + n.path("calls"),
		"--check-interval", "100ms", "--lock-retry-min", "100ms", "--lock-retry-max", "500ms", "--lock-ttl", "30s"}
	n.boot()
	poll(t, time.Minute, "locksmithd's reboot call", func() error {
		if n.read("calls") == "" {
			return fmt.Errorf("no call yet:\n%s", n.currentLog())
		}
		return nil
	})

	fl, err := lsStart(t, bin, "fleetlock", "--listen-addr", "127.0.0.1:0", "--endpoints", eps)
	if err != nil {
		t.Fatal(err)
	}
	addrRE := regexp.MustCompile(`msg="serving FleetLock" addr=(\S+)`)
	var base string
	poll(t, time.Minute, "fleetlock's listen address in its log", func() error {
		m := addrRE.FindStringSubmatch(fl.log.String())
		if m == nil {
			return fmt.Errorf("log so far:\n%s", fl.log)
		}
		base = "http://" + m[1]
		return nil
	})

	post := func(path, id string, wantCode int, wantBody string) {
		t.Helper()
		req, err := http.NewRequest(http.MethodPost, base+path, strings.NewReader(`{"client_params":{"id":"`+id+`","group":"workers"}}`))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("fleet-lock-protocol", "true")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != wantCode || string(body) != wantBody {
			t.Fatalf("POST %s as %s: %d %q (%v), want %d %q", path, id, resp.StatusCode, body, err, wantCode, wantBody)
		}
	}
	metrics := func(want ...string) {
		t.Helper()
		resp, err := http.Get(base + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
		}
		for _, line := range want {
			if !strings.Contains(string(body), "\n"+line+"\n") {
				t.Fatalf("metrics lack %q:\n%s", line, body)
			}
		}
	}
	status := func(want *regexp.Regexp) {
		t.Helper()
		out, stderr, err := framework.Cairn(t, "locksmith", "--endpoints", eps, "--group", "workers", "status")
		if err != nil || !want.MatchString(out) {
			t.Fatalf("locksmith status: %v %q %q, want %s", err, out, stderr, want)
		}
	}

	// locksmithd holds the only slot: Zincati's pre-reboot is refused.
	metrics(`cairn_locksmith_holders{group="workers"} 1`, `cairn_locksmith_slots{group="workers"} 1`)
	post("/v1/pre-reboot", "fcos-1", 409, `{"kind":"semaphore_full","value":"semaphore is at 0: group \"workers\" has 1 of 1 slots held"}`+"\n")

	// A second slot, set with the control command, lets it in.
	out, stderr, err := framework.Cairn(t, "locksmith", "--endpoints", eps, "--group", "workers", "set-max", "2")
	if err != nil || out != "Old-Max: 1\nMax: 2\n" {
		t.Fatalf("set-max: %v %q %q", err, out, stderr)
	}
	post("/v1/pre-reboot", "fcos-1", 200, "")
	post("/v1/pre-reboot", "fcos-1", 200, "") // recursive
	status(regexp.MustCompile(`^Available: 0\nMax: 2\n\nMACHINE ID\nfcos-1\nnode-a\tlease=[0-9a-f]{16}\n$`))
	metrics(`cairn_locksmith_holders{group="workers"} 2`, `cairn_locksmith_slots{group="workers"} 2`)

	// Steady state gives the slot back; locksmithd's stays.
	post("/v1/steady-state", "fcos-1", 200, "")
	post("/v1/steady-state", "fcos-1", 200, "") // not held: still success
	status(regexp.MustCompile(`^Available: 1\nMax: 2\n\nMACHINE ID\nnode-a\tlease=[0-9a-f]{16}\n$`))
	metrics(`cairn_locksmith_holders{group="workers"} 1`, `cairn_locksmith_slots{group="workers"} 2`,
		`cairn_fleetlock_requests_total{code="200",path="/v1/pre-reboot"} 2`,
		`cairn_fleetlock_requests_total{code="409",path="/v1/pre-reboot"} 1`,
		`cairn_fleetlock_requests_total{code="200",path="/v1/steady-state"} 2`)

	if err := fl.stop(); err != nil {
		t.Fatalf("fleetlock exit after SIGTERM: %v\n%s", err, fl.log)
	}
}

func lsStatus(ctx context.Context, cli *clientv3.Client, group string) string {
	resp, err := cli.Get(ctx, "coreos.com/updateengine/rebootlock/groups/"+group+"/", clientv3.WithPrefix())
	if err != nil {
		return err.Error()
	}
	var sb strings.Builder
	for _, kv := range resp.Kvs {
		fmt.Fprintf(&sb, "%s=%s (lease %x); ", kv.Key, kv.Value, kv.Lease)
	}
	return sb.String()
}

// lsNode is one simulated machine running locksmithd.
type lsNode struct {
	t    *testing.T
	bin  string
	id   string
	dir  string
	args []string

	mu    sync.Mutex
	procs []*lsProc // one per boot
}

type lsProc struct {
	cmd  *exec.Cmd
	log  *lsBuffer
	done chan struct{}
	err  error // the exit, once done is closed
}

type lsBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *lsBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lsBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (n *lsNode) path(name string) string { return filepath.Join(n.dir, name) }

func (n *lsNode) write(name, content string) {
	n.t.Helper()
	if err := os.WriteFile(n.path(name), []byte(content), 0o644); err != nil {
		n.t.Fatal(err)
	}
}

func (n *lsNode) read(name string) string {
	b, _ := os.ReadFile(n.path(name))
	return string(b)
}

// boot starts the node's daemon.
func (n *lsNode) boot() {
	p, err := lsStart(n.t, n.bin, n.args...)
	if err != nil {
		n.t.Errorf("boot %s: %v", n.id, err) // not only from the test goroutine
		return
	}
	n.mu.Lock()
	n.procs = append(n.procs, p)
	n.mu.Unlock()
}

// lsStart starts bin with args in the test's environment without the
// variables the locksmith commands read, its output going to the returned
// process's log. The process is stopped (SIGTERM, then SIGKILL) when the
// test ends.
func lsStart(t *testing.T, bin string, args ...string) (*lsProc, error) {
	p := &lsProc{log: &lsBuffer{}, done: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = lsEnv()
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { p.err = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() { p.stop() })
	return p, nil
}

// stop sends SIGTERM, waits up to 10s, then kills; it returns the exit.
func (p *lsProc) stop() error {
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.cmd.Process.Kill()
		<-p.done
	}
	return p.err
}

// kill kills the process, as a power-off would, and waits for it.
func (p *lsProc) kill() {
	p.cmd.Process.Kill()
	<-p.done
}

func (n *lsNode) boots() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return len(n.procs)
}

func (n *lsNode) logOf(i int) string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if i >= len(n.procs) {
		return ""
	}
	return n.procs[i].log.String()
}

func (n *lsNode) currentLog() string { return n.logOf(n.boots() - 1) }

func (n *lsNode) allLogs() string {
	var sb strings.Builder
	for i := range n.boots() {
		fmt.Fprintf(&sb, "=== boot %d\n%s", i, n.logOf(i))
	}
	return sb.String()
}

var healthyLine = regexp.MustCompile(`(?m)^time=(\S+) .*msg="node is healthy"`)

// rebootSpan is when the node ran its reboot command (recorded by the
// command) and when the daemon of its next boot found it healthy (from its
// log, before it gives the slot back).
func (n *lsNode) rebootSpan() (down, up time.Time, err error) {
	var sec, nsec int64
	if _, err := fmt.Sscanf(n.read("rebooted_at"), "%d.%d", &sec, &nsec); err != nil {
		return down, up, fmt.Errorf("reboot time %q: %w", n.read("rebooted_at"), err)
	}
	m := healthyLine.FindStringSubmatch(n.logOf(1))
	if m == nil {
		return down, up, fmt.Errorf("no \"node is healthy\" in the second boot's log")
	}
	if up, err = time.Parse(time.RFC3339Nano, m[1]); err != nil {
		return down, up, err
	}
	return time.Unix(sec, nsec), up, nil
}

// simulateReboot waits for each recorded reboot call, kills the daemon as
// a power-off would and boots the node again.
func (n *lsNode) simulateReboot(ctx context.Context) {
	handled := 0
	for ctx.Err() == nil {
		calls := len(strings.Fields(n.read("calls")))
		if calls == handled {
			time.Sleep(10 * time.Millisecond) // poll the calls file
			continue
		}
		handled = calls
		n.mu.Lock()
		p := n.procs[len(n.procs)-1]
		n.mu.Unlock()
		p.kill()
		n.boot()
	}
}

// lsEnv is the test's environment without the variables the daemon reads.
func lsEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		skip := false
		for _, p := range []string{"LOCKSMITHD_", "LOCKSMITHCTL_", "REBOOT_", "CAIRN_", "ETCDCTL_", "ETCD_"} {
			skip = skip || strings.HasPrefix(name, p)
		}
		if !skip {
			env = append(env, kv)
		}
	}
	return env
}

// lsRevision is the semaphore's holders at one revision.
type lsRevision struct {
	rev     int64
	holders []string
}

type lsHistory struct {
	mu     sync.Mutex
	revs   []lsRevision
	errs   []error
	cancel context.CancelFunc
	done   chan struct{}
}

// lsWatchHolders records every revision of the semaphore key from rev on.
func lsWatchHolders(ctx context.Context, t *testing.T, cli *clientv3.Client, key string, rev int64) *lsHistory {
	ctx, cancel := context.WithCancel(ctx)
	h := &lsHistory{cancel: cancel, done: make(chan struct{})}
	wch := cli.Watch(ctx, key, clientv3.WithRev(rev))
	go func() {
		defer close(h.done)
		for resp := range wch {
			h.mu.Lock()
			if err := resp.Err(); err != nil && ctx.Err() == nil {
				h.errs = append(h.errs, err)
			}
			for _, ev := range resp.Events {
				if ev.Type != mvccpb.PUT {
					h.errs = append(h.errs, fmt.Errorf("semaphore %v at %d", ev.Type, ev.Kv.ModRevision))
					continue
				}
				var v struct{ Holders []string }
				if err := json.Unmarshal(ev.Kv.Value, &v); err != nil {
					h.errs = append(h.errs, err)
				}
				h.revs = append(h.revs, lsRevision{rev: ev.Kv.ModRevision, holders: v.Holders})
			}
			h.mu.Unlock()
		}
	}()
	t.Cleanup(func() { h.stop() })
	return h
}

// seen reports whether the watch delivered revision rev.
func (h *lsHistory) seen(rev int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.revs) > 0 && h.revs[len(h.revs)-1].rev >= rev
}

// stop ends the watch and returns what it saw.
func (h *lsHistory) stop() ([]lsRevision, []error) {
	h.cancel()
	<-h.done
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.revs, h.errs
}
