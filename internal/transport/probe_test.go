package transport

import (
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestProbe measures a round trip to a peer serving the peer protocol, and
// none to a server that does not answer the probe.
func TestProbe(t *testing.T) {
	t1, _, t2, _, _ := pair(t, 7, 7)
	peer := func(id uint64) *peer {
		t1.mu.RLock()
		defer t1.mu.RUnlock()
		return t1.peers[id]
	}
	d, err := peer(2).probe()
	if err != nil || d <= 0 {
		t.Fatalf("probe of a peer: %v, %v", d, err)
	}
	other := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(other.Close)
	// A peer of its own, without the stream loops AddPeer would start.
	if d, err := newPeer(t1, 3, []string{other.URL}).probe(); err == nil {
		t.Fatalf("probe of a server without the probe path: %v, want an error", d)
	}
	srv := httptest.NewServer(t2.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Post(srv.URL+ProbePath, "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST %s: %s, want 405", ProbePath, resp.Status)
	}
}
