package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

const v2KeyNoAuth = `{"errorCode":110,"message":"The request requires user authentication","cause":"Insufficient credentials","index":0}` + "\n"

// TestAuthV2 checks the v2 API under auth: the users and permissions of
// the v3 API, HTTP basic auth, etcd's 401 answers, and that no v2 answer
// holds a key outside the user's permissions (directory listings,
// recursive reads and watches, in-order creates, the previous node of a
// write). Membership changes need root. Raw HTTP and etcd's v2 client.
func TestAuthV2(t *testing.T) {
	m := framework.Start(t, framework.Config{Security: rootSecurity})
	base := m.ClientURL()
	root := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// v2 data, written before auth is on.
	for _, kv := range [][2]string{{"/a/1", "one"}, {"/a/d/x", "x"}, {"/p/mine", "m"}, {"/p/theirs", "secret"}, {"/b", "b"}, {"/wo", "secret"}} {
		if r := v2As(t, "", "", "PUT", base, "/v2/keys"+kv[0], form("value", kv[1])); r.status/100 != 2 {
			t.Fatalf("put %s: %d %s", kv[0], r.status, r.body)
		}
	}
	setupAuth(t, root)
	// alice may also read the keys /p and /p/mine (not the whole
	// directory /p) and write, not read, the key /wo.
	if _, err := root.RoleAdd(ctx, "r-alice-v2"); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		key string
		typ clientv3.PermissionType
	}{{"/p", clientv3.PermissionType(clientv3.PermRead)}, {"/p/mine", clientv3.PermissionType(clientv3.PermRead)}, {"/wo", clientv3.PermissionType(clientv3.PermWrite)}} {
		if _, err := root.RoleGrantPermission(ctx, "r-alice-v2", p.key, "", p.typ); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := root.UserGrantRole(ctx, "alice", "r-alice-v2"); err != nil {
		t.Fatal(err)
	}
	ml, err := root.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatUint(ml.Members[0].ID, 16)
	peerURLs := ml.Members[0].PeerURLs

	// Anonymous requests: 401 with etcd's body and a Basic challenge.
	for _, r := range []struct{ method, target string }{
		{"GET", "/v2/keys/a/1"},
		{"GET", "/v2/keys/?recursive=true"},
		{"HEAD", "/v2/keys/b"},
		{"PUT", "/v2/keys/b?value=anon"},
		{"POST", "/v2/keys/a?value=anon"},
		{"DELETE", "/v2/keys/b"},
		{"GET", "/v2/keys/b?wait=true"},
		{"GET", "/v2/keys/b?quorum=true"},
	} {
		got := v2As(t, "", "", r.method, base, r.target, nil)
		if got.status != http.StatusUnauthorized || (r.method != "HEAD" && got.body != v2KeyNoAuth) ||
			got.header.Get("WWW-Authenticate") != `Basic realm="etcd"` || got.header.Get("X-Etcd-Index") != "0" {
			t.Errorf("anonymous %s %s: %d %v %q", r.method, r.target, got.status, got.header, got.body)
		}
	}
	if got := v2As(t, "alice", "wrong", "GET", base, "/v2/keys/a/1", nil); got.status != 401 || got.body != v2KeyNoAuth {
		t.Errorf("wrong password: %d %s", got.status, got.body)
	}
	if got := v2As(t, "nobody", "x", "GET", base, "/v2/keys/a/1", nil); got.status != 401 {
		t.Errorf("unknown user: %d %s", got.status, got.body)
	}
	// Nothing anonymous changed anything.
	if got := v2As(t, "root", "rootpw", "GET", base, "/v2/keys/b", nil); got.status != 200 || !strings.Contains(got.body, `"value":"b"`) {
		t.Errorf("/b after anonymous writes: %d %s", got.status, got.body)
	}
	if got := v2As(t, "root", "rootpw", "GET", base, "/v2/keys/a?recursive=true", nil); got.status != 200 || strings.Contains(got.body, "anon") {
		t.Errorf("/a after an anonymous in-order create: %d %s", got.status, got.body)
	}

	// Membership: anyone may list, only root may change.
	if got := v2As(t, "", "", "GET", base, "/v2/members", nil); got.status != 200 || !strings.Contains(got.body, id) {
		t.Errorf("anonymous member list: %d %s", got.status, got.body)
	}
	moved := `{"peerURLs":["http://127.0.0.1:1"]}`
	same, _ := json.Marshal(map[string][]string{"peerURLs": peerURLs})
	const membersNoAuth = `{"message":"Insufficient credentials"}`
	for _, who := range [][2]string{{"", ""}, {"alice", "alicepw"}, {"root", "wrong"}} {
		for _, r := range []struct{ method, target, body string }{
			{"PUT", "/v2/members/" + id, moved},
			{"POST", "/v2/members", `{"peerURLs":["http://127.0.0.1:2"]}`},
			{"DELETE", "/v2/members/" + id, ""},
		} {
			got := v2JSON(t, who[0], who[1], r.method, base+r.target, r.body)
			if got.status != http.StatusUnauthorized || got.body != membersNoAuth || got.header.Get("WWW-Authenticate") != `Basic realm="etcd"` {
				t.Errorf("%q: %s %s: %d %q", who[0], r.method, r.target, got.status, got.body)
			}
		}
	}
	if ml, err := root.MemberList(ctx); err != nil || len(ml.Members) != 1 || strings.Join(ml.Members[0].PeerURLs, ",") != strings.Join(peerURLs, ",") {
		t.Fatalf("members after refused changes: %+v %v", ml, err)
	}
	if got := v2JSON(t, "root", "rootpw", "PUT", base+"/v2/members/"+id, string(same)); got.status != http.StatusNoContent {
		t.Errorf("root member update: %d %s", got.status, got.body)
	}

	// alice's reads: her keys, never a key she may not read.
	for _, r := range []struct {
		target string
		status int
	}{
		{"/v2/keys/a/1", 200},
		{"/v2/keys/a/d", 200},
		{"/v2/keys/a/d?recursive=true", 200},
		{"/v2/keys/a/1?quorum=true", 200},
		{"/v2/keys/p/mine", 200},
		{"/v2/keys/b", 401},
		{"/v2/keys/p/theirs", 401},
		{"/v2/keys/p", 401},                           // lists /p/theirs
		{"/v2/keys/p?recursive=true", 401},            // the same, deeper
		{"/v2/keys/?recursive=true&sorted=true", 401}, // everything
		{"/v2/keys/", 401},
		{"/v2/keys/a", 200}, // a directory: her prefix /a/ covers what it shows
		{"/v2/keys/wo", 401},
	} {
		got := v2As(t, "alice", "alicepw", "GET", base, r.target, nil)
		if got.status != r.status {
			t.Errorf("alice GET %s: %d %s, want %d", r.target, got.status, got.body, r.status)
		}
		if strings.Contains(got.body, "secret") || strings.Contains(got.body, `"value":"b"`) {
			t.Errorf("alice GET %s returned a key she may not read: %s", r.target, got.body)
		}
	}
	// Writes.
	if got := v2As(t, "alice", "alicepw", "PUT", base, "/v2/keys/a/new", form("value", "n")); got.status != 201 {
		t.Errorf("alice put /a/new: %d %s", got.status, got.body)
	}
	if got := v2As(t, "alice", "alicepw", "POST", base, "/v2/keys/a/q", form("value", "job")); got.status != 201 || !strings.Contains(got.body, `"key":"/a/q/`) {
		t.Errorf("alice in-order create in /a/q: %d %s", got.status, got.body)
	}
	for _, r := range []struct{ method, target string }{
		{"PUT", "/v2/keys/b"},
		{"PUT", "/v2/keys/p/mine"},  // read-only
		{"POST", "/v2/keys/p/mine"}, // creates /p/mine/<index>
		{"DELETE", "/v2/keys/a?recursive=true"},
		{"PUT", "/v2/keys/wo?prevValue=secret"}, // a compare reads
	} {
		if got := v2As(t, "alice", "alicepw", r.method, base, r.target, form("value", "x")); got.status != 401 || got.body != v2KeyNoAuth {
			t.Errorf("alice %s %s: %d %s", r.method, r.target, got.status, got.body)
		}
	}
	// A write-only key: the write succeeds, the old value is not shown.
	if got := v2As(t, "alice", "alicepw", "PUT", base, "/v2/keys/wo", form("value", "x")); got.status != 200 || strings.Contains(got.body, "secret") || !strings.Contains(got.body, `"prevNode":{"key":"/wo","modifiedIndex"`) {
		t.Errorf("alice put on her write-only key: %d %s", got.status, got.body)
	}

	// Watches: refused at once on a key or subtree she may not read;
	// delivered on her own.
	for _, target := range []string{"/v2/keys/b?wait=true", "/v2/keys/p?wait=true&recursive=true", "/v2/keys/?wait=true&recursive=true", "/v2/keys/p/theirs?wait=true&waitIndex=1"} {
		if got := v2As(t, "alice", "alicepw", "GET", base, target, nil); got.status != 401 || got.body != v2KeyNoAuth {
			t.Errorf("alice watch %s: %d %s", target, got.status, got.body)
		}
	}

	// etcd's v2 client, with basic auth.
	newV2 := func(user, password string) clientv2.KeysAPI {
		c, err := clientv2.New(clientv2.Config{Endpoints: []string{base}, Username: user, Password: password, HeaderTimeoutPerRequest: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return clientv2.NewKeysAPI(c)
	}
	kapi := newV2("alice", "alicepw")
	if resp, err := kapi.Get(ctx, "/a/1", nil); err != nil || resp.Node.Value != "one" {
		t.Errorf("v2 client: alice get /a/1: %+v %v", resp, err)
	}
	var cerr clientv2.Error
	for _, k := range []string{"/b", "/p"} {
		if _, err := kapi.Get(ctx, k, nil); !errors.As(err, &cerr) || cerr.Code != 110 || cerr.Message != "The request requires user authentication" {
			t.Errorf("v2 client: alice get %s: %v", k, err)
		}
	}
	if _, err := newV2("", "").Get(ctx, "/a/1", nil); !errors.As(err, &cerr) || cerr.Code != 110 {
		t.Errorf("v2 client without a user: %v", err)
	}
	if _, err := kapi.Watcher("/b", nil).Next(ctx); !errors.As(err, &cerr) || cerr.Code != 110 {
		t.Errorf("v2 client: alice watches /b: %v", err)
	}
	wctx, wcancel := context.WithTimeout(ctx, 10*time.Second)
	defer wcancel()
	events := make(chan *clientv2.Response, 1)
	errc := make(chan error, 1)
	go func() {
		// Her directory, recursively: her prefix /a/ is enough.
		r, err := kapi.Watcher("/a", &clientv2.WatcherOptions{Recursive: true}).Next(wctx)
		if err != nil {
			errc <- err
			return
		}
		events <- r
	}()
	for i := 0; ; i++ {
		if _, err := newV2("root", "rootpw").Set(ctx, "/a/1", "late", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-events:
			if r.Node.Key != "/a/1" || r.Node.Value != "late" {
				t.Errorf("v2 client: alice's watch event %+v", r.Node)
			}
		case err := <-errc:
			t.Fatalf("v2 client: alice's watch: %v", err)
		case <-time.After(200 * time.Millisecond):
			if i < 40 {
				continue
			}
			t.Fatal("v2 client: alice's watch saw nothing")
		}
		break
	}
	mc, err := clientv2.New(clientv2.Config{Endpoints: []string{base}, Username: "alice", Password: "alicepw"})
	if err != nil {
		t.Fatal(err)
	}
	if err := clientv2.NewMembersAPI(mc).Update(ctx, id, []string{"http://127.0.0.1:1"}); err == nil {
		t.Errorf("v2 client: alice updated a member")
	}

	// A revoked permission holds at once for basic auth, which has no
	// token to expire.
	if _, err := root.RoleRevokePermission(ctx, "r-alice", "/a/", clientv3.GetPrefixRangeEnd("/a/")); err != nil {
		t.Fatal(err)
	}
	if got := v2As(t, "alice", "alicepw", "GET", base, "/v2/keys/a/1", nil); got.status != 401 {
		t.Errorf("alice reads /a/1 after the revoke: %d %s", got.status, got.body)
	}
	// With auth off, anyone may do anything again.
	if _, err := root.AuthDisable(ctx); err != nil {
		t.Fatal(err)
	}
	if got := v2As(t, "", "", "GET", base, "/v2/keys/p/theirs", nil); got.status != 200 {
		t.Errorf("anonymous read with auth off: %d %s", got.status, got.body)
	}
}

// v2JSON sends a members request with a JSON body.
func v2JSON(t *testing.T, user, password, method, target, body string) v2Response {
	t.Helper()
	return v2Send(t, user, password, method, target, "application/json", body)
}
