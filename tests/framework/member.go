package framework

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Config describes one member. Zero fields take the defaults given below.
type Config struct {
	// Binary is the server binary; default CairnBinary(t). A binary named
	// cairn* is run as "cairn serve"; others (EtcdBinary) get the flags only.
	Binary string
	// Name is the member name (--name); default "m0". StartCluster uses it
	// as a prefix: "m" gives m0, m1, m2.
	Name string
	// DataDir is the data directory (--data-dir); default t.TempDir().
	// StartCluster puts each member in a subdirectory named after it.
	DataDir string
	// Args are extra flags appended after the framework's own, so they can
	// also override them (the last occurrence of a flag wins).
	Args []string
	// Env is extra environment (KEY=VALUE) on top of the test's own, from
	// which inherited ETCD_*, ETCDCTL_* and CAIRN_* variables are removed
	// because the servers read those as flags.
	Env []string
	// Security says how to reach a member with TLS or auth (security.go).
	Security Security
	// AdvertisePeerURL, when set, gives the peer URL a member advertises
	// (--initial-advertise-peer-urls, its entry in --initial-cluster) in
	// place of the one it listens on, so that a test can put a proxy in
	// front of the peer port. It is called once for every member created
	// (by Start, StartCluster and NewMember, again on fresh ports after a
	// port clash) with the member's name and --listen-peer-urls, and
	// returns the URL to advertise; the other members reach it there.
	AdvertisePeerURL func(name, listenURL string) string
}

const (
	// startAttempts bounds how often Start picks fresh ports after a member
	// failed to bind one that another process took in the meantime.
	startAttempts = 5
	// stopTimeout bounds how long Stop waits for a member to exit on SIGTERM
	// (and Kill for SIGKILL) before reporting it.
	stopTimeout = 30 * time.Second
	// logDumpLimit is how much of a member's log a failing test prints.
	logDumpLimit = 256 << 10
)

// Member is one server process. Its ports and data directory stay the same
// across Stop, Kill and Restart.
type Member struct {
	tb      testing.TB
	binary  string
	name    string
	dataDir string
	env     []string
	args    []string // everything after the binary
	client  int      // client port
	peer    int      // peer port
	sec     Security // TLS and credentials (security.go)

	// advertisedPeer is the peer URL the member advertises when it is not
	// the one it listens on (Config.AdvertisePeerURL); empty otherwise.
	advertisedPeer string

	logs       logBuffer
	launchedAt int  // where the current process's output starts in logs
	retired    bool // a failed start attempt whose log moved to its successor

	mu   sync.Mutex
	proc *process // the current or last process; nil before the first launch
}

type process struct {
	cmd       *exec.Cmd
	done      chan struct{} // closed when the process has exited
	err       error         // cmd.Wait's result, set before done is closed
	requested atomic.Bool   // the exit was asked for by Stop, Kill or cleanup
}

// Start starts one member on free 127.0.0.1 ports, as a single-member
// cluster, and waits until a linearizable clientv3 Get succeeds against it.
// The member is stopped when the test ends; if the test failed, its log is
// printed first.
func Start(t testing.TB, cfg Config) *Member {
	t.Helper()
	cfg = withDefaults(t, cfg)
	dataDir := cfg.DataDir
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	var earlier string // the logs of failed attempts
	for attempt := 1; ; attempt++ {
		m := newMember(t, cfg, cfg.Name, dataDir)
		m.logs.marker(earlier)
		m.args = append(m.args, "--initial-cluster", m.name+"="+m.AdvertisedPeerURL())
		m.args = append(m.args, cfg.Args...)
		err := m.launch()
		if err == nil {
			err = m.waitServing(time.Now().Add(startTimeout()))
		}
		if err == nil {
			return m
		}
		m.halt()
		if !m.portClash() || attempt == startAttempts {
			t.Fatalf("member %s did not start: %v (its log follows)", m.name, err)
		}
		t.Logf("member %s lost a port to another process; retrying on fresh ports", m.name)
		if cfg.DataDir == "" {
			dataDir = t.TempDir()
		}
		earlier = m.retire()
	}
}

func withDefaults(t testing.TB, cfg Config) Config {
	t.Helper()
	if cfg.Binary == "" {
		cfg.Binary = CairnBinary(t)
	}
	if cfg.Name == "" {
		cfg.Name = "m0"
	}
	return cfg
}

// newMember allocates ports and builds the command line shared by Start and
// StartCluster; the caller appends the cluster flags and cfg.Args.
func newMember(t testing.TB, cfg Config, name, dataDir string) *Member {
	t.Helper()
	client, err := pickPort()
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	peer, err := pickPort()
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	m := &Member{
		tb:      t,
		binary:  cfg.Binary,
		name:    name,
		dataDir: dataDir,
		env:     append(cleanEnv(), cfg.Env...),
		client:  client,
		peer:    peer,
		sec:     cfg.Security,
	}
	if cfg.AdvertisePeerURL != nil {
		m.advertisedPeer = cfg.AdvertisePeerURL(name, m.PeerURL())
	}
	if strings.HasPrefix(filepath.Base(cfg.Binary), "cairn") {
		m.args = append(m.args, "serve")
	}
	m.args = append(m.args,
		"--name", name,
		"--data-dir", dataDir,
		"--listen-client-urls", m.ClientURL(),
		"--advertise-client-urls", m.ClientURL(),
		"--listen-peer-urls", m.PeerURL(),
		"--initial-advertise-peer-urls", m.AdvertisedPeerURL(),
	)
	t.Cleanup(m.cleanup)
	return m
}

// Endpoint returns the client address, "127.0.0.1:PORT".
func (m *Member) Endpoint() string { return "127.0.0.1:" + strconv.Itoa(m.client) }

// ClientURL returns the client URL, "http://127.0.0.1:PORT" (https with
// Security.ClientTLS).
func (m *Member) ClientURL() string { return m.sec.clientScheme() + "://" + m.Endpoint() }

// PeerURL returns the peer URL, "http://127.0.0.1:PORT" (https with
// Security.PeerTLS).
func (m *Member) PeerURL() string {
	return m.sec.peerScheme() + "://127.0.0.1:" + strconv.Itoa(m.peer)
}

// AdvertisedPeerURL returns the peer URL the member advertises to the rest
// of the cluster: PeerURL, unless Config.AdvertisePeerURL gave another one.
// It is the URL for etcdctl member add --peer-urls.
func (m *Member) AdvertisedPeerURL() string {
	if m.advertisedPeer != "" {
		return m.advertisedPeer
	}
	return m.PeerURL()
}

// DataDir returns the member's data directory.
func (m *Member) DataDir() string { return m.dataDir }

// Name returns the member's name.
func (m *Member) Name() string { return m.name }

// Logs returns everything the member's processes wrote to stdout and stderr
// so far, across restarts.
func (m *Member) Logs() string { return m.logs.String() }

// Client returns a clientv3 client for this member alone, closed when the
// test ends.
func (m *Member) Client(t testing.TB) *clientv3.Client {
	t.Helper()
	return newClient(t, []string{m.Endpoint()}, m.sec)
}

func newClient(t testing.TB, endpoints []string, sec Security) *clientv3.Client {
	t.Helper()
	cfg := clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
	}
	sec.apply(&cfg)
	cli, err := clientv3.New(cfg)
	if err != nil {
		t.Fatalf("clientv3.New(%v): %v", endpoints, err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// newProbeClient returns a quiet client for the framework's own polling.
func newProbeClient(endpoint string, sec Security) (*clientv3.Client, error) {
	cfg := clientv3.Config{
		Endpoints:   []string{endpoint},
		DialTimeout: 2 * time.Second,
		Logger:      zap.NewNop(),
	}
	sec.apply(&cfg)
	return clientv3.New(cfg)
}

// Kill sends SIGKILL, as kill -9 would, and waits for the process to exit.
func (m *Member) Kill(t testing.TB) {
	t.Helper()
	p := m.current()
	if p == nil || p.exited() {
		t.Fatalf("member %s is not running", m.name)
	}
	p.requested.Store(true)
	p.cmd.Process.Signal(syscall.SIGKILL)
	if !p.wait(stopTimeout) {
		t.Fatalf("member %s did not exit %v after SIGKILL", m.name, stopTimeout)
	}
}

// Stop sends SIGTERM and waits for the process to exit. A member that is
// still running after 30s is killed and the test fails.
func (m *Member) Stop(t testing.TB) {
	t.Helper()
	p := m.current()
	if p == nil || p.exited() {
		t.Fatalf("member %s is not running", m.name)
	}
	p.requested.Store(true)
	p.cmd.Process.Signal(syscall.SIGTERM)
	if !p.wait(stopTimeout) {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(stopTimeout)
		t.Errorf("member %s ignored SIGTERM for %v; killed it", m.name, stopTimeout)
	}
}

// Restart starts the member again with the same command line, ports and data
// directory (stopping it first if it is running) and waits until a
// linearizable Get succeeds, which in a cluster needs a quorum. To bring back
// several stopped members of one cluster at once, use Cluster.Restart.
func (m *Member) Restart(t testing.TB) {
	t.Helper()
	if p := m.current(); p != nil && !p.exited() {
		m.Stop(t)
	}
	if err := m.launch(); err != nil {
		t.Fatalf("restart member %s: %v", m.name, err)
	}
	if err := m.waitServing(time.Now().Add(startTimeout())); err != nil {
		if m.portClash() {
			err = fmt.Errorf("%w; another process took one of its ports while it was down", err)
		}
		t.Fatalf("member %s did not come back: %v (its log follows)", m.name, err)
	}
}

// PID returns the process ID of the member's current process, or 0 if it
// was never started. Tests read /proc/PID for the member's memory use.
func (m *Member) PID() int {
	p := m.current()
	if p == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Running reports whether the member's process is alive.
func (m *Member) Running() bool {
	p := m.current()
	return p != nil && !p.exited()
}

func (m *Member) current() *process {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.proc
}

// launch starts a new process; it does not wait for it to serve.
func (m *Member) launch() error {
	cmd := exec.Command(m.binary, m.args...)
	cmd.Env = m.env
	cmd.Stdout = &m.logs
	cmd.Stderr = &m.logs
	cmd.SysProcAttr = sysProcAttr()
	m.launchedAt = m.logs.Len()
	m.logs.marker(fmt.Sprintf("=== %s: %s %s", time.Now().Format(time.RFC3339Nano), m.binary, strings.Join(m.args, " ")))
	if err := cmd.Start(); err != nil {
		return err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	m.mu.Lock()
	m.proc = p
	m.mu.Unlock()
	return nil
}

// waitServing polls until the client port accepts connections and then until
// a linearizable Get succeeds, giving up at deadline or as soon as the
// process exits.
func (m *Member) waitServing(deadline time.Time) error {
	p := m.current()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		if last = m.probe(p, deadline); last == nil {
			return nil
		}
		if p.exited() {
			return fmt.Errorf("process exited (%v) before serving", p.err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not serving after %v: %w", startTimeout(), last)
		}
		select {
		case <-tick.C:
		case <-p.done:
		}
	}
}

func (m *Member) probe(p *process, deadline time.Time) error {
	conn, err := net.DialTimeout("tcp", m.Endpoint(), time.Second)
	if err != nil {
		return err
	}
	conn.Close()
	// A fresh client per probe: a long-lived one would back off between
	// reconnects and notice readiness late.
	cli, err := newProbeClient(m.Endpoint(), m.sec)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithDeadline(context.Background(), minTime(deadline, time.Now().Add(3*time.Second)))
	defer cancel()
	go func() {
		select {
		case <-p.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	_, err = cli.Get(ctx, "cairn-framework-probe")
	return err
}

// halt kills the process of a failed start without reporting it.
func (m *Member) halt() {
	p := m.current()
	if p == nil {
		return
	}
	p.requested.Store(true)
	if !p.exited() {
		p.cmd.Process.Signal(syscall.SIGKILL)
		p.wait(stopTimeout)
	}
}

// portClash reports whether the last process failed because one of its ports
// was taken.
func (m *Member) portClash() bool {
	return strings.Contains(m.Logs()[m.launchedAt:], "address already in use")
}

// retire marks a failed start attempt whose log the next attempt carries on,
// and returns that log.
func (m *Member) retire() string {
	m.retired = true
	return m.Logs()
}

// cleanup runs at the end of the test: it stops the member, reports an exit
// nobody asked for (a crash), and prints the log if the test failed.
func (m *Member) cleanup() {
	p := m.current()
	if p != nil {
		if p.exited() && !p.requested.Load() {
			m.tb.Errorf("member %s exited on its own during the test: %v", m.name, p.err)
		}
		if !p.exited() {
			p.requested.Store(true)
			p.cmd.Process.Signal(syscall.SIGTERM)
			if !p.wait(stopTimeout) {
				p.cmd.Process.Signal(syscall.SIGKILL)
				p.wait(stopTimeout)
				m.tb.Errorf("member %s ignored SIGTERM for %v; killed it", m.name, stopTimeout)
			}
		}
	}
	if m.tb.Failed() && !m.retired && m.logs.Len() > 0 {
		m.tb.Logf("log of member %s (%s):\n%s", m.name, m.binary, m.tail())
	}
}

// tail returns the end of the log, at most logDumpLimit bytes.
func (m *Member) tail() string {
	s := m.Logs()
	if len(s) > logDumpLimit {
		return fmt.Sprintf("[... %d earlier bytes omitted ...]\n%s", len(s)-logDumpLimit, s[len(s)-logDumpLimit:])
	}
	return s
}

func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

func (p *process) wait(d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-p.done:
		return true
	case <-timer.C:
		return false
	}
}

// logBuffer collects a member's output across restarts.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) marker(line string) {
	if line == "" {
		return
	}
	line = strings.TrimSuffix(line, "\n")
	b.mu.Lock()
	defer b.mu.Unlock()
	b.buf.WriteString(line + "\n")
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func (b *logBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Len()
}

func startTimeout() time.Duration {
	if s := os.Getenv("CAIRN_TEST_START_TIMEOUT"); s != "" {
		if d, err := time.ParseDuration(s); err == nil && d > 0 {
			return d
		}
	}
	return 60 * time.Second
}

// cleanEnv is the test's environment without the ETCD_*, ETCDCTL_* and
// CAIRN_* variables, which etcd, etcdctl and cairn read as flags: a
// developer's shell settings must not change what a test starts.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "ETCD_") || strings.HasPrefix(kv, "ETCDCTL_") || strings.HasPrefix(kv, "CAIRN_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Launch starts the member's process (stopped, or never started, as after
// Cluster.NewMember) and returns without waiting for it to serve: for a
// learner, which refuses the linearizable Get that Restart waits for.
func (m *Member) Launch(t testing.TB) {
	t.Helper()
	if m.Running() {
		t.Fatalf("member %s is already running", m.name)
	}
	if err := m.launch(); err != nil {
		t.Fatalf("launch member %s: %v", m.name, err)
	}
}

// WaitExit waits up to d for the member's process to exit by itself, as a
// member removed from its cluster does, and returns its exit status (-1 if
// a signal ended it). That exit is then not reported as a crash. The test
// fails if the process is still running after d.
func (m *Member) WaitExit(t testing.TB, d time.Duration) int {
	t.Helper()
	p := m.current()
	if p == nil {
		t.Fatalf("member %s was never started", m.name)
	}
	if !p.wait(d) {
		t.Fatalf("member %s still running after %v", m.name, d)
	}
	p.requested.Store(true)
	return p.cmd.ProcessState.ExitCode()
}

// MovePeerURL gives a stopped member a new peer port for its next start: its
// --listen-peer-urls, --initial-advertise-peer-urls and its entry in
// --initial-cluster change to the returned URL. The cluster must be told
// (etcdctl member update) for the other members to reach it there.
func (m *Member) MovePeerURL(t testing.TB) string {
	t.Helper()
	if m.Running() {
		t.Fatalf("member %s must be stopped to move its peer URL", m.name)
	}
	if m.advertisedPeer != "" {
		t.Fatalf("member %s advertises %s, not the peer URL it listens on; MovePeerURL cannot move it", m.name, m.advertisedPeer)
	}
	port, err := pickPort()
	if err != nil {
		t.Fatalf("no free port: %v", err)
	}
	old := m.PeerURL()
	m.peer = port
	for i, arg := range m.args {
		parts := strings.Split(arg, ",")
		for j, p := range parts {
			if p == old {
				parts[j] = m.PeerURL()
			} else if name, u, ok := strings.Cut(p, "="); ok && u == old {
				parts[j] = name + "=" + m.PeerURL()
			}
		}
		m.args[i] = strings.Join(parts, ",")
	}
	return m.PeerURL()
}

// AppendArgs appends flags to the member's command line for its next
// start; the last occurrence of a flag wins, so they can override the
// cluster's (a member of Cluster.NewMember with certificates of its own).
func (m *Member) AppendArgs(args ...string) {
	m.args = append(m.args, args...)
}
