package mvcc

import "github.com/prometheus/client_golang/prometheus"

// Compaction metrics, under etcd's names, types and buckets. The index
// pause is the time reads and writes wait while the in-memory index is
// compacted; the total runs from the compaction's apply until its
// revisions are deleted from storage. etcd's db_compaction_pause has no
// counterpart: deleting the revisions blocks nobody here.
var (
	metricIndexCompactionPauseMs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "index_compaction_pause_duration_milliseconds",
		Help:    "Bucketed histogram of index compaction pause duration.",
		Buckets: prometheus.ExponentialBuckets(0.5, 2, 14),
	})
	metricDBCompactionTotalMs = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_total_duration_milliseconds",
		Help:    "Bucketed histogram of db compaction total duration.",
		Buckets: prometheus.ExponentialBuckets(100, 2, 14),
	})
	metricDBCompactionKeys = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_keys_total",
		Help: "Total number of db keys compacted.",
	})
	metricDBCompactionLast = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "db_compaction_last",
		Help: "The unix time of the last db compaction. Resets to 0 on start.",
	})
)

func init() {
	prometheus.MustRegister(metricIndexCompactionPauseMs, metricDBCompactionTotalMs, metricDBCompactionKeys, metricDBCompactionLast)
}
