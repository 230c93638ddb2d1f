package v2http

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/v2store"
)

// fakeServer is a one-member cluster in memory: writes apply at once.
type fakeServer struct {
	mu      sync.Mutex
	store   *v2store.Store
	members []membership.Member
	leader  uint64
	addErr  error
	// check, when set, is the auth check of V2Do and CheckAdmin.
	check func(ctx context.Context) error
}

func (f *fakeServer) CheckAdmin(ctx context.Context) error {
	if f.check != nil {
		return f.check(ctx)
	}
	return nil
}

func newFake() *fakeServer {
	return &fakeServer{
		store:  v2store.New(),
		leader: 0x8e9e05c52164694d,
		members: []membership.Member{{ID: 0x8e9e05c52164694d, Name: "default",
			PeerURLs: []string{"http://127.0.0.1:2380"}, ClientURLs: []string{"http://127.0.0.1:2379"}}},
	}
}

func (f *fakeServer) ClusterID() uint64            { return 0xcdf818194e3a8c32 }
func (f *fakeServer) Leader() uint64               { return f.leader }
func (f *fakeServer) Term() uint64                 { return 2 }
func (f *fakeServer) CommittedIndex() uint64       { return 9 }
func (f *fakeServer) Members() []membership.Member { return f.members }
func (f *fakeServer) V2StoreStats() []byte         { return f.store.StatsJSON() }
func (f *fakeServer) V2SelfStats() []byte          { return []byte(`{"name":"default"}`) }
func (f *fakeServer) V2LeaderStats() []byte        { return nil }

func (f *fakeServer) MemberAdd(_ context.Context, urls []string, _ bool) (membership.Member, []membership.Member, error) {
	if f.addErr != nil {
		return membership.Member{}, nil, f.addErr
	}
	return membership.Member{ID: 0xabc, PeerURLs: urls}, nil, nil
}

func (f *fakeServer) MemberRemove(_ context.Context, id uint64) ([]membership.Member, error) {
	switch id {
	case 0xdead:
		return nil, membership.ErrIDRemoved
	case 0x8e9e05c52164694d:
		return nil, nil
	}
	return nil, membership.ErrIDNotFound
}

func (f *fakeServer) MemberUpdate(_ context.Context, id uint64, _ []string) ([]membership.Member, error) {
	if id != 0x8e9e05c52164694d {
		return nil, membership.ErrIDNotFound
	}
	return nil, nil
}

func (f *fakeServer) V2Do(ctx context.Context, r *pb.Request) (*v2store.Event, *v2store.Watcher, error) {
	if f.check != nil {
		if err := f.check(ctx); err != nil {
			return nil, nil, err
		}
	}
	if r.Method == "GET" && r.Quorum {
		r.Method = "QGET"
	}
	switch r.Method {
	case "GET", "HEAD":
		if r.Wait {
			w, err := f.store.Watch(r.Path, r.Recursive, r.Stream, r.Since)
			return nil, w, err
		}
		ev, err := f.store.Get(r.Path, r.Recursive, r.Sorted, time.Unix(0, r.Time))
		return ev, nil, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	ev, err := f.store.Apply(nil, r)
	return ev, nil, err
}

func newHandler(f *fakeServer) (*http.ServeMux, *Handler) {
	mux := http.NewServeMux()
	h := Register(mux, Config{Server: f, Logger: quietLogger()})
	return mux, h
}

func serve(mux http.Handler, method, target, ctype, body string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(method, target, strings.NewReader(body))
	if ctype != "" {
		r.Header.Set("Content-Type", ctype)
	}
	w := httptest.NewRecorder()
	mux.ServeHTTP(w, r)
	return w
}

// TestHandlers checks answers that need no cluster: headers, methods,
// the members API's statuses and the stats endpoints.
func TestHandlers(t *testing.T) {
	f := newFake()
	mux, h := newHandler(f)
	defer h.Close()
	form := "application/x-www-form-urlencoded"
	js := "application/json"
	for _, tc := range []struct {
		method, target, ctype, body string
		status                      int
		want                        string
		header                      map[string]string
	}{
		{"PUT", "/v2/keys/a", form, "value=1", 201, `{"action":"set","node":{"key":"/a","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n",
			map[string]string{"X-Etcd-Index": "1", "X-Raft-Index": "9", "X-Raft-Term": "2", "X-Etcd-Cluster-Id": "cdf818194e3a8c32", "Content-Type": "application/json"}},
		{"GET", "/v2/keys/nope", "", "", 404, `{"errorCode":100,"message":"Key not found","cause":"/nope","index":1}` + "\n",
			map[string]string{"X-Etcd-Index": "1", "X-Etcd-Cluster-Id": "cdf818194e3a8c32", "X-Raft-Index": ""}},
		{"GET", "/v2/keys/a?ttl=x&recursive=x", "", "", 400, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"recursive\"","index":0}` + "\n",
			map[string]string{"X-Etcd-Index": "0"}},
		{"OPTIONS", "/v2/keys/a", "", "", 405, "Method Not Allowed\n", map[string]string{"Allow": "HEAD,GET,PUT,POST,DELETE", "X-Etcd-Cluster-Id": ""}},
		{"GET", "/v2/members", "", "", 200, `{"members":[{"id":"8e9e05c52164694d","name":"default","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]}]}` + "\n",
			map[string]string{"X-Etcd-Cluster-Id": "cdf818194e3a8c32", "Content-Type": "application/json"}},
		{"GET", "/v2/members/", "", "", 200, `{"members":[{"id":"8e9e05c52164694d","name":"default","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]}]}` + "\n", nil},
		{"GET", "/v2/members/leader", "", "", 200, `{"id":"8e9e05c52164694d","name":"default","peerURLs":["http://127.0.0.1:2380"],"clientURLs":["http://127.0.0.1:2379"]}` + "\n", nil},
		{"HEAD", "/v2/members", "", "", 405, "Method Not Allowed\n", map[string]string{"Allow": "GET,POST,DELETE,PUT"}},
		{"POST", "/v2/members", js, `{"peerURLs":["http://10.0.0.1:2380"]}`, 201, `{"id":"abc","name":"","peerURLs":["http://10.0.0.1:2380"],"clientURLs":[]}` + "\n", nil},
		{"POST", "/v2/members", "application/JSON", `{}`, 415, `{"message":"Bad Content-Type application/JSON, accept application/json"}`, nil},
		{"POST", "/v2/members", "Application/JSON; charset=utf-8", `{"peerURLs":["unix://x:1"]}`, 201, `{"id":"abc","name":"","peerURLs":["unix://x:1"],"clientURLs":[]}` + "\n", nil},
		{"POST", "/v2/members", js, `{"peerURLs":["unix://x"]}`, 400, `{"message":"URL address does not have the form \"host:port\": unix://x"}`, nil},
		{"DELETE", "/v2/members/8e9e05c52164694d", "", "", 204, "", nil},
		{"DELETE", "/v2/members/dead", "", "", 410, `{"message":"Member permanently removed: dead"}`, nil},
		{"DELETE", "/v2/members/beef", "", "", 404, `{"message":"No such member: beef"}`, nil},
		{"DELETE", "/v2/members/xyz", "", "", 404, `{"message":"No such member: xyz"}`, nil},
		{"PUT", "/v2/members/8e9e05c52164694d", js, `{"peerURLs":["http://10.0.0.2:2380"]}`, 204, "", nil},
		{"PUT", "/v2/members/8e9e05c52164694d", js, `{"peerURLs":["http://10.0.0.2:2380/x"]}`, 400, `{"message":"URL must not contain a path: http://10.0.0.2:2380/x"}`, nil},
		{"PUT", "/v2/members", js, `{"peerURLs":["http://10.0.0.2:2380"]}`, 405, "Method Not Allowed\n", nil},
		{"GET", "/v2/machines", "", "", 200, "http://127.0.0.1:2379", nil},
		{"POST", "/v2/machines", "", "", 405, "Method Not Allowed\n", map[string]string{"Allow": "GET,HEAD"}},
		{"GET", "/v2/stats/leader", "", "", 403, `{"message":"not current leader"}`, nil},
		{"GET", "/v2/stats/self", "", "", 200, `{"name":"default"}`, map[string]string{"Content-Type": "application/json"}},
	} {
		w := serve(mux, tc.method, tc.target, tc.ctype, tc.body)
		name := tc.method + " " + tc.target + " " + tc.body
		if w.Code != tc.status || w.Body.String() != tc.want {
			t.Errorf("%s: %d %q, want %d %q", name, w.Code, w.Body.String(), tc.status, tc.want)
		}
		for k, v := range tc.header {
			if got := w.Header().Get(k); got != v {
				t.Errorf("%s: header %s = %q, want %q", name, k, got, v)
			}
		}
	}

	f.leader = 0
	if w := serve(mux, "GET", "/v2/members/leader", "", ""); w.Code != 503 || w.Body.String() != `{"message":"During election"}` {
		t.Errorf("leader during election: %d %s", w.Code, w.Body)
	}
	f.addErr = errors.New("etcdserver: unhealthy cluster")
	if w := serve(mux, "POST", "/v2/members", js, `{"peerURLs":["http://10.0.0.1:2380"]}`); w.Code != 500 ||
		w.Body.String() != `{"message":"Internal Server Error"}` {
		t.Errorf("add on an unhealthy cluster: %d %s", w.Code, w.Body)
	}
	f.addErr = membership.ErrIDExists
	if w := serve(mux, "POST", "/v2/members", js, `{"peerURLs":["http://10.0.0.1:2380"]}`); w.Code != 409 ||
		w.Body.String() != `{"message":"membership: ID exists"}` {
		t.Errorf("add of an existing ID: %d %s", w.Code, w.Body)
	}
}

// TestWatchEndsOnClose: Close ends an open watch response.
func TestWatchEndsOnClose(t *testing.T) {
	mux, h := newHandler(newFake())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/v2/keys/x?wait=true&stream=true")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.Header.Get("X-Etcd-Index") != "0" {
		t.Fatalf("watch: %d %v", resp.StatusCode, resp.Header)
	}
	h.Close()
	done := make(chan error, 1)
	go func() {
		_, err := resp.Body.Read(make([]byte, 1))
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("read data from a closed watch")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the watch did not end after Close")
	}
}

// FuzzKeysHandler sends arbitrary requests to the keys API over an
// in-memory store: nothing panics, every answer is well formed: an event
// with X-Etcd-Index, or a v2 error whose status, code and index agree
// with its headers, or 405.
func FuzzKeysHandler(f *testing.F) {
	for _, s := range [][4]string{
		{"PUT", "/v2/keys/a/b", "value=1&ttl=5", ""},
		{"POST", "/v2/keys/q", "value=x&dir=true", ""},
		{"DELETE", "/v2/keys/a?recursive=true", "", ""},
		{"GET", "/v2/keys/a?wait=true&waitIndex=1", "", ""},
		{"GET", "/v2/keys/?recursive=true&sorted=true&quorum=true", "", ""},
		{"PUT", "/v2/keys/a", "prevExist=true&refresh=true&ttl=3", ""},
		{"HEAD", "/v2/keys/_x", "", ""},
		{"PATCH", "/v2/keys/a", "", ""},
		{"PUT", "/v2/keys/a%2Fb/../c", "value=%ff", ""},
	} {
		f.Add(s[0], s[1], s[2], s[3])
	}
	known := map[int]bool{}
	for _, c := range v2store.Codes() {
		known[c] = true
	}
	f.Fuzz(func(t *testing.T, method, target, body, setup string) {
		if method == "" || strings.ContainsAny(method, " \t\r\n()<>@,;:\\\"/[]?={}") || len(method) > 10 {
			return
		}
		if target != "/v2/keys" && !strings.HasPrefix(target, "/v2/keys/") && !strings.HasPrefix(target, "/v2/keys?") {
			target = "/v2/keys/" + target
		}
		r, err := http.NewRequest(method, "http://127.0.0.1"+target, strings.NewReader(body))
		if err != nil || r.URL.Path != target && r.URL.RawQuery == "" && !strings.Contains(target, "%") {
			return
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		fs := newFake()
		mux, h := newHandler(fs)
		defer h.Close()
		// Some state to act on.
		for _, p := range []string{"/a", "/d/x", "/_h", setup} {
			fs.store.Set(nil, p, false, "v", v2store.TTLOptions{}, time.Unix(0, 0))
		}
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		defer cancel()
		w := httptest.NewRecorder()
		done := make(chan struct{})
		go func() {
			defer close(done)
			mux.ServeHTTP(w, r.WithContext(ctx))
		}()
		<-done                                                        // a watch ends when ctx does
		if w.Code == http.StatusMethodNotAllowed || w.Code/100 == 3 { // 3xx: the mux cleaning the path
			return
		}
		if w.Code < 300 {
			if _, err := strconv.ParseUint(w.Header().Get("X-Etcd-Index"), 10, 64); err != nil {
				t.Fatalf("%s %q: %d without X-Etcd-Index", method, target, w.Code)
			}
			dec := json.NewDecoder(w.Body)
			for dec.More() {
				var ev v2store.Event
				if err := dec.Decode(&ev); err != nil || ev.Action == "" {
					t.Fatalf("%s %q: %d body %q", method, target, w.Code, w.Body.String())
				}
			}
			return
		}
		var e v2store.Error
		if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil && method != "HEAD" {
			t.Fatalf("%s %q: %d body %q is not a v2 error", method, target, w.Code, w.Body.String())
		}
		if method == "HEAD" {
			return
		}
		if !known[e.ErrorCode] || e.StatusCode() != w.Code || w.Header().Get("X-Etcd-Index") != strconv.FormatUint(e.Index, 10) {
			t.Fatalf("%s %q: %d %s (X-Etcd-Index %q)", method, target, w.Code, w.Body.String(), w.Header().Get("X-Etcd-Index"))
		}
	})
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// TestHandlerAuth: the handlers hand the request's credentials to the
// member (basic auth before the client certificate's CN, and the client's
// address) and answer a refusal with etcd's 401 bodies and a Basic
// challenge; listing members needs no credentials, changing them does.
func TestHandlerAuth(t *testing.T) {
	f := newFake()
	var seen []auth.Credentials
	f.check = func(ctx context.Context) error {
		c, _ := auth.CredentialsFromContext(ctx)
		seen = append(seen, c)
		switch {
		case c.BasicAuth && c.Username == "root" && c.Password == "pw":
			return nil
		case c.BasicAuth && c.Username == "busy":
			return auth.ErrTooManyRequests
		case c.BasicAuth:
			return auth.ErrAuthFailed
		case c.CommonName == "root":
			return nil
		}
		return auth.ErrUserEmpty
	}
	mux, h := newHandler(f)
	defer h.Close()
	send := func(method, target, user, pw, cn, ctype, body string) *httptest.ResponseRecorder {
		r := httptest.NewRequest(method, target, strings.NewReader(body))
		r.RemoteAddr = "192.0.2.7:4242"
		if user != "" {
			r.SetBasicAuth(user, pw)
		}
		if cn != "" {
			r.TLS = &tls.ConnectionState{VerifiedChains: [][]*x509.Certificate{{{Subject: pkix.Name{CommonName: cn}}}}}
		}
		if ctype != "" {
			r.Header.Set("Content-Type", ctype)
		}
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, r)
		return w
	}
	const keyNoAuth = `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}` + "\n"
	const membersNoAuth = `{"message":"Insufficient credentials"}`
	js := "application/json"
	for _, tc := range []struct {
		name                               string
		method, target, user, pw, cn, body string
		status                             int
		want                               string
	}{
		{"anonymous read", "GET", "/v2/keys/a", "", "", "", "", 401, keyNoAuth},
		{"anonymous write", "PUT", "/v2/keys/a?value=1", "", "", "", "", 401, keyNoAuth},
		{"wrong password", "GET", "/v2/keys/a", "root", "x", "", "", 401, keyNoAuth},
		{"basic auth wins over the certificate", "PUT", "/v2/keys/a?value=1", "root", "x", "root", "", 401, keyNoAuth},
		{"root", "PUT", "/v2/keys/a?value=1", "root", "pw", "", "", 201, ""},
		{"root by certificate", "GET", "/v2/keys/a", "", "", "root", "", 200, ""},
		{"anonymous watch", "GET", "/v2/keys/a?wait=true", "", "", "", "", 401, keyNoAuth},
		{"anonymous member add", "POST", "/v2/members", "", "", "", `{"peerURLs":["http://10.0.0.1:2380"]}`, 401, membersNoAuth},
		{"anonymous member update", "PUT", "/v2/members/8e9e05c52164694d", "", "", "", `{"peerURLs":["http://10.0.0.2:2380"]}`, 401, membersNoAuth},
		{"anonymous member remove", "DELETE", "/v2/members/8e9e05c52164694d", "", "", "", "", 401, membersNoAuth},
		{"root member update", "PUT", "/v2/members/8e9e05c52164694d", "root", "pw", "", `{"peerURLs":["http://10.0.0.2:2380"]}`, 204, ""},
		{"anonymous member list", "GET", "/v2/members", "", "", "", "", 200, ""},
	} {
		w := send(tc.method, tc.target, tc.user, tc.pw, tc.cn, js, tc.body)
		if w.Code != tc.status || (tc.want != "" && w.Body.String() != tc.want) {
			t.Errorf("%s: %d %q, want %d %q", tc.name, w.Code, w.Body.String(), tc.status, tc.want)
		}
		if got := w.Header().Get("WWW-Authenticate"); (w.Code == 401) != (got == `Basic realm="etcd"`) {
			t.Errorf("%s: %d with WWW-Authenticate %q", tc.name, w.Code, got)
		}
		if w.Code == 401 && strings.HasPrefix(tc.target, "/v2/keys") &&
			(w.Header().Get("X-Etcd-Index") != "0" || w.Header().Get("X-Etcd-Cluster-Id") != "cdf818194e3a8c32") {
			t.Errorf("%s: headers %v", tc.name, w.Header())
		}
	}
	last := seen[len(seen)-1]
	if last.Source != "192.0.2.7" {
		t.Errorf("credentials carry the source %q", last.Source)
	}
	// A member too busy to check a password answers as for any member
	// failure, so that a client tries another member.
	w := send("GET", "/v2/keys/a", "busy", "x", "", "", "")
	if w.Code != 500 || !strings.Contains(w.Body.String(), `"errorCode":300`) || !strings.Contains(w.Body.String(), "too many requests") {
		t.Errorf("too many password checks: %d %s", w.Code, w.Body)
	}
}
