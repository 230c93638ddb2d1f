package server

import (
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/version"
)

// Metrics carry etcd's names, types and labels where they mean the same
// thing, so existing dashboards and alerts work; the ones etcd does not
// have are under cairn_. docs/metrics.md lists the etcd names cairn
// promises, and a test holds them to a real etcd's.
var (
	metricHasLeader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "has_leader",
		Help: "Whether or not a leader exists. 1 is existence, 0 is not.",
	})
	metricIsLeader = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "is_leader",
		Help: "Whether or not this member is a leader. 1 if is, 0 otherwise.",
	})
	metricLeaderChanges = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "leader_changes_seen_total",
		Help: "The number of leader changes seen.",
	})
	metricPending = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_pending",
		Help: "The current number of pending proposals to commit.",
	})
	metricFailed = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_failed_total",
		Help: "The total number of failed proposals seen.",
	})
	metricSnapshots = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cairn", Subsystem: "server", Name: "raft_snapshots_total",
		Help: "The number of raft snapshots (log truncations) taken.",
	})
	metricRange = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "range_total",
		Help: "Total number of ranges seen by this member.",
	})
	metricPut = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "put_total",
		Help: "Total number of puts seen by this member.",
	})
	metricDelete = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "delete_total",
		Help: "Total number of deletes seen by this member.",
	})
	metricTxn = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "mvcc", Name: "txn_total",
		Help: "Total number of txns seen by this member.",
	})
	metricHeartbeatSendFailures = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "heartbeat_send_failures_total",
		Help: "The total number of leader heartbeat send failures (likely overloaded from slow disk).",
	})
	metricLeaseExpired = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "server", Name: "lease_expired_total",
		Help: "The total number of expired leases.",
	})
)

func init() {
	prometheus.MustRegister(metricHasLeader, metricIsLeader, metricLeaderChanges,
		metricPending, metricFailed, metricSnapshots, metricRange, metricPut, metricDelete, metricTxn,
		metricHeartbeatSendFailures, metricLeaseExpired)
}

// Collector exports the gauges that are read from a member on scrape.
type Collector struct {
	s         *Server
	committed *prometheus.Desc
	applied   *prometheus.Desc
	dbSize    *prometheus.Desc
	dbInUse   *prometheus.Desc
	quota     *prometheus.Desc
	keys      *prometheus.Desc
	rev       *prometheus.Desc
	compact   *prometheus.Desc
	term      *prometheus.Desc
	id        *prometheus.Desc
	learner   *prometheus.Desc
	version   *prometheus.Desc
}

// NewCollector returns a collector of s's scrape-time metrics.
func NewCollector(s *Server) *Collector {
	d := func(ns, sub, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, labels, nil)
	}
	return &Collector{
		s: s,
		// etcd reports the indexes themselves under these names, as
		// gauges, so they survive a restart and can be compared.
		committed: d("etcd", "server", "proposals_committed_total", "The total number of consensus proposals committed."),
		applied:   d("etcd", "server", "proposals_applied_total", "The total number of consensus proposals applied."),
		dbSize:    d("etcd", "mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes."),
		dbInUse:   d("etcd", "mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes."),
		quota:     d("etcd", "server", "quota_backend_bytes", "Current backend storage quota size in bytes."),
		keys:      d("etcd", "debugging_mvcc", "keys_total", "Total number of keys."),
		rev:       d("etcd", "debugging_mvcc", "current_revision", "The current revision of store."),
		compact:   d("etcd", "debugging_mvcc", "compact_revision", "The revision of the last compaction in store."),
		term:      d("cairn", "server", "term", "The current raft term."),
		id:        d("etcd", "server", "id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id"),
		learner:   d("etcd", "server", "is_learner", "Whether or not this member is a learner. 1 if is, 0 otherwise."),
		version:   d("etcd", "server", "version", "Which version is running. 1 for 'server_version' label with current version.", "server_version"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.committed, c.applied, c.dbSize, c.dbInUse, c.quota, c.keys, c.rev, c.compact,
		c.term, c.id, c.learner, c.version} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	s := c.s
	total, inUse := s.StorageSize()
	g := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	// Applied first: read the other way round, a commit and its apply
	// between the two reads would show applied ahead of committed.
	applied := s.AppliedIndex()
	g(c.committed, float64(max(s.CommittedIndex(), applied)))
	g(c.applied, float64(applied))
	g(c.dbSize, float64(total))
	g(c.dbInUse, float64(inUse))
	g(c.quota, float64(s.cfg.QuotaBackendBytes))
	g(c.keys, float64(s.kv.Keys()))
	g(c.rev, float64(s.kv.Rev()))
	g(c.compact, float64(s.kv.CompactRev()))
	g(c.term, float64(s.Term()))
	g(c.id, 1, hexID(s.id))
	learner := 0.0
	if s.IsLearner() {
		learner = 1
	}
	g(c.learner, learner)
	g(c.version, 1, version.EtcdServerVersion)
}

// heartbeatMonitor counts the heartbeats a leader sends late, as etcd's
// etcd_server_heartbeat_send_failures_total does: a heartbeat to a member
// more than two heartbeat intervals after the previous one of the same
// term means the leader's loop was held up (most often by a slow disk),
// and the followers may soon start an election.
type heartbeatMonitor struct {
	next raftnode.Transport
	max  time.Duration
	lg   *slog.Logger
	now  func() time.Time // time.Now; tests set their own

	mu   sync.Mutex
	last map[uint64]sentHeartbeat // by member
}

type sentHeartbeat struct {
	term uint64
	at   time.Time
}

func newHeartbeatMonitor(next raftnode.Transport, interval time.Duration, lg *slog.Logger) *heartbeatMonitor {
	return &heartbeatMonitor{next: next, max: 2 * interval, lg: lg, now: time.Now, last: map[uint64]sentHeartbeat{}}
}

// Send implements raftnode.Transport.
func (h *heartbeatMonitor) Send(msgs []raftpb.Message) {
	var now time.Time
	for i := range msgs {
		m := &msgs[i]
		if m.Type != raftpb.MsgHeartbeat {
			continue
		}
		if now.IsZero() {
			now = h.now()
		}
		h.mu.Lock()
		prev, ok := h.last[m.To]
		h.last[m.To] = sentHeartbeat{term: m.Term, at: now}
		h.mu.Unlock()
		// A new term is a new leadership: the gap before its first
		// heartbeat is the election, not a delay.
		if ok && prev.term == m.Term {
			if gap := now.Sub(prev.at); gap > h.max {
				metricHeartbeatSendFailures.Inc()
				h.lg.Warn("leader failed to send out heartbeat on time; took too long, leader is overloaded likely from slow disk",
					"to", fmt.Sprintf("%x", m.To), "heartbeat-interval", h.max/2, "expected-duration", h.max, "exceeded-duration", gap-h.max)
			}
		}
	}
	h.next.Send(msgs)
}
