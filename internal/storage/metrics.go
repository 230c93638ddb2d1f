package storage

import "github.com/prometheus/client_golang/prometheus"

// Disk metrics, under etcd's names and types (the WAL byte count is a
// gauge in etcd too): the synced raft write is cairn's WAL fsync, the
// unsynced apply batch is its backend commit.
var (
	walFsyncSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_fsync_duration_seconds",
		Help:    "The latency distributions of fsync called by WAL.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	backendCommitSec = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "backend_commit_duration_seconds",
		Help:    "The latency distributions of commit called by backend.",
		Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
	})
	walWriteBytes = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd", Subsystem: "disk", Name: "wal_write_bytes_total",
		Help: "Total number of bytes written in WAL.",
	})
)

func init() {
	prometheus.MustRegister(walFsyncSec, backendCommitSec, walWriteBytes)
}
