package e2e

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// v2Response is one answer of the v2 HTTP API.
type v2Response struct {
	status int
	header http.Header
	body   string
}

// v2Request sends method to base+target with form as a urlencoded body
// (nil: no body) and returns the whole answer.
func v2Request(t testing.TB, method, base, target string, form url.Values) v2Response {
	t.Helper()
	return v2As(t, "", "", method, base, target, form)
}

// v2As sends a v2 request as user (none if ""), with form (if not nil)
// as a urlencoded body.
func v2As(t testing.TB, user, password, method, base, target string, form url.Values) v2Response {
	t.Helper()
	if form == nil {
		return v2Send(t, user, password, method, base+target, "", "")
	}
	return v2Send(t, user, password, method, base+target, "application/x-www-form-urlencoded", form.Encode())
}

// v2Send sends method to url as user (none if ""), with body of
// contentType (none if ""), and returns the whole answer.
func v2Send(t testing.TB, user, password, method, url, contentType, body string) v2Response {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var rd io.Reader
	if contentType != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("%s %s: reading body: %v", method, url, err)
	}
	return v2Response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

var (
	expirationRE = regexp.MustCompile(`"expiration":"[^"]*"`)
	ttlRE        = regexp.MustCompile(`"ttl":-?\d+`)
)

// maskTimes replaces expiration times and TTLs, which depend on the
// clock, with E and T.
func maskTimes(s string) string {
	s = expirationRE.ReplaceAllString(s, `"expiration":"E"`)
	return ttlRE.ReplaceAllString(s, `"ttl":T`)
}

func headerUint(t testing.TB, h http.Header, name string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(h.Get(name), 10, 64)
	if err != nil {
		t.Fatalf("header %s = %q: %v", name, h.Get(name), err)
	}
	return v
}

// form builds url.Values from name, value pairs.
func form(kv ...string) url.Values {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		v.Add(kv[i], kv[i+1])
	}
	return v
}
