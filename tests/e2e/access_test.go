package e2e

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestClientPortAccess checks what the client port does before any API
// sees a request, as etcd's does: --host-whitelist refuses plain-HTTP
// requests naming other hosts (DNS rebinding), --cors answers the listed
// origins and preflights, and /v3beta/ is served as /v3/.
func TestClientPortAccess(t *testing.T) {
	m := framework.Start(t, framework.Config{Args: []string{
		"--cors", "http://allowed.example,https://other.example:8443",
		"--host-whitelist", "127.0.0.1,localhost",
	}})
	do := func(method, path, host, origin, body string) (*http.Response, string) {
		t.Helper()
		req, err := http.NewRequest(method, m.ClientURL()+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		if host != "" {
			req.Host = host
		}
		if origin != "" {
			req.Header.Set("Origin", origin)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, string(b)
	}

	// The Host header names a host outside the list: 421, on every path.
	for _, path := range []string{"/health", "/v2/keys/", "/v3/kv/range", "/metrics"} {
		resp, body := do(http.MethodGet, path, "rebind.attacker.example", "", "")
		if resp.StatusCode != http.StatusMisdirectedRequest || !strings.Contains(body, "--host-whitelist") {
			t.Fatalf("GET %s for another host: %d %q, want 421 naming --host-whitelist", path, resp.StatusCode, body)
		}
	}
	if resp, body := do(http.MethodGet, "/health", "localhost:1234", "", ""); resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /health for localhost: %d %q", resp.StatusCode, body)
	}

	// A listed origin gets CORS headers naming it; another gets none.
	resp, _ := do(http.MethodPost, "/v3/kv/range", "", "http://allowed.example", `{"key":"YQ=="}`)
	if got := resp.Header.Get("Access-Control-Allow-Origin"); got != "http://allowed.example" || resp.StatusCode != http.StatusOK {
		t.Fatalf("allowed origin: status %d, Access-Control-Allow-Origin %q", resp.StatusCode, got)
	}
	if got := resp.Header.Get("Access-Control-Allow-Headers"); got != "accept, content-type, authorization" {
		t.Fatalf("Access-Control-Allow-Headers %q", got)
	}
	resp, _ = do(http.MethodPost, "/v3/kv/range", "", "http://evil.example", `{"key":"YQ=="}`)
	if got := resp.Header.Values("Access-Control-Allow-Origin"); len(got) != 0 {
		t.Fatalf("origin outside --cors got Access-Control-Allow-Origin %q", got)
	}

	// A preflight is answered at once, on any path.
	resp, body := do(http.MethodOptions, "/v2/keys/a", "", "https://other.example:8443", "")
	if resp.StatusCode != http.StatusOK || body != "" || resp.Header.Get("Access-Control-Allow-Methods") != "POST, GET, OPTIONS, PUT, DELETE" {
		t.Fatalf("preflight: %d %q %v", resp.StatusCode, body, resp.Header)
	}

	// The gateway's old prefix.
	if resp, body := do(http.MethodPost, "/v3beta/kv/put", "", "", `{"key":"YQ==","value":"MQ=="}`); resp.StatusCode != http.StatusOK {
		t.Fatalf("/v3beta/kv/put: %d %q", resp.StatusCode, body)
	}
	resp, body = do(http.MethodPost, "/v3/kv/range", "", "", `{"key":"YQ=="}`)
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `"value":"MQ=="`) {
		t.Fatalf("range after a /v3beta put: %d %q", resp.StatusCode, body)
	}
}
