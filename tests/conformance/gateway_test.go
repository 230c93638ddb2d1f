package conformance_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// The v3 JSON gateway (/v3/kv/range, /v3/watch, ...) is compared the way
// the gRPC API is: the same HTTP requests go to a real etcd and to cairn,
// and the status, the content type and the body must be the same once what
// legitimately differs between two clusters is replaced (the cluster and
// member IDs, the URLs of each side's member, tokens, sizes and hashes of
// differently built databases).

// exchange is one HTTP request to both sides.
type exchange struct {
	method string // POST unless set
	path   string
	body   string
	header map[string]string
	// stream marks a streaming route: the first lines results are read and
	// compared, and then the request is abandoned; while it is open, the
	// exchanges in during run first, each compared on its own.
	stream int
	during []exchange
	// vary names the fields whose values are not compared (only their
	// presence); save names fields whose values later requests use, as
	// {name} in their path, body or header.
	vary []string
	save map[string]string
	// headers lists response headers that are compared too.
	headers []string
}

// gwResult is what one side answered to one exchange, normalised.
type gwResult struct {
	status      int
	contentType string
	headers     []string
	body        []string // one normalised JSON document a line
}

func (r gwResult) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "status %d, content type %q\n", r.status, r.contentType)
	for _, h := range r.headers {
		fmt.Fprintf(&b, "header %s\n", h)
	}
	for _, l := range r.body {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// gwSide is one server under comparison through its gateway.
type gwSide struct {
	name   string
	member *framework.Member
	self   string // the member's ID, as the gateway prints it
	vars   map[string]string
}

func TestGatewayConformance(t *testing.T) {
	for _, sc := range gatewayScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			t.Parallel()
			ref, sub := startPair(t, nil)
			a, b := newGWSide(t, ref), newGWSide(t, sub)
			for i, ex := range sc.exchanges {
				runExchange(t, fmt.Sprintf("exchange %d of %d", i+1, len(sc.exchanges)), a, b, ex)
			}
		})
	}
}

func newGWSide(t *testing.T, s *side) *gwSide {
	return &gwSide{
		name: s.name, member: s.member, self: strconv.FormatUint(s.self, 10),
		vars: map[string]string{"peer": s.member.AdvertisedPeerURL()},
	}
}

func runExchange(t *testing.T, where string, a, b *gwSide, ex exchange) {
	t.Helper()
	ra, err := a.do(t, ex, func() {
		for i, d := range ex.during {
			runExchange(t, fmt.Sprintf("%s, during the stream: %d of %d on etcd only", where, i+1, len(ex.during)), a, nil, d)
		}
	})
	if err != nil {
		t.Fatalf("%s: %s %s on %s: %v", where, ex.method, ex.path, a.name, err)
	}
	if b == nil {
		return
	}
	rb, err := b.do(t, ex, func() {
		for i, d := range ex.during {
			runExchange(t, fmt.Sprintf("%s, during the stream: %d of %d on %s only", where, i+1, len(ex.during), b.name), b, nil, d)
		}
	})
	if err != nil {
		t.Fatalf("%s: %s %s on %s: %v", where, ex.method, ex.path, b.name, err)
	}
	if ra.String() != rb.String() {
		t.Errorf("%s: %s %s with %s: %s answers differently from etcd\netcd:\n%s\n%s:\n%s\ndiff (- etcd, + %s):\n%s",
			where, method(ex), ex.path, abbreviate(ex.body), b.name, indent(ra.String()), b.name, indent(rb.String()),
			b.name, indent(lineDiff(ra.String(), rb.String())))
	}
}

func abbreviate(s string) string {
	if len(s) > 200 {
		return fmt.Sprintf("%s...(%d bytes)", s[:120], len(s))
	}
	return s
}

func method(ex exchange) string {
	if ex.method == "" {
		return http.MethodPost
	}
	return ex.method
}

var varRef = regexp.MustCompile(`\{[a-z]+\}`)

// expand replaces {name} by a value saved earlier on this side.
func (s *gwSide) expand(in string) string {
	return varRef.ReplaceAllStringFunc(in, func(m string) string {
		if v, ok := s.vars[m[1:len(m)-1]]; ok {
			return v
		}
		return m
	})
}

func (s *gwSide) do(t *testing.T, ex exchange, during func()) (gwResult, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var body io.Reader
	if ex.body != "" {
		body = strings.NewReader(s.expand(ex.body))
	}
	req, err := http.NewRequestWithContext(ctx, method(ex), s.member.ClientURL()+ex.path, body)
	if err != nil {
		return gwResult{}, err
	}
	if ex.body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range ex.header {
		req.Header.Set(k, s.expand(v))
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return gwResult{}, err
	}
	defer resp.Body.Close()
	res := gwResult{status: resp.StatusCode, contentType: resp.Header.Get("Content-Type")}
	for _, h := range ex.headers {
		res.headers = append(res.headers, h+": "+strings.Join(resp.Header.Values(h), ", "))
	}
	var docs [][]byte
	if ex.stream > 0 {
		// A streaming route sends one JSON document a line. Run what the
		// stream is to see once it is open (the first line is the
		// created response), then read the rest.
		r := bufio.NewReader(resp.Body)
		for len(docs) < ex.stream {
			line, err := r.ReadBytes('\n')
			if len(bytes.TrimSpace(line)) > 0 {
				docs = append(docs, line)
				if len(docs) == 1 && during != nil {
					during()
					during = nil
				}
			}
			if err != nil {
				return gwResult{}, fmt.Errorf("the stream ended after %d of %d lines: %w", len(docs), ex.stream, err)
			}
		}
	} else {
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			return gwResult{}, err
		}
		if len(bytes.TrimSpace(b)) > 0 {
			docs = append(docs, b)
		}
	}
	for _, d := range docs {
		var v any
		dec := json.NewDecoder(bytes.NewReader(d))
		dec.UseNumber()
		if err := dec.Decode(&v); err != nil {
			res.body = append(res.body, "not JSON: "+string(d))
			continue
		}
		for field, name := range ex.save {
			if val, ok := findField(v, field); ok {
				s.vars[name] = val
			}
		}
		var n bytes.Buffer
		enc := json.NewEncoder(&n)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(s.normalise(v, ex.vary)); err != nil {
			return gwResult{}, err
		}
		res.body = append(res.body, strings.TrimSuffix(n.String(), "\n"))
	}
	return res, nil
}

// findField returns the first value of a field named name, depth first.
func findField(v any, name string) (string, bool) {
	switch x := v.(type) {
	case map[string]any:
		if f, ok := x[name]; ok {
			if s, ok := f.(string); ok {
				return s, true
			}
			return fmt.Sprint(f), true
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			if s, ok := findField(x[k], name); ok {
				return s, true
			}
		}
	case []any:
		for _, e := range x {
			if s, ok := findField(e, name); ok {
				return s, true
			}
		}
	}
	return "", false
}

// normalise replaces what differs between two clusters: the header's
// cluster ID, member ID and term; this side's member ID and URLs wherever
// they appear; values saved for later requests; and the fields in vary.
func (s *gwSide) normalise(v any, vary []string) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, f := range x {
			switch {
			case slices.Contains(vary, k):
				out[k] = "<varies>"
			case k == "header":
				if h, ok := f.(map[string]any); ok {
					h = maps(h)
					for _, d := range []string{"cluster_id", "member_id", "raft_term"} {
						if _, ok := h[d]; ok {
							h[d] = "<" + d + ">"
						}
					}
					out[k] = h
					continue
				}
				out[k] = s.normalise(f, vary)
			case k == "members":
				// Both list members in the order of their IDs, which each
				// cluster chose at random: compare them as a set.
				ms, _ := s.normalise(f, vary).([]any)
				slices.SortFunc(ms, func(a, b any) int {
					x, _ := json.Marshal(a)
					y, _ := json.Marshal(b)
					return bytes.Compare(x, y)
				})
				out[k] = ms
			default:
				out[k] = s.normalise(f, vary)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = s.normalise(e, vary)
		}
		return out
	case string:
		// protobuf's messages put a space or a no-break space after
		// "proto:" at random, so that nobody depends on their text.
		x = strings.ReplaceAll(x, "\u00a0", " ")
		switch x {
		case s.self:
			return "<self>"
		case s.member.ClientURL():
			return "<client url>"
		case s.member.AdvertisedPeerURL():
			return "<peer url>"
		case s.member.Name():
			return "<name>"
		}
		for name, val := range s.vars {
			if x == val {
				return "<" + name + ">"
			}
		}
		return x
	default:
		return v
	}
}

func maps(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

type gwScenario struct {
	name      string
	exchanges []exchange
}

// Base64 of the keys and values the scenarios use.
const (
	b64foo = "Zm9v" // foo
	b64bar = "YmFy" // bar
	b64baz = "YmF6" // baz
	b64a   = "YQ==" // a
	b64one = "MQ==" // 1
	b64w   = "dw==" // w
	b64nul = "AA==" // "\x00"
)

func gatewayScenarios() []gwScenario {
	return []gwScenario{
		{name: "kv", exchanges: []exchange{
			{path: "/v3/kv/put", body: `{"key":"` + b64foo + `","value":"` + b64bar + `"}`},
			{path: "/v3/kv/put", body: `{"key":"` + b64foo + `","value":"` + b64baz + `","prev_kv":true}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64nul + `","range_end":"` + b64nul + `","count_only":true}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","revision":"2"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","revision":100}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","keys_only":true,"sort_order":"DESCEND","limit":"5"}`},
			{path: "/v3/kv/txn", body: `{"compare":[{"key":"` + b64foo + `","target":"VALUE","result":"EQUAL","value":"` + b64baz + `"}],` +
				`"success":[{"request_put":{"key":"` + b64a + `","value":"` + b64one + `"}},{"request_range":{"key":"` + b64a + `"}}],` +
				`"failure":[{"request_range":{"key":"` + b64foo + `"}}]}`},
			{path: "/v3/kv/txn", body: `{"compare":[{"key":"` + b64foo + `","target":"VERSION","result":"GREATER","version":"5"}],` +
				`"success":[{"request_delete_range":{"key":"` + b64foo + `"}}],` +
				`"failure":[{"request_range":{"key":"` + b64foo + `"}},{"request_txn":{"success":[{"request_range":{"key":"` + b64a + `"}}]}}]}`},
			{path: "/v3/kv/deleterange", body: `{"key":"` + b64a + `","prev_kv":true}`},
			{path: "/v3/kv/deleterange", body: `{"key":"` + b64a + `"}`},
			{path: "/v3/kv/compaction", body: `{"revision":"3","physical":true}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","revision":"2"}`},
			{path: "/v3/kv/compaction", body: `{"revision":"3"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `"}`},
		}},
		{name: "kv-errors", exchanges: []exchange{
			{path: "/v3/kv/put", body: `{"value":"` + b64bar + `"}`},
			{path: "/v3/kv/range", body: `not json`},
			{path: "/v3/kv/range", body: `{"key":"!!"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","unknown_field":1}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `","revision":"x"}`},
			{path: "/v3/kv/range"},
			{path: "/v3/kv/txn", body: `{"success":[{"request_put":{"key":"` + b64a + `"}},{"request_put":{"key":"` + b64a + `"}}]}`},
			{path: "/v3/kv/compaction", body: `{"revision":"5"}`},
			// Over --max-request-bytes (1.5 MiB by default).
			{path: "/v3/kv/put", body: `{"key":"` + b64a + `","value":"` + strings.Repeat("QUFB", 800_000) + `"}`},
			{method: http.MethodGet, path: "/v3/kv/range"},
			{path: "/v3/kv/nothing", body: `{}`},
		}},
		{name: "watch", exchanges: []exchange{
			{path: "/v3/kv/put", body: `{"key":"` + b64w + `","value":"` + b64one + `"}`},
			{path: "/v3/watch", body: `{"create_request":{"key":"` + b64w + `","prev_kv":true}}`, stream: 4, during: []exchange{
				{path: "/v3/kv/put", body: `{"key":"` + b64w + `","value":"` + b64bar + `"}`},
				{path: "/v3/kv/put", body: `{"key":"` + b64a + `","value":"` + b64bar + `"}`},
				{path: "/v3/kv/put", body: `{"key":"` + b64w + `","value":"` + b64baz + `"}`},
				{path: "/v3/kv/deleterange", body: `{"key":"` + b64w + `"}`},
			}},
			// From history, with the range of every key.
			{path: "/v3/watch", body: `{"create_request":{"key":"` + b64nul + `","range_end":"` + b64nul + `","start_revision":"2"}}`, stream: 2},
			// A start revision below the compaction is refused.
			{path: "/v3/kv/compaction", body: `{"revision":"4"}`},
			{path: "/v3/watch", body: `{"create_request":{"key":"` + b64w + `","start_revision":"2"}}`, stream: 2},
		}},
		{name: "lease", exchanges: []exchange{
			{path: "/v3/lease/grant", body: `{"TTL":"60","ID":"4660"}`},
			{path: "/v3/lease/grant", body: `{"TTL":"60","ID":"4660"}`},
			{path: "/v3/kv/put", body: `{"key":"` + b64foo + `","value":"` + b64bar + `","lease":"4660"}`},
			{path: "/v3/lease/timetolive", body: `{"ID":"4660","keys":true}`, vary: []string{"TTL"}},
			{path: "/v3/kv/lease/timetolive", body: `{"ID":"4660"}`, vary: []string{"TTL"}},
			{path: "/v3/lease/leases", body: `{}`},
			{path: "/v3/kv/lease/leases", body: `{}`},
			{path: "/v3/lease/keepalive", body: `{"ID":"4660"}`, stream: 1},
			{path: "/v3/lease/revoke", body: `{"ID":"4660"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `"}`},
			{path: "/v3/lease/timetolive", body: `{"ID":"4660"}`},
			{path: "/v3/lease/revoke", body: `{"ID":"4660"}`},
			{path: "/v3/kv/put", body: `{"key":"` + b64foo + `","value":"` + b64bar + `","lease":"4660"}`},
			{path: "/v3/lease/grant", body: `{"TTL":"1","ID":"7"}`},
			{path: "/v3/kv/lease/revoke", body: `{"ID":"7"}`},
		}},
		{name: "cluster", exchanges: []exchange{
			{path: "/v3/cluster/member/list", body: `{}`},
			{path: "/v3/cluster/member/list", body: `{"linearizable":true}`},
			{path: "/v3/cluster/member/add", body: `{"peerURLs":["http://127.0.0.1:1"],"isLearner":true}`,
				save: map[string]string{"ID": "learner"}},
			{path: "/v3/cluster/member/promote", body: `{"ID":"{learner}"}`},
			{path: "/v3/cluster/member/update", body: `{"ID":"{learner}","peerURLs":["http://127.0.0.1:2"]}`},
			{path: "/v3/cluster/member/remove", body: `{"ID":"{learner}"}`},
			{path: "/v3/cluster/member/remove", body: `{"ID":"{learner}"}`},
			{path: "/v3/cluster/member/add", body: `{"peerURLs":["{peer}"]}`},
		}},
		{name: "maintenance", exchanges: []exchange{
			{path: "/v3/kv/put", body: `{"key":"` + b64foo + `","value":"` + b64bar + `"}`},
			{path: "/v3/maintenance/status", body: `{}`,
				vary: []string{"version", "dbSize", "dbSizeInUse", "raftIndex", "raftAppliedIndex", "dbSizeQuota", "storageVersion", "downgradeInfo"}},
			{path: "/v3/maintenance/alarm", body: `{"action":"GET"}`},
			{path: "/v3/maintenance/alarm", body: `{"action":"DEACTIVATE","alarm":"NOSPACE"}`},
			{path: "/v3/maintenance/defragment", body: `{}`},
			{path: "/v3/maintenance/hash", body: `{}`, vary: []string{"hash"}},
			{path: "/v3/maintenance/hashkv", body: `{"revision":"2"}`},
			{path: "/v3/maintenance/hashkv", body: `{}`},
			{path: "/v3/maintenance/transfer-leadership", body: `{"targetID":"1"}`},
		}},
		{name: "edge", exchanges: []exchange{
			{path: "/v3beta/kv/range", body: `{"key":"` + b64foo + `"}`},
			{path: "/v3alpha/kv/range", body: `{"key":"` + b64foo + `"}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64foo + `"}`, header: map[string]string{"Origin": "http://example.com"},
				headers: []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"}},
			{method: http.MethodOptions, path: "/v3/kv/range", header: map[string]string{"Origin": "http://example.com", "Access-Control-Request-Method": "POST"},
				headers: []string{"Access-Control-Allow-Origin", "Access-Control-Allow-Methods", "Access-Control-Allow-Headers"}},
			// cairn cannot be downgraded; etcd refuses these targets too.
			{path: "/v3/maintenance/downgrade", body: `{"action":"VALIDATE","version":"3.6"}`},
			{path: "/v3/maintenance/downgrade", body: `{"action":"ENABLE","version":"3.7.1"}`},
			{path: "/v3/maintenance/downgrade", body: `{"action":"VALIDATE","version":"three"}`},
			{path: "/v3/maintenance/downgrade", body: `{"action":"ENABLE","version":""}`},
			{path: "/v3/maintenance/downgrade", body: `{"action":"CANCEL"}`},
			{path: "/v3/maintenance/downgrade", body: `{"action":7}`},
			{path: "/v3/maintenance/snapshot", body: `{}`, stream: 1, vary: []string{"blob", "remaining_bytes", "version"}},
		}},
		{name: "auth", exchanges: []exchange{
			{path: "/v3/auth/status", body: `{}`, vary: []string{"authRevision"}},
			{path: "/v3/auth/enable", body: `{}`},
			{path: "/v3/auth/user/add", body: `{"name":"root","password":"rootpw"}`},
			{path: "/v3/auth/user/grant", body: `{"user":"root","role":"root"}`},
			{path: "/v3/auth/user/add", body: `{"name":"alice","password":"alicepw"}`},
			{path: "/v3/auth/role/add", body: `{"name":"reader"}`},
			{path: "/v3/auth/role/grant", body: `{"name":"reader","perm":{"permType":"READ","key":"` + b64a + `","range_end":"Yg=="}}`},
			{path: "/v3/auth/user/grant", body: `{"user":"alice","role":"reader"}`},
			{path: "/v3/auth/role/get", body: `{"role":"reader"}`},
			{path: "/v3/auth/user/get", body: `{"name":"alice"}`},
			{path: "/v3/auth/user/list", body: `{}`},
			{path: "/v3/auth/role/list", body: `{}`},
			{path: "/v3/auth/enable", body: `{}`},
			{path: "/v3/kv/range", body: `{"key":"` + b64a + `"}`},
			{path: "/v3/auth/authenticate", body: `{"name":"alice","password":"wrong"}`},
			{path: "/v3/auth/authenticate", body: `{"name":"alice","password":"alicepw"}`, save: map[string]string{"token": "alicetoken"}},
			{path: "/v3/kv/range", body: `{"key":"` + b64a + `"}`, header: map[string]string{"Authorization": "{alicetoken}"}},
			{path: "/v3/kv/range", body: `{"key":"` + b64a + `","range_end":"` + b64nul + `"}`, header: map[string]string{"Authorization": "{alicetoken}"}},
			{path: "/v3/kv/put", body: `{"key":"` + b64a + `","value":"` + b64one + `"}`, header: map[string]string{"Authorization": "{alicetoken}"}},
			{path: "/v3/kv/range", body: `{"key":"` + b64a + `"}`, header: map[string]string{"Authorization": "not-a-token"}},
			{path: "/v3/auth/authenticate", body: `{"name":"root","password":"rootpw"}`, save: map[string]string{"token": "roottoken"}},
			{path: "/v3/kv/put", body: `{"key":"` + b64a + `","value":"` + b64one + `"}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/status", body: `{}`, header: map[string]string{"Authorization": "{roottoken}"}, vary: []string{"authRevision"}},
			{path: "/v3/auth/user/changepw", body: `{"name":"alice","password":"newpw"}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/user/revoke", body: `{"name":"alice","role":"reader"}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/role/revoke", body: `{"role":"reader","key":"` + b64a + `","range_end":"Yg=="}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/role/delete", body: `{"role":"reader"}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/user/delete", body: `{"name":"alice"}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/auth/disable", body: `{}`, header: map[string]string{"Authorization": "{roottoken}"}},
			{path: "/v3/kv/range", body: `{"key":"` + b64a + `"}`},
		}},
	}
}
