package locksmith

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Strategy is how the daemon decides it may reboot.
type Strategy string

// The strategies, locksmith's.
const (
	// StrategyReboot reboots as soon as a reboot is needed (and the
	// window, if any, is open), without a lock. It is the default, as in
	// locksmith.
	StrategyReboot Strategy = "reboot"
	// StrategyEtcdLock takes a slot of the group's semaphore first and
	// gives it back after the reboot, once the node is healthy.
	StrategyEtcdLock Strategy = "etcd-lock"
	// StrategyOff makes the daemon exit at once.
	StrategyOff Strategy = "off"
)

// ParseStrategy reads a strategy name; "" is StrategyReboot.
func ParseStrategy(s string) (Strategy, error) {
	switch Strategy(s) {
	case "":
		return StrategyReboot, nil
	case StrategyReboot, StrategyEtcdLock, StrategyOff:
		return Strategy(s), nil
	}
	return "", fmt.Errorf("unknown reboot strategy %q: want %s, %s or %s", s, StrategyReboot, StrategyEtcdLock, StrategyOff)
}

// Locker is the semaphore as the daemon uses it; *Semaphore satisfies it.
type Locker interface {
	Lock(ctx context.Context, id string, lease clientv3.LeaseID) error
	Unlock(ctx context.Context, id string) error
}

// Leases is the part of the store's lease API the daemon uses to bind its
// holder entry to a lease; *clientv3.Client satisfies it.
type Leases interface {
	Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error)
	Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error)
	KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error)
}

// Defaults of DaemonConfig's zero fields.
const (
	DefaultCheckInterval = 10 * time.Second
	DefaultRetryMin      = 5 * time.Second // locksmith's first backoff
	DefaultRetryMax      = 5 * time.Minute // and its longest
	DefaultOpTimeout     = 5 * time.Second
	// DefaultRebootTimeout is how long the daemon waits for the shutdown
	// after a reboot command that succeeded: long enough for a delayed
	// shutdown ("shutdown -r +5") and a slow stop of the services.
	DefaultRebootTimeout = 15 * time.Minute
)

// DaemonConfig configures a Daemon.
type DaemonConfig struct {
	// Strategy is reboot, etcd-lock or off.
	Strategy Strategy
	// ID is the holder id the node locks as (its machine ID); required.
	ID string
	// Group is the semaphore group; "" is DefaultGroup.
	Group string
	// Window limits when the lock may be taken and the reboot run; nil
	// allows any time.
	Window *Window

	// Semaphore returns the semaphore of a group; required by etcd-lock.
	// The daemon releases a lock in the group it took it in, which after a
	// configuration change may not be Group.
	Semaphore func(group string) Locker
	// Leases and LockTTL bind the holder entry to a lease of LockTTL
	// (rounded up to whole seconds), which the daemon keeps alive while it
	// holds the lock, resumes after the boot, and revokes once it released
	// the lock. A node that dies holding the lock frees its slot LockTTL
	// after the daemon last renewed the lease, so LockTTL must be longer
	// than a reboot takes. Nil or 0: the holder holds until unlocked, as in
	// locksmith.
	Leases  Leases
	LockTTL time.Duration

	// StateDir keeps the reboot in progress across the reboot and the
	// send-need-reboot requests; it must survive a reboot. Required.
	StateDir string
	// Needs say whether a reboot is needed; the first that says yes wins.
	Needs []NeedCheck
	// BootID returns the current boot's ID, "" if unknown.
	BootID func() string
	// Reboot runs the reboot command: it starts the reboot and returns;
	// the daemon then waits to be stopped by the shutdown. Required unless
	// Strategy is off.
	Reboot func(ctx context.Context) error
	// RebootTimeout bounds that wait. A shutdown that has not stopped the
	// daemon by then is taken as a reboot that failed: the daemon logs an
	// error, gives the lock back and tries again after backoff, so a node
	// whose shutdown hangs does not keep its slot for ever. 0 is
	// DefaultRebootTimeout; negative waits for ever.
	RebootTimeout time.Duration
	// Healthy reports whether the node is healthy again after a reboot
	// (nil error); nil means always healthy.
	Healthy func(ctx context.Context) error

	// Clock is the daemon's time; nil is SystemClock.
	Clock Clock
	// CheckInterval is how often the needs and, after a reboot, health
	// are checked. 0 is DefaultCheckInterval.
	CheckInterval time.Duration
	// RetryMin and RetryMax bound the exponential backoff between lock
	// attempts and store retries. 0 is DefaultRetryMin, DefaultRetryMax.
	RetryMin, RetryMax time.Duration
	// OpTimeout bounds one store request. 0 is DefaultOpTimeout.
	OpTimeout time.Duration
	// Logger receives the daemon's log; nil is slog.Default().
	Logger *slog.Logger
}

// Daemon is the node daemon: it waits until a reboot is needed and allowed,
// reboots, and after the boot releases the lock it took.
type Daemon struct {
	cfg     DaemonConfig
	log     *slog.Logger
	needErr string // the last need-check error logged, to log each once
}

// NewDaemon checks cfg and fills in its defaults.
func NewDaemon(cfg DaemonConfig) (*Daemon, error) {
	if cfg.Strategy == "" {
		cfg.Strategy = StrategyReboot
	}
	if _, err := ParseStrategy(string(cfg.Strategy)); err != nil {
		return nil, err
	}
	if cfg.Strategy != StrategyOff {
		if cfg.ID == "" {
			return nil, errors.New("locksmith daemon: no machine id")
		}
		if cfg.StateDir == "" {
			return nil, errors.New("locksmith daemon: no state directory")
		}
		if cfg.Reboot == nil {
			return nil, errors.New("locksmith daemon: no reboot command")
		}
		if cfg.Strategy == StrategyEtcdLock && cfg.Semaphore == nil {
			return nil, errors.New("locksmith daemon: strategy etcd-lock needs a store")
		}
	}
	if cfg.LockTTL < 0 {
		return nil, errors.New("locksmith daemon: negative lock TTL")
	}
	cfg.Group = NormalizeGroup(cfg.Group)
	if cfg.Clock == nil {
		cfg.Clock = SystemClock{}
	}
	if cfg.BootID == nil {
		cfg.BootID = func() string { return "" }
	}
	if cfg.CheckInterval <= 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = DefaultRetryMin
	}
	if cfg.RetryMax <= 0 {
		cfg.RetryMax = DefaultRetryMax
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = cfg.RetryMin
	}
	if cfg.OpTimeout <= 0 {
		cfg.OpTimeout = DefaultOpTimeout
	}
	if cfg.RebootTimeout == 0 {
		cfg.RebootTimeout = DefaultRebootTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Daemon{cfg: cfg, log: log.With("component", "locksmithd")}, nil
}

// Run works until ctx ends, and returns nil then. It first finishes a
// reboot a previous run started (releasing the lock once the node is
// healthy, whatever the strategy is now), then loops: wait until a reboot is
// needed, wait for the window, take the lock (etcd-lock) with backoff, run
// the reboot command and wait for the shutdown to stop it. With strategy off
// it returns once the earlier reboot is finished.
func (d *Daemon) Run(ctx context.Context) error {
	c := d.cfg
	if c.Strategy == StrategyOff {
		d.recover(ctx)
		d.log.Info("reboot strategy is off; exiting")
		return nil
	}
	args := []any{"strategy", c.Strategy, "id", c.ID, "group", c.Group}
	if c.Window != nil {
		next := c.Window.Next(c.Clock.Now())
		args = append(args, "window", c.Window.String(), "next_window", next.Format(time.RFC3339))
	}
	if c.Strategy == StrategyEtcdLock && c.Leases != nil && c.LockTTL > 0 {
		args = append(args, "lock_ttl", c.LockTTL)
	}
	if c.RebootTimeout > 0 {
		args = append(args, "reboot_timeout", c.RebootTimeout)
	} else {
		args = append(args, "reboot_timeout", "none")
	}
	d.log.Info("starting", args...)
	if c.Window != nil {
		for _, warning := range c.Window.Warnings() {
			d.log.Warn(warning)
		}
	}
	if err := d.recover(ctx); err != nil {
		return nil // only ctx ends recover early
	}
	d.loop(ctx)
	return nil
}

// recover finishes what an earlier run left: after a reboot that held the
// lock it waits until the node is healthy and releases the lock, whatever
// the strategy is now (the node may have rebooted under etcd-lock and come
// back with another); without such a record, under etcd-lock, it releases
// any lock the node still holds, as locksmith did at start. It returns an
// error only when ctx ends.
func (d *Daemon) recover(ctx context.Context) error {
	c := d.cfg
	if c.StateDir == "" {
		return nil // strategy off without a state directory
	}
	st, err := LoadState(c.StateDir)
	if err != nil {
		d.log.Error("ignoring the unreadable state file", "err", err)
		st = nil
	}
	if st != nil {
		if boot := c.BootID(); st.BootID != "" && st.BootID == boot {
			d.log.Warn("the reboot started earlier did not happen (same boot ID)", "started", st.Time.Format(time.RFC3339))
		} else {
			d.log.Info("back from the reboot", "started", st.Time.Format(time.RFC3339))
		}
	}
	switch {
	case st != nil && st.Locked && c.Semaphore == nil:
		// Keep the record: a run with a store can still give it back.
		d.log.Error("the reboot in progress holds a reboot lock, but no store is configured to give it back", "id", st.ID, "group", NormalizeGroup(st.Group))
		return nil
	case st != nil && st.Locked:
		if c.Strategy != StrategyEtcdLock {
			d.log.Info("the reboot in progress was started under etcd-lock; giving its lock back", "strategy", c.Strategy)
		}
		lease := st.leaseID()
		stop := func() {}
		if lease != 0 && c.Leases != nil {
			// Renew the lease first: the reboot took part of its TTL.
			stop = d.keepAlive(ctx, lease)
		}
		if err := d.waitHealthy(ctx); err != nil {
			stop()
			return err
		}
		err := d.release(ctx, NormalizeGroup(st.Group), st.ID, lease)
		stop()
		if err != nil {
			return err
		}
	case c.Strategy == StrategyEtcdLock:
		if err := d.release(ctx, c.Group, c.ID, 0); err != nil {
			return err
		}
	}
	if st != nil {
		if err := ClearState(c.StateDir); err != nil {
			d.log.Error("cannot remove the state file", "err", err)
		}
	}
	return nil
}

// loop is Run's main loop; it returns when ctx ends.
func (d *Daemon) loop(ctx context.Context) {
	c := d.cfg
	backoff := c.RetryMin     // between lock attempts
	failBackoff := c.RetryMin // after failed reboots; never reset
	waiting := ""             // what the daemon last said it waits for, to say it once
	say := func(what string, args ...any) {
		if what != waiting {
			d.log.Info(what, args...)
			waiting = what
		}
	}
	// started: a zero-length window only says when reboots may start (as
	// locksmith read every window); once it has started, the daemon goes
	// on until it reboots, however long the lock takes.
	started := false
	for ctx.Err() == nil {
		need, reason := d.needed(ctx)
		if !need {
			say("no reboot needed")
			backoff = c.RetryMin
			started = false
			d.sleep(ctx, c.CheckInterval)
			continue
		}
		if w := c.Window; w != nil && !started {
			if wait := w.Until(c.Clock.Now()); wait > 0 {
				say("reboot needed; waiting for the reboot window", "reason", reason, "window", w.String(), "opens", c.Clock.Now().Add(wait).Format(time.RFC3339))
				backoff = c.RetryMin
				if d.sleep(ctx, wait) == nil && w.Length() == 0 {
					started = true
				}
				continue
			}
			started = w.Length() == 0
		}
		var lease clientv3.LeaseID
		locked, stopKeepAlive := false, func() {}
		if c.Strategy == StrategyEtcdLock {
			l, stop, err := d.lock(ctx)
			if err != nil {
				if ctx.Err() != nil {
					return
				}
				if errors.Is(err, ErrFull) {
					say("reboot needed; waiting for a free slot", "reason", reason, "err", err)
				} else {
					d.log.Warn("cannot take the reboot lock", "err", err, "retry_in", backoff)
					waiting = ""
				}
				d.sleep(ctx, backoff)
				backoff = min(2*backoff, c.RetryMax)
				continue
			}
			locked, lease, stopKeepAlive = true, l, stop
			// Taking the lock may have taken long (a slow or unreachable
			// store): check the window again before rebooting, which
			// locksmith did not (coreos/bugs#1886).
			if w := c.Window; w != nil && !started && !w.Contains(c.Clock.Now()) {
				d.log.Warn("the reboot window closed while taking the lock; releasing it", "window", w.String())
				stopKeepAlive()
				if err := d.release(ctx, c.Group, c.ID, lease); err != nil {
					return
				}
				continue
			}
		}
		backoff = c.RetryMin
		waiting = ""
		// giveUp gives the lock back after a reboot that failed and waits
		// before the next try; false when ctx ended.
		giveUp := func() bool {
			if locked {
				stopKeepAlive()
				if err := d.release(ctx, c.Group, c.ID, lease); err != nil {
					return false
				}
			}
			err := d.sleep(ctx, failBackoff)
			failBackoff = min(2*failBackoff, c.RetryMax)
			return err == nil
		}
		if err := d.reboot(ctx, reason, locked, lease); err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Error("reboot failed", "err", err, "retry_in", failBackoff)
			if !giveUp() {
				return
			}
			continue
		}
		// The machine is going down; the shutdown stops the daemon. The
		// lease, if any, is kept alive until then and must outlive the
		// reboot. A shutdown that never comes must not keep the slot.
		if c.RebootTimeout < 0 {
			<-ctx.Done()
			return
		}
		if err := d.sleep(ctx, c.RebootTimeout); err != nil {
			return
		}
		d.log.Error("the reboot command succeeded but the machine did not go down; giving the lock back", "reboot_timeout", c.RebootTimeout, "retry_in", failBackoff)
		if err := ClearState(c.StateDir); err != nil {
			d.log.Error("cannot remove the state file", "err", err)
		}
		if !giveUp() {
			return
		}
	}
}

// needed asks the need checks in order.
func (d *Daemon) needed(ctx context.Context) (bool, string) {
	for _, check := range d.cfg.Needs {
		need, reason, err := check(ctx)
		if err != nil {
			if msg := err.Error(); msg != d.needErr {
				d.log.Warn("cannot tell whether a reboot is needed", "err", err)
				d.needErr = msg
			}
			continue
		}
		if need {
			return true, reason
		}
	}
	d.needErr = ""
	return false, ""
}

// lock makes one attempt at the lock, with a fresh lease when holders are
// bound to leases; a failed attempt revokes its lease. On success the lease
// is kept alive until ctx ends or stop is called.
func (d *Daemon) lock(ctx context.Context) (lease clientv3.LeaseID, stop func(), err error) {
	c := d.cfg
	stop = func() {}
	if c.Leases != nil && c.LockTTL > 0 {
		octx, cancel := context.WithTimeout(ctx, c.OpTimeout)
		resp, err := c.Leases.Grant(octx, ttlSeconds(c.LockTTL))
		cancel()
		if err != nil {
			return 0, stop, fmt.Errorf("grant lease: %w", err)
		}
		lease = resp.ID
	}
	octx, cancel := context.WithTimeout(ctx, c.OpTimeout)
	err = c.Semaphore(c.Group).Lock(octx, c.ID, lease)
	cancel()
	if errors.Is(err, ErrExist) {
		// Locked for this node already (by hand, or by an earlier run
		// whose record is gone): the lock is ours, with its own binding.
		d.log.Info("the reboot lock is already held by this node")
		d.revoke(ctx, lease)
		return 0, stop, nil
	}
	if err != nil {
		d.revoke(ctx, lease)
		return 0, stop, err
	}
	d.log.Info("took the reboot lock", "group", c.Group, "lease", leaseAttr(lease))
	if lease != 0 {
		stop = d.keepAlive(ctx, lease)
	}
	return lease, stop, nil
}

// reboot records the reboot in the state directory and runs the reboot
// command.
func (d *Daemon) reboot(ctx context.Context, reason string, locked bool, lease clientv3.LeaseID) error {
	c := d.cfg
	boot := c.BootID()
	st := &State{
		Phase:  PhaseRebooting,
		ID:     c.ID,
		Group:  c.Group,
		Locked: locked,
		BootID: boot,
		Time:   c.Clock.Now().UTC(),
	}
	if lease != 0 {
		st.Lease = formatLease(lease)
	}
	if err := SaveState(c.StateDir, st); err != nil {
		return fmt.Errorf("record the reboot: %w", err)
	}
	if boot == "" {
		// Without a boot ID a send-need-reboot request cannot tell it was
		// served; it is served now.
		if err := os.Remove(filepath.Join(c.StateDir, NeedRebootFileName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			d.log.Warn("cannot remove the reboot request", "err", err)
		}
	}
	d.log.Info("rebooting", "reason", reason)
	if err := c.Reboot(ctx); err != nil {
		if ctx.Err() != nil {
			// Stopped while the command ran: most likely by the very
			// shutdown it started. Keep the record for the next boot.
			return err
		}
		if cerr := ClearState(c.StateDir); cerr != nil {
			d.log.Error("cannot remove the state file", "err", cerr)
		}
		return err
	}
	d.log.Info("reboot started; waiting for the shutdown")
	return nil
}

// release gives the lock back, retrying with backoff until the store
// answers; not holding it is fine. It then revokes lease (if not 0). It
// returns an error only when ctx ends.
func (d *Daemon) release(ctx context.Context, group, id string, lease clientv3.LeaseID) error {
	c := d.cfg
	backoff := c.RetryMin
	for {
		octx, cancel := context.WithTimeout(ctx, c.OpTimeout)
		err := c.Semaphore(group).Unlock(octx, id)
		cancel()
		switch {
		case err == nil:
			d.log.Info("released the reboot lock", "group", group, "id", id)
		case errors.Is(err, ErrNotExist):
		default:
			if ctx.Err() != nil {
				return ctx.Err()
			}
			d.log.Warn("cannot release the reboot lock", "err", err, "retry_in", backoff)
			if err := d.sleep(ctx, backoff); err != nil {
				return err
			}
			backoff = min(2*backoff, c.RetryMax)
			continue
		}
		d.revoke(ctx, lease)
		return nil
	}
}

// revoke revokes lease, if any, best effort: a lease left behind expires.
func (d *Daemon) revoke(ctx context.Context, lease clientv3.LeaseID) {
	if lease == 0 || d.cfg.Leases == nil {
		return
	}
	octx, cancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
	defer cancel()
	if _, err := d.cfg.Leases.Revoke(octx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		d.log.Debug("cannot revoke the lease; it will expire", "lease", leaseAttr(lease), "err", err)
	}
}

// waitHealthy polls the health check until it passes.
func (d *Daemon) waitHealthy(ctx context.Context) error {
	if d.cfg.Healthy == nil {
		return nil
	}
	logged := false
	for {
		err := d.cfg.Healthy(ctx)
		if err == nil {
			d.log.Info("node is healthy")
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if !logged {
			d.log.Info("waiting for the node to be healthy before releasing the lock", "err", err)
			logged = true
		}
		if err := d.sleep(ctx, d.cfg.CheckInterval); err != nil {
			return err
		}
	}
}

// keepAlive renews lease every third of its TTL (as the store reports it;
// the lock TTL until it has), on the real clock (the lease expires on the
// store's), until ctx ends, the returned stop is called or the lease is
// gone. It renews once at once.
func (d *Daemon) keepAlive(ctx context.Context, lease clientv3.LeaseID) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	interval := max(d.cfg.LockTTL/3, 200*time.Millisecond)
	go func() {
		defer close(done)
		for {
			octx, ocancel := context.WithTimeout(ctx, d.cfg.OpTimeout)
			resp, err := d.cfg.Leases.KeepAliveOnce(octx, lease)
			ocancel()
			if errors.Is(err, rpctypes.ErrLeaseNotFound) {
				d.log.Warn("the lock's lease is gone: this node no longer holds the lock", "lease", leaseAttr(lease))
				return
			}
			if err != nil && ctx.Err() == nil {
				d.log.Warn("cannot renew the lock's lease", "lease", leaseAttr(lease), "err", err)
			}
			if err == nil && resp.TTL > 0 {
				// A lease taken by an earlier run may have another TTL
				// than this run's setting.
				interval = max(time.Duration(resp.TTL)*time.Second/3, 200*time.Millisecond)
			}
			t := time.NewTimer(interval)
			select {
			case <-ctx.Done():
				t.Stop()
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}

// sleep waits d on the daemon's clock; it returns ctx's error if ctx ends
// first.
func (d *Daemon) sleep(ctx context.Context, dur time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-d.cfg.Clock.After(dur):
		return nil
	}
}

func ttlSeconds(d time.Duration) int64 {
	return int64((d + time.Second - 1) / time.Second)
}

func leaseAttr(l clientv3.LeaseID) string {
	if l == 0 {
		return "none"
	}
	return formatLease(l)
}
