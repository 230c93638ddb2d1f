package v2http

import (
	"errors"
	"net/http"
	"net/url"
	"path"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/v2store"
)

var now = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newReq(t testing.TB, method, target, form string) *http.Request {
	t.Helper()
	var body *strings.Reader
	if form != "" {
		body = strings.NewReader(form)
	} else {
		body = strings.NewReader("")
	}
	r, err := http.NewRequest(method, "http://127.0.0.1:2379"+target, body)
	if err != nil {
		t.Fatal(err)
	}
	if form != "" {
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	return r
}

func bptr(b bool) *bool { return &b }

// TestParseKeyRequest checks each parameter and each parse error, with
// etcd's codes and causes.
func TestParseKeyRequest(t *testing.T) {
	for _, tc := range []struct {
		method, target, form string
		want                 pb.Request // Time is filled in
		noValue              bool
		err                  string // error JSON
	}{
		{"GET", "/v2/keys/foo", "", pb.Request{Method: "GET", Path: "/foo"}, false, ""},
		{"GET", "/v2/keys", "", pb.Request{Method: "GET", Path: "/"}, false, ""},
		{"GET", "/v2/keys/", "", pb.Request{Method: "GET", Path: "/"}, false, ""},
		{"GET", "/v2/keys/a/b/", "", pb.Request{Method: "GET", Path: "/a/b"}, false, ""},
		{"GET", "/v2/keys/a?recursive=true&sorted=1&quorum=T&wait=t&waitIndex=7&stream=TRUE", "",
			pb.Request{Method: "GET", Path: "/a", Recursive: true, Sorted: true, Quorum: true, Wait: true, Since: 7, Stream: true}, false, ""},
		{"PUT", "/v2/keys/a", "value=v&dir=false&prevValue=p&prevIndex=3&prevExist=false", pb.Request{Method: "PUT", Path: "/a",
			Val: "v", PrevValue: "p", PrevIndex: 3, PrevExist: bptr(false)}, false, ""},
		{"PUT", "/v2/keys/a?value=q", "value=b", pb.Request{Method: "PUT", Path: "/a", Val: "b"}, false, ""},
		{"PUT", "/v2/keys/a?value=q&value=r", "", pb.Request{Method: "PUT", Path: "/a", Val: "q"}, false, ""},
		{"PUT", "/v2/keys/a", "ttl=5&value=x", pb.Request{Method: "PUT", Path: "/a", Val: "x",
			Expiration: now.Add(5 * time.Second).UnixNano()}, false, ""},
		{"PUT", "/v2/keys/a", "ttl=&prevExist=true&value=x", pb.Request{Method: "PUT", Path: "/a", Val: "x", PrevExist: bptr(true)}, false, ""},
		{"PUT", "/v2/keys/a", "ttl=5&refresh=true&prevExist=true", pb.Request{Method: "PUT", Path: "/a", PrevExist: bptr(true),
			Refresh: bptr(true), Expiration: now.Add(5 * time.Second).UnixNano()}, false, ""},
		{"PUT", "/v2/keys/a", "refresh=false&value=x", pb.Request{Method: "PUT", Path: "/a", Val: "x", Refresh: bptr(false)}, false, ""},
		{"PUT", "/v2/keys/a", "value=x&noValueOnSuccess=true", pb.Request{Method: "PUT", Path: "/a", Val: "x"}, true, ""},
		{"POST", "/v2/keys/q", "value=j&dir=true", pb.Request{Method: "POST", Path: "/q", Val: "j", Dir: true}, false, ""},
		{"DELETE", "/v2/keys/d?dir=true&recursive=true", "", pb.Request{Method: "DELETE", Path: "/d", Dir: true, Recursive: true}, false, ""},
		// A DELETE's form body is not read (net/http parses bodies of
		// POST, PUT and PATCH only), as with etcd.
		{"DELETE", "/v2/keys/d", "prevValue=x", pb.Request{Method: "DELETE", Path: "/d"}, false, ""},

		{"GET", "/v2/keys/a?prevIndex=x", "", pb.Request{}, false, `{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}`},
		{"GET", "/v2/keys/a?prevIndex=-1", "", pb.Request{}, false, `{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}`},
		{"GET", "/v2/keys/a?waitIndex=1.5", "", pb.Request{}, false, `{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"waitIndex\"","index":0}`},
		{"GET", "/v2/keys/a?recursive=yes", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"recursive\"","index":0}`},
		{"GET", "/v2/keys/a?sorted=", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"sorted\"","index":0}`},
		{"GET", "/v2/keys/a?wait=2", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"wait\"","index":0}`},
		{"GET", "/v2/keys/a?dir=on", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"dir\"","index":0}`},
		{"GET", "/v2/keys/a?quorum=x", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"quorum\"","index":0}`},
		{"GET", "/v2/keys/a?stream=x", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"stream\"","index":0}`},
		{"PUT", "/v2/keys/a?wait=true", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"\"wait\" can only be used with GET requests","index":0}`},
		{"HEAD", "/v2/keys/a?wait=true", "", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"\"wait\" can only be used with GET requests","index":0}`},
		{"PUT", "/v2/keys/a", "prevValue=", pb.Request{}, false, `{"errorCode":201,"message":"PrevValue is Required in POST form","cause":"\"prevValue\" cannot be empty","index":0}`},
		{"PUT", "/v2/keys/a", "noValueOnSuccess=x", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for \"noValueOnSuccess\"","index":0}`},
		{"PUT", "/v2/keys/a", "ttl=abc", pb.Request{}, false, `{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}`},
		{"PUT", "/v2/keys/a", "ttl=-1", pb.Request{}, false, `{"errorCode":202,"message":"The given TTL in POST form is not a number","cause":"invalid value for \"ttl\"","index":0}`},
		{"PUT", "/v2/keys/a", "prevExist=maybe", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for prevExist","index":0}`},
		{"PUT", "/v2/keys/a", "refresh=x", pb.Request{}, false, `{"errorCode":209,"message":"Invalid field","cause":"invalid value for refresh","index":0}`},
		{"PUT", "/v2/keys/a", "refresh=true&ttl=5&value=v", pb.Request{}, false, `{"errorCode":211,"message":"Value provided on refresh","cause":"A value was provided on a refresh","index":0}`},
		{"PUT", "/v2/keys/a", "refresh=true", pb.Request{}, false, `{"errorCode":212,"message":"A TTL must be provided on refresh","cause":"No TTL value set","index":0}`},
		{"GET", "/v2/keys/a?x=%zz", "", pb.Request{}, false, `{"errorCode":210,"message":"Invalid POST form","cause":"invalid URL escape \"%zz\"","index":0}`},
		{"GET", "/v2/keys/a?x=1;y=2", "", pb.Request{}, false, `{"errorCode":210,"message":"Invalid POST form","cause":"invalid semicolon separator in query","index":0}`},
		// The first failing check wins: prevIndex is checked before the
		// booleans.
		{"GET", "/v2/keys/a?recursive=x&prevIndex=x", "", pb.Request{}, false, `{"errorCode":203,"message":"The given index in POST form is not a number","cause":"invalid value for \"prevIndex\"","index":0}`},
	} {
		got, noValue, err := ParseKeyRequest(newReq(t, tc.method, tc.target, tc.form), now)
		name := tc.method + " " + tc.target + " " + tc.form
		if tc.err != "" {
			var ve *v2store.Error
			if !errors.As(err, &ve) {
				t.Errorf("%s: err %v, want %s", name, err, tc.err)
			} else if string(ve.JSON()) != tc.err {
				t.Errorf("%s:\n got  %s\n want %s", name, ve.JSON(), tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		tc.want.Time = now.UnixNano()
		if got.String() != tc.want.String() || noValue != tc.noValue {
			t.Errorf("%s:\n got  %v (noValueOnSuccess %v)\n want %v (%v)", name, got.String(), noValue, tc.want.String(), tc.noValue)
		}
	}
}

// FuzzParseKeyRequest: no input panics the parser; every rejected input is
// a v2 form error with index 0; every accepted one names a clean absolute
// path.
func FuzzParseKeyRequest(f *testing.F) {
	for _, s := range [][3]string{
		{"GET", "/v2/keys/foo?recursive=true&wait=true&waitIndex=3", ""},
		{"PUT", "/v2/keys/a/b", "value=1&ttl=5&prevExist=true"},
		{"PUT", "/v2/keys/a", "refresh=true&ttl=1"},
		{"POST", "/v2/keys/q", "value=x&dir=true"},
		{"DELETE", "/v2/keys/a?prevIndex=4&prevValue=x", ""},
		{"GET", "/v2/keys/%2e%2e/x?ttl=99999999999999999999", ""},
		{"HEAD", "/v2/keys/_h?sorted=0", ""},
		{"PUT", "/v2/keys", "ttl=18446744073709551615&value=%ff"},
	} {
		f.Add(s[0], s[1], s[2])
	}
	formCodes := map[int]bool{
		v2store.EcodePrevValueRequired: true, v2store.EcodeTTLNaN: true, v2store.EcodeIndexNaN: true,
		v2store.EcodeInvalidField: true, v2store.EcodeInvalidForm: true, v2store.EcodeRefreshValue: true,
		v2store.EcodeRefreshTTLRequired: true,
	}
	f.Fuzz(func(t *testing.T, method, target, form string) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		u, err := url.ParseRequestURI(target)
		if err != nil || !strings.HasPrefix(u.Path, KeysPrefix) {
			return
		}
		r, err := http.NewRequest(method, "http://127.0.0.1:2379"+target, strings.NewReader(form))
		if err != nil {
			return
		}
		r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req, _, err := ParseKeyRequest(r, now)
		if err != nil {
			var ve *v2store.Error
			if !errors.As(err, &ve) || !formCodes[ve.ErrorCode] || ve.Index != 0 || ve.Message == "" {
				t.Fatalf("%s %q %q: %#v", method, target, form, err)
			}
			return
		}
		if !strings.HasPrefix(req.Path, "/") || path.Clean(req.Path) != req.Path {
			t.Fatalf("%s %q: path %q is not clean", method, target, req.Path)
		}
		if req.Wait && method != "GET" {
			t.Fatalf("%s %q: wait accepted", method, target)
		}
	})
}
