package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/transport"
)

// forwardTestServer is a follower with what forwarding uses.
func forwardTestServer() *Server {
	s := &Server{lg: slog.Default(), transport: transport.New(transport.Config{ClusterID: 7, MemberID: 1})}
	s.cfg.setDefaults()
	return s
}

// closedURL is the URL of a port nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}

// A forwarded request that may have reached the leader is not sent again
// unless it is repeatable; one that never reached it (no connection) or
// that the leader refused before acting (503) is.
func TestForwardRepeatsOnlyWhatIsSafe(t *testing.T) {
	s := forwardTestServer()
	var got atomic.Int32
	// The leader reads the request and the connection breaks before it
	// answers.
	broken := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		io.ReadAll(r.Body)
		c, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			c.Close()
		}
	}))
	defer broken.Close()
	// The leader takes longer than the follower waits.
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		io.ReadAll(r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	ok := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		io.WriteString(w, "{}")
	}))
	defer ok.Close()
	notLeader := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Add(1)
		http.Error(w, ErrNotLeader.Error(), http.StatusServiceUnavailable)
	}))
	defer notLeader.Close()

	for _, tc := range []struct {
		name       string
		urls       []string
		repeatable bool
		timeout    time.Duration
		wantSent   int32
		wantCode   int
		wantAgain  bool
		wantErr    error
	}{
		{"member change, connection broken", []string{broken.URL, ok.URL}, false, 10 * time.Second, 1, 0, false, ErrTimeout},
		{"member change, no answer in time", []string{slow.URL, ok.URL}, false, 300 * time.Millisecond, 1, 0, false, ErrTimeout},
		{"renewal, connection broken", []string{broken.URL, ok.URL}, true, 10 * time.Second, 2, http.StatusOK, false, nil},
		{"member change, no connection", []string{closedURL(t), ok.URL}, false, 10 * time.Second, 1, http.StatusOK, false, nil},
		{"member change, not the leader", []string{notLeader.URL}, false, 10 * time.Second, 1, 0, true, nil},
	} {
		got.Store(0)
		ctx, cancel := context.WithTimeout(context.Background(), tc.timeout)
		code, _, again, err := s.postToLeader(ctx, 2, tc.urls, memberChangePath, []byte(`{"op":"remove","id":3}`), tc.repeatable)
		cancel()
		if n := got.Load(); n != tc.wantSent {
			t.Errorf("%s: the leader got %d requests, want %d", tc.name, n, tc.wantSent)
		}
		if code != tc.wantCode || again != tc.wantAgain {
			t.Errorf("%s: code %d, again %v (%v); want %d, %v", tc.name, code, again, err, tc.wantCode, tc.wantAgain)
		}
		if tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.wantErr)
		}
	}
}

// A forwarded request waits longer than the leader's own request timeout,
// so that the leader's answer (even its timeout) is what the client gets.
func TestForwardOutwaitsTheLeader(t *testing.T) {
	s := forwardTestServer()
	if s.forwardTimeout() <= s.cfg.ReqTimeout() {
		t.Fatalf("forwarding waits %v, not longer than the leader's request timeout %v", s.forwardTimeout(), s.cfg.ReqTimeout())
	}
	if c := s.forwardClient(); c.Timeout != 0 && c.Timeout <= s.cfg.ReqTimeout() {
		t.Fatalf("the forwarding client gives up after %v, within the leader's request timeout %v", c.Timeout, s.cfg.ReqTimeout())
	}
}
