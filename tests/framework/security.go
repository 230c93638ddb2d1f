package framework

import (
	"crypto/tls"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Security is how the framework reaches members that serve TLS or have
// authentication enabled. The certificate flags themselves go in
// Config.Args; Security only tells the framework what the member expects.
type Security struct {
	// ClientTLS, when set, makes the member's client URLs https, and is
	// the configuration the framework's clients and readiness probes
	// connect with (a client certificate when the member requires one).
	ClientTLS *tls.Config
	// PeerTLS makes the member's peer URLs https.
	PeerTLS bool
	// Username and Password, when set, authenticate the framework's
	// clients and probes: a member whose auth is enabled answers a probe
	// only for a user (root, or one allowed to read any key). Before auth
	// is enabled they are ignored by the member.
	Username, Password string
}

func (s Security) clientScheme() string {
	if s.ClientTLS != nil {
		return "https"
	}
	return "http"
}

func (s Security) peerScheme() string {
	if s.PeerTLS {
		return "https"
	}
	return "http"
}

// apply fills in the client configuration's TLS and credentials.
func (s Security) apply(cfg *clientv3.Config) {
	if s.ClientTLS != nil {
		cfg.TLS = s.ClientTLS.Clone()
	}
	cfg.Username, cfg.Password = s.Username, s.Password
}
