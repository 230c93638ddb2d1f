package locksmith_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/locksmith"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// monday is Monday 2024-01-01 10:00 UTC.
var monday = time.Date(2024, 1, 1, 10, 0, 0, 0, time.UTC)

// node is one daemon under test with its fakes.
type node struct {
	t       *testing.T
	clock   *fakeClock
	locker  *fakeLocker
	leases  *fakeLeases
	need    *flag
	healthy *flag
	reboots *rebooter
	boot    *bootID
	cfg     locksmith.DaemonConfig

	cancel context.CancelFunc
	done   chan error
}

type bootID struct {
	mu sync.Mutex
	id string
}

func (b *bootID) get() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.id
}

func (b *bootID) set(id string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.id = id
}

func newNode(t *testing.T, strategy locksmith.Strategy, max int) *node {
	clock := newFakeClock(monday)
	n := &node{
		t:       t,
		clock:   clock,
		locker:  newFakeLocker(clock, max),
		leases:  newFakeLeases(),
		need:    &flag{},
		healthy: &flag{on: true},
		reboots: &rebooter{clock: clock},
		boot:    &bootID{id: "boot-1"},
	}
	n.cfg = locksmith.DaemonConfig{
		Strategy:      strategy,
		ID:            "node-a",
		StateDir:      t.TempDir(),
		Needs:         []locksmith.NeedCheck{n.need.need()},
		BootID:        n.boot.get,
		Reboot:        n.reboots.reboot,
		Healthy:       n.healthy.healthy(),
		Clock:         clock,
		CheckInterval: 10 * time.Second,
		RetryMin:      5 * time.Second,
		RetryMax:      5 * time.Minute,
		Logger:        slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	if testing.Verbose() {
		n.cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	if strategy == locksmith.StrategyEtcdLock {
		n.cfg.Semaphore = func(string) locksmith.Locker { return n.locker }
	}
	return n
}

// start runs a daemon (a boot of the node).
func (n *node) start() {
	n.t.Helper()
	d, err := locksmith.NewDaemon(n.cfg)
	if err != nil {
		n.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel, n.done = cancel, make(chan error, 1)
	go func() { n.done <- d.Run(ctx) }()
	n.t.Cleanup(func() { n.stop() })
}

// stop stops the daemon (the shutdown of a reboot) and waits for it.
func (n *node) stop() {
	if n.cancel == nil {
		return
	}
	n.cancel()
	select {
	case err := <-n.done:
		if err != nil {
			n.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		n.t.Fatal("daemon did not stop")
	}
	n.cancel = nil
}

func (n *node) state() *locksmith.State {
	n.t.Helper()
	st, err := locksmith.LoadState(n.cfg.StateDir)
	if err != nil {
		n.t.Fatal(err)
	}
	return st
}

// releaseWhenHealthy: a node that rebooted holding the lock (bound to
// lease) keeps it through a minute of bad health, and once healthy
// releases it, revokes the lease and clears its state.
func (n *node) releaseWhenHealthy(t *testing.T, lease clientv3.LeaseID) {
	t.Helper()
	drive(t, n.clock, n.clock.Now().Add(time.Minute), "a minute of bad health", func() bool { return n.healthy.reads() >= 5 })
	if !n.locker.holds("node-a") {
		t.Fatal("released the lock before the node was healthy")
	}
	n.healthy.set(true)
	drive(t, n.clock, time.Time{}, "the release", func() bool { return !n.locker.holds("node-a") })
	waitFor(t, "the lease revoked", func() bool { return n.leases.wasRevoked(lease) })
	waitFor(t, "the state cleared", func() bool { return n.state() == nil })
}

func TestDaemonEtcdLockCycle(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.cfg.Leases, n.cfg.LockTTL = n.leases, 30*time.Second
	n.start()

	// Nothing happens while no reboot is needed, however long.
	drive(t, n.clock, monday.Add(time.Hour), "an hour without need", func() bool { return n.clock.Now().Equal(monday.Add(time.Hour)) })
	if n.reboots.count() != 0 || len(n.locker.successfulLocks()) != 0 {
		t.Fatalf("rebooted %d times, locked %v without need", n.reboots.count(), n.locker.history())
	}

	n.need.set(true)
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	if !n.locker.holds("node-a") {
		t.Fatalf("rebooted without the lock: %v", n.locker.history())
	}
	lease := n.locker.lease("node-a")
	if lease == 0 {
		t.Fatal("the holder is not bound to a lease")
	}
	st := n.state()
	if st == nil || st.Phase != locksmith.PhaseRebooting || !st.Locked || st.ID != "node-a" || st.BootID != "boot-1" || st.Group != "default" {
		t.Fatalf("state before the reboot = %+v", st)
	}
	waitFor(t, "the lease renewed", func() bool { return n.leases.renewals(lease) > 0 })

	// The machine goes down and comes back: a new boot, no more need,
	// and a node that is not healthy at first.
	n.stop()
	n.boot.set("boot-2")
	n.need.set(false)
	n.healthy.set(false)
	renewedBefore := n.leases.renewals(lease)
	n.start()
	waitFor(t, "the health check", func() bool { return n.healthy.reads() > 0 })
	waitFor(t, "the lease resumed", func() bool { return n.leases.renewals(lease) > renewedBefore })
	n.releaseWhenHealthy(t, lease)
	if got := n.reboots.count(); got != 1 {
		t.Fatalf("rebooted %d times, want 1", got)
	}
}

func TestDaemonStrategyReboot(t *testing.T) {
	n := newNode(t, locksmith.StrategyReboot, 1)
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	if h := n.locker.history(); len(h) != 0 {
		t.Fatalf("strategy reboot used the lock: %v", h)
	}
	if st := n.state(); st == nil || st.Locked {
		t.Fatalf("state = %+v", st)
	}
}

func TestDaemonStrategyOff(t *testing.T) {
	n := newNode(t, locksmith.StrategyOff, 1)
	n.need.set(true)
	d, err := locksmith.NewDaemon(n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if n.reboots.count() != 0 || n.need.reads() != 0 {
		t.Fatal("strategy off did something")
	}
}

func TestDaemonWindows(t *testing.T) {
	for _, tc := range []struct {
		start, length string
		open          time.Time // the first window after monday 10:00
	}{
		{"Thu 23:00", "1h", time.Date(2024, 1, 4, 23, 0, 0, 0, time.UTC)},
		{"14:00", "30m", time.Date(2024, 1, 1, 14, 0, 0, 0, time.UTC)},
		{"09:30", "15m", time.Date(2024, 1, 2, 9, 30, 0, 0, time.UTC)},
	} {
		t.Run(tc.start, func(t *testing.T) {
			for _, strategy := range []locksmith.Strategy{locksmith.StrategyEtcdLock, locksmith.StrategyReboot} {
				t.Run(string(strategy), func(t *testing.T) {
					n := newNode(t, strategy, 1)
					w, err := locksmith.ParseWindow(tc.start, tc.length)
					if err != nil {
						t.Fatal(err)
					}
					n.cfg.Window = w
					n.need.set(true)
					n.start()
					// Up to a minute before the window, nothing.
					before := tc.open.Add(-time.Minute)
					drive(t, n.clock, before, "the minute before the window", func() bool { return nextAfter(n.clock, before) })
					if n.reboots.count() != 0 || len(n.locker.actions()) != 0 {
						t.Fatalf("acted before the window at %v: reboots %v, lock calls %v", n.clock.Now(), n.reboots.calls(), n.locker.actions())
					}
					drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
					at := n.reboots.calls()[0]
					if !at.Equal(tc.open) {
						t.Fatalf("rebooted at %v, want %v", at, tc.open)
					}
					for _, lockAt := range n.locker.successfulLocks() {
						if !w.Contains(lockAt) {
							t.Fatalf("locked at %v, outside the window", lockAt)
						}
					}
				})
			}
		})
	}
}

// TestDaemonWindowsAsLocksmith: windows locksmith accepted that
// ParseWindow warns about. A zero-length window is when reboots may start:
// the daemon waits for it, then reboots whenever it gets the lock, as
// locksmith did; a window as long as its period is always open.
func TestDaemonWindowsAsLocksmith(t *testing.T) {
	t.Run("zero length, reboot", func(t *testing.T) {
		n := newNode(t, locksmith.StrategyReboot, 1)
		n.cfg.Window = mustWindow(t, "10:30", "0")
		n.need.set(true)
		n.start()
		drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
		if at := n.reboots.calls()[0]; !at.Equal(monday.Add(30 * time.Minute)) {
			t.Fatalf("rebooted at %v, want the window's start", at)
		}
	})
	t.Run("zero length, etcd-lock", func(t *testing.T) {
		n := newNode(t, locksmith.StrategyEtcdLock, 1)
		n.cfg.Window = mustWindow(t, "10:30", "0")
		n.locker.setHolders("node-b")
		n.need.set(true)
		n.start()
		// The slot frees hours after the window's start.
		free := monday.Add(5 * time.Hour)
		drive(t, n.clock, free, "the slot freed", func() bool { return nextAfter(n.clock, free) })
		calls := n.locker.lockCalls()
		if n.reboots.count() != 0 || len(calls) < 5 || calls[0].at.Before(monday.Add(30*time.Minute)) {
			t.Fatalf("before the slot freed: %d reboots, lock attempts %v", n.reboots.count(), calls)
		}
		n.locker.setHolders()
		drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
		if at := n.reboots.calls()[0]; at.After(free.Add(locksmith.DefaultRetryMax)) {
			t.Fatalf("rebooted at %v, want within one retry of %v", at, free)
		}
		if !n.locker.holds("node-a") {
			t.Fatal("rebooted without the lock")
		}
	})
	t.Run("a whole day", func(t *testing.T) {
		n := newNode(t, locksmith.StrategyEtcdLock, 1)
		n.cfg.Window = mustWindow(t, "23:00", "24h")
		n.need.set(true)
		n.start()
		drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
		if at := n.reboots.calls()[0]; !at.Equal(monday) {
			t.Fatalf("rebooted at %v, want at once", at)
		}
	})
}

func mustWindow(t *testing.T, start, length string) *locksmith.Window {
	t.Helper()
	w, err := locksmith.ParseWindow(start, length)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// nextAfter reports whether the clock's next deadline is after t, so
// driving up to t is done.
func nextAfter(c *fakeClock, t time.Time) bool {
	at, ok := c.next()
	return ok && at.After(t)
}

// TestDaemonWindowRecheckedAfterLockWait is coreos/bugs#1886: locksmith
// waited for the window, then for the lock, and rebooted whenever it got
// the lock, even long after the window closed.
func TestDaemonWindowRecheckedAfterLockWait(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	w, err := locksmith.ParseWindow("11:00", "1h")
	if err != nil {
		t.Fatal(err)
	}
	n.cfg.Window = w
	n.locker.setHolders("node-b") // the only slot is taken
	n.need.set(true)
	n.start()

	// Through the whole window the slot stays taken; the daemon retries
	// with backoff and fails.
	windowEnd := time.Date(2024, 1, 1, 12, 0, 0, 0, time.UTC)
	drive(t, n.clock, windowEnd.Add(-time.Nanosecond), "the window's end", func() bool { return nextAfter(n.clock, windowEnd.Add(-time.Nanosecond)) })
	if n.reboots.count() != 0 {
		t.Fatal("rebooted without the lock")
	}
	attempts := n.locker.lockCalls()
	for _, c := range attempts {
		if !w.Contains(c.at) {
			t.Fatalf("lock attempt outside the window: %v", c)
		}
	}
	if len(attempts) < 3 {
		t.Fatalf("only %d lock attempts in the window: %v", len(attempts), attempts)
	}
	// The slot frees after the window: the daemon must wait for the
	// next window, not take the lock on its next retry.
	n.locker.setHolders()
	next := time.Date(2024, 1, 2, 11, 0, 0, 0, time.UTC)
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	if at := n.reboots.calls()[0]; !at.Equal(next) {
		t.Fatalf("rebooted at %v, want the next window's start %v", at, next)
	}
	for _, c := range n.locker.lockCalls() {
		if !w.Contains(c.at) {
			t.Fatalf("lock attempt outside the window: %v", c)
		}
	}
}

// TestDaemonWindowClosesDuringLock takes the lock in a store so slow that
// the window closes meanwhile: the daemon must give the lock back and wait.
func TestDaemonWindowClosesDuringLock(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	w, err := locksmith.ParseWindow("11:00", "1h")
	if err != nil {
		t.Fatal(err)
	}
	n.cfg.Window = w
	slow := true
	n.locker.lockHook = func() {
		if slow {
			slow = false
			// The store answers only after the window closed.
			n.clock.set(time.Date(2024, 1, 1, 12, 0, 30, 0, time.UTC))
		}
	}
	n.need.set(true)
	n.start()
	next := time.Date(2024, 1, 2, 11, 0, 0, 0, time.UTC)
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	if at := n.reboots.calls()[0]; !at.Equal(next) {
		t.Fatalf("rebooted at %v, want the next window %v", at, next)
	}
	h := n.locker.actions()
	if len(h) < 3 || h[0].op != "lock" || h[0].err != nil || h[1].op != "unlock" || h[1].err != nil {
		t.Fatalf("want lock, unlock (window closed), ...; got %v", h)
	}
}

func TestDaemonLockBackoff(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.cfg.RetryMin, n.cfg.RetryMax = 5*time.Second, 40*time.Second
	n.locker.setHolders("node-b")
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "seven attempts", func() bool { return len(n.locker.lockCalls()) >= 7 })
	var gaps []time.Duration
	h := n.locker.lockCalls()
	for i := 1; i < 7; i++ {
		gaps = append(gaps, h[i].at.Sub(h[i-1].at))
	}
	want := []time.Duration{5 * time.Second, 10 * time.Second, 20 * time.Second, 40 * time.Second, 40 * time.Second, 40 * time.Second}
	for i := range want {
		if gaps[i] != want[i] {
			t.Fatalf("gaps between lock attempts = %v, want %v", gaps, want)
		}
	}
	n.locker.setHolders()
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
}

func TestDaemonRebootFailure(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.reboots.fail = []error{errors.New("systemctl: no"), errors.New("systemctl: still no")}
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "the third reboot", func() bool { return n.reboots.count() == 3 })
	h := n.locker.actions()
	if len(h) != 5 || h[0].op != "lock" || h[1].op != "unlock" || h[1].err != nil || h[2].op != "lock" || h[3].op != "unlock" || h[4].op != "lock" {
		t.Fatalf("want lock, unlock after each failed reboot, lock again; got %v", h)
	}
	if !n.locker.holds("node-a") {
		t.Fatal("the last reboot runs without the lock")
	}
	calls := n.reboots.calls()
	if g1, g2 := calls[1].Sub(calls[0]), calls[2].Sub(calls[1]); g1 != 5*time.Second || g2 != 10*time.Second {
		t.Fatalf("retries after %v and %v, want 5s and 10s", g1, g2)
	}
	if st := n.state(); st == nil || !st.Locked {
		t.Fatalf("state after the reboot that worked: %+v", st)
	}
}

// TestDaemonRebootTimeout: a reboot command that succeeds but whose
// shutdown never comes must not keep the slot for ever: after the reboot
// timeout the daemon gives the lock back, backs off and tries again.
func TestDaemonRebootTimeout(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.cfg.Leases, n.cfg.LockTTL = n.leases, 30*time.Second
	n.cfg.RebootTimeout = 10 * time.Minute
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "the first reboot", func() bool { return n.reboots.count() == 1 })
	first := n.locker.lease("node-a")
	// Up to the timeout the daemon holds the lock, waiting for the
	// shutdown.
	timeout := monday.Add(10*time.Minute - time.Nanosecond)
	drive(t, n.clock, timeout, "the reboot timeout", func() bool { return nextAfter(n.clock, timeout) })
	if !n.locker.holds("node-a") || n.reboots.count() != 1 {
		t.Fatalf("before the timeout: holders %v, %d reboots", n.locker.held(), n.reboots.count())
	}
	drive(t, n.clock, time.Time{}, "the second reboot", func() bool { return n.reboots.count() == 2 })
	calls := n.reboots.calls()
	if gap := calls[1].Sub(calls[0]); gap != 10*time.Minute+5*time.Second {
		t.Fatalf("second reboot %v after the first, want the timeout and 5s of backoff", gap)
	}
	h := n.locker.actions()
	if len(h) != 3 || h[0].op != "lock" || h[1].op != "unlock" || h[1].err != nil || h[2].op != "lock" || h[2].err != nil {
		t.Fatalf("want lock, unlock after the timeout, lock; got %v", h)
	}
	if !h[1].at.Equal(monday.Add(10 * time.Minute)) {
		t.Fatalf("released at %v, want at the timeout", h[1].at)
	}
	waitFor(t, "the first lease revoked", func() bool { return n.leases.wasRevoked(first) })
	if st := n.state(); st == nil || !st.Locked || st.Lease == "" {
		t.Fatalf("state after the second reboot: %+v", st)
	}
}

// TestDaemonStoppedDuringReboot: the shutdown the reboot command starts may
// stop the daemon before the command returns; the record must survive for
// the next boot's daemon.
func TestDaemonStoppedDuringReboot(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	started := make(chan struct{})
	n.cfg.Reboot = func(ctx context.Context) error {
		close(started)
		<-ctx.Done()
		return ctx.Err()
	}
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "the reboot command", func() bool {
		select {
		case <-started:
			return true
		default:
			return false
		}
	})
	n.stop()
	if st := n.state(); st == nil || !st.Locked {
		t.Fatalf("state after a stop during the reboot command: %+v", st)
	}
	if !n.locker.holds("node-a") {
		t.Fatal("the lock was released during the shutdown")
	}
}

func TestDaemonReleasesAtStart(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.locker.setHolders("node-a")
	n.healthy.set(false) // no reboot in progress: health does not gate this
	n.start()
	waitFor(t, "the release", func() bool { return !n.locker.holds("node-a") })
	if n.healthy.reads() != 0 {
		t.Fatal("checked health without a reboot in progress")
	}
}

// TestDaemonTakesAHandLockAsItsOwn: a slot an operator locked under the
// node's own id does not hold the node back (docs/locksmith.md says so): the
// daemon takes it as its own and reboots at once, as locksmithd did.
func TestDaemonTakesAHandLockAsItsOwn(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.start()
	waitFor(t, "the first need check", func() bool { return n.need.reads() > 0 })
	n.locker.setHolders("node-a") // "cairn locksmith lock node-a"
	n.need.set(true)
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	if at := n.reboots.calls()[0]; !at.Before(monday.Add(time.Minute)) {
		t.Fatalf("rebooted at %v: held back by the hand lock", at)
	}
	h := n.locker.actions()
	if len(h) != 1 || h[0].op != "lock" || !errors.Is(h[0].err, locksmith.ErrExist) {
		t.Fatalf("want one lock attempt finding the lock held; got %v", h)
	}
	if st := n.state(); st == nil || !st.Locked {
		t.Fatalf("state = %+v", st)
	}
	// After the boot the daemon gives the slot back.
	n.stop()
	n.boot.set("boot-2")
	n.need.set(false)
	n.start()
	waitFor(t, "the release", func() bool { return !n.locker.holds("node-a") })
}

// TestDaemonStrategyChangeReleases: a node rebooted under etcd-lock and
// started again with strategy reboot or off still gives its slot back,
// once healthy.
func TestDaemonStrategyChangeReleases(t *testing.T) {
	for _, strategy := range []locksmith.Strategy{locksmith.StrategyReboot, locksmith.StrategyOff} {
		t.Run(string(strategy), func(t *testing.T) {
			n := newNode(t, locksmith.StrategyEtcdLock, 1)
			n.cfg.Leases, n.cfg.LockTTL = n.leases, 30*time.Second
			n.need.set(true)
			n.start()
			drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
			lease := n.locker.lease("node-a")
			n.stop()

			// The boot after it, with another strategy and a node not
			// healthy at first.
			n.boot.set("boot-2")
			n.need.set(false)
			n.healthy.set(false)
			n.cfg.Strategy = strategy
			renewed := n.leases.renewals(lease)
			n.start()
			waitFor(t, "the lease renewed", func() bool { return n.leases.renewals(lease) > renewed })
			n.releaseWhenHealthy(t, lease)
			if strategy == locksmith.StrategyOff {
				select {
				case err := <-n.done:
					if err != nil {
						t.Fatal(err)
					}
					n.cancel = nil
				case <-time.After(10 * time.Second):
					t.Fatal("strategy off did not exit after giving the slot back")
				}
			}
			if n.reboots.count() != 1 {
				t.Fatalf("%d reboots", n.reboots.count())
			}
		})
	}
}

func TestDaemonRebootDidNotHappen(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	n.need.set(true)
	n.start()
	drive(t, n.clock, time.Time{}, "the reboot", func() bool { return n.reboots.count() == 1 })
	// The daemon is restarted, but the machine did not reboot (same boot
	// ID) and still needs a reboot: it releases, then reboots again.
	n.stop()
	n.start()
	drive(t, n.clock, time.Time{}, "the second reboot", func() bool { return n.reboots.count() == 2 })
	if !n.locker.holds("node-a") {
		t.Fatal("rebooted without the lock")
	}
}

func TestNeedRebootFile(t *testing.T) {
	dir := t.TempDir()
	boot := "boot-1"
	check := locksmith.NeedRebootFile(dir, func() string { return boot })
	expect := func(want bool) {
		t.Helper()
		need, _, err := check(context.Background())
		if err != nil || need != want {
			t.Fatalf("need = %v, %v; want %v", need, err, want)
		}
	}
	expect(false)
	if err := locksmith.RequestReboot(dir, boot); err != nil {
		t.Fatal(err)
	}
	expect(true)
	expect(true)
	boot = "boot-2"
	expect(false)
	if _, err := os.Stat(filepath.Join(dir, locksmith.NeedRebootFileName)); !os.IsNotExist(err) {
		t.Fatalf("the served request was not removed: %v", err)
	}
}

func TestSentinelFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "reboot-required")
	check := locksmith.SentinelFile(path)
	if need, _, err := check(context.Background()); need || err != nil {
		t.Fatalf("need = %v, %v without the file", need, err)
	}
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if need, _, err := check(context.Background()); !need || err != nil {
		t.Fatalf("need = %v, %v with the file", need, err)
	}
}

func TestNewDaemonChecksConfig(t *testing.T) {
	n := newNode(t, locksmith.StrategyEtcdLock, 1)
	for name, mutate := range map[string]func(*locksmith.DaemonConfig){
		"no id":        func(c *locksmith.DaemonConfig) { c.ID = "" },
		"no state dir": func(c *locksmith.DaemonConfig) { c.StateDir = "" },
		"no reboot":    func(c *locksmith.DaemonConfig) { c.Reboot = nil },
		"no store":     func(c *locksmith.DaemonConfig) { c.Semaphore = nil },
		"bad strategy": func(c *locksmith.DaemonConfig) { c.Strategy = "best-effort" },
		"negative ttl": func(c *locksmith.DaemonConfig) { c.LockTTL = -time.Second },
	} {
		cfg := n.cfg
		mutate(&cfg)
		if _, err := locksmith.NewDaemon(cfg); err == nil {
			t.Errorf("%s: NewDaemon accepted it", name)
		}
	}
	if _, err := locksmith.NewDaemon(n.cfg); err != nil {
		t.Fatal(err)
	}
}
