// Package fleetlock serves the FleetLock protocol, with which Fedora CoreOS'
// Zincati asks before it reboots a node and reports when the node is back:
// POST /v1/pre-reboot takes a slot of the group's reboot semaphore
// (recursively: the holder asking again succeeds) and POST /v1/steady-state
// gives it back (succeeding when nothing is held). The semaphores are the
// locksmith package's, so FleetLock clients and locksmithd share slots.
//
// Every answer but 200 carries a JSON body {"kind":"...","value":"..."}:
//
//	400 missing_header           no "fleet-lock-protocol: true" header
//	400 invalid_header           the header with another value
//	400 decode_error             a body that is not one JSON object of the protocol
//	400 invalid_client_identity  an empty id, an id over 256 bytes, or a group
//	                             not matching ^[a-zA-Z0-9.-]+$
//	409 semaphore_full           pre-reboot with every slot of the group held
//	404 not_found, 405 method_not_allowed
//	500 failed_lock, failed_unlock  the store failed or timed out
//
// GET /metrics serves Prometheus metrics: the semaphores' holders and slots
// per group and the requests served.
package fleetlock

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"regexp"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/locksmith"
)

// The protocol's paths and header.
const (
	PreRebootPath   = "/v1/pre-reboot"
	SteadyStatePath = "/v1/steady-state"
	MetricsPath     = "/metrics"
	ProtocolHeader  = "fleet-lock-protocol"
)

// Limits on requests.
const (
	maxBodyBytes = 64 << 10
	maxIDBytes   = 256
)

// groupPattern is the protocol's rule for group names.
var groupPattern = regexp.MustCompile(`^[a-zA-Z0-9.-]+$`)

// Leases is what the server needs to bind holders to a lease when
// Config.LockTTL is set; *clientv3.Client satisfies it.
type Leases interface {
	Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error)
	Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error)
}

// Config configures a Server.
type Config struct {
	// KV is the store; *clientv3.Client satisfies it. Required.
	KV locksmith.KV
	// Leases and LockTTL, when both set, bind each new holder to a lease
	// of LockTTL (whole seconds, rounded up) that nobody renews: a node
	// that never reports steady-state frees its slot LockTTL after it took
	// it. Zero keeps a slot until steady-state, as airlock does.
	Leases  Leases
	LockTTL time.Duration
	// Timeout bounds the store work of one request; 0 is 5s.
	Timeout time.Duration
	// Logger receives a line per request; nil is slog.Default().
	Logger *slog.Logger
	// Registry, if set, gets the server's metrics instead of a registry of
	// its own (which /metrics serves).
	Registry *prometheus.Registry
}

// Server is the FleetLock HTTP handler.
type Server struct {
	cfg      Config
	log      *slog.Logger
	routes   map[string]http.Handler // by exact path
	requests *prometheus.CounterVec
}

// New returns a server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.KV == nil {
		return nil, errors.New("fleetlock: no store")
	}
	if cfg.LockTTL < 0 {
		return nil, errors.New("fleetlock: negative lock TTL")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = locksmith.DefaultOpTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	reg := cfg.Registry
	if reg == nil {
		reg = prometheus.NewRegistry()
	}
	s := &Server{
		cfg:    cfg,
		log:    log.With("component", "fleetlock"),
		routes: map[string]http.Handler{},
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_fleetlock_requests_total",
			Help: "FleetLock requests served, by path and HTTP status code.",
		}, []string{"path", "code"}),
	}
	if err := reg.Register(s.requests); err != nil {
		return nil, err
	}
	if err := reg.Register(locksmith.NewCollector(cfg.KV, cfg.Timeout, s.log)); err != nil {
		return nil, err
	}
	s.routes[PreRebootPath] = s.protocol(PreRebootPath, s.preReboot)
	s.routes[SteadyStatePath] = s.protocol(SteadyStatePath, s.steadyState)
	s.routes[MetricsPath] = promhttp.HandlerFor(reg, promhttp.HandlerOpts{})
	return s, nil
}

// ServeHTTP implements http.Handler. Paths must match exactly: unlike
// http.ServeMux, which answers "//v1/pre-reboot" with a redirect and an
// HTML body, every other path gets the protocol's JSON 404.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h, ok := s.routes[r.URL.Path]; ok {
		h.ServeHTTP(w, r)
		return
	}
	writeError(w, &httpError{http.StatusNotFound, "not_found", "no such endpoint: " + r.URL.Path})
}

// httpError is an answer other than 200: the status and the protocol's
// {"kind","value"} body.
type httpError struct {
	code  int
	Kind  string `json:"kind"`
	Value string `json:"value"`
}

func (e *httpError) Error() string { return e.Kind + ": " + e.Value }

func writeError(w http.ResponseWriter, e *httpError) {
	body, _ := json.Marshal(e)
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)+1))
	w.WriteHeader(e.code)
	w.Write(append(body, '\n'))
}

// identity is a request's validated client parameters.
type identity struct {
	ID    string
	Group string
}

// protocol wraps an operation with the checks every FleetLock request
// passes: method, header, body, identity.
func (s *Server) protocol(path string, op func(ctx context.Context, who identity) *httpError) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		who, herr := readRequest(w, r)
		if herr == nil {
			ctx, cancel := context.WithTimeout(r.Context(), s.cfg.Timeout)
			herr = op(ctx, who)
			cancel()
		}
		code := http.StatusOK
		attrs := []any{"path", path, "id", who.ID, "group", who.Group, "took", time.Since(start).Round(time.Microsecond)}
		if herr != nil {
			code = herr.code
			attrs = append(attrs, "status", code, "kind", herr.Kind, "value", herr.Value)
			writeError(w, herr)
		} else {
			attrs = append(attrs, "status", code)
			w.Header().Set("Content-Length", "0")
			w.WriteHeader(code)
		}
		s.requests.WithLabelValues(path, strconv.Itoa(code)).Inc()
		level := slog.LevelInfo
		if code >= 500 {
			level = slog.LevelError
		}
		s.log.Log(r.Context(), level, "request", attrs...)
	})
}

// request is the protocol's body.
type request struct {
	ClientParams *struct {
		ID    *string `json:"id"`
		Group *string `json:"group"`
	} `json:"client_params"`
}

// readRequest checks everything about a request but the store.
func readRequest(w http.ResponseWriter, r *http.Request) (identity, *httpError) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		return identity{}, &httpError{http.StatusMethodNotAllowed, "method_not_allowed", "method " + r.Method + " not allowed: use POST"}
	}
	switch vals := r.Header.Values(ProtocolHeader); {
	case len(vals) == 0:
		return identity{}, &httpError{http.StatusBadRequest, "missing_header", `missing "fleet-lock-protocol: true" header`}
	case len(vals) > 1:
		return identity{}, &httpError{http.StatusBadRequest, "invalid_header", fmt.Sprintf(`"fleet-lock-protocol" header given %d times, want once`, len(vals))}
	case vals[0] != "true":
		return identity{}, &httpError{http.StatusBadRequest, "invalid_header", fmt.Sprintf(`"fleet-lock-protocol" header is %q, want "true"`, vals[0])}
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err != nil {
		return identity{}, &httpError{http.StatusBadRequest, "decode_error", "cannot read the body: " + err.Error()}
	}
	if len(body) > maxBodyBytes {
		return identity{}, &httpError{http.StatusBadRequest, "decode_error", fmt.Sprintf("body longer than %d bytes", maxBodyBytes)}
	}
	var req request
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&req); err != nil {
		if errors.Is(err, io.EOF) {
			return identity{}, &httpError{http.StatusBadRequest, "decode_error", "empty body"}
		}
		return identity{}, &httpError{http.StatusBadRequest, "decode_error", describeJSONError(err)}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return identity{}, &httpError{http.StatusBadRequest, "decode_error", "invalid JSON body: data after the object"}
	}
	if req.ClientParams == nil {
		return identity{}, &httpError{http.StatusBadRequest, "decode_error", `body has no "client_params" object`}
	}
	var who identity
	if p := req.ClientParams.ID; p != nil {
		who.ID = *p
	}
	if p := req.ClientParams.Group; p != nil {
		who.Group = *p
	}
	switch {
	case who.ID == "":
		return who, &httpError{http.StatusBadRequest, "invalid_client_identity", "empty client id"}
	case len(who.ID) > maxIDBytes:
		return who, &httpError{http.StatusBadRequest, "invalid_client_identity", fmt.Sprintf("client id longer than %d bytes", maxIDBytes)}
	case who.Group == "":
		return who, &httpError{http.StatusBadRequest, "invalid_client_identity", "empty client group"}
	case !groupPattern.MatchString(who.Group):
		return who, &httpError{http.StatusBadRequest, "invalid_client_identity", fmt.Sprintf("invalid client group %q: must match %s", who.Group, groupPattern)}
	}
	return who, nil
}

// describeJSONError says what is wrong with a body in the protocol's terms.
func describeJSONError(err error) string {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return fmt.Sprintf("invalid JSON body at byte %d: %v", syntax.Offset, syntax)
	case errors.Is(err, io.ErrUnexpectedEOF):
		return "invalid JSON body: unexpected end"
	case errors.As(err, &typ):
		where := "the body"
		if typ.Field != "" {
			where = strconv.Quote(typ.Field)
		}
		want := "an object"
		if typ.Type != nil && typ.Type.Kind() != reflect.Struct && typ.Type.Kind() != reflect.Pointer {
			want = "a " + typ.Type.Kind().String()
		}
		return fmt.Sprintf("invalid JSON body: %s is a %s, want %s", where, typ.Value, want)
	}
	return "invalid JSON body: " + err.Error()
}

// preReboot is RecursiveLock.
func (s *Server) preReboot(ctx context.Context, who identity) *httpError {
	sem := locksmith.NewSemaphore(s.cfg.KV, who.Group)
	var lease clientv3.LeaseID
	if s.cfg.Leases != nil && s.cfg.LockTTL > 0 {
		resp, err := s.cfg.Leases.Grant(ctx, int64((s.cfg.LockTTL+time.Second-1)/time.Second))
		if err != nil {
			return &httpError{http.StatusInternalServerError, "failed_lock", "cannot grant the lock's lease: " + err.Error()}
		}
		lease = resp.ID
	}
	err := sem.Lock(ctx, who.ID, lease)
	if err != nil && lease != 0 {
		// Held already (with its own binding) or not taken: the new
		// lease binds nothing.
		s.revoke(lease)
	}
	switch {
	case err == nil, errors.Is(err, locksmith.ErrExist):
		return nil
	case errors.Is(err, locksmith.ErrFull):
		return &httpError{http.StatusConflict, "semaphore_full", err.Error()}
	}
	return &httpError{http.StatusInternalServerError, "failed_lock", err.Error()}
}

// steadyState is UnlockIfHeld.
func (s *Server) steadyState(ctx context.Context, who identity) *httpError {
	if err := locksmith.NewSemaphore(s.cfg.KV, who.Group).UnlockIfHeld(ctx, who.ID); err != nil {
		return &httpError{http.StatusInternalServerError, "failed_unlock", err.Error()}
	}
	return nil
}

// revoke drops an unused lease, best effort: it would expire anyway.
func (s *Server) revoke(lease clientv3.LeaseID) {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.Timeout)
	defer cancel()
	if _, err := s.cfg.Leases.Revoke(ctx, lease); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		s.log.Debug("cannot revoke an unused lease; it will expire", "lease", fmt.Sprintf("%016x", uint64(lease)), "err", err)
	}
}
