package e2e

import (
	"context"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestV2AndV3KeyspacesAreSeparate checks that, as in etcd, the v2 keys API
// and the v3 API keep two keyspaces: a v2 write is invisible to v3 and
// moves no v3 revision, a v3 write is invisible to v2 and moves no v2
// index, and both stay that way across a kill -9 and restart.
func TestV2AndV3KeyspacesAreSeparate(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	var v2Index uint64 // after the one v2 write
	check := func(when string) {
		t.Helper()
		// v3 sees its own key and nothing of v2's.
		all, err := cli.Get(ctx, "", clientv3.WithFromKey())
		if err != nil {
			t.Fatal(err)
		}
		if len(all.Kvs) != 1 || string(all.Kvs[0].Key) != "/v3only" || string(all.Kvs[0].Value) != "three" {
			t.Fatalf("%s: v3 keyspace holds %v, want only /v3only", when, all.Kvs)
		}
		if all.Header.Revision != 2 {
			t.Fatalf("%s: v3 revision %d, want 2 (one v3 write)", when, all.Header.Revision)
		}
		// v2 sees its own key and nothing of v3's.
		if r := v2Request(t, "GET", m.ClientURL(), "/v2/keys/v3only", nil); r.status != 404 {
			t.Fatalf("%s: v2 GET of a v3 key: %d %s", when, r.status, r.body)
		}
		r := v2Request(t, "GET", m.ClientURL(), "/v2/keys/v2only", nil)
		if r.status != 200 || !strings.Contains(r.body, `"value":"two"`) {
			t.Fatalf("%s: v2 GET of its key: %d %s", when, r.status, r.body)
		}
		root := v2Request(t, "GET", m.ClientURL(), "/v2/keys/?recursive=true", nil)
		if strings.Contains(root.body, "v3only") {
			t.Fatalf("%s: v2 root lists a v3 key: %s", when, root.body)
		}
		if idx := headerUint(t, r.header, "X-Etcd-Index"); idx != v2Index {
			t.Fatalf("%s: X-Etcd-Index %d, want %d", when, idx, v2Index)
		}
	}

	r := v2Request(t, "PUT", m.ClientURL(), "/v2/keys/v2only", form("value", "two"))
	if r.status != 201 {
		t.Fatalf("v2 PUT: %d %s", r.status, r.body)
	}
	v2Index = headerUint(t, r.header, "X-Etcd-Index")
	if _, err := cli.Put(ctx, "/v3only", "three"); err != nil {
		t.Fatal(err)
	}
	check("before a restart")
	m.Kill(t)
	m.Restart(t)
	cli = m.Client(t)
	check("after kill -9 and a restart")
}
