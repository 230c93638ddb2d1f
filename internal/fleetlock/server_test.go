package fleetlock_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/fleetlock"
	"github.com/cairn-io/cairn/internal/locksmith"
	"github.com/cairn-io/cairn/tests/framework"
)

// The exchanges run against a real cairn member and against etcd 3.6, which
// proves the server needs nothing but the public v3 API.
var backends = []struct {
	name   string
	binary func(testing.TB) string
}{
	{"cairn", framework.CairnBinary},
	{"etcd", framework.EtcdBinary},
}

func logger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, nil))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

func newServer(t *testing.T, cli *clientv3.Client, ttl time.Duration) *httptest.Server {
	t.Helper()
	srv, err := fleetlock.New(fleetlock.Config{KV: cli, Leases: cli, LockTTL: ttl, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	return hs
}

// exchange is one request and the exact answer expected.
type exchange struct {
	name    string
	method  string // default POST
	path    string
	header  *string // fleet-lock-protocol; nil: absent
	body    string
	code    int
	ctype   string // Content-Type of the answer
	answer  string // the body, byte for byte
	allowed string // the Allow header, for 405
}

var yes = ptr("true")

func ptr(s string) *string { return &s }

func params(id, group string) string {
	return `{"client_params":{"id":"` + id + `","group":"` + group + `"}}`
}

func (x exchange) run(t *testing.T, base string) {
	t.Helper()
	method := x.method
	if method == "" {
		method = http.MethodPost
	}
	req, err := http.NewRequest(method, base+x.path, strings.NewReader(x.body))
	if err != nil {
		t.Fatal(err)
	}
	if x.header != nil {
		req.Header.Set("fleet-lock-protocol", *x.header)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != x.code || string(got) != x.answer {
		t.Fatalf("%s: %s %s %q\n got %d %q\nwant %d %q", x.name, method, x.path, x.body, resp.StatusCode, got, x.code, x.answer)
	}
	if ct := resp.Header.Get("Content-Type"); ct != x.ctype {
		t.Fatalf("%s: Content-Type %q, want %q", x.name, ct, x.ctype)
	}
	if x.allowed != "" && resp.Header.Get("Allow") != x.allowed {
		t.Fatalf("%s: Allow %q, want %q", x.name, resp.Header.Get("Allow"), x.allowed)
	}
}

const jsonType = "application/json"

func ok(name, path, body string) exchange {
	return exchange{name: name, path: path, header: yes, body: body, code: 200}
}

func bad(name string, header *string, body string, code int, answer string) exchange {
	return badAt(name, fleetlock.PreRebootPath, header, body, code, answer)
}

func badAt(name, path string, header *string, body string, code int, answer string) exchange {
	return exchange{name: name, path: path, header: header, body: body, code: code, ctype: jsonType, answer: answer + "\n"}
}

func TestExchanges(t *testing.T) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) {
			cli := framework.Start(t, framework.Config{Binary: b.binary(t)}).Client(t)
			base := newServer(t, cli, 0).URL
			ctx := context.Background()
			workers := locksmith.NewSemaphore(cli, "workers")
			if _, err := workers.SetMax(ctx, 1); err != nil {
				t.Fatal(err)
			}
			pre, steady := fleetlock.PreRebootPath, fleetlock.SteadyStatePath
			for _, x := range []exchange{
				ok("lock", pre, params("a", "workers")),
				ok("recursive lock by the same id", pre, params("a", "workers")),
				{name: "full", path: pre, header: yes, body: params("b", "workers"), code: 409, ctype: jsonType,
					answer: `{"kind":"semaphore_full","value":"semaphore is at 0: group \"workers\" has 1 of 1 slots held"}` + "\n"},
				ok("unlock of a lock not held", steady, params("b", "workers")),
				ok("unlock of a lock never seen in a new group", steady, params("b", "nobody.ever-locked")),
				ok("unlock", steady, params("a", "workers")),
				ok("unlock again", steady, params("a", "workers")),
				ok("lock after the unlock", pre, params("b", "workers")),
				ok("unknown fields are ignored", pre, `{"client_params":{"id":"c","group":"other","extra":1},"more":[true]}`),
				ok("the default group", pre, params("z", "default")),

				bad("missing header", nil, params("a", "workers"), 400,
					`{"kind":"missing_header","value":"missing \"fleet-lock-protocol: true\" header"}`),
				bad("header false", ptr("false"), params("a", "workers"), 400,
					`{"kind":"invalid_header","value":"\"fleet-lock-protocol\" header is \"false\", want \"true\""}`),
				bad("header TRUE", ptr("TRUE"), params("a", "workers"), 400,
					`{"kind":"invalid_header","value":"\"fleet-lock-protocol\" header is \"TRUE\", want \"true\""}`),
				bad("empty body", yes, "", 400, `{"kind":"decode_error","value":"empty body"}`),
				bad("bad JSON", yes, `{"client_params":`, 400, `{"kind":"decode_error","value":"invalid JSON body: unexpected end"}`),
				bad("bad JSON syntax", yes, `{"client_params":{"id":"a",}}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body at byte 28: invalid character '}' looking for beginning of object key string"}`),
				bad("garbage bytes", yes, "\x00\xff\xfe garbage", 400,
					`{"kind":"decode_error","value":"invalid JSON body at byte 1: invalid character '\\x00' looking for beginning of value"}`),
				bad("plain text", yes, "id=a&group=workers", 400,
					`{"kind":"decode_error","value":"invalid JSON body at byte 1: invalid character 'i' looking for beginning of value"}`),
				bad("data after the object", yes, params("a", "workers")+` {}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body: data after the object"}`),
				bad("null", yes, `null`, 400, `{"kind":"decode_error","value":"body has no \"client_params\" object"}`),
				bad("no client_params", yes, `{"id":"a","group":"workers"}`, 400,
					`{"kind":"decode_error","value":"body has no \"client_params\" object"}`),
				bad("an array", yes, `[1,2]`, 400, `{"kind":"decode_error","value":"invalid JSON body: the body is a array, want an object"}`),
				bad("a number id", yes, `{"client_params":{"id":7,"group":"workers"}}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body: \"client_params.id\" is a number, want a string"}`),
				bad("client_params a string", yes, `{"client_params":"a"}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body: \"client_params\" is a string, want an object"}`),
				bad("empty id", yes, params("", "workers"), 400,
					`{"kind":"invalid_client_identity","value":"empty client id"}`),
				bad("no id", yes, `{"client_params":{"group":"workers"}}`, 400,
					`{"kind":"invalid_client_identity","value":"empty client id"}`),
				bad("id too long", yes, params(strings.Repeat("x", 257), "workers"), 400,
					`{"kind":"invalid_client_identity","value":"client id longer than 256 bytes"}`),
				bad("empty group", yes, params("a", ""), 400,
					`{"kind":"invalid_client_identity","value":"empty client group"}`),
				bad("bad group", yes, params("a", "bad group!"), 400,
					`{"kind":"invalid_client_identity","value":"invalid client group \"bad group!\": must match ^[a-zA-Z0-9.-]+$"}`),
				bad("group with a slash", yes, params("a", "a/b"), 400,
					`{"kind":"invalid_client_identity","value":"invalid client group \"a/b\": must match ^[a-zA-Z0-9.-]+$"}`),
				bad("body too large", yes, `{"client_params":{"id":"a","group":"workers","pad":"`+strings.Repeat("x", 70000)+`"}}`, 400,
					`{"kind":"decode_error","value":"body longer than 65536 bytes"}`),
				{name: "GET", method: http.MethodGet, path: pre, header: yes, code: 405, ctype: jsonType, allowed: "POST",
					answer: `{"kind":"method_not_allowed","value":"method GET not allowed: use POST"}` + "\n"},
				{name: "PUT on steady-state", method: http.MethodPut, path: steady, header: yes, body: params("a", "workers"), code: 405, ctype: jsonType, allowed: "POST",
					answer: `{"kind":"method_not_allowed","value":"method PUT not allowed: use POST"}` + "\n"},
				{name: "unknown path", path: "/v2/pre-reboot", header: yes, body: params("a", "workers"), code: 404, ctype: jsonType,
					answer: `{"kind":"not_found","value":"no such endpoint: /v2/pre-reboot"}` + "\n"},
				{name: "a path that is not clean", path: "//v1/pre-reboot", header: yes, body: params("a", "workers"), code: 404, ctype: jsonType,
					answer: `{"kind":"not_found","value":"no such endpoint: //v1/pre-reboot"}` + "\n"},
				{name: "a dot in the path", path: "/v1/./steady-state", header: yes, body: params("a", "workers"), code: 404, ctype: jsonType,
					answer: `{"kind":"not_found","value":"no such endpoint: /v1/./steady-state"}` + "\n"},
				{name: "a trailing slash", path: "/v1/pre-reboot/", header: yes, body: params("a", "workers"), code: 404, ctype: jsonType,
					answer: `{"kind":"not_found","value":"no such endpoint: /v1/pre-reboot/"}` + "\n"},

				// steady-state checks its requests as pre-reboot does.
				badAt("steady-state: missing header", steady, nil, params("a", "workers"), 400,
					`{"kind":"missing_header","value":"missing \"fleet-lock-protocol: true\" header"}`),
				badAt("steady-state: header false", steady, ptr("false"), params("a", "workers"), 400,
					`{"kind":"invalid_header","value":"\"fleet-lock-protocol\" header is \"false\", want \"true\""}`),
				badAt("steady-state: empty body", steady, yes, "", 400, `{"kind":"decode_error","value":"empty body"}`),
				badAt("steady-state: bad JSON", steady, yes, `{"client_params":{"id":"a",}}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body at byte 28: invalid character '}' looking for beginning of object key string"}`),
				badAt("steady-state: no client_params", steady, yes, `{"id":"a","group":"workers"}`, 400,
					`{"kind":"decode_error","value":"body has no \"client_params\" object"}`),
				badAt("steady-state: a number group", steady, yes, `{"client_params":{"id":"a","group":1}}`, 400,
					`{"kind":"decode_error","value":"invalid JSON body: \"client_params.group\" is a number, want a string"}`),
				badAt("steady-state: empty id", steady, yes, params("", "workers"), 400,
					`{"kind":"invalid_client_identity","value":"empty client id"}`),
				badAt("steady-state: empty group", steady, yes, params("a", ""), 400,
					`{"kind":"invalid_client_identity","value":"empty client group"}`),
				badAt("steady-state: bad group", steady, yes, params("a", "workers/x"), 400,
					`{"kind":"invalid_client_identity","value":"invalid client group \"workers/x\": must match ^[a-zA-Z0-9.-]+$"}`),
				badAt("steady-state: body too large", steady, yes, `{"client_params":{"id":"a","group":"workers","pad":"`+strings.Repeat("x", 70000)+`"}}`, 400,
					`{"kind":"decode_error","value":"body longer than 65536 bytes"}`),
				{name: "steady-state: GET", method: http.MethodGet, path: steady, header: yes, code: 405, ctype: jsonType, allowed: "POST",
					answer: `{"kind":"method_not_allowed","value":"method GET not allowed: use POST"}` + "\n"},
			} {
				x.run(t, base)
			}
			// What the exchanges did to the semaphores.
			for group, want := range map[string][]string{"workers": {"b"}, "other": {"c"}, "": {"z"}, "nobody.ever-locked": {}} {
				st, err := locksmith.NewSemaphore(cli, group).Status(ctx)
				if err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, h := range st.Holders {
					got = append(got, h.ID)
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("group %q holders %v, want %v", group, got, want)
				}
			}
			// An unlock of a lock never held writes nothing.
			if resp, err := cli.Get(ctx, locksmith.GroupKeys("nobody.ever-locked").Semaphore); err != nil || len(resp.Kvs) != 0 {
				t.Errorf("steady-state of a new group wrote %v (%v)", resp.Kvs, err)
			}
			checkMetrics(t, base)
		})
	}
}

func checkMetrics(t *testing.T, base string) {
	t.Helper()
	resp, err := http.Get(base + fleetlock.MetricsPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{
		`cairn_locksmith_holders{group="workers"} 1`,
		`cairn_locksmith_slots{group="workers"} 1`,
		`cairn_locksmith_holders{group="default"} 1`,
		`cairn_locksmith_store_up 1`,
		`cairn_fleetlock_requests_total{code="200",path="/v1/pre-reboot"} 5`,
		`cairn_fleetlock_requests_total{code="409",path="/v1/pre-reboot"} 1`,
		`cairn_fleetlock_requests_total{code="200",path="/v1/steady-state"} 4`,
	} {
		if !strings.Contains(string(body), "\n"+line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, body)
		}
	}
}

// TestLockTTL: with --lock-ttl a node that takes a slot and never reports
// steady-state frees it after the TTL.
func TestLockTTL(t *testing.T) {
	cli := framework.Start(t, framework.Config{}).Client(t)
	base := newServer(t, cli, 2*time.Second).URL
	ok("lock", fleetlock.PreRebootPath, params("gone", "ttl")).run(t, base)
	ok("recursive lock", fleetlock.PreRebootPath, params("gone", "ttl")).run(t, base)
	full := exchange{name: "full", path: fleetlock.PreRebootPath, header: yes, body: params("next", "ttl"), code: 409, ctype: jsonType,
		answer: `{"kind":"semaphore_full","value":"semaphore is at 0: group \"ttl\" has 1 of 1 slots held"}` + "\n"}
	full.run(t, base)
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := locksmith.NewSemaphore(cli, "ttl").Status(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(st.Holders) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the slot never expired: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	ok("lock after the TTL", fleetlock.PreRebootPath, params("next", "ttl")).run(t, base)
	// The recursive lock did not leave a second lease bound to anything:
	// only the holder's own lease has keys.
	leases, err := cli.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	withKeys := 0
	for _, l := range leases.Leases {
		ttl, err := cli.TimeToLive(context.Background(), l.ID, clientv3.WithAttachedKeys())
		if err != nil {
			t.Fatal(err)
		}
		if len(ttl.Keys) > 0 {
			withKeys++
		}
	}
	if withKeys != 1 || len(leases.Leases) != 1 {
		t.Fatalf("%d leases, %d with keys; want the one holder's", len(leases.Leases), withKeys)
	}
}

// TestStoreDown: a store that does not answer is a 500 with the store's
// error, within the request timeout.
func TestStoreDown(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	srv, err := fleetlock.New(fleetlock.Config{KV: cli, Timeout: time.Second, Logger: logger()})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(srv)
	defer hs.Close()
	m.Stop(t)
	for _, path := range []string{fleetlock.PreRebootPath, fleetlock.SteadyStatePath} {
		req, _ := http.NewRequest(http.MethodPost, hs.URL+path, strings.NewReader(params("a", "down")))
		req.Header.Set("fleet-lock-protocol", "true")
		start := time.Now()
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		kind := `{"kind":"failed_lock",`
		if path == fleetlock.SteadyStatePath {
			kind = `{"kind":"failed_unlock",`
		}
		if resp.StatusCode != 500 || !strings.HasPrefix(string(body), kind) {
			t.Fatalf("%s with the store down: %d %s", path, resp.StatusCode, body)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Fatalf("%s took %v", path, took)
		}
	}
}
