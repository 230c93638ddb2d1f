// Package httpapi serves the plain-HTTP endpoints of the client port, as
// etcd does: /health (JSON), /livez and /readyz (text checks), /version,
// /metrics (Prometheus) and /debug/pprof.
package httpapi

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/version"
)

// Member is what the endpoints need from a member.
type Member interface {
	Alarms() []*pb.AlarmMember
	Leader() uint64
	IsLearner() bool
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
}

// Config configures the handlers.
type Config struct {
	// Member is checked by the health endpoints.
	Member Member
	// Gatherer is scraped by /metrics. Default prometheus.DefaultGatherer.
	Gatherer prometheus.Gatherer
	// RequestTimeout bounds the read a health check makes. Default 5s.
	RequestTimeout time.Duration
	// EnablePprof serves /debug/pprof. Default on in Register's callers.
	EnablePprof bool
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Register installs the endpoints on mux.
func Register(mux *http.ServeMux, cfg Config) {
	if cfg.Gatherer == nil {
		cfg.Gatherer = prometheus.DefaultGatherer
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &handlers{cfg: cfg, lg: cfg.Logger.With("component", "http")}
	mux.HandleFunc("/health", h.health)
	mux.HandleFunc("/version", h.version)
	mux.Handle("/metrics", promhttp.HandlerFor(cfg.Gatherer, promhttp.HandlerOpts{}))
	h.installChecks(mux, "/livez", []check{{"serializable_read", h.readCheck(true)}})
	h.installChecks(mux, "/readyz", []check{
		{"data_corruption", h.alarmCheck(pb.AlarmType_CORRUPT)},
		{"serializable_read", h.readCheck(true)},
		{"linearizable_read", h.readCheck(false)},
		{"non_learner", h.learnerCheck},
	})
	if cfg.EnablePprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
}

type handlers struct {
	cfg Config
	lg  *slog.Logger
}

func onlyGET(w http.ResponseWriter, r *http.Request) bool {
	if r.Method == http.MethodGet {
		return true
	}
	w.Header().Set("Allow", http.MethodGet)
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

// healthJSON is etcd's /health body.
type healthJSON struct {
	Health string `json:"health"`
	Reason string `json:"reason"`
}

// health answers like etcd 3.6: unhealthy on any alarm not excluded with
// ?exclude=NAME, on no leader (unless ?serializable=true), or when a read
// fails.
func (h *handlers) health(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	q := r.URL.Query()
	excluded := map[string]bool{}
	for _, name := range q["exclude"] {
		if name != "" {
			excluded[name] = true
		}
	}
	serializable := q.Get("serializable") == "true"
	res := h.checkHealth(r.Context(), excluded, serializable)
	body, _ := json.Marshal(res)
	if res.Health != "true" {
		h.lg.Warn("/health error", "output", string(body))
		http.Error(w, string(body), http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusOK)
	w.Write(body)
}

func (h *handlers) checkHealth(ctx context.Context, excluded map[string]bool, serializable bool) healthJSON {
	m := h.cfg.Member
	for _, a := range m.Alarms() {
		if excluded[a.Alarm.String()] {
			continue
		}
		switch a.Alarm {
		case pb.AlarmType_NOSPACE:
			return healthJSON{"false", "ALARM NOSPACE"}
		case pb.AlarmType_CORRUPT:
			return healthJSON{"false", "ALARM CORRUPT"}
		default:
			return healthJSON{"false", "ALARM UNKNOWN"}
		}
	}
	if !serializable && m.Leader() == 0 {
		return healthJSON{"false", "RAFT NO LEADER"}
	}
	ctx, cancel := context.WithTimeout(ctx, h.cfg.RequestTimeout)
	defer cancel()
	// The member reads as itself, as etcd's does, so that auth does not
	// make a healthy member look unhealthy.
	if _, err := m.Range(auth.AsInternal(ctx), &pb.RangeRequest{KeysOnly: true, Limit: 1, Serializable: serializable}); err != nil {
		return healthJSON{"false", fmt.Sprintf("RANGE ERROR:%s", err)}
	}
	return healthJSON{"true", ""}
}

func (h *handlers) version(w http.ResponseWriter, r *http.Request) {
	if !onlyGET(w, r) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(struct {
		Server  string `json:"etcdserver"`
		Cluster string `json:"etcdcluster"`
		Storage string `json:"storage"`
	}{version.EtcdServerVersion, version.EtcdClusterVersion, version.StorageVersion})
	w.Write(body)
}

type check struct {
	name string
	fn   func(ctx context.Context) error
}

// installChecks serves root (every check, minus ?exclude=NAME) and
// root/NAME (one check), with etcd's text format: "ok" on success, the
// per-check lines on failure or with ?verbose.
func (h *handlers) installChecks(mux *http.ServeMux, root string, checks []check) {
	run := func(ctx context.Context, cs []check) (string, bool) {
		var out bytes.Buffer
		ok := true
		for _, c := range cs {
			if err := c.fn(ctx); err != nil {
				fmt.Fprintf(&out, "[-]%s failed: %v\n", c.name, err)
				ok = false
			} else {
				fmt.Fprintf(&out, "[+]%s ok\n", c.name)
			}
		}
		return out.String(), ok
	}
	serve := func(w http.ResponseWriter, r *http.Request, cs []check) {
		if !onlyGET(w, r) {
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), h.cfg.RequestTimeout)
		defer cancel()
		reason, ok := run(ctx, cs)
		if !ok {
			http.Error(w, reason, http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("X-Content-Type-Options", "nosniff")
		if _, verbose := r.URL.Query()["verbose"]; verbose {
			fmt.Fprint(w, reason)
		}
		fmt.Fprint(w, "ok\n")
	}
	mux.HandleFunc(root, func(w http.ResponseWriter, r *http.Request) {
		excluded := map[string]bool{}
		for _, name := range r.URL.Query()["exclude"] {
			excluded[name] = true
		}
		var cs []check
		for _, c := range checks {
			if !excluded[c.name] {
				cs = append(cs, c)
			}
		}
		serve(w, r, cs)
	})
	for _, c := range checks {
		c := c
		mux.HandleFunc(root+"/"+c.name, func(w http.ResponseWriter, r *http.Request) { serve(w, r, []check{c}) })
	}
}

func (h *handlers) readCheck(serializable bool) func(context.Context) error {
	return func(ctx context.Context) error {
		_, err := h.cfg.Member.Range(auth.AsInternal(ctx), &pb.RangeRequest{KeysOnly: true, Limit: 1, Serializable: serializable})
		return err
	}
}

func (h *handlers) alarmCheck(typ pb.AlarmType) func(context.Context) error {
	return func(context.Context) error {
		for _, a := range h.cfg.Member.Alarms() {
			if a.Alarm == typ {
				return fmt.Errorf("alarm activated: %s", typ)
			}
		}
		return nil
	}
}

func (h *handlers) learnerCheck(context.Context) error {
	if h.cfg.Member.IsLearner() {
		return fmt.Errorf("not supported for learner")
	}
	return nil
}
