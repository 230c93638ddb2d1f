package v2http

import (
	"net"
	"net/url"
	"slices"
	"testing"
)

// FuzzParsePeerURLs checks the peer URLs of a /v2/members request: any
// input is refused with an error or accepted as sorted URLs that each have
// an allowed scheme, a host:port and no path, one for every input.
func FuzzParsePeerURLs(f *testing.F) {
	for _, s := range [][2]string{
		{"http://10.0.0.1:2380", ""},
		{"https://a:1", "http://b:2"},
		{"unix://x", ""},
		{"unix://x:1", "unixs://y:2"},
		{"http://h:1/path", ""},
		{"ftp://h:1", ""},
		{" http://[::1]:2380 ", "http://%zz"},
		{"", ""},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		in := []string{a}
		if b != "" {
			in = append(in, b)
		}
		out, err := ParsePeerURLs(in)
		if err != nil {
			if err.Error() == "" {
				t.Fatalf("%q: an empty error", in)
			}
			return
		}
		if len(out) != len(in) || !slices.IsSorted(out) {
			t.Fatalf("%q: accepted as %q", in, out)
		}
		for _, s := range out {
			u, err := url.Parse(s)
			if err != nil {
				t.Fatalf("%q: accepted %q, which does not parse: %v", in, s, err)
			}
			if !slices.Contains([]string{"http", "https", "unix", "unixs"}, u.Scheme) || u.Path != "" {
				t.Fatalf("%q: accepted %q", in, s)
			}
			if _, _, err := net.SplitHostPort(u.Host); err != nil {
				t.Fatalf("%q: accepted %q without host:port", in, s)
			}
		}
	})
}
