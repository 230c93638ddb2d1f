package watch

import "github.com/prometheus/client_golang/prometheus"

// Gauges under etcd's names, summed over the hubs of the process (a member
// has one).
var (
	metricStreams = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watch_stream_total",
		Help: "Total number of watch streams.",
	})
	metricWatchers = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "watcher_total",
		Help: "Total number of watchers.",
	})
	// metricSlowWatchers counts the watchers catching up from storage: new
	// ones with a past start revision and those whose stream fell behind.
	metricSlowWatchers = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: "etcd_debugging", Subsystem: "mvcc", Name: "slow_watcher_total",
		Help: "Total number of unsynced slow watchers.",
	})
)

func init() {
	prometheus.MustRegister(metricStreams, metricWatchers, metricSlowWatchers)
}
