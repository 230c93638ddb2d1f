package locksmith

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports every group's semaphore as Prometheus metrics, read
// from the store at scrape time (one read of all groups), so the numbers are
// right whoever changed the semaphore: a daemon, the FleetLock server or an
// operator.
//
//	cairn_locksmith_holders{group}          live holders
//	cairn_locksmith_slots{group}            max, the number of slots
//	cairn_locksmith_expired_holders{group}  lease-bound holders whose lease is gone
//	cairn_locksmith_store_up                1 if the last scrape read the store
type Collector struct {
	kv      KV
	timeout time.Duration
	log     *slog.Logger

	holders, slots, expired, up *prometheus.Desc
}

// NewCollector returns a collector reading kv, each scrape bounded by
// timeout (0: 5s). Register it with a prometheus.Registry.
func NewCollector(kv KV, timeout time.Duration, log *slog.Logger) *Collector {
	if timeout <= 0 {
		timeout = DefaultOpTimeout
	}
	if log == nil {
		log = slog.Default()
	}
	group := []string{"group"}
	return &Collector{
		kv:      kv,
		timeout: timeout,
		log:     log,
		holders: prometheus.NewDesc("cairn_locksmith_holders", "Live holders of the group's reboot semaphore.", group, nil),
		slots:   prometheus.NewDesc("cairn_locksmith_slots", "Slots (max holders) of the group's reboot semaphore.", group, nil),
		expired: prometheus.NewDesc("cairn_locksmith_expired_holders", "Lease-bound holders whose lease is gone, not yet dropped from the stored semaphore.", group, nil),
		up:      prometheus.NewDesc("cairn_locksmith_store_up", "1 if the semaphores could be read from the store at this scrape, else 0.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.holders
	ch <- c.slots
	ch <- c.expired
	ch <- c.up
}

// Collect implements prometheus.Collector.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	all, err := StatusAll(ctx, c.kv)
	if err != nil {
		c.log.Warn("metrics: cannot read the semaphores", "err", err)
		ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, 1)
	for _, st := range all {
		if st.Error != "" {
			c.log.Warn("metrics: skipping a group", "group", st.Group, "err", st.Error)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.holders, prometheus.GaugeValue, float64(len(st.Holders)), st.Group)
		ch <- prometheus.MustNewConstMetric(c.slots, prometheus.GaugeValue, float64(st.Max), st.Group)
		ch <- prometheus.MustNewConstMetric(c.expired, prometheus.GaugeValue, float64(len(st.Expired)), st.Group)
	}
}
