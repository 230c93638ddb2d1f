package discovery

import (
	"context"
	"encoding/binary"
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

	"github.com/cairn-io/cairn/internal/membership"
)

// script is a discovery service that answers each request with the next
// of a list of answers, each status (1 byte: 200, 201, 404, 412, 500 or
// 503 by its value mod 6), X-Etcd-Index (2 bytes), body length (2 bytes)
// and body; when the list is spent it answers 404 (key not found), which
// ends the protocol. "{self}" in a body
// stands for the key the last PUT created (the member's registration,
// whose name depends on the service's URL).
type script struct {
	mu      sync.Mutex
	answers []answer
	self    string
}

type answer struct {
	status int
	index  uint16
	body   []byte
}

func parseScript(data []byte) *script {
	s := &script{}
	statuses := []int{200, 201, 404, 412, 500, 503}
	for len(data) >= 5 {
		a := answer{status: statuses[int(data[0])%len(statuses)], index: binary.BigEndian.Uint16(data[1:])}
		n := int(binary.BigEndian.Uint16(data[3:]))
		data = data[5:]
		n = min(n, len(data))
		a.body, data = data[:n], data[n:]
		s.answers = append(s.answers, a)
	}
	return s
}

func (s *script) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	if r.Method == http.MethodPut {
		s.self = strings.TrimPrefix(r.URL.Path, "/v2/keys")
	}
	var a answer
	if len(s.answers) == 0 {
		a = answer{status: http.StatusNotFound, body: []byte(`{"errorCode":100,"message":"Key not found","cause":"/spent","index":1}`)}
	} else {
		a, s.answers = s.answers[0], s.answers[1:]
	}
	body := strings.ReplaceAll(string(a.body), "{self}", s.self)
	s.mu.Unlock()
	w.Header().Set("X-Etcd-Index", strconv.Itoa(int(a.index)))
	w.WriteHeader(a.status)
	io.WriteString(w, body)
}

func appendAnswer(b []byte, status byte, index uint16, body string) []byte {
	b = append(b, status)
	b = binary.BigEndian.AppendUint16(b, index)
	b = binary.BigEndian.AppendUint16(b, uint16(len(body)))
	return append(b, body...)
}

// joinSeeds are the exchanges of a one-member cluster joining: the size,
// the registrations, the member's create and the watch of its key, the
// size and the registrations again; and the first two alone.
func joinSeeds() [][]byte {
	const ok, created = 0, 1
	self := `{"action":"get","node":{"key":"{self}","value":"a=http://127.0.0.1:1","modifiedIndex":5,"createdIndex":5}}`
	var start []byte
	start = appendAnswer(start, ok, 3, `{"action":"get","node":{"key":"/d/t/_config/size","value":"1","modifiedIndex":2,"createdIndex":2}}`)
	start = appendAnswer(start, ok, 3, `{"action":"get","node":{"key":"/d/t","dir":true,"nodes":[{"key":"/d/t/_config","dir":true}]}}`)
	full := append([]byte(nil), start...)
	full = appendAnswer(full, created, 5, self)
	full = appendAnswer(full, ok, 5, self)
	full = appendAnswer(full, ok, 5, `{"action":"get","node":{"key":"/d/t/_config/size","value":"1"}}`)
	full = appendAnswer(full, ok, 5, `{"action":"get","node":{"key":"/d/t","dir":true,"nodes":[{"key":"{self}","value":"a=http://127.0.0.1:1","createdIndex":5}]}}`)
	return [][]byte{full, start}
}

// FuzzJoinCluster runs the discovery protocol against a service that
// answers anything: JoinCluster never panics, and returns either an error
// or an initial cluster that parses and names this member.
func FuzzJoinCluster(f *testing.F) {
	const ok, notFound, failed = 0, 2, 3
	// A one-member cluster: size, registrations, create, watch of self.
	for _, seed := range joinSeeds() {
		f.Add(seed)
	}
	f.Add(appendAnswer(nil, notFound, 1, `{"errorCode":100,"message":"Key not found","cause":"/d","index":1}`))
	f.Add(appendAnswer(nil, failed, 1, `{"errorCode":105,"message":"Key already exists","cause":"/d","index":1}`))
	f.Add(appendAnswer(appendAnswer(nil, ok, 1, `{"node":{"value":"18446744073709551615"}}`), ok, 1, `{"node":{"nodes":[{"key":"x"},{"key":"y"}]}}`))
	f.Add(appendAnswer(nil, ok, 1, `not json`))

	f.Fuzz(func(t *testing.T, data []byte) { joinScripted(t, data) })
}

// TestJoinScripted: the scripted service can take a member through the
// whole protocol, so the fuzz test reaches its success path.
func TestJoinScripted(t *testing.T) {
	if got := joinScripted(t, joinSeeds()[0]); got != "a=http://127.0.0.1:1" {
		t.Fatalf("joined %q", got)
	}
}

// joinScripted joins through a service answering with the script in data;
// it returns the initial cluster, or "" if joining failed.
func joinScripted(t *testing.T, data []byte) string {
	srv := httptest.NewServer(parseScript(data))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	peer := "http://127.0.0.1:1"
	url := srv.URL + "/v2/keys/d/t"
	cfg := Config{
		URL:       url,
		MemberID:  membership.MemberID([]string{peer}, url, nil),
		Self:      SelfValue("a", []string{peer}),
		RetryBase: time.Microsecond,
		Logger:    slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	cluster, err := JoinCluster(ctx, cfg)
	if err != nil {
		if err.Error() == "" {
			t.Fatal("an empty error")
		}
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			t.Fatalf("deadline error before the deadline: %v", err)
		}
		return ""
	}
	if _, err := membership.ParseInitialCluster(cluster, url); err != nil {
		t.Fatalf("JoinCluster returned an initial cluster that does not parse: %q: %v", cluster, err)
	}
	if !strings.Contains(","+cluster+",", ","+cfg.Self+",") {
		t.Fatalf("JoinCluster returned an initial cluster without this member: %q", cluster)
	}
	return cluster
}
