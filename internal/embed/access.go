package embed

import (
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
)

// access is what etcd does to every HTTP request on a client port before
// it reaches an API:
//
//   - /v3beta/... is served as /v3/..., for clients of the gateway's older
//     prefix;
//   - on a plain-HTTP port, a request whose Host header names a host outside
//     --host-whitelist is refused with 421 Misdirected Request, so that a
//     web page cannot reach the member through DNS rebinding;
//   - responses carry CORS headers for the origins in --cors, and a CORS
//     preflight (OPTIONS) is answered at once with 200.
type access struct {
	next  http.Handler
	cors  []string // allowed origins; empty or "*" allows every origin
	hosts []string // allowed Host names; empty or "*" allows every host
}

func allowsAll(list []string) bool { return len(list) == 0 || slices.Contains(list, "*") }

func (a *access) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if rest, ok := strings.CutPrefix(r.URL.Path, "/v3beta/"); ok {
		r.URL.Path = "/v3/" + rest
		r.URL.RawPath = ""
	}
	if r.TLS == nil && !allowsAll(a.hosts) {
		host, _, err := net.SplitHostPort(r.Host)
		if err != nil {
			host = r.Host
		}
		if !slices.Contains(a.hosts, host) {
			http.Error(w, fmt.Sprintf("cairn refuses requests for host %q on a plain-HTTP client port: "+
				"it is not in --host-whitelist (this guards against DNS rebinding); "+
				"add the host to --host-whitelist, or serve clients over https", host), http.StatusMisdirectedRequest)
			return
		}
	}
	if allowsAll(a.cors) {
		addCORSHeaders(w, "*")
	} else if origin := r.Header.Get("Origin"); origin != "" && slices.Contains(a.cors, origin) {
		addCORSHeaders(w, origin)
	}
	if r.Method == http.MethodOptions {
		w.WriteHeader(http.StatusOK)
		return
	}
	a.next.ServeHTTP(w, r)
}

func addCORSHeaders(w http.ResponseWriter, origin string) {
	h := w.Header()
	h.Add("Access-Control-Allow-Methods", "POST, GET, OPTIONS, PUT, DELETE")
	h.Add("Access-Control-Allow-Origin", origin)
	h.Add("Access-Control-Allow-Headers", "accept, content-type, authorization")
}
