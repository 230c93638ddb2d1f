package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// The two systems under test.
const (
	cairn = "cairn"
	etcd  = "etcd"
)

var systems = []string{cairn, etcd}

// commonFlags are given to both servers, spelled out even where they are the
// defaults, so that a change of default in either cannot make the comparison
// unequal. The quota is etcd's largest recommended one: the default 2 GiB
// could fill up during a long run with many rounds, and both servers refuse
// writes when it does.
var commonFlags = []string{
	"--log-level", "error",
	"--heartbeat-interval", "100",
	"--election-timeout", "1000",
	"--snapshot-count", "10000",
	"--quota-backend-bytes", strconv.Itoa(8 << 30),
	"--auto-compaction-retention", "0",
	"--max-request-bytes", "1572864",
	"--max-txn-ops", "128",
}

const (
	// startTimeout bounds how long a deployment may take to serve.
	startTimeout = 2 * time.Minute
	// stopTimeout bounds how long a member may take to exit on SIGTERM
	// before it is killed.
	stopTimeout = 30 * time.Second
	// startAttempts bounds the retries after a member lost a port to
	// another process between the probe and its bind.
	startAttempts = 5
)

// A deployment is one system's member, or 3-member cluster, running on
// loopback with its data under one directory.
type deployment struct {
	system  string
	dir     string
	members []*member
	paused  bool
}

type member struct {
	name    string
	dataDir string
	logPath string
	args    []string // after the binary
	binary  string
	client  int
	peer    int

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	err  error
}

// startDeployment starts size members of system under dir and waits until
// each serves a linearizable Get.
func startDeployment(ctx context.Context, system, binary, dir string, size int, extra []string) (*deployment, error) {
	var lastErr error
	for attempt := 1; attempt <= startAttempts; attempt++ {
		d, err := launchDeployment(system, binary, dir, size, extra)
		if err == nil {
			err = d.waitServing(ctx, startTimeout)
			if err == nil {
				return d, nil
			}
		}
		if d != nil {
			d.kill()
		}
		lastErr = err
		if d == nil || !d.portClash() || ctx.Err() != nil {
			break
		}
		// Begin again with fresh ports and an empty directory.
		if err := os.RemoveAll(dir); err != nil {
			return nil, err
		}
	}
	return nil, lastErr
}

func launchDeployment(system, binary, dir string, size int, extra []string) (*deployment, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &deployment{system: system, dir: dir}
	var cluster []string
	for i := range size {
		client, err := freePort()
		if err != nil {
			return nil, err
		}
		peer, err := freePort()
		if err != nil {
			return nil, err
		}
		m := &member{
			name:    "m" + strconv.Itoa(i),
			binary:  binary,
			client:  client,
			peer:    peer,
			dataDir: filepath.Join(dir, "m"+strconv.Itoa(i)+".data"),
			logPath: filepath.Join(dir, "m"+strconv.Itoa(i)+".log"),
		}
		cluster = append(cluster, m.name+"="+m.peerURL())
		d.members = append(d.members, m)
	}
	token := fmt.Sprintf("bench-%s-%d", system, time.Now().UnixNano())
	for _, m := range d.members {
		if system == cairn {
			m.args = append(m.args, "serve")
		}
		m.args = append(m.args,
			"--name", m.name,
			"--data-dir", m.dataDir,
			"--listen-client-urls", m.clientURL(),
			"--advertise-client-urls", m.clientURL(),
			"--listen-peer-urls", m.peerURL(),
			"--initial-advertise-peer-urls", m.peerURL(),
			"--initial-cluster", strings.Join(cluster, ","),
			"--initial-cluster-state", "new",
			"--initial-cluster-token", token,
		)
		m.args = append(m.args, commonFlags...)
		m.args = append(m.args, extra...)
	}
	for _, m := range d.members {
		if err := m.launch(); err != nil {
			d.kill()
			return nil, err
		}
	}
	return d, nil
}

func (m *member) endpoint() string  { return "127.0.0.1:" + strconv.Itoa(m.client) }
func (m *member) clientURL() string { return "http://" + m.endpoint() }
func (m *member) peerURL() string   { return "http://127.0.0.1:" + strconv.Itoa(m.peer) }

// launch starts the member's process with its output appended to its log.
func (m *member) launch() error {
	logf, err := os.OpenFile(m.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== %s: %s %s\n", time.Now().Format(time.RFC3339Nano), m.binary, strings.Join(m.args, " "))
	cmd := exec.Command(m.binary, m.args...)
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.Env = cleanEnv()
	// The kernel kills the member if the harness dies, so an interrupted
	// run leaves no servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	done := make(chan struct{})
	m.mu.Lock()
	m.cmd, m.done, m.err = cmd, done, nil
	m.mu.Unlock()
	go func() {
		err := cmd.Wait()
		logf.Close()
		m.mu.Lock()
		m.err = err
		m.mu.Unlock()
		close(done)
	}()
	return nil
}

func (m *member) exited() bool {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	if done == nil {
		return true
	}
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// exitErr is cmd.Wait's result once the process has exited.
func (m *member) exitErr() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.err
}

func (m *member) pid() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd == nil || m.cmd.Process == nil {
		return 0
	}
	return m.cmd.Process.Pid
}

func (m *member) signal(sig syscall.Signal) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.cmd != nil && m.cmd.Process != nil {
		m.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM and waits; a member still running after stopTimeout is
// killed and reported.
func (m *member) stop() error {
	if m.exited() {
		return nil
	}
	m.signal(syscall.SIGCONT) // a paused member cannot act on SIGTERM
	m.signal(syscall.SIGTERM)
	if m.wait(stopTimeout) {
		return nil
	}
	m.signal(syscall.SIGKILL)
	m.wait(stopTimeout)
	return fmt.Errorf("%s ignored SIGTERM for %v; killed it", m.name, stopTimeout)
}

func (m *member) wait(d time.Duration) bool {
	m.mu.Lock()
	done := m.done
	m.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// logTail returns the end of the member's log.
func (m *member) logTail(n int) string {
	data, err := os.ReadFile(m.logPath)
	if err != nil {
		return ""
	}
	if len(data) > n {
		data = data[len(data)-n:]
	}
	return string(data)
}

func (d *deployment) endpoints() []string {
	var eps []string
	for _, m := range d.members {
		eps = append(eps, m.endpoint())
	}
	return eps
}

// leaderFirst returns the endpoints with the leader's first. Tools that
// open fewer connections than there are members then always include the
// leader, whichever member won the election, so a run does not measure
// an extra forwarding hop for one system and not the other.
func (d *deployment) leaderFirst(ctx context.Context) []string {
	eps := d.endpoints()
	if len(eps) == 1 {
		return eps
	}
	cli, err := newClient(eps)
	if err != nil {
		return eps
	}
	defer cli.Close()
	ids := map[uint64]int{}
	var leader uint64
	for i, ep := range eps {
		sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		st, err := cli.Status(sctx, ep)
		cancel()
		if err != nil {
			continue
		}
		ids[st.Header.MemberId] = i
		if st.Leader != 0 {
			leader = st.Leader
		}
	}
	if i, ok := ids[leader]; ok && leader != 0 {
		eps[0], eps[i] = eps[i], eps[0]
	}
	return eps
}

// waitServing polls until every member answers a linearizable Get, giving up
// after limit or as soon as a member exits.
func (d *deployment) waitServing(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	for _, m := range d.members {
		if err := m.waitServing(ctx, deadline); err != nil {
			return fmt.Errorf("%s %s: %w\n--- end of its log ---\n%s", d.system, m.name, err, m.logTail(4<<10))
		}
	}
	return nil
}

func (m *member) waitServing(ctx context.Context, deadline time.Time) error {
	var last error
	for {
		if last = m.probe(ctx, deadline); last == nil {
			return nil
		}
		if m.exited() {
			return fmt.Errorf("exited (%v) before serving", m.exitErr())
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving: %w", last)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// probe makes one linearizable Get with a fresh client: a long-lived one
// would back off between reconnects and notice readiness late.
func (m *member) probe(ctx context.Context, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", m.endpoint(), time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	cli, err := newClient([]string{m.endpoint()})
	if err != nil {
		return err
	}
	defer cli.Close()
	pctx, cancel := context.WithDeadline(ctx, minTime(deadline, time.Now().Add(3*time.Second)))
	defer cancel()
	_, err = cli.Get(pctx, "bench-probe")
	return err
}

// alive returns an error naming the members that have exited.
func (d *deployment) alive() error {
	var dead []string
	for _, m := range d.members {
		if m.exited() {
			dead = append(dead, fmt.Sprintf("%s (%v)", m.name, m.exitErr()))
		}
	}
	if len(dead) == 0 {
		return nil
	}
	return fmt.Errorf("%s members exited: %s", d.system, strings.Join(dead, ", "))
}

// pause stops every member with SIGSTOP, resume continues them and waits
// until the deployment serves again.
func (d *deployment) pause() {
	for _, m := range d.members {
		m.signal(syscall.SIGSTOP)
	}
	d.paused = true
}

func (d *deployment) resume(ctx context.Context) error {
	if !d.paused {
		return nil
	}
	for _, m := range d.members {
		m.signal(syscall.SIGCONT)
	}
	d.paused = false
	return d.waitServing(ctx, startTimeout)
}

// stop stops every member, all at once.
func (d *deployment) stop() error {
	errs := make([]error, len(d.members))
	var wg sync.WaitGroup
	for i, m := range d.members {
		wg.Go(func() { errs[i] = m.stop() })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// kill ends every member at once, for failed starts and cleanup.
func (d *deployment) kill() {
	for _, m := range d.members {
		if !m.exited() {
			m.signal(syscall.SIGKILL)
			m.wait(stopTimeout)
		}
	}
}

// restart starts the stopped members again all at once, with the same
// command lines, and returns when each serves a linearizable Get.
func (d *deployment) restart(ctx context.Context) error {
	for _, m := range d.members {
		if err := m.launch(); err != nil {
			return err
		}
	}
	return d.waitServing(ctx, startTimeout)
}

// portClash reports whether a member failed because a port was taken.
func (d *deployment) portClash() bool {
	for _, m := range d.members {
		if strings.Contains(m.logTail(64<<10), "address already in use") {
			return true
		}
	}
	return false
}

// Ports handed out by this process, never handed out twice.
var (
	portsMu   sync.Mutex
	usedPorts = map[int]bool{}
)

func freePort() (int, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 100 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, err
		}
		port := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if !usedPorts[port] {
			usedPorts[port] = true
			return port, nil
		}
	}
	return 0, errors.New("no unused port after 100 tries")
}

// cleanEnv is the environment without ETCD_*, ETCDCTL_* and CAIRN_*
// variables, which the servers read as flags: a developer's shell must not
// change what is measured.
func cleanEnv() []string {
	return slices.DeleteFunc(os.Environ(), func(kv string) bool {
		return strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") || strings.HasPrefix(kv, "CAIRN_")
	})
}

// newClient returns a quiet clientv3 client for the harness's own requests.
func newClient(endpoints []string) (*clientv3.Client, error) {
	return clientv3.New(clientv3.Config{
		Endpoints:          endpoints,
		DialTimeout:        5 * time.Second,
		Logger:             zap.NewNop(),
		MaxCallRecvMsgSize: 64 << 20,
	})
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// tail returns the last n bytes of b.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
