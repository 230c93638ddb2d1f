package transport

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// ProbePath answers a peer's round-trip probe (etcd's path for the same).
const ProbePath = "/raft/probing"

// probeInterval is how often each peer's round trip is measured; a probe
// that takes longer is abandoned.
const probeInterval = 5 * time.Second

var (
	metricPeerRTT = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_round_trip_time_seconds",
		Help:    "Round-Trip-Time histogram between peers",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
	}, []string{"To"})
	metricPeerSentFailures = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "peer_sent_failures_total",
		Help: "The total number of send failures from peers.",
	}, []string{"To"})
)

func init() {
	prometheus.MustRegister(metricPeerRTT, metricPeerSentFailures)
}

// probeLoop measures the round trip of a small HTTP request to the peer
// every probeInterval, over the same client as the raft streams.
func (p *peer) probeLoop() {
	defer p.t.wg.Done()
	rtt := metricPeerRTT.WithLabelValues(fmt.Sprintf("%x", p.id))
	t := time.NewTicker(probeInterval)
	defer t.Stop()
	for {
		select {
		case <-p.stopc:
			return
		case <-t.C:
		}
		if d, err := p.probe(); err == nil {
			rtt.Observe(d.Seconds())
		} else {
			p.t.lg.Debug("peer probe failed", "peer", fmt.Sprintf("%x", p.id), "err", err)
		}
	}
}

func (p *peer) probe() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), probeInterval)
	defer cancel()
	req, err := p.newRequest(ctx, ProbePath, nil)
	if err != nil {
		return 0, err
	}
	req.Method = http.MethodGet
	start := time.Now()
	resp, err := p.t.client.Do(req)
	if err != nil {
		return 0, err
	}
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("probe answered %s", resp.Status)
	}
	return time.Since(start), nil
}

func serveProbe(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	io.WriteString(w, "OK")
}
