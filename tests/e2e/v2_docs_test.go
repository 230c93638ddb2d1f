package e2e

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// The doc test runs every curl example of docs/v2-api.md, in order,
// against a fresh 3-member cluster, and compares each answer with the
// block that follows the example:
//
//   - a ```sh block holding one curl command is an example; sh blocks
//     without curl (cairn serve ...) are not run;
//   - the ```json or ```text block right after it is the expected answer
//     (JSON is compared as values, text exactly); a status code after the
//     language (```json 404) is the expected HTTP status;
//   - a ```sh block of etcdctl commands (one a line) is run, and must
//     succeed;
//   - a watch without waitIndex (GET ...?wait=true) runs in the
//     background while the examples after it run, as in a second
//     terminal; its expected answer is the block right after it.
//
// The requests are executed with net/http, not a curl binary. The doc's
// addresses (127.0.0.1:2379/2380, :22379/22380, :32379/32380 for members
// infra0..2) and member IDs are mapped to the cluster's; expiration times,
// TTLs and the other clock-driven stats fields are compared by presence.
// Set CAIRN_DOCS_RECORD=1 to print each actual answer.

// docMember is how the doc names member i.
func docClientURL(i int) string { return "http://127.0.0.1:" + []string{"2379", "22379", "32379"}[i] }
func docPeerURL(i int) string   { return "http://127.0.0.1:" + []string{"2380", "22380", "32380"}[i] }

// docIDs are the member IDs the doc shows for infra0..2.
var docIDs = []string{"8e9e05c52164694d", "91bc3c398fb3c146", "fd422379fda50e48"}

type docExample struct {
	line     int
	cmd      string
	want     string // expected answer
	wantKind string // json or text
	status   int    // expected HTTP status; 0: not stated
}

// parseDocExamples reads the examples of a Markdown file.
func parseDocExamples(t *testing.T, path string) []docExample {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	type block struct {
		lang   string
		status int
		body   string
		line   int
	}
	var blocks []block
	lines := strings.Split(string(b), "\n")
	for i := 0; i < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "```") {
			continue
		}
		lang := strings.Fields(strings.TrimPrefix(lines[i], "```") + " ")
		start := i
		var body []string
		for i++; i < len(lines) && !strings.HasPrefix(lines[i], "```"); i++ {
			body = append(body, lines[i])
		}
		bl := block{body: strings.Join(body, "\n"), line: start + 1}
		if len(lang) > 0 {
			bl.lang = lang[0]
		}
		if len(lang) > 1 {
			if bl.status, err = strconv.Atoi(lang[1]); err != nil {
				t.Fatalf("%s line %d: %q after the language is not a status code", path, start+1, lang[1])
			}
		}
		blocks = append(blocks, bl)
	}
	var out []docExample
	for i, bl := range blocks {
		if bl.lang == "sh" && strings.HasPrefix(bl.body, "etcdctl ") {
			out = append(out, docExample{line: bl.line, cmd: bl.body})
			continue
		}
		if bl.lang != "sh" || !strings.Contains(bl.body, "curl ") {
			continue
		}
		ex := docExample{line: bl.line, cmd: bl.body}
		if i+1 < len(blocks) && (blocks[i+1].lang == "json" || blocks[i+1].lang == "text") {
			ex.want, ex.wantKind, ex.status = blocks[i+1].body, blocks[i+1].lang, blocks[i+1].status
		}
		out = append(out, ex)
	}
	return out
}

// shellWords splits a command line as a POSIX shell would for the simple
// forms the doc uses: quotes, backslash escapes, line continuations.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && i+1 < len(s) && s[i+1] == '\n':
			i++
		case c == '\\' && i+1 < len(s):
			cur.WriteByte(s[i+1])
			in = true
			i++
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+j])
			in = true
			i += j + 1
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			in = true
		case c == ' ' || c == '\t' || c == '\n':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		case c == '#' && !in:
			for i < len(s) && s[i] != '\n' {
				i++
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if in {
		words = append(words, cur.String())
	}
	return words, nil
}

// curlRequest is what a curl command line asks for.
type curlRequest struct {
	method string
	url    string
	header http.Header
	data   []string
}

func parseCurl(cmd string) (curlRequest, error) {
	words, err := shellWords(cmd)
	if err != nil {
		return curlRequest{}, err
	}
	if len(words) == 0 || words[0] != "curl" {
		return curlRequest{}, fmt.Errorf("not a curl command: %q", cmd)
	}
	r := curlRequest{header: http.Header{}}
	for i := 1; i < len(words); i++ {
		w := words[i]
		next := func() (string, error) {
			if i+1 >= len(words) {
				return "", fmt.Errorf("%s needs a value", w)
			}
			i++
			return words[i], nil
		}
		switch {
		case w == "-X" || w == "--request":
			if r.method, err = next(); err != nil {
				return r, err
			}
		case strings.HasPrefix(w, "-X"):
			r.method = w[2:]
		case w == "-d" || w == "--data":
			v, err := next()
			if err != nil {
				return r, err
			}
			r.data = append(r.data, v)
		case w == "--data-urlencode":
			v, err := next()
			if err != nil {
				return r, err
			}
			name, val, ok := strings.Cut(v, "=")
			if ok {
				v = name + "=" + url.QueryEscape(val)
			} else {
				v = url.QueryEscape(v)
			}
			r.data = append(r.data, v)
		case w == "-H" || w == "--header":
			v, err := next()
			if err != nil {
				return r, err
			}
			k, val, _ := strings.Cut(v, ":")
			r.header.Set(strings.TrimSpace(k), strings.TrimSpace(val))
		case w == "-u" || w == "--user":
			v, err := next()
			if err != nil {
				return r, err
			}
			r.header.Set("Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(v)))
		case w == "-s" || w == "-L" || w == "-N" || w == "-sS" || w == "-fsS":
		case strings.HasPrefix(w, "-"):
			return r, fmt.Errorf("unsupported curl option %s", w)
		default:
			if r.url != "" {
				return r, fmt.Errorf("two URLs: %s and %s", r.url, w)
			}
			r.url = w
		}
	}
	if r.method == "" {
		r.method = "GET"
		if r.data != nil {
			r.method = "POST"
		}
	}
	if r.data != nil && r.header.Get("Content-Type") == "" {
		r.header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r, nil
}

// docMapper translates between the doc's addresses and IDs and the
// cluster's.
type docMapper struct {
	toReal, toDoc *strings.Replacer
	pairs         []string // doc, real
}

func newDocMapper(pairs []string) *docMapper {
	var toReal, toDoc []string
	for i := 0; i < len(pairs); i += 2 {
		toReal = append(toReal, pairs[i], pairs[i+1])
		toDoc = append(toDoc, pairs[i+1], pairs[i])
	}
	return &docMapper{toReal: strings.NewReplacer(toReal...), toDoc: strings.NewReplacer(toDoc...), pairs: pairs}
}

func (m *docMapper) add(doc, real string) *docMapper {
	return newDocMapper(append(append([]string(nil), m.pairs...), doc, real))
}

// volatile fields depend on the clock or on traffic; only their presence
// is compared.
var volatileFields = map[string]bool{
	"expiration": true, "ttl": true, "startTime": true, "uptime": true, "latency": true, "counts": true,
	"recvAppendRequestCnt": true, "sendAppendRequestCnt": true,
}

// normalize prepares a decoded JSON value for comparison: volatile
// fields become "*", member lists are sorted by ID.
func normalize(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, val := range x {
			if volatileFields[k] {
				x[k] = "*"
				continue
			}
			x[k] = normalize(val)
		}
		if ms, ok := x["members"].([]any); ok {
			sort.Slice(ms, func(i, j int) bool {
				a, _ := ms[i].(map[string]any)
				b, _ := ms[j].(map[string]any)
				return fmt.Sprint(a["id"]) < fmt.Sprint(b["id"])
			})
		}
		return x
	case []any:
		for i := range x {
			x[i] = normalize(x[i])
		}
		return x
	}
	return v
}

// decodeAll decodes a sequence of JSON values (a stream watch prints one
// per line), each normalized.
func decodeAll(s string) ([]any, error) { return decodeEach(s, normalize) }

// decodeEach decodes a sequence of JSON values, passing each through norm.
func decodeEach(s string, norm func(any) any) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	var out []any
	for {
		var v any
		err := dec.Decode(&v)
		if err == io.EOF {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		out = append(out, norm(v))
	}
}

func sameAnswer(kind, want, got string) bool {
	if kind == "text" {
		// A list (/v2/machines) is sorted by the cluster's addresses, which
		// are not the doc's.
		w := strings.Split(strings.TrimRight(want, "\n"), ", ")
		g := strings.Split(strings.TrimRight(got, "\n"), ", ")
		sort.Strings(w)
		sort.Strings(g)
		return reflect.DeepEqual(w, g)
	}
	w, err1 := decodeAll(want)
	g, err2 := decodeAll(got)
	return err1 == nil && err2 == nil && reflect.DeepEqual(w, g)
}

type backgroundWatch struct {
	ex     docExample
	status int
	lines  chan string
	cancel context.CancelFunc
	got    []string
}

func (b *backgroundWatch) expectedLines() int {
	n, _ := decodeAll(b.ex.want)
	return len(n)
}

// collect takes what has arrived, waiting up to wait for the rest.
func (b *backgroundWatch) collect(wait time.Duration) bool {
	deadline := time.After(wait)
	for len(b.got) < b.expectedLines() {
		select {
		case l, ok := <-b.lines:
			if !ok {
				return true
			}
			b.got = append(b.got, l)
		case <-deadline:
			return false
		}
	}
	return true
}

func TestV2Docs(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc := filepath.Join(filepath.Dir(file), "..", "..", "docs", "v2-api.md")
	examples := parseDocExamples(t, doc)
	if len(examples) < 20 {
		t.Fatalf("found only %d curl examples in %s", len(examples), doc)
	}
	record := os.Getenv("CAIRN_DOCS_RECORD") != ""

	c := framework.StartCluster(t, 3, framework.Config{Name: "infra"})
	// infra0 leads, as the doc shows.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cli := c.Client(t)
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pairs []string
	ids := map[string]uint64{}
	for _, m := range ml.Members {
		ids[m.Name] = m.ID
	}
	for i, m := range c.Members {
		pairs = append(pairs, docClientURL(i), m.ClientURL(), docPeerURL(i), m.PeerURL(), docIDs[i], strconv.FormatUint(ids[m.Name()], 16))
	}
	mapper := newDocMapper(pairs)
	leader := c.Leader(t)
	if leader != c.Members[0] {
		lcli := leader.Client(t)
		if _, err := lcli.MoveLeader(ctx, ids["infra0"]); err != nil {
			t.Fatalf("move leader to infra0: %v", err)
		}
		poll(t, 30*time.Second, "infra0 to lead", func() error {
			if l := c.Leader(t); l != c.Members[0] {
				return fmt.Errorf("%s leads", l.Name())
			}
			return nil
		})
	}
	// Every member has published its client URL before the members API
	// is shown.
	poll(t, 30*time.Second, "client URLs", func() error {
		r := v2Request(t, "GET", c.Members[0].ClientURL(), "/v2/members", nil)
		if n := strings.Count(r.body, `"clientURLs":["`); n != 3 {
			return fmt.Errorf("%d client URLs: %s", n, r.body)
		}
		return nil
	})

	var pending []*backgroundWatch
	check := func(ex docExample, status int, got string) {
		got = mapper.toDoc.Replace(got)
		if record {
			t.Logf("line %d: %s\n%d %s", ex.line, ex.cmd, status, got)
			return
		}
		if ex.status != 0 && status != ex.status {
			t.Errorf("docs/v2-api.md line %d: %s\n status %d, want %d", ex.line, ex.cmd, status, ex.status)
		}
		if ex.want == "" {
			return
		}
		if !sameAnswer(ex.wantKind, ex.want, got) {
			t.Errorf("docs/v2-api.md line %d: %s\n got  %s\n want %s", ex.line, ex.cmd, got, ex.want)
		}
	}
	for _, ex := range examples {
		if strings.HasPrefix(ex.cmd, "etcdctl ") {
			runDocEtcdctl(t, ex, mapper)
			continue
		}
		cr, err := parseCurl(mapper.toReal.Replace(ex.cmd))
		if err != nil {
			t.Fatalf("docs/v2-api.md line %d: %v", ex.line, err)
		}
		u, err := url.Parse(cr.url)
		if err != nil {
			t.Fatalf("docs/v2-api.md line %d: %v", ex.line, err)
		}
		q := u.Query()
		background := cr.method == "GET" && q.Get("wait") == "true" && q.Get("waitIndex") == ""
		rctx, rcancel := context.WithTimeout(context.Background(), 60*time.Second)
		var body io.Reader
		if cr.data != nil {
			body = strings.NewReader(strings.Join(cr.data, "&"))
		}
		req, err := http.NewRequestWithContext(rctx, cr.method, cr.url, body)
		if err != nil {
			t.Fatalf("docs/v2-api.md line %d: %v", ex.line, err)
		}
		req.Header = cr.header
		resp, err := doDocRequest(t, ex, req, body != nil)
		if err != nil {
			t.Fatalf("docs/v2-api.md line %d: %v", ex.line, err)
		}
		if background {
			bw := &backgroundWatch{ex: ex, status: resp.StatusCode, lines: make(chan string, 16), cancel: rcancel}
			go func() {
				defer close(bw.lines)
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				for {
					l, err := br.ReadString('\n')
					if l != "" {
						bw.lines <- l
					}
					if err != nil {
						return
					}
				}
			}()
			pending = append(pending, bw)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		rcancel()
		if err != nil {
			t.Fatalf("docs/v2-api.md line %d: %v", ex.line, err)
		}
		// A member added by the doc gets an ID of its own; the answer and
		// the later examples show it by the doc's.
		if cr.method == "POST" && strings.HasSuffix(u.Path, "/v2/members") && ex.want != "" {
			var real, docm struct {
				ID string `json:"id"`
			}
			if json.Unmarshal(b, &real) == nil && json.Unmarshal([]byte(ex.want), &docm) == nil && real.ID != "" {
				mapper = mapper.add(docm.ID, real.ID)
			}
		}
		check(ex, resp.StatusCode, string(b))
		for _, bw := range pending {
			bw.collect(100 * time.Millisecond)
		}
	}
	for _, bw := range pending {
		if !bw.collect(10*time.Second) && !record {
			t.Errorf("docs/v2-api.md line %d: the watch printed %d of %d answers", bw.ex.line, len(bw.got), bw.expectedLines())
		}
		bw.cancel()
		check(bw.ex, bw.status, strings.Join(bw.got, ""))
	}
}

// runDocEtcdctl runs each line of an etcdctl block (addresses mapped)
// and fails the test if one fails.
func runDocEtcdctl(t *testing.T, ex docExample, mapper *docMapper) {
	t.Helper()
	for i, line := range strings.Split(strings.TrimSpace(ex.cmd), "\n") {
		words, err := shellWords(mapper.toReal.Replace(line))
		if err != nil || len(words) < 2 || words[0] != "etcdctl" {
			t.Fatalf("docs/v2-api.md line %d: not an etcdctl command: %q (%v)", ex.line+1+i, line, err)
		}
		// The line's own --endpoints comes after the framework's and wins.
		if out, errOut, err := framework.Etcdctl(t, nil, words[1:]...); err != nil {
			t.Fatalf("docs/v2-api.md line %d: %s: %v\n%s%s", ex.line+1+i, line, err, out, errOut)
		}
	}
}

// doDocRequest sends an example's request. Adding a member is retried
// while the cluster answers 500: like etcd 3, it refuses until every voter
// has been connected for a while, which a just-started cluster has not.
func doDocRequest(t *testing.T, ex docExample, req *http.Request, hasBody bool) (*http.Response, error) {
	t.Helper()
	isAdd := req.Method == "POST" && strings.HasSuffix(req.URL.Path, "/v2/members")
	var body []byte
	if hasBody {
		var err error
		if body, err = io.ReadAll(req.Body); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if hasBody {
			req.Body = io.NopCloser(strings.NewReader(string(body)))
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil || !isAdd || resp.StatusCode != http.StatusInternalServerError || time.Now().After(deadline) {
			return resp, err
		}
		resp.Body.Close()
		time.Sleep(100 * time.Millisecond)
	}
}

// TestParseCurl checks the doc test's own command parsing.
func TestParseCurl(t *testing.T) {
	r, err := parseCurl(`curl -s 'http://h:1/v2/keys/a?x=1' -XPUT -d value="Hello world" \
  -d ttl=5 -H 'Content-Type: text/plain'`)
	if err != nil || r.method != "PUT" || r.url != "http://h:1/v2/keys/a?x=1" ||
		strings.Join(r.data, "&") != "value=Hello world&ttl=5" || r.header.Get("Content-Type") != "text/plain" {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = parseCurl(`curl http://h:1/v2/members -H "Content-Type: application/json" -d '{"peerURLs":["http://x:1"]}'`)
	if err != nil || r.method != "POST" || r.data[0] != `{"peerURLs":["http://x:1"]}` {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = parseCurl(`curl -u alice:pw 'http://h:1/v2/keys/?recursive=true'`)
	if err != nil || r.method != "GET" || r.header.Get("Authorization") != "Basic YWxpY2U6cHc=" {
		t.Fatalf("%+v %v", r, err)
	}
	if _, err := parseCurl(`curl -k http://x`); err == nil {
		t.Fatal("unknown option accepted")
	}
}
