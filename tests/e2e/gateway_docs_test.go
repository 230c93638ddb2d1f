package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestGatewayDocs runs every curl example of docs/v3-gateway.md, in order,
// against a fresh member, and compares each answer with the JSON block
// after it (as values; the header's cluster and member IDs and raft term
// are compared by presence, and the doc's TOKEN stands for the last token
// an example was given). A watch (/v3/watch) runs in the background while
// the examples after it run, as in a second terminal. Set
// CAIRN_DOCS_RECORD=1 to print each actual answer.
func TestGatewayDocs(t *testing.T) {
	_, file, _, _ := runtime.Caller(0)
	doc := filepath.Join(filepath.Dir(file), "..", "..", "docs", "v3-gateway.md")
	examples := parseDocExamples(t, doc)
	if len(examples) < 15 {
		t.Fatalf("found only %d curl examples in %s", len(examples), doc)
	}
	record := os.Getenv("CAIRN_DOCS_RECORD") != ""
	m := framework.Start(t, framework.Config{Name: "default"})
	mapper := newDocMapper([]string{"http://127.0.0.1:2379", m.ClientURL()})

	check := func(ex docExample, got string) {
		t.Helper()
		if record {
			t.Logf("line %d: %s\n%s", ex.line, ex.cmd, got)
			return
		}
		w, err1 := decodeGateway(ex.want)
		g, err2 := decodeGateway(got)
		if err1 != nil || err2 != nil || !reflect.DeepEqual(w, g) {
			t.Errorf("docs/v3-gateway.md line %d: %s\n got  %s\n want %s", ex.line, ex.cmd, got, ex.want)
		}
	}
	type watch struct {
		ex     docExample
		lines  chan string
		cancel context.CancelFunc
	}
	var watches []watch
	token := ""
	for _, ex := range examples {
		cr, err := parseCurl(mapper.toReal.Replace(strings.ReplaceAll(ex.cmd, "Authorization: TOKEN", "Authorization: "+token)))
		if err != nil {
			t.Fatalf("docs/v3-gateway.md line %d: %v", ex.line, err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		req, err := http.NewRequestWithContext(ctx, cr.method, cr.url, strings.NewReader(strings.Join(cr.data, "&")))
		if err != nil {
			t.Fatalf("docs/v3-gateway.md line %d: %v", ex.line, err)
		}
		req.Header = cr.header
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("docs/v3-gateway.md line %d: %v", ex.line, err)
		}
		if strings.HasSuffix(req.URL.Path, "/v3/watch") {
			w := watch{ex: ex, lines: make(chan string, 16), cancel: cancel}
			go func() {
				defer close(w.lines)
				defer resp.Body.Close()
				br := bufio.NewReader(resp.Body)
				for {
					l, err := br.ReadString('\n')
					if strings.TrimSpace(l) != "" {
						w.lines <- l
					}
					if err != nil {
						return
					}
				}
			}()
			// The watch is in place once its created response is out.
			select {
			case l := <-w.lines:
				w.lines <- l
			case <-time.After(30 * time.Second):
				t.Fatalf("docs/v3-gateway.md line %d: no created response", ex.line)
			}
			watches = append(watches, w)
			continue
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		cancel()
		if err != nil {
			t.Fatalf("docs/v3-gateway.md line %d: %v", ex.line, err)
		}
		var auth struct {
			Token string `json:"token"`
		}
		if json.Unmarshal(b, &auth) == nil && auth.Token != "" {
			token = auth.Token
		}
		check(ex, mapper.toDoc.Replace(string(b)))
	}
	for _, w := range watches {
		want, _ := decodeGateway(w.ex.want)
		var got []string
		deadline := time.After(30 * time.Second)
	collect:
		for len(got) < max(len(want), 1) {
			select {
			case l, ok := <-w.lines:
				if !ok {
					break collect
				}
				got = append(got, l)
			case <-deadline:
				break collect
			}
		}
		w.cancel()
		check(w.ex, strings.Join(got, ""))
	}
}

// decodeGateway decodes a sequence of JSON documents, with the fields that
// differ between members (the header's cluster_id, member_id and
// raft_term, a member's ID and URLs, a token, a TTL) replaced by "*".
func decodeGateway(s string) ([]any, error) { return decodeEach(s, blankGateway) }

func blankGateway(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, f := range x {
			switch k {
			case "cluster_id", "member_id", "raft_term", "ID", "peerURLs", "token", "TTL":
				x[k] = "*"
			default:
				x[k] = blankGateway(f)
			}
		}
	case []any:
		for i := range x {
			x[i] = blankGateway(x[i])
		}
	}
	return v
}
