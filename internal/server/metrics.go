package server

import "github.com/prometheus/client_golang/prometheus"

// Metrics carry etcd's names where they mean the same thing, so existing
// dashboards and alerts work.
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
	metricApplied = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "server", Name: "proposals_applied_total",
		Help: "The total number of consensus proposals applied.",
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
)

func init() {
	prometheus.MustRegister(metricHasLeader, metricIsLeader, metricLeaderChanges, metricApplied,
		metricPending, metricFailed, metricSnapshots, metricRange, metricPut, metricDelete, metricTxn)
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
}

// NewCollector returns a collector of s's scrape-time metrics.
func NewCollector(s *Server) *Collector {
	d := func(ns, sub, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(ns, sub, name), help, labels, nil)
	}
	return &Collector{
		s:         s,
		committed: d("etcd", "server", "proposals_committed_total", "The total number of consensus proposals committed."),
		applied:   d("etcd", "server", "applied_index", "The current applied index."),
		dbSize:    d("etcd", "mvcc", "db_total_size_in_bytes", "Total size of the underlying database physically allocated in bytes."),
		dbInUse:   d("etcd", "mvcc", "db_total_size_in_use_in_bytes", "Total size of the underlying database logically in use in bytes."),
		quota:     d("etcd", "server", "quota_backend_bytes", "Current backend storage quota size in bytes."),
		keys:      d("etcd", "debugging_mvcc", "keys_total", "Total number of keys."),
		rev:       d("etcd", "mvcc", "current_revision", "The current revision of the store."),
		compact:   d("etcd", "mvcc", "compact_revision", "The revision of the last compaction."),
		term:      d("etcd", "server", "term", "The current raft term."),
		id:        d("etcd", "server", "id", "Server or member ID in hexadecimal format. 1 for 'server_id' label with current ID.", "server_id"),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.committed, c.applied, c.dbSize, c.dbInUse, c.quota, c.keys, c.rev, c.compact, c.term, c.id} {
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
	ch <- prometheus.MustNewConstMetric(c.committed, prometheus.CounterValue, float64(s.CommittedIndex()))
	g(c.applied, float64(s.AppliedIndex()))
	g(c.dbSize, float64(total))
	g(c.dbInUse, float64(inUse))
	g(c.quota, float64(s.cfg.QuotaBackendBytes))
	g(c.keys, float64(s.kv.Keys()))
	g(c.rev, float64(s.kv.Rev()))
	g(c.compact, float64(s.kv.CompactRev()))
	g(c.term, float64(s.Term()))
	g(c.id, 1, hexID(s.id))
}
