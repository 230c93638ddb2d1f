package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// v2Step is one request of a script against a fresh member and its exact
// answer: status, body (with expiration times and TTLs masked) and
// X-Etcd-Index.
type v2Step struct {
	method string
	target string
	form   url.Values
	status int
	body   string
	index  uint64
}

// TestV2Keys runs every action and every error the keys API can produce on
// a single member, in the style of etcd's v2_http_kv_test: each request's
// status, body and X-Etcd-Index are compared exactly with etcd 2.3's. A
// fresh store starts at index 0, so the indexes are known.
func TestV2Keys(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	base := m.ClientURL()
	clusterID := v2ClusterID(t, m)

	steps := []v2Step{
		// set
		{"PUT", "/v2/keys/foo/bar", form("value", "XXX"), 201,
			`{"action":"set","node":{"key":"/foo/bar","value":"XXX","modifiedIndex":1,"createdIndex":1}}`, 1},
		{"PUT", "/v2/keys/foo/bar", form("value", "YYY"), 200,
			`{"action":"set","node":{"key":"/foo/bar","value":"YYY","modifiedIndex":2,"createdIndex":2},"prevNode":{"key":"/foo/bar","value":"XXX","modifiedIndex":1,"createdIndex":1}}`, 2},
		{"PUT", "/v2/keys/foo/bar?noValueOnSuccess=true", form("value", "ZZZ"), 200, `{"action":"set"}`, 3},
		{"PUT", "/v2/keys/foo/empty", form("value", ""), 201,
			`{"action":"set","node":{"key":"/foo/empty","value":"","modifiedIndex":4,"createdIndex":4}}`, 4},
		{"PUT", "/v2/keys/foo", form("value", "x"), 403, `{"errorCode":102,"message":"Not a file","cause":"/foo","index":4}`, 4},
		{"PUT", "/v2/keys/foo/bar/baz", form("value", "x"), 400, `{"errorCode":104,"message":"Not a directory","cause":"/foo/bar","index":4}`, 4},
		{"PUT", "/v2/keys/", form("value", "x"), 400, `{"errorCode":107,"message":"Root is read only","cause":"/","index":4}`, 4},
		// create and update
		{"PUT", "/v2/keys/c", form("value", "1", "prevExist", "false"), 201,
			`{"action":"create","node":{"key":"/c","value":"1","modifiedIndex":5,"createdIndex":5}}`, 5},
		{"PUT", "/v2/keys/c", form("value", "2", "prevExist", "false"), 412,
			`{"errorCode":105,"message":"Key already exists","cause":"/c","index":5}`, 5},
		{"PUT", "/v2/keys/c", form("value", "2", "prevExist", "true"), 200,
			`{"action":"update","node":{"key":"/c","value":"2","modifiedIndex":6,"createdIndex":5},"prevNode":{"key":"/c","value":"1","modifiedIndex":5,"createdIndex":5}}`, 6},
		{"PUT", "/v2/keys/nope", form("value", "2", "prevExist", "true"), 404,
			`{"errorCode":100,"message":"Key not found","cause":"/nope","index":6}`, 6},
		// compare and swap
		{"PUT", "/v2/keys/c?prevValue=2", form("value", "3"), 200,
			`{"action":"compareAndSwap","node":{"key":"/c","value":"3","modifiedIndex":7,"createdIndex":5},"prevNode":{"key":"/c","value":"2","modifiedIndex":6,"createdIndex":5}}`, 7},
		{"PUT", "/v2/keys/c?prevValue=9", form("value", "4"), 412,
			`{"errorCode":101,"message":"Compare failed","cause":"[9 != 3]","index":7}`, 7},
		{"PUT", "/v2/keys/c?prevIndex=1", form("value", "4"), 412,
			`{"errorCode":101,"message":"Compare failed","cause":"[1 != 7]","index":7}`, 7},
		{"PUT", "/v2/keys/c?prevIndex=1&prevValue=9", form("value", "4"), 412,
			`{"errorCode":101,"message":"Compare failed","cause":"[9 != 3] [1 != 7]","index":7}`, 7},
		{"PUT", "/v2/keys/c", form("value", "4", "prevIndex", "7", "prevExist", "true"), 200,
			`{"action":"compareAndSwap","node":{"key":"/c","value":"4","modifiedIndex":8,"createdIndex":5},"prevNode":{"key":"/c","value":"3","modifiedIndex":7,"createdIndex":5}}`, 8},
		{"PUT", "/v2/keys/foo?prevValue=x", form("value", "4"), 403, `{"errorCode":102,"message":"Not a file","cause":"/foo","index":8}`, 8},
		{"PUT", "/v2/keys/nope?prevValue=x", form("value", "4"), 404, `{"errorCode":100,"message":"Key not found","cause":"/nope","index":8}`, 8},
		// form errors: index 0, as etcd
		{"PUT", "/v2/keys/c?prevValue=", form("value", "4"), 400,
			`{"errorCode":201,"message":"PrevValue is Required in POST form","cause":"\"prevValue\" cannot be empty","index":0}`, 0},
		{"PUT", "/v2/keys/c", form("value", "4", "ttl", "ten"), 400,
			`{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}`, 0},
		{"PUT", "/v2/keys/c?prevIndex=x", form("value", "4"), 400,
			`{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}`, 0},
		{"GET", "/v2/keys/c?recursive=maybe", nil, 400,
			`{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"recursive\"","index":0}`, 0},
		{"PUT", "/v2/keys/c?wait=true", form("value", "4"), 400,
			`{"errorCode":209,"message":"Invalid field","cause":"\"wait\" can only be used with GET requests","index":0}`, 0},
		{"GET", "/v2/keys/c?a=%zz", nil, 400,
			`{"errorCode":210,"message":"Invalid POST form","cause":"invalid URL escape \"%zz\"","index":0}`, 0},
		{"PUT", "/v2/keys/c", form("value", "4", "ttl", "5", "refresh", "true"), 400,
			`{"errorCode":211,"message":"Value provided on refresh","cause":"A value was provided on a refresh","index":0}`, 0},
		{"PUT", "/v2/keys/c", form("refresh", "true"), 400,
			`{"errorCode":212,"message":"A TTL must be provided on refresh","cause":"No TTL value set","index":0}`, 0},
		// in-order keys
		{"POST", "/v2/keys/queue", form("value", "a"), 201,
			`{"action":"create","node":{"key":"/queue/00000000000000000009","value":"a","modifiedIndex":9,"createdIndex":9}}`, 9},
		{"POST", "/v2/keys/queue", form("value", "b"), 201,
			`{"action":"create","node":{"key":"/queue/00000000000000000010","value":"b","modifiedIndex":10,"createdIndex":10}}`, 10},
		{"POST", "/v2/keys/c", form("value", "b"), 400, `{"errorCode":104,"message":"Not a directory","cause":"/c","index":10}`, 10},
		// get
		{"GET", "/v2/keys/queue?recursive=true&sorted=true", nil, 200,
			`{"action":"get","node":{"key":"/queue","dir":true,"nodes":[{"key":"/queue/00000000000000000009","value":"a","modifiedIndex":9,"createdIndex":9},{"key":"/queue/00000000000000000010","value":"b","modifiedIndex":10,"createdIndex":10}],"modifiedIndex":9,"createdIndex":9}}`, 10},
		{"PUT", "/v2/keys/foo/_hidden", form("value", "h"), 201,
			`{"action":"set","node":{"key":"/foo/_hidden","value":"h","modifiedIndex":11,"createdIndex":11}}`, 11},
		{"GET", "/v2/keys/foo", nil, 200,
			`{"action":"get","node":{"key":"/foo","dir":true,"nodes":[{"key":"/foo/bar","value":"ZZZ","modifiedIndex":3,"createdIndex":3},{"key":"/foo/empty","value":"","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":1,"createdIndex":1}}`, 11},
		{"GET", "/v2/keys/foo/_hidden", nil, 200,
			`{"action":"get","node":{"key":"/foo/_hidden","value":"h","modifiedIndex":11,"createdIndex":11}}`, 11},
		{"GET", "/v2/keys/", nil, 200,
			`{"action":"get","node":{"dir":true,"nodes":[{"key":"/c","value":"4","modifiedIndex":8,"createdIndex":5},{"key":"/foo","dir":true,"modifiedIndex":1,"createdIndex":1},{"key":"/queue","dir":true,"modifiedIndex":9,"createdIndex":9}]}}`, 11},
		{"GET", "/v2/keys/c?quorum=true", nil, 200,
			`{"action":"get","node":{"key":"/c","value":"4","modifiedIndex":8,"createdIndex":5}}`, 11},
		{"GET", "/v2/keys/nope", nil, 404, `{"errorCode":100,"message":"Key not found","cause":"/nope","index":11}`, 11},
		{"GET", "/v2/keys/nope?quorum=true", nil, 404, `{"errorCode":100,"message":"Key not found","cause":"/nope","index":11}`, 11},
		{"GET", "/v2/keys/c/d", nil, 400, `{"errorCode":104,"message":"Not a directory","cause":"/c","index":11}`, 11},
		{"HEAD", "/v2/keys/c", nil, 200, ``, 11},
		{"HEAD", "/v2/keys/nope", nil, 404, ``, 11},
		// TTLs
		{"PUT", "/v2/keys/ttl", form("value", "t", "ttl", "100"), 201,
			`{"action":"set","node":{"key":"/ttl","value":"t","expiration":"E","ttl":T,"modifiedIndex":12,"createdIndex":12}}`, 12},
		{"PUT", "/v2/keys/ttl", form("value", "t", "ttl", "", "prevExist", "true"), 200,
			`{"action":"update","node":{"key":"/ttl","value":"t","modifiedIndex":13,"createdIndex":12},"prevNode":{"key":"/ttl","value":"t","expiration":"E","ttl":T,"modifiedIndex":12,"createdIndex":12}}`, 13},
		{"PUT", "/v2/keys/ttl", form("ttl", "50", "refresh", "true", "prevExist", "true"), 200,
			`{"action":"update","node":{"key":"/ttl","value":"t","expiration":"E","ttl":T,"modifiedIndex":14,"createdIndex":12},"prevNode":{"key":"/ttl","value":"t","modifiedIndex":13,"createdIndex":12}}`, 14},
		{"PUT", "/v2/keys/tdir", form("dir", "true", "ttl", "100"), 201,
			`{"action":"set","node":{"key":"/tdir","dir":true,"expiration":"E","ttl":T,"modifiedIndex":15,"createdIndex":15}}`, 15},
		{"PUT", "/v2/keys/tdir", form("dir", "true", "ttl", "200", "prevExist", "true"), 200,
			`{"action":"update","node":{"key":"/tdir","dir":true,"expiration":"E","ttl":T,"modifiedIndex":16,"createdIndex":15},"prevNode":{"key":"/tdir","dir":true,"expiration":"E","ttl":T,"modifiedIndex":15,"createdIndex":15}}`, 16},
		// compare and delete, delete
		{"DELETE", "/v2/keys/c?prevValue=no", nil, 412, `{"errorCode":101,"message":"Compare failed","cause":"[no != 4]","index":16}`, 16},
		{"DELETE", "/v2/keys/foo?prevValue=no", nil, 403, `{"errorCode":102,"message":"Not a file","cause":"/foo","index":16}`, 16},
		{"DELETE", "/v2/keys/c?prevIndex=8", nil, 200,
			`{"action":"compareAndDelete","node":{"key":"/c","modifiedIndex":17,"createdIndex":5},"prevNode":{"key":"/c","value":"4","modifiedIndex":8,"createdIndex":5}}`, 17},
		{"DELETE", "/v2/keys/foo", nil, 403, `{"errorCode":102,"message":"Not a file","cause":"/foo","index":17}`, 17},
		{"DELETE", "/v2/keys/foo?dir=true", nil, 403, `{"errorCode":108,"message":"Directory not empty","cause":"/foo","index":17}`, 17},
		{"DELETE", "/v2/keys/foo/bar", nil, 200,
			`{"action":"delete","node":{"key":"/foo/bar","modifiedIndex":18,"createdIndex":3},"prevNode":{"key":"/foo/bar","value":"ZZZ","modifiedIndex":3,"createdIndex":3}}`, 18},
		{"DELETE", "/v2/keys/foo?recursive=true", nil, 200,
			`{"action":"delete","node":{"key":"/foo","dir":true,"modifiedIndex":19,"createdIndex":1},"prevNode":{"key":"/foo","dir":true,"modifiedIndex":1,"createdIndex":1}}`, 19},
		{"DELETE", "/v2/keys/foo", nil, 404, `{"errorCode":100,"message":"Key not found","cause":"/foo","index":19}`, 19},
		{"DELETE", "/v2/keys/?recursive=true", nil, 400, `{"errorCode":107,"message":"Root is read only","cause":"/","index":19}`, 19},
		{"PUT", "/v2/keys/emptydir", form("dir", "true"), 201,
			`{"action":"set","node":{"key":"/emptydir","dir":true,"modifiedIndex":20,"createdIndex":20}}`, 20},
		{"DELETE", "/v2/keys/emptydir?dir=true", nil, 200,
			`{"action":"delete","node":{"key":"/emptydir","dir":true,"modifiedIndex":21,"createdIndex":20},"prevNode":{"key":"/emptydir","dir":true,"modifiedIndex":20,"createdIndex":20}}`, 21},
		// watches answered from history
		{"GET", "/v2/keys/c?wait=true&waitIndex=6", nil, 200,
			`{"action":"update","node":{"key":"/c","value":"2","modifiedIndex":6,"createdIndex":5},"prevNode":{"key":"/c","value":"1","modifiedIndex":5,"createdIndex":5}}`, 21},
		{"GET", "/v2/keys/foo?wait=true&waitIndex=2&recursive=true", nil, 200,
			`{"action":"set","node":{"key":"/foo/bar","value":"YYY","modifiedIndex":2,"createdIndex":2},"prevNode":{"key":"/foo/bar","value":"XXX","modifiedIndex":1,"createdIndex":1}}`, 21},
		{"GET", "/v2/keys/foo/bar?wait=true&waitIndex=19", nil, 200,
			`{"action":"delete","node":{"key":"/foo","dir":true,"modifiedIndex":19,"createdIndex":1},"prevNode":{"key":"/foo","dir":true,"modifiedIndex":1,"createdIndex":1}}`, 21},
		// a quorum GET ignores wait, as etcd's
		{"GET", "/v2/keys/queue/00000000000000000009?quorum=true&wait=true", nil, 200,
			`{"action":"get","node":{"key":"/queue/00000000000000000009","value":"a","modifiedIndex":9,"createdIndex":9}}`, 21},
	}
	for i, st := range steps {
		name := fmt.Sprintf("#%d %s %s %s", i, st.method, st.target, st.form.Encode())
		r := v2Request(t, st.method, base, st.target, st.form)
		if r.status != st.status {
			t.Errorf("%s: status %d, want %d (body %s)", name, r.status, st.status, r.body)
		}
		want := st.body
		if want != "" {
			want += "\n"
		}
		if got := maskTimes(r.body); got != want {
			t.Errorf("%s:\n got  %s want %s", name, got, want)
		}
		if got := headerUint(t, r.header, "X-Etcd-Index"); got != st.index {
			t.Errorf("%s: X-Etcd-Index %d, want %d", name, got, st.index)
		}
		if got := r.header.Get("X-Etcd-Cluster-Id"); got != clusterID {
			t.Errorf("%s: X-Etcd-Cluster-ID %q, want %q", name, got, clusterID)
		}
		if ct := r.header.Get("Content-Type"); ct != "application/json" {
			t.Errorf("%s: Content-Type %q", name, ct)
		}
		if st.status < 300 {
			if headerUint(t, r.header, "X-Raft-Index") == 0 || headerUint(t, r.header, "X-Raft-Term") == 0 {
				t.Errorf("%s: raft headers %q %q", name, r.header.Get("X-Raft-Index"), r.header.Get("X-Raft-Term"))
			}
		} else if r.header.Get("X-Raft-Index") != "" {
			t.Errorf("%s: an error answer carries X-Raft-Index", name)
		}
	}

	// TTL values themselves: a fresh TTL shows exactly the seconds asked
	// for (the proposer's clock stamps both the expiration and the
	// request), and counts down.
	r := v2Request(t, "PUT", base, "/v2/keys/ttl2", form("value", "x", "ttl", "7"))
	var ev struct {
		Node struct {
			TTL        int64     `json:"ttl"`
			Expiration time.Time `json:"expiration"`
		} `json:"node"`
	}
	if err := json.Unmarshal([]byte(r.body), &ev); err != nil || ev.Node.TTL != 7 {
		t.Fatalf("ttl=7 answered %s (%v)", r.body, err)
	}
	if d := time.Until(ev.Node.Expiration); d < 5*time.Second || d > 8*time.Second || ev.Node.Expiration.Location() != time.UTC {
		t.Fatalf("expiration %v is not ~7s from now in UTC", ev.Node.Expiration)
	}

	// --max-request-bytes bounds v2 writes: error 300.
	r = v2Request(t, "PUT", base, "/v2/keys/huge", form("value", strings.Repeat("x", 2<<20)))
	if want := `{"errorCode":300,"message":"Raft Internal Error","cause":"etcdserver: request is too large","index":0}` + "\n"; r.status != 500 || r.body != want {
		t.Fatalf("a 2 MiB value: %d %s", r.status, r.body)
	}

	// Methods other than the five: 405 with an Allow header, as etcd.
	r = v2Request(t, "PATCH", base, "/v2/keys/c", nil)
	if r.status != 405 || r.body != "Method Not Allowed\n" || r.header.Get("Allow") != "HEAD,GET,PUT,POST,DELETE" {
		t.Fatalf("PATCH: %d %q Allow %q", r.status, r.body, r.header.Get("Allow"))
	}
}

func v2ClusterID(t *testing.T, m *framework.Member) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := m.Client(t).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return strconv.FormatUint(resp.Header.ClusterId, 16)
}

// openWatch starts a watch request and returns once its headers arrived
// (the server flushes them when the watch is in place).
func openWatch(t *testing.T, base, target string) (*http.Response, *bufio.Reader) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	req, err := http.NewRequestWithContext(ctx, "GET", base+target, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("watch %s: %v", target, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	if resp.StatusCode != 200 {
		t.Fatalf("watch %s: status %d", target, resp.StatusCode)
	}
	return resp, bufio.NewReader(resp.Body)
}

// readLine reads one event line of a watch, failing after timeout.
func readLine(t *testing.T, br *bufio.Reader, timeout time.Duration) string {
	t.Helper()
	type res struct {
		s   string
		err error
	}
	ch := make(chan res, 1)
	go func() {
		s, err := br.ReadString('\n')
		ch <- res{s, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("reading a watch event: %v (read %q)", r.err, r.s)
		}
		return r.s
	case <-time.After(timeout):
		t.Fatalf("no watch event after %v", timeout)
		return ""
	}
}

// TestV2Watch covers long-poll and streaming watches, recursive watches,
// hidden keys, TTL expiry seen by a watcher, and the history window.
func TestV2Watch(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	base := m.ClientURL()

	// A long poll: headers at once (X-Etcd-Index is the index when the
	// watch began), then the event, then the response ends.
	resp, br := openWatch(t, base, "/v2/keys/w?wait=true")
	if got := resp.Header.Get("X-Etcd-Index"); got != "0" {
		t.Fatalf("watch X-Etcd-Index %q, want 0", got)
	}
	v2Request(t, "PUT", base, "/v2/keys/w", form("value", "1"))
	want := `{"action":"set","node":{"key":"/w","value":"1","modifiedIndex":1,"createdIndex":1}}` + "\n"
	if got := readLine(t, br, 10*time.Second); got != want {
		t.Fatalf("long poll:\n got  %s want %s", got, want)
	}
	if _, err := br.ReadByte(); err == nil {
		t.Fatal("a long-poll watch did not end after its event")
	}

	// Streaming: every event on one response; hidden keys below a
	// recursive watch are not shown.
	_, br = openWatch(t, base, "/v2/keys/dir?wait=true&recursive=true&stream=true")
	v2Request(t, "PUT", base, "/v2/keys/dir/a", form("value", "1"))
	v2Request(t, "PUT", base, "/v2/keys/dir/_hidden", form("value", "h"))
	v2Request(t, "PUT", base, "/v2/keys/dir/sub/b", form("value", "2"))
	v2Request(t, "DELETE", base, "/v2/keys/dir/a", nil)
	for _, want := range []string{
		`{"action":"set","node":{"key":"/dir/a","value":"1","modifiedIndex":2,"createdIndex":2}}`,
		`{"action":"set","node":{"key":"/dir/sub/b","value":"2","modifiedIndex":4,"createdIndex":4}}`,
		`{"action":"delete","node":{"key":"/dir/a","modifiedIndex":5,"createdIndex":2},"prevNode":{"key":"/dir/a","value":"1","modifiedIndex":2,"createdIndex":2}}`,
	} {
		if got := readLine(t, br, 10*time.Second); got != want+"\n" {
			t.Fatalf("stream:\n got  %s want %s", got, want)
		}
	}

	// A watch for a future index waits for it.
	_, br = openWatch(t, base, "/v2/keys/f?wait=true&waitIndex=7")
	v2Request(t, "PUT", base, "/v2/keys/f", form("value", "6"))
	v2Request(t, "PUT", base, "/v2/keys/f", form("value", "7"))
	want = `{"action":"set","node":{"key":"/f","value":"7","modifiedIndex":7,"createdIndex":7},"prevNode":{"key":"/f","value":"6","modifiedIndex":6,"createdIndex":6}}` + "\n"
	if got := readLine(t, br, 10*time.Second); got != want {
		t.Fatalf("future index:\n got  %s want %s", got, want)
	}

	// TTL expiry reaches a watcher as an expire event, through raft.
	r := v2Request(t, "PUT", base, "/v2/keys/ttl", form("value", "v", "ttl", "1"))
	if r.status != 201 {
		t.Fatalf("set with ttl: %d %s", r.status, r.body)
	}
	_, br = openWatch(t, base, "/v2/keys/ttl?wait=true&waitIndex=9")
	want = `{"action":"expire","node":{"key":"/ttl","modifiedIndex":9,"createdIndex":8},"prevNode":{"key":"/ttl","value":"v","expiration":"E","modifiedIndex":8,"createdIndex":8}}` + "\n"
	if got := maskTimes(readLine(t, br, 10*time.Second)); got != want {
		t.Fatalf("expire:\n got  %s want %s", got, want)
	}
	if r := v2Request(t, "GET", base, "/v2/keys/ttl", nil); r.status != 404 {
		t.Fatalf("expired key still readable: %d %s", r.status, r.body)
	}

	// The history keeps 1000 events; older indexes are error 401.
	for i := 0; i < 1000; i++ {
		if r := v2Request(t, "PUT", base, "/v2/keys/h", form("value", strconv.Itoa(i))); r.status >= 300 {
			t.Fatalf("put %d: %d %s", i, r.status, r.body)
		}
	}
	// The index is now 1009: events 10..1009 are kept.
	r = v2Request(t, "GET", base, "/v2/keys/h?wait=true&waitIndex=9", nil)
	want = `{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [10/9]","index":1009}` + "\n"
	if r.status != 400 || r.body != want || r.header.Get("X-Etcd-Index") != "1009" {
		t.Fatalf("outdated index: %d %s (X-Etcd-Index %q)", r.status, r.body, r.header.Get("X-Etcd-Index"))
	}
	r = v2Request(t, "GET", base, "/v2/keys/h?wait=true&waitIndex=10", nil)
	want = `{"action":"set","node":{"key":"/h","value":"0","modifiedIndex":10,"createdIndex":10}}` + "\n"
	if r.status != 200 || r.body != want || r.header.Get("X-Etcd-Index") != "1009" {
		t.Fatalf("oldest kept index: %d %s (X-Etcd-Index %q)", r.status, r.body, r.header.Get("X-Etcd-Index"))
	}

	// Store stats count what happened (writes are counted as applied).
	r = v2Request(t, "GET", base, "/v2/stats/store", nil)
	var st map[string]uint64
	if err := json.Unmarshal([]byte(r.body), &st); err != nil || st["expireCount"] != 1 || st["setsSuccess"] < 1000 {
		t.Fatalf("store stats %s (%v)", r.body, err)
	}
}

// TestV2StopWithOpenWatch: a member shutting down ends its open watch
// responses properly (the final chunk is sent, the client reads a clean
// end of body) instead of holding the HTTP shutdown until its timeout and
// dropping the connection.
func TestV2StopWithOpenWatch(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	_, br := openWatch(t, m.ClientURL(), "/v2/keys/x?wait=true&stream=true")
	m.Stop(t)
	if _, err := br.ReadString('\n'); err != io.EOF {
		t.Fatalf("the watch response ended with %v, want a clean end (io.EOF)", err)
	}
}
