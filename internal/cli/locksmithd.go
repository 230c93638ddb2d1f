package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/locksmith"
)

// locksmithdFlags are the flags of "cairn locksmithd".
type locksmithdFlags struct {
	g             *ctlFlags
	configFiles   []string
	strategy      string
	windowStart   string
	windowLength  string
	group         string
	id            string
	machineIDFile string
	sentinel      string
	stateDir      string
	bootIDFile    string
	rebootCommand string
	healthCommand string
	healthTimeout time.Duration
	rebootTimeout time.Duration
	lockTTL       time.Duration
	checkInterval time.Duration
	retryMin      time.Duration
	retryMax      time.Duration
	metricsAddr   string
	logLevel      string
	logFormat     string
}

func newLocksmithdCommand(s streams) *cobra.Command {
	f := &locksmithdFlags{}
	cmd := &cobra.Command{
		Use:   "locksmithd",
		Short: "Run the node's reboot manager (locksmithd)",
		Long: `Run the node's reboot manager. When the node needs a reboot (the sentinel
file exists, or "cairn locksmith send-need-reboot" asked for one) and the
reboot window, if any, is open, it reboots the node with the reboot command;
with --strategy etcd-lock it first takes a slot of the group's semaphore in
the store, with backoff, and gives it back after the boot once the health
command passes. --strategy off makes it exit at once.

Settings come from the flags, then the environment, then the update.conf
files of --config, as locksmithd read them: REBOOT_STRATEGY,
LOCKSMITHD_REBOOT_WINDOW_START ("14:00", "Thu 23:00"),
LOCKSMITHD_REBOOT_WINDOW_LENGTH ("1h30m"), LOCKSMITHD_GROUP,
LOCKSMITHD_ENDPOINT, LOCKSMITHD_ETCD_CAFILE/_CERTFILE/_KEYFILE, and any flag
as LOCKSMITHD_<FLAG>. The connection flags are also read from CAIRN_<FLAG> and
ETCDCTL_<FLAG>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			return runLocksmithd(cmd, s, f)
		},
	}
	fs := cmd.Flags()
	f.g = newStoreFlags(fs)
	fs.StringSliceVar(&f.configFiles, "config", locksmith.DefaultConfigFiles, "update.conf-style files to read settings from, later ones winning; missing ones are skipped")
	fs.StringVar(&f.strategy, "strategy", "", `reboot strategy: reboot, etcd-lock or off (default "reboot")`)
	fs.StringVar(&f.windowStart, "reboot-window-start", "", `start of the reboot window: "HH:MM" daily or "Day HH:MM" weekly, local time`)
	fs.StringVar(&f.windowLength, "reboot-window-length", "", "length of the reboot window, a Go duration (1h30m)")
	fs.StringVar(&f.group, "group", "", "semaphore group")
	fs.StringVar(&f.id, "id", "", "holder id of this node (default: the machine id)")
	fs.StringVar(&f.machineIDFile, "machine-id-file", defaultMachineIDFile, "file with the machine id")
	fs.StringVar(&f.sentinel, "sentinel", locksmith.DefaultSentinel, `a reboot is needed while this file exists ("" to ignore)`)
	fs.StringVar(&f.stateDir, "state-dir", locksmith.DefaultStateDir, "directory that keeps the reboot in progress across the reboot; must survive it")
	fs.StringVar(&f.bootIDFile, "boot-id-file", locksmith.DefaultBootIDFile, "file with the current boot's id, which tells the daemon the machine rebooted")
	fs.StringVar(&f.rebootCommand, "reboot-command", "systemctl reboot", "shell command that starts the reboot")
	fs.DurationVar(&f.rebootTimeout, "reboot-timeout", locksmith.DefaultRebootTimeout, "how long to wait for the shutdown after the reboot command succeeded; then the lock is given back and the reboot tried again after backoff (0: wait for ever)")
	fs.StringVar(&f.healthCommand, "health-command", "", `shell command that succeeds once the node is healthy after a reboot; the lock is released only then ("": healthy at once)`)
	fs.DurationVar(&f.healthTimeout, "health-timeout", time.Minute, "how long one run of the health command may take")
	fs.DurationVar(&f.lockTTL, "lock-ttl", 30*time.Minute, "bind the lock to a lease of this TTL, renewed while the daemon runs and after the boot, so a node that never comes back frees its slot; must exceed a reboot's length (0: held until released, as in locksmith)")
	fs.DurationVar(&f.checkInterval, "check-interval", locksmith.DefaultCheckInterval, "how often to check whether a reboot is needed, and the node's health after one")
	fs.DurationVar(&f.retryMin, "lock-retry-min", locksmith.DefaultRetryMin, "first wait before retrying the lock; it doubles up to --lock-retry-max")
	fs.DurationVar(&f.retryMax, "lock-retry-max", locksmith.DefaultRetryMax, "longest wait between lock attempts")
	fs.StringVar(&f.metricsAddr, "metrics-addr", "", `serve Prometheus metrics of the semaphores on this HOST:PORT at /metrics ("": off)`)
	fs.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	return cmd
}

func runLocksmithd(cmd *cobra.Command, s streams, f *locksmithdFlags) error {
	fs := cmd.Flags()
	files, err := readConfigFiles(fs)
	if err != nil {
		return ExitError{Code: 2, Err: err}
	}
	if err := applyLocksmithVars(fs, "LOCKSMITHD", varSource{getenv: os.Getenv, files: files}); err != nil {
		return ExitError{Code: 2, Err: err}
	}
	log, err := serviceLogger(s, f.logLevel, f.logFormat)
	if err != nil {
		return ExitError{Code: 2, Err: err}
	}
	strategy, err := locksmith.ParseStrategy(f.strategy)
	if err != nil {
		return ExitError{Code: 2, Err: err}
	}
	// A reboot started under etcd-lock holds a slot until the daemon of the
	// next boot gives it back, whatever the strategy is by then; only
	// then may strategy off exit at once. (An unreadable state file is
	// the daemon's to report.)
	st, _ := locksmith.LoadState(f.stateDir)
	heldSlot := st != nil && st.Locked
	if strategy == locksmith.StrategyOff && !heldSlot {
		log.Info("reboot strategy is off; exiting")
		return nil
	}
	window, err := locksmith.WindowFromSettings(f.windowStart, f.windowLength)
	if err != nil {
		return ExitError{Code: 2, Err: err}
	}
	id := f.id
	if id == "" && strategy != locksmith.StrategyOff {
		if id, err = readMachineID(f.machineIDFile); err != nil {
			return ExitError{Code: 2, Err: err}
		}
	}
	if f.lockTTL < 0 || f.rebootTimeout < 0 || f.checkInterval <= 0 || f.retryMin <= 0 || f.retryMax <= 0 || f.healthTimeout <= 0 {
		return ExitError{Code: 2, Err: errors.New("--lock-ttl and --reboot-timeout must not be negative; --check-interval, --health-timeout and --lock-retry-min/max must be positive")}
	}
	rebootTimeout := f.rebootTimeout
	if rebootTimeout == 0 {
		rebootTimeout = -1 // for ever
	}
	if f.rebootCommand == "" {
		return ExitError{Code: 2, Err: errors.New("--reboot-command is empty")}
	}

	bootID := locksmith.BootIDFile(f.bootIDFile)
	needs := []locksmith.NeedCheck{locksmith.NeedRebootFile(f.stateDir, bootID)}
	if f.sentinel != "" {
		needs = append([]locksmith.NeedCheck{locksmith.SentinelFile(f.sentinel)}, needs...)
	}
	cfg := locksmith.DaemonConfig{
		Strategy:      strategy,
		ID:            id,
		Group:         f.group,
		Window:        window,
		StateDir:      f.stateDir,
		Needs:         needs,
		BootID:        bootID,
		Reboot:        shellHook(s, f.rebootCommand, 0),
		RebootTimeout: rebootTimeout,
		CheckInterval: f.checkInterval,
		RetryMin:      f.retryMin,
		RetryMax:      f.retryMax,
		OpTimeout:     f.g.commandTimeout,
		Logger:        log,
	}
	if f.healthCommand != "" {
		cfg.Healthy = shellHook(s, f.healthCommand, f.healthTimeout)
	}

	var cli *clientv3.Client
	useStore := strategy == locksmith.StrategyEtcdLock || heldSlot
	if useStore || f.metricsAddr != "" {
		if cli, err = storeClient(cmd, s, f.g); err != nil {
			return err
		}
		defer cli.Close()
	}
	if useStore {
		cfg.Semaphore = func(group string) locksmith.Locker { return locksmith.NewSemaphore(cli, group) }
		cfg.Leases = cli // renews the held slot's lease, if any, until it is given back
		if strategy == locksmith.StrategyEtcdLock && f.lockTTL > 0 {
			cfg.LockTTL = f.lockTTL
		}
	}
	d, err := locksmith.NewDaemon(cfg)
	if err != nil {
		return ExitError{Code: 2, Err: err}
	}

	ctx := cmd.Context()
	if f.metricsAddr != "" {
		stop, err := serveMetrics(ctx, f.metricsAddr, cli, f.g.commandTimeout, log)
		if err != nil {
			return ExitError{Code: 1, Err: err}
		}
		defer stop()
	}
	return d.Run(ctx)
}

// shellHook runs command with /bin/sh -c, its output going to stderr; a
// non-zero exit is an error. timeout 0 is none.
func shellHook(s streams, command string, timeout time.Duration) func(context.Context) error {
	return func(ctx context.Context) error {
		if timeout > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, timeout)
			defer cancel()
		}
		c := exec.CommandContext(ctx, "/bin/sh", "-c", command)
		c.Stdout = s.err
		c.Stderr = s.err
		if err := c.Run(); err != nil {
			return fmt.Errorf("%q: %w", command, err)
		}
		return nil
	}
}

// serveMetrics serves the semaphores' metrics on addr until ctx ends or the
// returned stop is called.
func serveMetrics(ctx context.Context, addr string, kv locksmith.KV, timeout time.Duration, log *slog.Logger) (stop func(), err error) {
	reg := prometheus.NewRegistry()
	reg.MustRegister(locksmith.NewCollector(kv, timeout, log))
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	log.Info("serving metrics", "addr", ln.Addr().String())
	return func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}, nil
}
