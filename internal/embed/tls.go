package embed

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/cairn-io/cairn/internal/tlsutil"
)

// TLS on the client and peer ports. An https listen URL serves TLS only:
// a plain-text connection fails the handshake. On a TLS client port gRPC
// and HTTP share the connection handling, as in etcd: every connection is
// an HTTP server connection (HTTP/2 through ALPN, or HTTP/1.1), and
// requests that are HTTP/2 with a gRPC content type go to the gRPC server.

// DefaultSelfSignedCertValidity is how long --auto-tls certificates are
// valid (etcd's --self-signed-cert-validity default, one year).
const DefaultSelfSignedCertValidity = 365 * 24 * time.Hour

// TLSConfig is the certificate configuration of a member's ports.
type TLSConfig struct {
	// Client and Peer are --cert-file, --key-file, --trusted-ca-file,
	// --client-cert-auth and their --peer-* twins.
	Client, Peer tlsutil.Info
	// ClientAutoTLS and PeerAutoTLS (--auto-tls, --peer-auto-tls) make
	// self-signed certificates in <data-dir>/fixtures/{client,peer} for
	// the listen hosts when no certificate is given.
	ClientAutoTLS, PeerAutoTLS bool
	// SelfSignedCertValidity defaults to one year.
	SelfSignedCertValidity time.Duration
}

// tlsState is what the listeners and clients of a member use.
type tlsState struct {
	clientInfo, peerInfo tlsutil.Info
	client, peer         *tls.Config // server side; nil without certificates
}

func isHTTPS(raw string) bool {
	u, err := url.Parse(raw)
	return err == nil && u.Scheme == "https"
}

func hostsOf(urls []string) []string {
	var hosts []string
	for _, raw := range urls {
		if u, err := url.Parse(raw); err == nil {
			hosts = append(hosts, u.Host)
		}
	}
	return hosts
}

// prepareTLS makes the auto-TLS certificates, checks that every https URL
// has a certificate, builds the ports' configurations and tells the member
// what it needs (client-cert auth, the peer client configuration).
func prepareTLS(cfg *Config, lg *slog.Logger) (*tlsState, error) {
	t := cfg.TLS
	if t.SelfSignedCertValidity <= 0 {
		t.SelfSignedCertValidity = DefaultSelfSignedCertValidity
	}
	st := &tlsState{clientInfo: t.Client, peerInfo: t.Peer}
	var err error
	if t.ClientAutoTLS {
		if !t.Client.Empty() {
			lg.Warn("ignoring client auto TLS since certs given")
		} else {
			auto, err := tlsutil.SelfCert(filepath.Join(cfg.Member.DataDir, "fixtures", "client"), hostsOf(cfg.ListenClientURLs), t.SelfSignedCertValidity)
			if err != nil {
				return nil, fmt.Errorf("auto TLS: %w", err)
			}
			auto.ClientCertAuth, auto.TrustedCAFile = t.Client.ClientCertAuth, t.Client.TrustedCAFile
			st.clientInfo = auto
		}
	}
	if t.PeerAutoTLS {
		if !t.Peer.Empty() {
			lg.Warn("ignoring peer auto TLS since certs given")
		} else {
			auto, err := tlsutil.SelfCert(filepath.Join(cfg.Member.DataDir, "fixtures", "peer"), hostsOf(cfg.ListenPeerURLs), t.SelfSignedCertValidity)
			if err != nil {
				return nil, fmt.Errorf("peer auto TLS: %w", err)
			}
			auto.ClientCertAuth, auto.TrustedCAFile = t.Peer.ClientCertAuth, t.Peer.TrustedCAFile
			st.peerInfo = auto
		}
	}
	if err := st.clientInfo.Validate(""); err != nil {
		return nil, err
	}
	if err := st.peerInfo.Validate("peer-"); err != nil {
		return nil, err
	}
	for _, u := range cfg.ListenClientURLs {
		if isHTTPS(u) && st.clientInfo.Empty() {
			return nil, fmt.Errorf("TLS key/cert (--cert-file, --key-file) must be provided for client url %s with HTTPS scheme (or use --auto-tls)", u)
		}
	}
	for _, u := range cfg.ListenPeerURLs {
		if isHTTPS(u) && st.peerInfo.Empty() {
			return nil, fmt.Errorf("TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url %s with HTTPS scheme (or use --peer-auto-tls)", u)
		}
	}
	if !st.clientInfo.Empty() {
		if st.client, err = st.clientInfo.ServerConfig("h2", "http/1.1"); err != nil {
			return nil, fmt.Errorf("client TLS: %w", err)
		}
	}
	if !st.peerInfo.Empty() {
		if st.peer, err = st.peerInfo.ServerConfig("http/1.1"); err != nil {
			return nil, fmt.Errorf("peer TLS: %w", err)
		}
		if cfg.Member.PeerTLS, err = st.peerInfo.ClientConfig(); err != nil {
			return nil, fmt.Errorf("peer TLS: %w", err)
		}
	}
	cfg.Member.ClientCertAuth = st.clientInfo.ClientCertAuth
	return st, nil
}

// gatewayDialOptions are the JSON gateway's options for its loopback
// connection to the client listener l: TLS with the member's own
// certificate on a TLS port (the member does not check its own
// certificate's name, as etcd does not).
func (m *Member) gatewayDialOptions(i int) []grpc.DialOption {
	if m.sec == nil || m.sec.client == nil || i >= len(m.cfg.ListenClientURLs) || !isHTTPS(m.cfg.ListenClientURLs[i]) {
		return nil
	}
	cc, err := m.sec.clientInfo.ClientConfig()
	if err != nil {
		// The same files loaded a moment ago for the server side.
		m.lg.Error("gateway TLS", "err", err)
		return nil
	}
	cc.InsecureSkipVerify = true
	return []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(cc))}
}

// serveClientTLS serves client listener number i if it is an https one and
// returns its HTTP server; nil means the listener is plain and left to the
// caller.
func (m *Member) serveClientTLS(i int, l net.Listener, h http.Handler) *http.Server {
	if i >= len(m.cfg.ListenClientURLs) || !isHTTPS(m.cfg.ListenClientURLs[i]) {
		return nil
	}
	hs := &http.Server{
		Handler:           grpcOrHTTP(m.grpc, h),
		TLSConfig:         m.sec.client,
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(m.lg.Handler(), slog.LevelDebug),
	}
	m.httpSrvs = append(m.httpSrvs, hs)
	tl := tls.NewListener(l, m.sec.client)
	m.serve(func() error { return hs.Serve(tl) })
	return hs
}

// peerListener wraps peer listener number i in TLS if its URL is https.
func (m *Member) peerListener(i int, l net.Listener) net.Listener {
	if i >= len(m.cfg.ListenPeerURLs) || !isHTTPS(m.cfg.ListenPeerURLs[i]) {
		return l
	}
	return tls.NewListener(l, m.sec.peer)
}

// grpcOrHTTP sends gRPC requests (HTTP/2 with a gRPC content type) to the
// gRPC server and everything else to h.
func grpcOrHTTP(gs *grpc.Server, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.ProtoMajor == 2 && strings.HasPrefix(r.Header.Get("Content-Type"), "application/grpc") {
			gs.ServeHTTP(w, r)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// withSchemes gives each listener address the scheme of its listen URL.
func withSchemes(ls []net.Listener, listenURLs []string) []string {
	out := make([]string, len(ls))
	for i, l := range ls {
		scheme := "http"
		if i < len(listenURLs) && isHTTPS(listenURLs[i]) {
			scheme = "https"
		}
		out[i] = scheme + "://" + l.Addr().String()
	}
	return out
}
