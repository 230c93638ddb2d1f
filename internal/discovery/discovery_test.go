package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/api/v2http"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/v2store"
)

// fakeServer serves the v2 keys API from a store in memory: writes apply
// at once, as on a one-member cluster.
type fakeServer struct {
	mu    sync.Mutex
	store *v2store.Store
}

func (f *fakeServer) ClusterID() uint64                { return 1 }
func (f *fakeServer) Leader() uint64                   { return 1 }
func (f *fakeServer) Term() uint64                     { return 1 }
func (f *fakeServer) CommittedIndex() uint64           { return 1 }
func (f *fakeServer) Members() []membership.Member     { return nil }
func (f *fakeServer) V2StoreStats() []byte             { return nil }
func (f *fakeServer) V2SelfStats() []byte              { return nil }
func (f *fakeServer) V2LeaderStats() []byte            { return nil }
func (f *fakeServer) CheckAdmin(context.Context) error { return nil }
func (f *fakeServer) MemberRemove(context.Context, uint64) ([]membership.Member, error) {
	return nil, nil
}
func (f *fakeServer) MemberUpdate(context.Context, uint64, []string) ([]membership.Member, error) {
	return nil, nil
}
func (f *fakeServer) MemberAdd(context.Context, []string, bool) (membership.Member, []membership.Member, error) {
	return membership.Member{}, nil, nil
}

func (f *fakeServer) V2Do(ctx context.Context, r *pb.Request) (*v2store.Event, *v2store.Watcher, error) {
	switch r.Method {
	case "GET", "HEAD":
		if r.Wait {
			w, err := f.store.Watch(r.Path, r.Recursive, r.Stream, r.Since)
			return nil, w, err
		}
		ev, err := f.store.Get(r.Path, r.Recursive, r.Sorted, time.Now())
		return ev, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, err := f.store.Apply(nil, r)
	return ev, nil, err
}

// service is a discovery service in process; fail, while positive, makes
// that many requests answer 503 first.
type service struct {
	*httptest.Server
	fake *fakeServer
	fail atomic.Int32
}

func newService(t *testing.T) *service {
	t.Helper()
	s := &service{fake: &fakeServer{store: v2store.New()}}
	mux := http.NewServeMux()
	h := v2http.Register(mux, v2http.Config{Server: s.fake})
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.fail.Add(-1) >= 0 {
			http.Error(w, "unavailable", http.StatusServiceUnavailable)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { h.Close(); s.Close() })
	return s
}

func (s *service) set(t *testing.T, key, value string) {
	t.Helper()
	if _, err := s.fake.store.Set(nil, key, false, value, v2store.TTLOptions{}, time.Now()); err != nil {
		t.Fatal(err)
	}
}

func cfgFor(s *service, token, name, peer string) Config {
	url := s.URL + "/v2/keys/discovery/" + token
	return Config{
		URL:       url,
		MemberID:  membership.MemberID([]string{peer}, url, nil),
		Self:      SelfValue(name, []string{peer}),
		RetryBase: 10 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
}

func TestJoinCluster(t *testing.T) {
	s := newService(t)
	s.set(t, "/discovery/tok/_config/size", "3")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	results := make([]string, 3)
	errs := make([]error, 3)
	var wg sync.WaitGroup
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cfg := cfgFor(s, "tok", fmt.Sprintf("m%d", i), fmt.Sprintf("http://127.0.0.1:%d", 3000+i))
			results[i], errs[i] = JoinCluster(ctx, cfg)
		}()
		time.Sleep(20 * time.Millisecond) // registration order m0, m1, m2
	}
	wg.Wait()
	want := "m0=http://127.0.0.1:3000,m1=http://127.0.0.1:3001,m2=http://127.0.0.1:3002"
	for i := range 3 {
		if errs[i] != nil || results[i] != want {
			t.Errorf("member %d: %q %v, want %q", i, results[i], errs[i], want)
		}
	}
	// The cluster is full now.
	_, err := JoinCluster(ctx, cfgFor(s, "tok", "m3", "http://127.0.0.1:3003"))
	if !errors.Is(err, ErrFullCluster) || err.Error() != "discovery: cluster is full" {
		t.Fatalf("fourth member: %v", err)
	}
	if got, err := GetCluster(ctx, cfgFor(s, "tok", "", "")); err != nil || got != want {
		t.Fatalf("GetCluster: %q %v", got, err)
	}
	// A member registering again (same ID) is refused, as by etcd.
	_, err = JoinCluster(ctx, cfgFor(s, "tok", "m0", "http://127.0.0.1:3000"))
	if !errors.Is(err, ErrDuplicateID) || err.Error() != "discovery: found duplicate id" {
		t.Fatalf("a registered member registering again: %v", err)
	}
}

func TestJoinClusterErrors(t *testing.T) {
	s := newService(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	if _, err := JoinCluster(ctx, cfgFor(s, "nosize", "a", "http://127.0.0.1:1")); !errors.Is(err, ErrSizeNotFound) ||
		err.Error() != "discovery: size key not found" {
		t.Errorf("no size key: %v", err)
	}
	s.set(t, "/discovery/badsize/_config/size", "three")
	if _, err := JoinCluster(ctx, cfgFor(s, "badsize", "a", "http://127.0.0.1:1")); !errors.Is(err, ErrBadSizeKey) {
		t.Errorf("bad size key: %v", err)
	}
	// Two members with one name.
	s.set(t, "/discovery/dup/_config/size", "2")
	s.set(t, "/discovery/dup/1234", "a=http://127.0.0.1:9")
	if _, err := JoinCluster(ctx, cfgFor(s, "dup", "a", "http://127.0.0.1:1")); !errors.Is(err, ErrDuplicateName) ||
		err.Error() != "discovery: found duplicate name" {
		t.Errorf("duplicate name: %v", err)
	}
	// A member whose ID is already registered.
	cfg := cfgFor(s, "dupid", "a", "http://127.0.0.1:1")
	s.set(t, "/discovery/dupid/_config/size", "3")
	s.set(t, fmt.Sprintf("/discovery/dupid/%x", cfg.MemberID), "a=http://127.0.0.1:1")
	s.set(t, "/discovery/dupid/1", "b=http://127.0.0.1:2")
	if _, err := JoinCluster(ctx, cfg); !errors.Is(err, ErrDuplicateID) {
		t.Errorf("duplicate ID: %v", err)
	}
	// A registration that is not name=URL.
	s.set(t, "/discovery/badurl/_config/size", "1")
	bad := cfgFor(s, "badurl", "a", "http://127.0.0.1:1")
	bad.Self = "a=not a url"
	if _, err := JoinCluster(ctx, bad); !errors.Is(err, ErrInvalidURL) {
		t.Errorf("bad URL: %v", err)
	}
	// Not a v2 keys API.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "hello") }))
	defer plain.Close()
	pc := Config{URL: plain.URL + "/v2/keys/x", MemberID: 1, Self: "a=http://127.0.0.1:1", Logger: cfgFor(s, "", "", "").Logger}
	if _, err := JoinCluster(ctx, pc); !errors.Is(err, ErrBadDiscoveryEndpoint) {
		t.Errorf("plain HTTP server: %v", err)
	}
	if _, err := JoinCluster(ctx, Config{URL: "ftp://x/y"}); !errors.Is(err, ErrInvalidURL) {
		t.Errorf("ftp URL: %v", err)
	}
}

// TestJoinClusterRetries: while the service answers 503, discovery backs
// off and retries.
func TestJoinClusterRetries(t *testing.T) {
	s := newService(t)
	s.set(t, "/discovery/r/_config/size", "1")
	s.fail.Store(3)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got, err := JoinCluster(ctx, cfgFor(s, "r", "a", "http://127.0.0.1:1"))
	if err != nil || got != "a=http://127.0.0.1:1" {
		t.Fatalf("JoinCluster: %q %v", got, err)
	}
	if s.fail.Load() > 0 {
		t.Fatalf("the failing requests were not made")
	}
	// An unreachable service is retried until the context ends.
	ctx, cancel = context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	cfg := cfgFor(s, "r", "a", "http://127.0.0.1:1")
	cfg.URL = "http://127.0.0.1:1/v2/keys/discovery/r"
	if _, err := JoinCluster(ctx, cfg); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("unreachable service: %v", err)
	}
}

func TestSelfValue(t *testing.T) {
	if got := SelfValue("n", []string{"http://b:2", "http://a:1"}); got != "n=http://a:1,n=http://b:2" {
		t.Fatalf("SelfValue = %q", got)
	}
	if !strings.Contains(ErrFullCluster.Error(), "cluster is full") {
		t.Fatal(ErrFullCluster)
	}
}
