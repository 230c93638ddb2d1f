// Package v2http serves etcd's v2 HTTP API on the client port, with etcd
// 2.3's requests, responses, headers and errors: /v2/keys (the keys API
// over internal/v2store), /v2/members, /v2/machines and /v2/stats. The
// endpoints /version and /health stay with internal/api/httpapi (3.x
// bodies).
//
// Parsing is separate from serving (ParseKeyRequest) so that it can be
// tested and fuzzed on its own; every malformed request becomes a v2
// error with etcd's code and cause.
package v2http

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/v2store"
)

// URL prefixes of the v2 API.
const (
	KeysPrefix     = "/v2/keys"
	MembersPrefix  = "/v2/members"
	MachinesPrefix = "/v2/machines"
	StatsPrefix    = "/v2/stats"
)

// Server is what the handlers need from a member (*server.Server).
type Server interface {
	ClusterID() uint64
	Leader() uint64
	Term() uint64
	CommittedIndex() uint64
	Members() []membership.Member
	MemberAdd(ctx context.Context, peerURLs []string, isLearner bool) (membership.Member, []membership.Member, error)
	MemberRemove(ctx context.Context, id uint64) ([]membership.Member, error)
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]membership.Member, error)
	// V2Do serves a keys request: it returns an event, or a watcher for
	// GET with wait=true, or an error (a *v2store.Error for the client,
	// or an auth error). With auth on, it acts for the credentials in
	// ctx (auth.WithCredentials) and checks their permissions.
	V2Do(ctx context.Context, r *pb.Request) (*v2store.Event, *v2store.Watcher, error)
	// CheckAdmin fails unless auth is off or the credentials in ctx are
	// a user with the root role: the check of membership changes.
	CheckAdmin(ctx context.Context) error
	V2StoreStats() []byte
	V2SelfStats() []byte
	// V2LeaderStats returns nil unless the member leads.
	V2LeaderStats() []byte
}

// Config configures the handlers.
type Config struct {
	Server Server
	// RequestTimeout bounds a request (not a watch). Default 5s.
	RequestTimeout time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Handler serves the v2 API.
type Handler struct {
	cfg Config
	lg  *slog.Logger

	closeOnce sync.Once
	closing   chan struct{}
}

// Register installs the v2 endpoints on mux and returns the handler, whose
// Close ends the open watches (call it when the HTTP server shuts down;
// http.Server.RegisterOnShutdown does).
func Register(mux *http.ServeMux, cfg Config) *Handler {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	h := &Handler{cfg: cfg, lg: cfg.Logger.With("component", "v2http"), closing: make(chan struct{})}
	mux.HandleFunc(KeysPrefix, h.serveKeys)
	mux.HandleFunc(KeysPrefix+"/", h.serveKeys)
	mux.HandleFunc(MembersPrefix, h.serveMembers)
	mux.HandleFunc(MembersPrefix+"/", h.serveMembers)
	mux.HandleFunc(MachinesPrefix, h.serveMachines)
	mux.HandleFunc(StatsPrefix+"/store", h.serveStoreStats)
	mux.HandleFunc(StatsPrefix+"/self", h.serveSelfStats)
	mux.HandleFunc(StatsPrefix+"/leader", h.serveLeaderStats)
	return h
}

// Close ends every open watch response.
func (h *Handler) Close() { h.closeOnce.Do(func() { close(h.closing) }) }

// allowMethod answers 405 with an Allow header unless m is one of ms.
func allowMethod(w http.ResponseWriter, m string, ms ...string) bool {
	for _, x := range ms {
		if m == x {
			return true
		}
	}
	w.Header().Set("Allow", strings.Join(ms, ","))
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
	return false
}

func hexID(id uint64) string { return strconv.FormatUint(id, 16) }

// httpError is etcd's error body for the non-keys endpoints:
// {"message":"..."}.
type httpError struct {
	Message string `json:"message"`
	code    int
}

func (e *httpError) Error() string { return e.Message }

func (e *httpError) writeTo(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.code)
	b, _ := json.Marshal(e)
	w.Write(b)
}

// writeError answers a non-keys request: an httpError as it is, a v2
// error in the keys format, anything else as 500 Internal Server Error.
func (h *Handler) writeError(w http.ResponseWriter, r *http.Request, err error) {
	var he *httpError
	var ve *v2store.Error
	switch {
	case errors.As(err, &he):
		he.writeTo(w)
	case errors.As(err, &ve):
		writeV2Error(w, ve)
	default:
		h.lg.Warn("v2 request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		(&httpError{Message: "Internal Server Error", code: http.StatusInternalServerError}).writeTo(w)
	}
}

// writeV2Error writes a keys API error: the index as X-Etcd-Index, the
// status of the code, the JSON body and a newline.
func writeV2Error(w http.ResponseWriter, e *v2store.Error) {
	w.Header().Add("X-Etcd-Index", fmt.Sprint(e.Index))
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(e.StatusCode())
	w.Write(append(e.JSON(), '\n'))
}

func (h *Handler) serveStoreStats(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, http.MethodGet) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(h.cfg.Server.V2StoreStats())
}

func (h *Handler) serveSelfStats(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, http.MethodGet) {
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(h.cfg.Server.V2SelfStats())
}

func (h *Handler) serveLeaderStats(w http.ResponseWriter, r *http.Request) {
	if !allowMethod(w, r.Method, http.MethodGet) {
		return
	}
	stats := h.cfg.Server.V2LeaderStats()
	if stats == nil {
		h.writeError(w, r, &httpError{Message: "not current leader", code: http.StatusForbidden})
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Write(stats)
}

// Authentication. With auth on, a request authenticates with HTTP basic
// auth, or, when it has no Authorization header and the member runs with
// --client-cert-auth, as the user its verified client certificate's CN
// names. The users and their permissions are the v3 API's (see
// internal/server). A refusal is etcd's 401 "Insufficient credentials":
// error 110 for the keys API, {"message":...} for the members API.

// requestCredentials reads a request's credentials and client address.
func requestCredentials(r *http.Request) auth.Credentials {
	c := auth.Credentials{Source: remoteIP(r.RemoteAddr)}
	if r.Header.Get("Authorization") != "" {
		// A malformed header leaves the user empty, which no password
		// matches.
		c.BasicAuth = true
		c.Username, c.Password, _ = r.BasicAuth()
		return c
	}
	if r.TLS != nil {
		for _, chain := range r.TLS.VerifiedChains {
			if len(chain) > 0 {
				c.CommonName = chain[0].Subject.CommonName
				break
			}
		}
	}
	return c
}

// remoteIP is the host part of a request's remote address.
func remoteIP(addr string) string {
	if host, _, err := net.SplitHostPort(addr); err == nil {
		return host
	}
	return addr
}

// isAuthError reports whether err refuses a request's credentials or
// their permissions.
func isAuthError(err error) bool {
	for _, e := range []error{auth.ErrUserEmpty, auth.ErrAuthFailed, auth.ErrNoPasswordUser, auth.ErrPermissionDenied,
		auth.ErrAuthOldRevision, auth.ErrUserNotFound, auth.ErrInvalidAuthToken} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// basicRealm is the challenge a 401 carries (RFC 7235 asks for one; etcd
// sends none).
const basicRealm = `Basic realm="etcd"`

// writeKeyNoAuth refuses a keys request: error 110.
func writeKeyNoAuth(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", basicRealm)
	writeV2Error(w, v2store.NewError(v2store.EcodeUnauthorized, "Insufficient credentials", 0))
}

// writeNoAuth refuses a members request.
func writeNoAuth(w http.ResponseWriter) {
	w.Header().Set("WWW-Authenticate", basicRealm)
	(&httpError{Message: "Insufficient credentials", code: http.StatusUnauthorized}).writeTo(w)
}
