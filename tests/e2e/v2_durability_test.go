package e2e

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestV2KillRestart: the v2 tree, its index and its event history survive
// kill -9 and a restart, and a TTL that ran out while the member was down
// expires after it comes back.
func TestV2KillRestart(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	base := m.ClientURL()
	for _, w := range []struct {
		method, target string
		form           []string
	}{
		{"PUT", "/v2/keys/a/b", []string{"value", "1"}},
		{"PUT", "/v2/keys/a/_hidden", []string{"value", "h"}},
		{"PUT", "/v2/keys/d", []string{"dir", "true"}},
		{"POST", "/v2/keys/queue", []string{"value", "j1"}},
		{"POST", "/v2/keys/queue", []string{"value", "j2"}},
		{"PUT", "/v2/keys/a/b", []string{"value", "2", "prevValue", "1"}},
		{"PUT", "/v2/keys/long", []string{"value", "l", "ttl", "3600"}},
		{"PUT", "/v2/keys/short", []string{"value", "s", "ttl", "2"}},
		{"DELETE", "/v2/keys/queue/00000000000000000004", nil},
		{"PUT", "/v2/keys/bin", []string{"value", "\xff\x00é"}},
	} {
		if r := v2Request(t, w.method, base, w.target, form(w.form...)); r.status >= 300 {
			t.Fatalf("%s %s: %d %s", w.method, w.target, r.status, r.body)
		}
	}
	before := v2Request(t, "GET", base, "/v2/keys/?recursive=true&sorted=true", nil)
	hidden := v2Request(t, "GET", base, "/v2/keys/a/_hidden", nil)
	history := v2Request(t, "GET", base, "/v2/keys/a?wait=true&recursive=true&waitIndex=2", nil)
	if before.header.Get("X-Etcd-Index") != "10" {
		t.Fatalf("index %s before the kill", before.header.Get("X-Etcd-Index"))
	}

	m.Kill(t)
	m.Restart(t)

	after := v2Request(t, "GET", base, "/v2/keys/?recursive=true&sorted=true&quorum=true", nil)
	// /short may already have expired; compare the rest.
	want := maskTimes(before.body)
	got := maskTimes(after.body)
	if got != want && got != withoutShort(want) {
		t.Fatalf("tree after restart:\n got  %s want %s", got, want)
	}
	if r := v2Request(t, "GET", base, "/v2/keys/a/_hidden", nil); r.body != hidden.body {
		t.Fatalf("hidden key after restart: %s, want %s", r.body, hidden.body)
	}
	if r := v2Request(t, "GET", base, "/v2/keys/a?wait=true&recursive=true&waitIndex=2", nil); r.body != history.body {
		t.Fatalf("history after restart:\n got  %s want %s", r.body, history.body)
	}

	// The short TTL ran out; the new leader's SYNC expires it.
	r := v2Request(t, "GET", base, "/v2/keys/short?wait=true&waitIndex=11", nil)
	wantExpire := `{"action":"expire","node":{"key":"/short","modifiedIndex":11,"createdIndex":8},"prevNode":{"key":"/short","value":"s","expiration":"E","modifiedIndex":8,"createdIndex":8}}` + "\n"
	if maskTimes(r.body) != wantExpire {
		t.Fatalf("expire after restart: %s", r.body)
	}
	// The next write continues the index.
	r = v2Request(t, "PUT", base, "/v2/keys/next", form("value", "n"))
	if r.header.Get("X-Etcd-Index") != "12" {
		t.Fatalf("first write after restart: index %s, %s", r.header.Get("X-Etcd-Index"), r.body)
	}
	// The long TTL still counts down from its original expiration.
	r = v2Request(t, "GET", base, "/v2/keys/long", nil)
	ttl, err := strconv.Atoi(strings.TrimPrefix(ttlRE.FindString(r.body), `"ttl":`))
	if err != nil || ttl > 3600 || ttl < 3500 {
		t.Fatalf("long TTL after restart: %s", r.body)
	}
}

// withoutShort removes the /short key from a masked sorted root listing.
func withoutShort(s string) string {
	entry := `{"key":"/short","value":"s","expiration":"E","ttl":T,"modifiedIndex":8,"createdIndex":8},`
	out := ""
	for i := 0; i < len(s); {
		if len(s)-i >= len(entry) && s[i:i+len(entry)] == entry {
			i += len(entry)
			continue
		}
		out += string(s[i])
		i++
	}
	return out
}

// TestV2SnapshotCatchUp: a follower that fell behind the leader's log gets
// a snapshot, which carries the v2 tree; it then serves it and its
// watchers see new writes.
func TestV2SnapshotCatchUp(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{Args: []string{"--snapshot-count", "20", "--snapshot-catchup-entries", "10"}})
	leader := c.Leader(t)
	lagging := c.FollowerOf(leader)
	lagging.Stop(t)
	for i := 0; i < 100; i++ {
		if r := v2Request(t, "PUT", leader.ClientURL(), "/v2/keys/snap/"+strconv.Itoa(i), form("value", fmt.Sprint(i))); r.status != 201 {
			t.Fatalf("put %d: %d %s", i, r.status, r.body)
		}
	}
	want := v2Request(t, "GET", leader.ClientURL(), "/v2/keys/snap?recursive=true&sorted=true", nil).body
	lagging.Restart(t)
	poll(t, 30*time.Second, "the restarted follower to hold the tree", func() error {
		r := v2Request(t, "GET", lagging.ClientURL(), "/v2/keys/snap?recursive=true&sorted=true", nil)
		if r.body != want {
			return fmt.Errorf("follower has %.200s", r.body)
		}
		return nil
	})
	if !strings.Contains(lagging.Logs(), "installed a snapshot from the leader") {
		t.Fatal("the follower caught up without a snapshot; the test needs more writes")
	}
	if r := v2Request(t, "GET", lagging.ClientURL(), "/v2/keys/snap/99?wait=true&waitIndex=100", nil); r.status != 200 {
		t.Fatalf("history on the follower: %d %s", r.status, r.body)
	}
	_, br := openWatch(t, lagging.ClientURL(), "/v2/keys/snap?wait=true&recursive=true")
	v2Request(t, "PUT", leader.ClientURL(), "/v2/keys/snap/new", form("value", "n"))
	if got := readLine(t, br, 10*time.Second); got != `{"action":"set","node":{"key":"/snap/new","value":"n","modifiedIndex":101,"createdIndex":101}}`+"\n" {
		t.Fatalf("follower watch after the snapshot: %s", got)
	}
}
