package server

import (
	"net"
	"net/http"
	"time"
)

// HTTP clients for requests to peers: with Config.PeerTLS they present the
// member's peer certificate and verify the peers' against the peer CA.

// newPeerHTTPClient returns a client for short peer requests (member list
// when joining, forwarding to the leader).
func (s *Server) newPeerHTTPClient(timeout time.Duration) *http.Client {
	tr := &http.Transport{
		Proxy: nil,
		// Forwarded lease renewals come from many clients at once: keep
		// enough connections to the leader open that each is not a new
		// TCP (and TLS) handshake.
		MaxIdleConnsPerHost: 256,
		IdleConnTimeout:     time.Minute,
		DialContext:         (&net.Dialer{Timeout: time.Second, KeepAlive: 30 * time.Second}).DialContext,
	}
	if s.cfg.PeerTLS != nil {
		tr.TLSClientConfig = s.cfg.PeerTLS.Clone()
	}
	return &http.Client{Timeout: timeout, Transport: tr}
}

// forwardClient is the client forwarded requests go through, made once.
// Each forwarded request carries its own deadline (forwardTimeout).
func (s *Server) forwardClient() *http.Client {
	s.peerHTTPOnce.Do(func() { s.peerHTTP = s.newPeerHTTPClient(0) })
	return s.peerHTTP
}
