package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/cairn-io/cairn/internal/embed"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/server"
)

// serveFlags are etcd's server flags, with etcd's names, meanings and
// defaults (loopback instead of localhost, and ./<name>.cairn as the data
// directory).
type serveFlags struct {
	name                     string
	dataDir                  string
	listenClientURLs         string
	advertiseClientURLs      string
	listenPeerURLs           string
	initialAdvertisePeerURLs string
	initialCluster           string
	initialClusterState      string
	initialClusterToken      string
	discovery                string
	snapshotCount            uint64
	snapshotCatchUpEntries   uint64
	quotaBackendBytes        int64
	maxRequestBytes          uint
	maxTxnOps                uint
	autoCompactionMode       string
	autoCompactionRetention  string
	heartbeatInterval        uint
	electionTimeout          uint
	watchProgressInterval    time.Duration
	logLevel                 string
	logFormat                string
	enablePprof              bool
	cors                     string
	hostWhitelist            string
	metrics                  string
	security                 securityFlags // TLS and auth (serve_security.go)
}

const (
	defaultClientURL = "http://127.0.0.1:2379"
	defaultPeerURL   = "http://127.0.0.1:2380"
)

func newServeCommand(s streams) *cobra.Command {
	f := &serveFlags{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run a store member (etcd's server flags; each also settable as CAIRN_<FLAG>)",
		Long: `Run a store member. With no flags it starts a single-member cluster with its
data in ./default.cairn, serving clients on 127.0.0.1:2379 and peers on
127.0.0.1:2380.

Every flag can also be set in the environment as CAIRN_<FLAG>, upper case with
dashes as underscores (CAIRN_DATA_DIR=/var/lib/cairn); ETCD_<FLAG> is accepted
too, so existing etcd units work. A flag on the command line wins.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := f.load(cmd.Flags())
			if err != nil {
				return ExitError{Code: 2, Err: err}
			}
			if err := discoverCluster(cmd.Context(), &cfg, f.discovery); err != nil {
				return err
			}
			return runServe(cmd.Context(), cfg, s)
		},
	}
	f.addFlags(cmd.Flags())
	return cmd
}

// load completes the flags from the environment (CAIRN_<FLAG>, then
// ETCD_<FLAG>, for each flag not on the command line) and builds the
// member's configuration from them. It opens nothing.
func (f *serveFlags) load(fs *pflag.FlagSet) (embed.Config, error) {
	if err := setFlagsFromEnv(fs, "CAIRN_", "ETCD_"); err != nil {
		return embed.Config{}, err
	}
	return f.config(fs)
}

func (f *serveFlags) addFlags(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", server.DefaultName, "Human-readable name for this member.")
	fs.StringVar(&f.dataDir, "data-dir", "", "Path to the data directory. Default ./<name>.cairn.")
	fs.StringVar(&f.listenClientURLs, "listen-client-urls", defaultClientURL, "List of URLs to listen on for client traffic.")
	fs.StringVar(&f.advertiseClientURLs, "advertise-client-urls", "", "List of this member's client URLs to advertise to the rest of the cluster. Default: --listen-client-urls.")
	fs.StringVar(&f.listenPeerURLs, "listen-peer-urls", defaultPeerURL, "List of URLs to listen on for peer traffic.")
	fs.StringVar(&f.initialAdvertisePeerURLs, "initial-advertise-peer-urls", defaultPeerURL, "List of this member's peer URLs to advertise to the rest of the cluster.")
	fs.StringVar(&f.initialCluster, "initial-cluster", "", "Initial cluster configuration for bootstrapping, name=peerURL,... Default <name>=<initial-advertise-peer-urls>.")
	fs.StringVar(&f.initialClusterState, "initial-cluster-state", "new", "Initial cluster state ('new' or 'existing').")
	fs.StringVar(&f.initialClusterToken, "initial-cluster-token", server.DefaultInitialClusterToken, "Initial cluster token for the cluster during bootstrap.")
	fs.StringVar(&f.discovery, "discovery", "", "Discovery URL used to bootstrap the cluster (a v2 keys API token directory, e.g. http://host:2379/v2/keys/discovery/<token>).")
	fs.Uint64Var(&f.snapshotCount, "snapshot-count", server.DefaultSnapshotCount, "Number of committed transactions to trigger a snapshot (raft log truncation).")
	fs.Uint64Var(&f.snapshotCatchUpEntries, "snapshot-catchup-entries", server.DefaultSnapshotCatchUpEntries, "Number of entries for a slow follower to catch up after compacting the raft log.")
	fs.Int64Var(&f.quotaBackendBytes, "quota-backend-bytes", 0, "Raise alarms when backend size exceeds the given quota. 0 means use the default quota (2 GiB).")
	fs.UintVar(&f.maxRequestBytes, "max-request-bytes", server.DefaultMaxRequestBytes, "Maximum client request size in bytes the server will accept.")
	fs.UintVar(&f.maxTxnOps, "max-txn-ops", server.DefaultMaxTxnOps, "Maximum number of operations permitted in a transaction.")
	fs.StringVar(&f.autoCompactionMode, "auto-compaction-mode", "periodic", "Interpret 'auto-compaction-retention' one of: periodic|revision.")
	fs.StringVar(&f.autoCompactionRetention, "auto-compaction-retention", "0", "Auto compaction retention for mvcc key value store (hours or a duration in periodic mode, revisions in revision mode). 0 means disable auto compaction.")
	fs.UintVar(&f.heartbeatInterval, "heartbeat-interval", 100, "Time (in milliseconds) of a heartbeat interval.")
	fs.UintVar(&f.electionTimeout, "election-timeout", 1000, "Time (in milliseconds) for an election to timeout.")
	fs.DurationVar(&f.watchProgressInterval, "watch-progress-notify-interval", 10*time.Minute, "Duration of periodic watch progress notifications.")
	fs.StringVar(&f.logLevel, "log-level", "info", "Configures log level. Only supports debug, info, warn, error, panic, or fatal.")
	fs.StringVar(&f.logFormat, "log-format", "json", "Configures log format. Only supports json, console.")
	fs.BoolVar(&f.enablePprof, "enable-pprof", true, "Serve runtime profiling data via HTTP at /debug/pprof on the client port.")
	fs.StringVar(&f.cors, "cors", "*", "Comma-separated white list of origins for CORS, or cross-origin resource sharing, (empty or * means allow all).")
	fs.StringVar(&f.hostWhitelist, "host-whitelist", "*", "Comma-separated acceptable hostnames from HTTP client requests, if server is not secure (empty means allow all).")
	fs.StringVar(&f.metrics, "metrics", "basic", "Set level of detail for exported metrics, specify 'extensive' to include server side grpc histogram metrics.")
	f.security.addFlags(fs)
}

// setFlagsFromEnv sets every flag not given on the command line from the
// first of the prefixed environment variables that is set and not empty. An
// empty variable counts as unset, as in etcd: CAIRN_SNAPSHOT_COUNT= keeps
// the default, and lets ETCD_SNAPSHOT_COUNT through.
func setFlagsFromEnv(fs *pflag.FlagSet, prefixes ...string) error {
	var err error
	fs.VisitAll(func(fl *pflag.Flag) {
		if err != nil || fl.Changed {
			return
		}
		suffix := strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		for _, p := range prefixes {
			v := os.Getenv(p + suffix)
			if v == "" {
				continue
			}
			if e := fs.Set(fl.Name, v); e != nil {
				err = fmt.Errorf("invalid value %q for environment variable %s%s (flag --%s): %v", v, p, suffix, fl.Name, e)
			}
			return
		}
	})
	return err
}

func parseURLs(flag, v string) ([]string, error) {
	var out []string
	for _, u := range strings.Split(v, ",") {
		u = strings.TrimSpace(u)
		if u == "" {
			continue
		}
		if err := membership.ValidateURL(u); err != nil {
			return nil, fmt.Errorf("invalid value %q for flag --%s: %v", v, flag, err)
		}
		out = append(out, u)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("flag --%s needs at least one URL", flag)
	}
	return out, nil
}

func (f *serveFlags) config(fs *pflag.FlagSet) (embed.Config, error) {
	var cfg embed.Config
	var err error
	if f.name == "" {
		return cfg, errors.New("flag --name must not be empty")
	}
	if cfg.ListenClientURLs, err = parseURLs("listen-client-urls", f.listenClientURLs); err != nil {
		return cfg, err
	}
	if cfg.ListenPeerURLs, err = parseURLs("listen-peer-urls", f.listenPeerURLs); err != nil {
		return cfg, err
	}
	advertiseClient := f.advertiseClientURLs
	if advertiseClient == "" {
		advertiseClient = f.listenClientURLs
	}
	m := &cfg.Member
	if m.ClientURLs, err = parseURLs("advertise-client-urls", advertiseClient); err != nil {
		return cfg, err
	}
	if m.PeerURLs, err = parseURLs("initial-advertise-peer-urls", f.initialAdvertisePeerURLs); err != nil {
		return cfg, err
	}
	m.Name = f.name
	m.DataDir = f.dataDir
	if m.DataDir == "" {
		m.DataDir = f.name + ".cairn"
	}
	m.InitialCluster = f.initialCluster
	if err := f.checkDiscovery(fs); err != nil {
		return cfg, err
	}
	if m.InitialCluster == "" {
		parts := make([]string, len(m.PeerURLs))
		for i, u := range m.PeerURLs {
			parts[i] = f.name + "=" + u
		}
		m.InitialCluster = strings.Join(parts, ",")
	}
	if _, err := membership.ParseInitialCluster(m.InitialCluster, f.initialClusterToken); err != nil {
		return cfg, fmt.Errorf("invalid value %q for flag --initial-cluster: %v", m.InitialCluster, err)
	}
	switch f.initialClusterState {
	case "new", "existing":
	default:
		return cfg, fmt.Errorf("invalid value %q for flag --initial-cluster-state: must be \"new\" or \"existing\"", f.initialClusterState)
	}
	m.InitialClusterState = f.initialClusterState
	m.InitialClusterToken = f.initialClusterToken
	if f.discovery != "" {
		m.InitialClusterToken = f.discovery // as etcd: member IDs hash the discovery URL
	}
	if f.snapshotCount == 0 {
		return cfg, errors.New("invalid value 0 for flag --snapshot-count: must be positive")
	}
	m.SnapshotCount = f.snapshotCount
	if f.snapshotCatchUpEntries == 0 {
		return cfg, errors.New("invalid value 0 for flag --snapshot-catchup-entries: must be positive")
	}
	m.SnapshotCatchUpEntries = f.snapshotCatchUpEntries
	m.QuotaBackendBytes = f.quotaBackendBytes
	if f.quotaBackendBytes < 0 {
		return cfg, fmt.Errorf("invalid value %d for flag --quota-backend-bytes: must not be negative", f.quotaBackendBytes)
	}
	if f.maxRequestBytes == 0 {
		return cfg, errors.New("invalid value 0 for flag --max-request-bytes: must be positive")
	}
	m.MaxRequestBytes = f.maxRequestBytes
	if f.maxTxnOps == 0 {
		return cfg, errors.New("invalid value 0 for flag --max-txn-ops: must be positive")
	}
	cfg.MaxTxnOps = int(f.maxTxnOps)
	m.AutoCompactionMode = f.autoCompactionMode
	m.AutoCompactionRetention = f.autoCompactionRetention
	if f.autoCompactionMode != "periodic" && f.autoCompactionMode != "revision" {
		return cfg, fmt.Errorf("invalid value %q for flag --auto-compaction-mode: must be periodic or revision", f.autoCompactionMode)
	}
	if f.heartbeatInterval == 0 || f.electionTimeout == 0 {
		return cfg, errors.New("flags --heartbeat-interval and --election-timeout must be positive")
	}
	if f.watchProgressInterval <= 0 {
		return cfg, fmt.Errorf("invalid value %v for flag --watch-progress-notify-interval: must be positive", f.watchProgressInterval)
	}
	m.WatchProgressNotifyInterval = f.watchProgressInterval
	m.TickInterval = time.Duration(f.heartbeatInterval) * time.Millisecond
	m.ElectionTimeout = time.Duration(f.electionTimeout) * time.Millisecond
	if m.ElectionTimeout < 5*m.TickInterval {
		return cfg, fmt.Errorf("--election-timeout[%vms] should be at least 5 times as --heartbeat-interval[%vms]", f.electionTimeout, f.heartbeatInterval)
	}
	level, err := parseLogLevel(f.logLevel)
	if err != nil {
		return cfg, err
	}
	var h slog.Handler
	opts := &slog.HandlerOptions{Level: level}
	switch f.logFormat {
	case "json":
		h = slog.NewJSONHandler(os.Stderr, opts)
	case "console", "text":
		h = slog.NewTextHandler(os.Stderr, opts)
	default:
		return cfg, fmt.Errorf("invalid value %q for flag --log-format: must be json or console", f.logFormat)
	}
	cfg.Logger = slog.New(h)
	m.Logger = cfg.Logger
	cfg.EnablePprof = f.enablePprof
	if cfg.CORS, err = parseCORS(f.cors); err != nil {
		return cfg, err
	}
	cfg.HostWhitelist = splitList(f.hostWhitelist)
	switch f.metrics {
	case "basic", "extensive":
		cfg.ExtensiveMetrics = f.metrics == "extensive"
	default:
		return cfg, fmt.Errorf("invalid value %q for flag --metrics: must be basic or extensive", f.metrics)
	}
	if err := f.security.apply(&cfg); err != nil {
		return cfg, err
	}
	if err := m.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// parseCORS parses --cors: "*" or origin URLs (scheme://host[:port]).
func parseCORS(v string) ([]string, error) {
	origins := splitList(v)
	for _, o := range origins {
		if o == "*" {
			continue
		}
		u, err := url.Parse(o)
		if err != nil || u.Scheme == "" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
			return nil, fmt.Errorf("invalid value %q for flag --cors: %q is not * or an origin such as https://example.com", v, o)
		}
	}
	return origins, nil
}

// splitList splits a comma-separated flag value, dropping empty items.
func splitList(v string) []string {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

func parseLogLevel(s string) (slog.Level, error) {
	switch s {
	case "debug":
		return slog.LevelDebug, nil
	case "info":
		return slog.LevelInfo, nil
	case "warn":
		return slog.LevelWarn, nil
	case "error", "panic", "fatal":
		return slog.LevelError, nil
	}
	return 0, fmt.Errorf("invalid value %q for flag --log-level: must be debug, info, warn, error, panic or fatal", s)
}

// runServe runs a member until ctx ends (SIGINT or SIGTERM) or it fails.
func runServe(ctx context.Context, cfg embed.Config, s streams) error {
	m, err := embed.Start(cfg)
	if err != nil {
		return err
	}
	defer m.Close()
	select {
	case <-ctx.Done():
		cfg.Logger.Info("shutting down", "reason", "signal")
		return nil
	case err := <-m.Err():
		if errors.Is(err, server.ErrRemoved) {
			// Removal is the end of a member's life, not a failure.
			cfg.Logger.Warn("this member was removed from the cluster; exiting")
			return nil
		}
		return fmt.Errorf("member stopped: %w", err)
	}
}
