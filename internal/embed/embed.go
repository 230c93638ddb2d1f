// Package embed starts a complete store member in process: its listeners,
// the member itself (internal/server), and the client-port APIs (gRPC v3
// and the HTTP endpoints) on one port per URL. cairn serve is a thin layer
// of flags over it, and tests use it to run members without a process.
package embed

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/cairn-io/cairn/internal/api/gateway"
	"github.com/cairn-io/cairn/internal/api/httpapi"
	"github.com/cairn-io/cairn/internal/api/v2http"
	"github.com/cairn-io/cairn/internal/api/v3rpc"
	"github.com/cairn-io/cairn/internal/portmux"
	"github.com/cairn-io/cairn/internal/server"
)

// Config configures a member and its listeners.
type Config struct {
	// Member is the member's own configuration.
	Member server.Config
	// ListenClientURLs are the URLs to serve clients on
	// (--listen-client-urls). A port of 0 picks a free port; ClientURLs
	// reports the ones chosen.
	ListenClientURLs []string
	// ListenPeerURLs are the URLs to serve peers on (--listen-peer-urls).
	ListenPeerURLs []string
	// MaxTxnOps is --max-txn-ops. Default 128.
	MaxTxnOps int
	// EnablePprof serves /debug/pprof on the client port.
	EnablePprof bool
	// CORS lists the origins whose cross-origin requests the client port
	// accepts (--cors). Empty or "*" accepts every origin, etcd's default.
	CORS []string
	// HostWhitelist lists the host names a plain-HTTP client request may
	// name in its Host header (--host-whitelist). Empty or "*" accepts
	// every host, etcd's default.
	HostWhitelist []string
	// ExtensiveMetrics is --metrics=extensive: /metrics also has the gRPC
	// handling-time histogram.
	ExtensiveMetrics bool
	// TLS holds the certificates of https listen URLs (tls.go).
	TLS TLSConfig
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// Member is a running member with its listeners.
type Member struct {
	Server *server.Server

	cfg        Config
	lg         *slog.Logger
	clientLns  []net.Listener
	peerLns    []net.Listener
	muxes      []*portmux.Mux
	grpc       *grpc.Server
	httpSrvs   []*http.Server
	gateway    *gateway.Handler
	errc       chan error
	closeOnce  sync.Once
	wg         sync.WaitGroup
	registered prometheus.Collector
	sec        *tlsState
}

// Start starts a member. Listeners are opened first, so that a port in use
// fails the start before any data is touched; the member then recovers its
// storage and starts raft; the APIs start last, so that no client reaches
// a member that is not running.
func Start(cfg Config) (*Member, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = server.DefaultMaxTxnOps
	}
	if cfg.Member.Logger == nil {
		cfg.Member.Logger = cfg.Logger
	}
	if err := cfg.Member.Validate(); err != nil {
		return nil, err
	}
	sec, err := prepareTLS(&cfg, cfg.Logger)
	if err != nil {
		return nil, err
	}
	m := &Member{cfg: cfg, lg: cfg.Logger, errc: make(chan error, 8), sec: sec}
	started := false
	defer func() {
		if !started {
			for _, hs := range m.httpSrvs {
				hs.Close()
			}
			m.closeListeners()
			m.wg.Wait()
		}
	}()
	for _, u := range cfg.ListenPeerURLs {
		l, err := listen(u)
		if err != nil {
			return nil, fmt.Errorf("listen for peers on %s: %w", u, err)
		}
		m.peerLns = append(m.peerLns, l)
	}
	for _, u := range cfg.ListenClientURLs {
		l, err := listen(u)
		if err != nil {
			return nil, fmt.Errorf("listen for clients on %s: %w", u, err)
		}
		m.clientLns = append(m.clientLns, l)
	}
	if len(cfg.Member.ClientURLs) == 0 {
		cfg.Member.ClientURLs = m.ClientURLs()
	}
	// The peer port answers from the start, 503 until the member runs: a
	// member bootstrapping a new cluster asks its peers whether it already
	// was bootstrapped, and peers starting at the same time must answer at
	// once rather than keep it waiting.
	var peerHandler peerSwitch
	for i, l := range m.peerLns {
		hs := &http.Server{Handler: &peerHandler, ReadHeaderTimeout: 10 * time.Second}
		m.httpSrvs = append(m.httpSrvs, hs)
		pl := m.peerListener(i, l)
		m.serve(func() error { return hs.Serve(pl) })
	}

	srv, err := server.New(cfg.Member)
	if err != nil {
		return nil, err
	}
	m.Server = srv
	peerHandler.set(srv.PeerHandler())
	started = true
	m.registered = server.NewCollector(m.Server)
	if err := prometheus.Register(m.registered); err != nil {
		// Another member in this process registered first (tests).
		m.registered = nil
	}

	m.grpc = v3rpc.NewServer(m.Server, v3rpc.Config{
		MaxRequestBytes:       int(m.Server.Config().MaxRequestBytes),
		MaxTxnOps:             cfg.MaxTxnOps,
		WatchProgressInterval: m.Server.Config().WatchProgressNotifyInterval,
		ExtensiveMetrics:      cfg.ExtensiveMetrics,
		ElectionTimeout:       m.Server.Config().ElectionTimeout,
		Logger:                m.lg,
	})
	mux := http.NewServeMux()
	if len(m.clientLns) > 0 {
		// The v3 JSON gateway calls this member's own gRPC server.
		gwh, err := gateway.New(context.Background(), m.clientLns[0].Addr().String(), m.gatewayDialOptions(0)...)
		if err != nil {
			m.Close()
			return nil, err
		}
		m.gateway = gwh
		mux.Handle("/v3/", gwh)
	}
	httpapi.Register(mux, httpapi.Config{
		Member:         m.Server,
		RequestTimeout: m.Server.Config().ReqTimeout(),
		EnablePprof:    cfg.EnablePprof,
		Logger:         m.lg,
	})
	v2 := v2http.Register(mux, v2http.Config{Server: m.Server, RequestTimeout: m.Server.Config().ReqTimeout(), Logger: m.lg})
	handler := &access{next: mux, cors: cfg.CORS, hosts: cfg.HostWhitelist}
	for i, l := range m.clientLns {
		if hs := m.serveClientTLS(i, l, handler); hs != nil {
			continue
		}
		pm := portmux.New(l)
		m.muxes = append(m.muxes, pm)
		hs := &http.Server{Handler: handler, ReadHeaderTimeout: 10 * time.Second, ErrorLog: slog.NewLogLogger(m.lg.Handler(), slog.LevelDebug)}
		m.httpSrvs = append(m.httpSrvs, hs)
		m.serve(func() error { return pm.Serve() })
		m.serve(func() error { return m.grpc.Serve(pm.GRPC()) })
		m.serve(func() error { return hs.Serve(pm.HTTP()) })
	}
	for _, hs := range m.httpSrvs {
		hs.RegisterOnShutdown(v2.Close) // end open v2 watches
	}
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		select {
		case err := <-m.Server.Errors():
			m.errc <- err
		case <-m.Server.Done():
		}
	}()
	m.lg.Info("serving", "name", cfg.Member.Name, "client-urls", m.ClientURLs(), "peer-urls", m.PeerURLs(),
		"member-id", fmt.Sprintf("%x", m.Server.ID()), "cluster-id", fmt.Sprintf("%x", m.Server.ClusterID()))
	return m, nil
}

func (m *Member) serve(fn func() error) {
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		if err := fn(); err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, http.ErrServerClosed) &&
			!errors.Is(err, grpc.ErrServerStopped) {
			select {
			case m.errc <- err:
			default:
			}
		}
	}()
}

// Err delivers errors that stop the member (a failed listener, a storage
// failure). The caller should Close the member.
func (m *Member) Err() <-chan error { return m.errc }

// ClientURLs returns the URLs clients can reach the member at (with ports
// resolved when 0 was asked for).
func (m *Member) ClientURLs() []string { return withSchemes(m.clientLns, m.cfg.ListenClientURLs) }

// PeerURLs returns the URLs peers can reach the member at.
func (m *Member) PeerURLs() []string { return withSchemes(m.peerLns, m.cfg.ListenPeerURLs) }

// Close stops the member: client connections are closed first so clients
// learn at once that the member is going away; then the member stops raft,
// finishes applying and closes storage.
func (m *Member) Close() {
	m.closeOnce.Do(func() {
		for _, pm := range m.muxes {
			pm.Close()
		}
		if m.grpc != nil {
			stopped := make(chan struct{})
			go func() { m.grpc.GracefulStop(); close(stopped) }()
			select {
			case <-stopped:
			case <-time.After(2 * time.Second):
				m.grpc.Stop()
			}
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		for _, hs := range m.httpSrvs {
			hs.Shutdown(ctx)
			// Streams still open (gRPC over TLS ports) end now.
			hs.Close()
		}
		cancel()
		m.closeListeners()
		if m.gateway != nil {
			m.gateway.Close()
		}
		if m.Server != nil {
			m.Server.Stop()
		}
		if m.registered != nil {
			prometheus.Unregister(m.registered)
		}
		m.wg.Wait()
	})
}

func (m *Member) closeListeners() {
	for _, l := range append(append([]net.Listener(nil), m.clientLns...), m.peerLns...) {
		l.Close()
	}
}

// peerSwitch serves the peer port: 503 until set gives it the member's
// handler.
type peerSwitch struct{ h atomic.Pointer[http.Handler] }

func (p *peerSwitch) set(h http.Handler) { p.h.Store(&h) }

func (p *peerSwitch) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if h := p.h.Load(); h != nil {
		(*h).ServeHTTP(w, r)
		return
	}
	// Answered without reading the body, which on a raft stream never
	// ends: in full-duplex mode the server does not try to drain it first.
	_ = http.NewResponseController(w).EnableFullDuplex()
	http.Error(w, "member is starting", http.StatusServiceUnavailable)
}

// listen opens a TCP listener for an http:// or https:// URL.
func listen(raw string) (net.Listener, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return nil, err
	}
	switch u.Scheme {
	case "http", "https":
		// TLS is layered on by the caller (tls.go).
	default:
		return nil, fmt.Errorf("unsupported scheme %q (want http or https)", u.Scheme)
	}
	host := u.Host
	if !strings.Contains(host, ":") {
		return nil, errors.New("URL needs a port")
	}
	return net.Listen("tcp", host)
}
