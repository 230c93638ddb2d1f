// Package server is one store member: it bootstraps or recovers the member's
// identity and storage, runs the raft node, applies committed entries to the
// MVCC store and the other state machines, and offers the operations the API
// layers serve (Range, Put, DeleteRange, Txn, Compact, alarms, status).
//
// Writes are proposed to raft and answered when applied; linearizable reads
// wait for a ReadIndex and the apply loop to reach it; serializable reads are
// served from the local store. The package knows nothing of gRPC or HTTP.
package server

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/lease"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/storage"
	"github.com/cairn-io/cairn/internal/transport"
	"github.com/cairn-io/cairn/internal/watch"
	"go.etcd.io/raft/v3/raftpb"
)

// Defaults, as etcd's.
const (
	DefaultName                   = "default"
	DefaultSnapshotCount          = 10000
	DefaultSnapshotCatchUpEntries = 5000
	DefaultQuotaBackendBytes      = 2 << 30
	DefaultMaxRequestBytes        = 1.5 * 1024 * 1024
	DefaultMaxTxnOps              = 128
	DefaultTickInterval           = 100 * time.Millisecond
	DefaultElectionTimeout        = 1000 * time.Millisecond
	DefaultInitialClusterToken    = "etcd-cluster"

	// maxGapBetweenApplyAndCommitIndex bounds how far applying may lag
	// committing before new proposals are refused.
	maxGapBetweenApplyAndCommitIndex = 5000
)

// Config configures a member. Fields mirror etcd's flags of the same names.
type Config struct {
	// Name is the human-readable member name (--name). Default "default".
	Name string
	// DataDir is the member's data directory (--data-dir). Required.
	DataDir string
	// PeerURLs are the URLs this member advertises to its peers
	// (--initial-advertise-peer-urls).
	PeerURLs []string
	// ClientURLs are the URLs this member advertises to clients
	// (--advertise-client-urls).
	ClientURLs []string
	// InitialCluster is --initial-cluster: "name=peerURL,...".
	InitialCluster string
	// InitialClusterState is "new" or "existing".
	InitialClusterState string
	// InitialClusterToken is --initial-cluster-token.
	InitialClusterToken string

	// SnapshotCount is the number of applied entries between raft
	// snapshots (log truncations). Default 10000.
	SnapshotCount uint64
	// SnapshotCatchUpEntries is the number of entries kept after a
	// snapshot for slow followers. Default 5000.
	SnapshotCatchUpEntries uint64
	// QuotaBackendBytes raises the NOSPACE alarm when the database grows
	// past it. 0 means the default (2 GiB); negative disables the quota.
	QuotaBackendBytes int64
	// MaxRequestBytes caps an encoded request. Default 1.5 MiB.
	MaxRequestBytes uint
	// AutoCompactionMode is "periodic" or "revision".
	AutoCompactionMode string
	// AutoCompactionRetention is the retention: a duration (or a number of
	// hours) in periodic mode, a number of revisions in revision mode.
	// "0" disables auto compaction.
	AutoCompactionRetention string

	// TickInterval is one raft tick (--heartbeat-interval). Default 100ms.
	TickInterval time.Duration
	// ElectionTimeout is --election-timeout. Default 1s.
	ElectionTimeout time.Duration

	// CacheBytes is the storage block cache in bytes. Default 64 MiB.
	CacheBytes int64

	// LeaseCheckpointInterval is how often the leader records the
	// remaining TTLs of long leases through raft. Default 5 minutes.
	LeaseCheckpointInterval time.Duration
	// WatchProgressNotifyInterval is how often watchers that asked for
	// progress notifications and got no events receive one (etcd's
	// --watch-progress-notify-interval). Default 10 minutes.
	WatchProgressNotifyInterval time.Duration

	// AuthToken is --auth-token: "simple" (the default) or
	// "jwt,pub-key=...,priv-key=...,sign-method=...[,ttl=...]".
	AuthToken string
	// AuthTokenTTL is how long an unused simple token lives
	// (--auth-token-ttl). Default 300s.
	AuthTokenTTL time.Duration
	// BcryptCost hashes new passwords (--bcrypt-cost). Default 10.
	BcryptCost int
	// ClientCertAuth is --client-cert-auth: a request without a token
	// acts as the user named by its client certificate's CN.
	ClientCertAuth bool
	// PeerTLS, when set, is the client TLS configuration for requests to
	// peers (the member's peer certificate and the peer CA).
	PeerTLS *tls.Config

	// Logger defaults to slog.Default().
	Logger *slog.Logger

	// revisionCompactEvery is how often revision-mode auto compaction
	// looks at the revision: 5 minutes, as etcd's. Package tests shorten
	// it.
	revisionCompactEvery time.Duration
}

func (c *Config) setDefaults() {
	if c.Name == "" {
		c.Name = DefaultName
	}
	if c.InitialClusterState == "" {
		c.InitialClusterState = "new"
	}
	if c.InitialClusterToken == "" {
		c.InitialClusterToken = DefaultInitialClusterToken
	}
	if c.SnapshotCount == 0 {
		c.SnapshotCount = DefaultSnapshotCount
	}
	if c.SnapshotCatchUpEntries == 0 {
		c.SnapshotCatchUpEntries = DefaultSnapshotCatchUpEntries
	}
	if c.QuotaBackendBytes == 0 {
		c.QuotaBackendBytes = DefaultQuotaBackendBytes
	}
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.TickInterval <= 0 {
		c.TickInterval = DefaultTickInterval
	}
	if c.ElectionTimeout <= 0 {
		c.ElectionTimeout = DefaultElectionTimeout
	}
	if c.LeaseCheckpointInterval <= 0 {
		c.LeaseCheckpointInterval = 5 * time.Minute
	}
	if c.revisionCompactEvery <= 0 {
		c.revisionCompactEvery = 5 * time.Minute
	}
	if c.WatchProgressNotifyInterval <= 0 {
		c.WatchProgressNotifyInterval = 10 * time.Minute
	}
	if c.AuthToken == "" {
		c.AuthToken = "simple"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
}

// MinLeaseTTL is the shortest lease TTL granted, in seconds: one and a half
// election timeouts, rounded up, as etcd computes it, so that a lease
// cannot expire while a new leader is being elected.
func (c Config) MinLeaseTTL() int64 {
	return int64(math.Ceil((c.ElectionTimeout * 3 / 2).Seconds()))
}

// Validate fills in defaults and checks the configuration without starting
// anything: flag values, and for a data directory that holds no member yet,
// that --initial-cluster names this member with its advertised peer URLs.
func (c *Config) Validate() error {
	c.setDefaults()
	return c.validate()
}

func (c *Config) validate() error {
	if c.DataDir == "" {
		return fmt.Errorf("%w: --data-dir is required", ErrBadConfig)
	}
	if c.InitialClusterState != "new" && c.InitialClusterState != "existing" {
		return fmt.Errorf("%w: --initial-cluster-state must be \"new\" or \"existing\", not %q", ErrBadConfig, c.InitialClusterState)
	}
	if c.ElectionTimeout < 5*c.TickInterval {
		return fmt.Errorf("%w: --election-timeout (%v) must be at least 5 times --heartbeat-interval (%v)",
			ErrBadConfig, c.ElectionTimeout, c.TickInterval)
	}
	if c.ElectionTimeout > 50*time.Second {
		return fmt.Errorf("%w: --election-timeout (%v) must be at most 50s", ErrBadConfig, c.ElectionTimeout)
	}
	if _, _, err := parseAutoCompaction(c.AutoCompactionMode, c.AutoCompactionRetention); err != nil {
		return err
	}
	if err := c.validateAuth(); err != nil {
		return err
	}
	if _, err := os.Stat(storage.DataPath(c.DataDir)); err == nil {
		// An existing member: its identity is on disk and the initial
		// cluster flags are ignored, as etcd ignores them.
		return nil
	}
	if c.InitialClusterState == "existing" {
		return nil
	}
	_, err := c.selfFromInitialCluster()
	return err
}

// selfFromInitialCluster parses --initial-cluster and finds this member in
// it.
func (c *Config) selfFromInitialCluster() ([]membership.Member, error) {
	members, err := membership.ParseInitialCluster(c.InitialCluster, c.InitialClusterToken)
	if err != nil {
		return nil, fmt.Errorf("%w: --initial-cluster: %v", ErrBadConfig, err)
	}
	for _, m := range members {
		if m.Name != c.Name {
			continue
		}
		if !membership.SameURLs(m.PeerURLs, c.PeerURLs) {
			return nil, fmt.Errorf("%w: --initial-cluster has %s=%v but --initial-advertise-peer-urls is %v",
				ErrBadConfig, c.Name, m.PeerURLs, c.PeerURLs)
		}
		return members, nil
	}
	return nil, fmt.Errorf("%w: --initial-cluster %q has no member named %q (--name)", ErrBadConfig, c.InitialCluster, c.Name)
}

// ReqTimeout is how long a proposal may take before the client is told it
// timed out (etcd's 5s plus two election timeouts).
func (c Config) ReqTimeout() time.Duration {
	return 5*time.Second + 2*c.ElectionTimeout
}

// Server is a running member.
type Server struct {
	cfg     Config
	lg      *slog.Logger
	db      *storage.DB
	kv      *mvcc.Store
	cluster *membership.Cluster
	node    *raftnode.Node
	alarms  *alarmStore
	lessor  *lease.Lessor
	hub     *watch.Hub
	v2      *v2State // the v2 keys API (v2.go)
	// transport is nil until bootstrap knows the cluster.
	transport *transport.Transport
	// confMu serialises membership changes made through this member.
	confMu sync.Mutex
	// reclaiming is set while a storage compaction started by
	// reclaimSpace runs.
	reclaiming atomic.Bool
	reclaimWG  sync.WaitGroup

	// authStore holds users, roles and tokens (auth.go).
	authStore    *auth.Store
	peerHTTPOnce sync.Once
	peerHTTP     *http.Client // forwarding to the leader (peertls.go)

	id        uint64
	clusterID uint64

	reqIDs idGenerator
	w      waiters

	// Apply-loop state.
	appliedIndex atomic.Uint64
	appliedTerm  atomic.Uint64
	snapIndex    uint64
	confState    raftpb.ConfState
	// snapFiles are the indexes of received snapshot files not yet
	// installed or dropped.
	snapFilesMu sync.Mutex
	snapFiles   map[uint64]struct{}
	// removedSelf: the apply loop applied this member's removal.
	removedSelf bool
	applyNotify atomic.Pointer[chan struct{}]

	// Linearizable reads.
	readMu     sync.Mutex
	readBatch  *readBatch
	readwaitc  chan struct{}
	readStates chan readState
	leaderc    chan struct{}
	prevLead   atomic.Uint64

	// Compaction requests waiting for physical deletion.
	started  time.Time
	stopping chan struct{}
	done     chan struct{}
	stopOnce sync.Once
	wg       sync.WaitGroup
	errc     chan error
}

// New bootstraps or recovers the member in cfg.DataDir and starts it.
func New(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	lg := cfg.Logger.With("member", cfg.Name)
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	db, err := storage.Open(storage.Config{Dir: storage.DataPath(cfg.DataDir), CacheBytes: cfg.CacheBytes, Logger: lg})
	if err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		lg:         lg,
		db:         db,
		readwaitc:  make(chan struct{}, 1),
		readStates: make(chan readState, 64),
		leaderc:    make(chan struct{}, 1),
		stopping:   make(chan struct{}),
		done:       make(chan struct{}),
		errc:       make(chan error, 1),
		started:    time.Now(),
		snapFiles:  map[uint64]struct{}{},
	}
	s.w.init()
	s.readBatch = newReadBatch()
	ch := make(chan struct{})
	s.applyNotify.Store(&ch)
	if err := s.bootstrap(); err != nil {
		db.Close()
		return nil, err
	}
	return s, nil
}

// bootstrap establishes identity, recovers state and starts the raft node.
func (s *Server) bootstrap() error {
	cfg := s.cfg
	memberID, haveID, err := s.db.Uint64(storage.MetaMemberID)
	if err != nil {
		return err
	}
	var bootstrapPeers []uint64
	if haveID {
		clusterID, ok, err := s.db.Uint64(storage.MetaClusterID)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: member ID recorded without a cluster ID", storage.ErrCorrupt)
		}
		s.id, s.clusterID = memberID, clusterID
		if s.cluster, err = membership.Load(s.db.Pebble(), clusterID); err != nil {
			return err
		}
		s.lg.Info("restarting member", "member-id", fmt.Sprintf("%x", s.id), "cluster-id", fmt.Sprintf("%x", s.clusterID))
	} else if cfg.InitialClusterState == "existing" {
		if err := s.join(); err != nil {
			return err
		}
	} else {
		members, err := cfg.selfFromInitialCluster()
		if err != nil {
			return err
		}
		var self *membership.Member
		ids := make([]uint64, len(members))
		for i := range members {
			ids[i] = members[i].ID
			if members[i].Name == cfg.Name {
				self = &members[i]
			}
		}
		if err := s.checkNotBootstrapped(self.ID, members); err != nil {
			return err
		}
		if err := s.recordIdentity(self.ID, membership.ClusterID(ids), members); err != nil {
			return err
		}
		bootstrapPeers = ids
		s.lg.Info("starting new member", "member-id", fmt.Sprintf("%x", s.id), "cluster-id", fmt.Sprintf("%x", s.clusterID),
			"initial-cluster", cfg.InitialCluster)
	}
	s.reqIDs.init(s.id)

	st, err := s.db.LoadRaftState()
	if err != nil {
		return err
	}
	applied, _, err := s.db.Uint64(storage.MetaAppliedIndex)
	if err != nil {
		return err
	}
	appliedTerm, _, err := s.db.Uint64(storage.MetaAppliedTerm)
	if err != nil {
		return err
	}
	if last := lastIndex(st); applied > last {
		return fmt.Errorf("%w: applied index %d is beyond the raft log (last index %d)", storage.ErrCorrupt, applied, last)
	}
	s.appliedIndex.Store(applied)
	s.appliedTerm.Store(appliedTerm)
	s.snapIndex = st.Snapshot.Metadata.Index
	s.confState = st.Snapshot.Metadata.ConfState

	s.alarms, err = loadAlarms(s.db.Pebble())
	if err != nil {
		return err
	}
	if err := s.openAuth(); err != nil {
		return err
	}
	// Leases load before the store, whose restore re-attaches keys.
	s.lessor = lease.New(lease.Config{MinTTL: cfg.MinLeaseTTL(), Checkpoint: s.proposeLeaseCheckpoint})
	if err := s.lessor.Load(s.db.Pebble()); err != nil {
		return err
	}
	s.kv, err = mvcc.New(mvcc.Config{Backend: s.db.Pebble(), Leases: s.lessor, Logger: s.lg, Reclaim: s.reclaimSpace})
	if err != nil {
		return err
	}
	s.hub = watch.New(watch.Config{Source: s.kv, Logger: s.lg})
	if s.v2, err = openV2(s.db.Pebble()); err != nil {
		return err
	}
	s.transport = transport.New(transport.Config{
		ClusterID: s.clusterID,
		MemberID:  s.id,
		Snapshots: peerSnapshots{s},
		IsRemoved: s.cluster.IsRemoved,
		IsMember: func(id uint64) bool {
			_, ok := s.cluster.Member(id)
			return ok
		},
		OnRemoved: s.onRemoved,
		// A member that answers no heartbeat for a few election timeouts
		// no longer counts as up for membership changes.
		IdleTimeout: 3 * cfg.ElectionTimeout,
		TLS:         cfg.PeerTLS,
		Logger:      s.lg,
	})
	// A snapshot from the leader that raft recorded but a crash kept from
	// being installed is installed now, from the file kept for that.
	if st.Snapshot.Metadata.Index > applied {
		if err := s.installSnapshot(st.Snapshot); err != nil {
			return err
		}
	}
	s.dropOldSnapshotFiles()

	electionTicks := int(cfg.ElectionTimeout / cfg.TickInterval)
	s.node, err = raftnode.Start(raftnode.Config{
		ID:        s.id,
		Bootstrap: bootstrapPeers,
		State: raftnode.RestartState{
			HardState: st.HardState,
			Snapshot:  st.Snapshot,
			Entries:   st.Entries,
		},
		// Raft re-delivers every entry after the snapshot; the apply loop
		// skips the state-machine effects of those at or below applied,
		// while raft re-applies their configuration changes.
		Applied:        st.Snapshot.Metadata.Index,
		TickInterval:   cfg.TickInterval,
		ElectionTicks:  electionTicks,
		HeartbeatTicks: 1,
		Persister:      s.db,
		Transport:      newHeartbeatMonitor(s.v2.stats.sender(s.transport), cfg.TickInterval, s.lg),
		OnDrop:         s.onDrop,
		OnReadState:    s.onReadState,
		OnLeaderChange: s.onLeaderChange,
		Logger:         s.lg,
	})
	if err != nil {
		s.transport.Stop()
		s.hub.Stop()
		s.kv.Close()
		// No compaction can start a reclaim after the store closed.
		s.reclaimWG.Wait()
		return err
	}
	s.transport.SetRaft(s.v2.stats.receiver(s.node))
	s.syncPeers()
	s.wg.Add(4)
	go s.applyLoop()
	go s.readLoop()
	go s.leaseExpiryLoop()
	go s.leaseCheckpointLoop()
	go s.publishAttributes()
	s.startV2()
	if mode, retention, _ := parseAutoCompaction(cfg.AutoCompactionMode, cfg.AutoCompactionRetention); retention > 0 {
		s.wg.Add(1)
		go s.autoCompact(mode, retention)
	}
	return nil
}

func lastIndex(st storage.RaftState) uint64 {
	if n := len(st.Entries); n > 0 {
		return st.Entries[n-1].Index
	}
	return st.Snapshot.Metadata.Index
}

// recordIdentity makes this member id of cluster cid with members, in
// memory and, synced, in storage.
func (s *Server) recordIdentity(id, cid uint64, members []membership.Member) error {
	s.id, s.clusterID = id, cid
	s.cluster = membership.New(cid)
	b := s.db.NewBatch()
	for _, m := range members {
		if err := s.cluster.Add(b, m); err != nil {
			b.Close()
			return err
		}
	}
	storage.PutUint64(b, storage.MetaMemberID, id)
	storage.PutUint64(b, storage.MetaClusterID, cid)
	return s.db.Commit(b, true)
}

// Stop stops the member: raft first (no new commits), then the apply loop,
// then storage.
func (s *Server) Stop() {
	s.stopOnce.Do(func() {
		close(s.stopping)
		s.transport.Stop()
		s.node.Stop()
		s.wg.Wait()
		s.hub.Stop()
		s.kv.Close()
		// No compaction can start a reclaim after the store closed.
		s.reclaimWG.Wait()
		s.authStore.Close()
		if err := s.db.Close(); err != nil {
			s.lg.Warn("closing storage", "err", err)
		}
		close(s.done)
	})
}

// Done is closed when the member has stopped.
func (s *Server) Done() <-chan struct{} { return s.done }

// Errors carries a fatal error that stopped the member.
func (s *Server) Errors() <-chan error { return s.errc }

func (s *Server) fail(err error) {
	select {
	case s.errc <- err:
	default:
	}
}

// ID returns this member's ID.
func (s *Server) ID() uint64 { return s.id }

// ClusterID returns the cluster's ID.
func (s *Server) ClusterID() uint64 { return s.clusterID }

// Name returns the member name.
func (s *Server) Name() string { return s.cfg.Name }

// Leader returns the leader's ID, 0 if there is none.
func (s *Server) Leader() uint64 {
	lead, _ := s.node.Leader()
	return lead
}

// Term returns the current raft term.
func (s *Server) Term() uint64 {
	_, term := s.node.Leader()
	return term
}

// IsLeader reports whether this member leads.
func (s *Server) IsLeader() bool { return s.node.IsLeader() }

// AppliedIndex returns the index of the last applied entry.
func (s *Server) AppliedIndex() uint64 { return s.appliedIndex.Load() }

// CommittedIndex returns the highest index known committed.
func (s *Server) CommittedIndex() uint64 { return s.node.CommitIndex() }

// KV returns the MVCC store.
func (s *Server) KV() *mvcc.Store { return s.kv }

// Cluster returns the member set.
func (s *Server) Cluster() *membership.Cluster { return s.cluster }

// Config returns the member's configuration (with defaults filled in).
func (s *Server) Config() Config { return s.cfg }

// StorageSize reports the on-disk size of the member's database and the
// part of it live data uses, counting every write made so far.
func (s *Server) StorageSize() (total, inUse int64) { return s.db.SizeNow() }

// WaitReady blocks until the member has a leader and has applied the
// entries committed when it started, or ctx ends.
func (s *Server) WaitReady(ctx context.Context) error {
	for {
		if s.Leader() != 0 && s.AppliedIndex() >= s.CommittedIndex() {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return ErrStopped
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Rev returns the store's current revision.
func (s *Server) Rev() int64 { return s.kv.Rev() }

// Members returns the cluster members.
func (s *Server) Members() []membership.Member { return s.cluster.Members() }

// LinearizableMembers returns the members after a ReadIndex round, so a
// member change acknowledged anywhere before the call is in the list.
func (s *Server) LinearizableMembers(ctx context.Context) ([]membership.Member, error) {
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	return s.cluster.Members(), nil
}

// QuotaBackendBytes returns the storage quota in bytes.
func (s *Server) QuotaBackendBytes() int64 { return s.cfg.QuotaBackendBytes }

// IsLearner reports whether this member is a learner.
func (s *Server) IsLearner() bool {
	m, ok := s.cluster.Member(s.id)
	return ok && m.IsLearner
}

// Hub returns the watch hub.
func (s *Server) Hub() *watch.Hub { return s.hub }
