package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// jsonRequest sends a JSON body with the given Content-Type.
func jsonRequest(t *testing.T, method, url, contentType, body string) v2Response {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return v2Response{status: resp.StatusCode, header: resp.Header, body: string(b)}
}

// TestV2Cluster runs the v2 API on a 3-member cluster: a watch served by a
// follower, writes through a follower, the members API with every status
// etcd answers, machines and stats, and error 300 without a leader.
func TestV2Cluster(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{})
	leader := c.Leader(t)
	var followers []*framework.Member
	for _, m := range c.Members {
		if m != leader {
			followers = append(followers, m)
		}
	}
	f := followers[0].ClientURL()

	// Any member serves watches: a follower's watch sees a write made
	// through the leader.
	_, br := openWatch(t, f, "/v2/keys/fw?wait=true")
	if r := v2Request(t, "PUT", leader.ClientURL(), "/v2/keys/fw", form("value", "from-leader")); r.status != 201 {
		t.Fatalf("put via leader: %d %s", r.status, r.body)
	}
	want := `{"action":"set","node":{"key":"/fw","value":"from-leader","modifiedIndex":1,"createdIndex":1}}` + "\n"
	if got := readLine(t, br, 10*time.Second); got != want {
		t.Fatalf("follower watch:\n got  %s want %s", got, want)
	}
	// Writes through a follower go through raft too, and every member
	// serves the result (quorum reads after a ReadIndex).
	if r := v2Request(t, "PUT", f, "/v2/keys/fw", form("value", "from-follower")); r.status != 200 {
		t.Fatalf("put via follower: %d %s", r.status, r.body)
	}
	for _, m := range c.Members {
		r := v2Request(t, "GET", m.ClientURL(), "/v2/keys/fw?quorum=true", nil)
		want := `{"action":"get","node":{"key":"/fw","value":"from-follower","modifiedIndex":2,"createdIndex":2}}` + "\n"
		if r.body != want {
			t.Fatalf("quorum get on %s: %s", m.Name(), r.body)
		}
	}

	// /v2/members lists everyone, by ID, as clientv3 sees them.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ml, err := c.Client(t).MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clusterID := strconv.FormatUint(ml.Header.ClusterId, 16)
	var wantMembers []string
	sort.Slice(ml.Members, func(i, j int) bool { return ml.Members[i].ID < ml.Members[j].ID })
	var leaderJSON string
	for _, m := range ml.Members {
		j := fmt.Sprintf(`{"id":"%x","name":%q,"peerURLs":["%s"],"clientURLs":["%s"]}`, m.ID, m.Name, m.PeerURLs[0], m.ClientURLs[0])
		wantMembers = append(wantMembers, j)
		if m.Name == leader.Name() {
			leaderJSON = j
		}
	}
	r := v2Request(t, "GET", f, "/v2/members", nil)
	if want := `{"members":[` + strings.Join(wantMembers, ",") + "]}\n"; r.status != 200 || r.body != want {
		t.Fatalf("GET /v2/members: %d\n got  %s want %s", r.status, r.body, want)
	}
	if r.header.Get("X-Etcd-Cluster-Id") != clusterID || r.header.Get("Content-Type") != "application/json" {
		t.Fatalf("GET /v2/members headers %v", r.header)
	}
	if r := v2Request(t, "GET", f, "/v2/members/leader", nil); r.status != 200 || r.body != leaderJSON+"\n" {
		t.Fatalf("GET /v2/members/leader: %d %s, want %s", r.status, r.body, leaderJSON)
	}
	if r := v2Request(t, "GET", f, "/v2/members/foo", nil); r.status != 404 || r.body != `{"message":"Not found"}` {
		t.Fatalf("GET /v2/members/foo: %d %s", r.status, r.body)
	}
	eps := []string{c.Members[0].ClientURL(), c.Members[1].ClientURL(), c.Members[2].ClientURL()}
	sort.Strings(eps)
	if r := v2Request(t, "GET", f, "/v2/machines", nil); r.status != 200 || r.body != strings.Join(eps, ", ") {
		t.Fatalf("GET /v2/machines: %d %q", r.status, r.body)
	}

	// Add, update and remove a member.
	mu := f + "/v2/members"
	peer := framework.FreeURL(t)
	// As etcd 3 with its strict reconfiguration check, the cluster refuses
	// to add a member (500) until every voter has been connected for a
	// while.
	poll(t, 30*time.Second, "the cluster to accept a new member", func() error {
		r = jsonRequest(t, "POST", mu, "application/json", `{"peerURLs":["`+peer+`"]}`)
		if r.status == 500 && r.body == `{"message":"Internal Server Error"}` {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	var added struct {
		ID         string   `json:"id"`
		Name       string   `json:"name"`
		PeerURLs   []string `json:"peerURLs"`
		ClientURLs []string `json:"clientURLs"`
	}
	if r.status != 201 || json.Unmarshal([]byte(r.body), &added) != nil {
		t.Fatalf("POST /v2/members: %d %s", r.status, r.body)
	}
	if want := fmt.Sprintf(`{"id":%q,"name":"","peerURLs":["%s"],"clientURLs":[]}`+"\n", added.ID, peer); r.body != want {
		t.Fatalf("POST /v2/members:\n got  %s want %s", r.body, want)
	}
	for _, tc := range []struct {
		method, url, ctype, body string
		status                   int
		want                     string
	}{
		// Another URL too, so the new member's ID (peer URLs and the
		// current second) cannot equal the first one's.
		{"POST", mu, "application/json", `{"peerURLs":["` + peer + `","http://127.0.0.1:1"]}`, 409, `{"message":"membership: peerURL exists"}`},
		{"POST", mu, "", `{"peerURLs":["` + peer + `"]}`, 415, `{"message":"Bad Content-Type , accept application/json"}`},
		{"POST", mu, "text/plain; charset=utf-8", `{}`, 415, `{"message":"Bad Content-Type text/plain, accept application/json"}`},
		{"POST", mu, "application/json; charset=utf-8", `{"peerURLs":["ftp://x:1"]}`, 400, `{"message":"URL scheme must be http, https, unix, or unixs: ftp://x:1"}`},
		{"POST", mu, "application/json", `{"peerURLs":["http://x"]}`, 400, `{"message":"URL address does not have the form \"host:port\": http://x"}`},
		{"POST", mu, "application/json", `{"peerURLs":["http://x:1/p"]}`, 400, `{"message":"URL must not contain a path: http://x:1/p"}`},
		{"POST", mu, "application/json", `{"peerURLs":[]}`, 400, `{"message":"no valid URLs given"}`},
		{"POST", mu, "application/json", `{"peerURLs":`, 400, `{"message":"unexpected end of JSON input"}`},
		{"PUT", mu + "/" + added.ID, "application/json", `{"peerURLs":["` + leader.PeerURL() + `"]}`, 409, `{"message":"membership: peerURL exists"}`},
		{"PUT", mu + "/abcdef", "application/json", `{"peerURLs":["http://127.0.0.1:1"]}`, 404, `{"message":"No such member: abcdef"}`},
		{"PUT", mu + "/" + added.ID, "application/json", `{"peerURLs":["` + framework.FreeURL(t) + `"]}`, 204, ``},
		{"DELETE", mu + "/zz", "", ``, 404, `{"message":"No such member: zz"}`},
		{"DELETE", mu + "/abcdef", "", ``, 404, `{"message":"No such member: abcdef"}`},
		{"DELETE", mu, "", ``, 405, "Method Not Allowed\n"},
		{"DELETE", mu + "/" + added.ID, "", ``, 204, ``},
		{"DELETE", mu + "/" + added.ID, "", ``, 410, `{"message":"Member permanently removed: ` + added.ID + `"}`},
		{"PATCH", mu, "", ``, 405, "Method Not Allowed\n"},
	} {
		r := jsonRequest(t, tc.method, tc.url, tc.ctype, tc.body)
		if r.status != tc.status || r.body != tc.want {
			t.Errorf("%s %s %s: %d %q, want %d %q", tc.method, tc.url, tc.body, r.status, r.body, tc.status, tc.want)
		}
	}

	// Stats: the leader reports its followers; a follower refuses.
	poll(t, 10*time.Second, "leader stats", func() error {
		r := v2Request(t, "GET", leader.ClientURL(), "/v2/stats/leader", nil)
		var ls struct {
			Leader    string `json:"leader"`
			Followers map[string]struct {
				Counts struct{ Success, Fail uint64 } `json:"counts"`
			} `json:"followers"`
		}
		if err := json.Unmarshal([]byte(r.body), &ls); err != nil {
			return fmt.Errorf("%d %s: %v", r.status, r.body, err)
		}
		if len(ls.Followers) != 2 {
			return fmt.Errorf("followers in %s", r.body)
		}
		for id, fs := range ls.Followers {
			if fs.Counts.Success == 0 {
				return fmt.Errorf("no successful appends to %s yet: %s", id, r.body)
			}
		}
		return nil
	})
	if r := v2Request(t, "GET", f, "/v2/stats/leader", nil); r.status != 403 || r.body != `{"message":"not current leader"}` {
		t.Fatalf("follower's leader stats: %d %s", r.status, r.body)
	}
	r = v2Request(t, "GET", f, "/v2/stats/self", nil)
	var self struct {
		Name       string `json:"name"`
		State      string `json:"state"`
		LeaderInfo struct {
			Leader string `json:"leader"`
		} `json:"leaderInfo"`
		Recv uint64 `json:"recvAppendRequestCnt"`
	}
	if err := json.Unmarshal([]byte(r.body), &self); err != nil || self.Name != followers[0].Name() || self.State != "StateFollower" ||
		self.LeaderInfo.Leader != strings.Split(strings.TrimPrefix(leaderJSON, `{"id":"`), `"`)[0] || self.Recv == 0 {
		t.Fatalf("follower self stats: %s (%v)", r.body, err)
	}
	if r := v2Request(t, "POST", f, "/v2/stats/self", nil); r.status != 405 || r.header.Get("Allow") != "GET" {
		t.Fatalf("POST /v2/stats/self: %d allow %q", r.status, r.header.Get("Allow"))
	}

	// Without a quorum there is no leader: writes fail with error 300
	// and /v2/members/leader says so.
	leader.Stop(t)
	followers[1].Stop(t)
	poll(t, 20*time.Second, "the survivor to lose its leader", func() error {
		r := v2Request(t, "GET", f, "/v2/members/leader", nil)
		if r.status != 503 || r.body != `{"message":"During election"}` {
			return fmt.Errorf("%d %s", r.status, r.body)
		}
		return nil
	})
	r = v2Request(t, "PUT", f, "/v2/keys/x", form("value", "1"))
	if want := `{"errorCode":300,"message":"Raft Internal Error","cause":"etcdserver: no leader","index":0}` + "\n"; r.status != 500 || r.body != want {
		t.Fatalf("put without a leader: %d %s", r.status, r.body)
	}
	// Plain reads and watches still work on the survivor.
	if r := v2Request(t, "GET", f, "/v2/keys/fw", nil); r.status != 200 {
		t.Fatalf("local read without a leader: %d %s", r.status, r.body)
	}
}
