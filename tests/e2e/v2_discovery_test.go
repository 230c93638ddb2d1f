package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestV2Discovery bootstraps a 3-member cluster through a 1-member cairn
// serving as the discovery service, then shows etcd's discovery errors: a
// fourth member finds the cluster full, a token without a size, a name
// registered twice, and --discovery beside --initial-cluster.
func TestV2Discovery(t *testing.T) {
	ds := framework.Start(t, framework.Config{Name: "discovery"})
	token := "f4c2a6e1d0b9"
	durl := ds.ClientURL() + "/v2/keys/discovery/" + token
	if r := v2Request(t, "PUT", ds.ClientURL(), "/v2/keys/discovery/"+token+"/_config/size", form("value", "3")); r.status != 201 {
		t.Fatalf("size key: %d %s", r.status, r.body)
	}

	c := framework.StartDiscovery(t, 3, framework.Config{Name: "d"}, durl)

	// The cluster has the three members, and it works.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cli := c.Client(t)
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, m := range ml.Members {
		names = append(names, m.Name)
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "d0,d1,d2" {
		t.Fatalf("members %v", names)
	}
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	// The token directory holds one registration per member, keyed by
	// member ID, valued name=peerURL.
	r := v2Request(t, "GET", ds.ClientURL(), "/v2/keys/discovery/"+token, nil)
	var dir struct {
		Node struct {
			Nodes []struct{ Key, Value string } `json:"nodes"`
		} `json:"node"`
	}
	if err := json.Unmarshal([]byte(r.body), &dir); err != nil || len(dir.Node.Nodes) != 3 {
		t.Fatalf("token directory: %s (%v)", r.body, err)
	}
	byPeer := map[string]string{}
	for _, m := range c.Members {
		byPeer[m.Name()+"="+m.PeerURL()] = m.Name()
	}
	for _, n := range dir.Node.Nodes {
		if _, ok := byPeer[n.Value]; !ok {
			t.Errorf("registration %s=%s names no member", n.Key, n.Value)
		}
		found := false
		for _, m := range ml.Members {
			if n.Key == "/discovery/"+token+"/"+strconv.FormatUint(m.ID, 16) {
				found = true
			}
		}
		if !found {
			t.Errorf("registration key %s is not a member ID", n.Key)
		}
	}

	// A fourth member: the cluster is full.
	out, err := runServe(t, "d3", "--discovery", durl)
	if err == nil || !strings.Contains(out, "discovery: cluster is full") {
		t.Fatalf("fourth member: %v\n%s", err, out)
	}

	// A token without a size key, given in the environment.
	out, err = runServeEnv(t, []string{"CAIRN_DISCOVERY=" + ds.ClientURL() + "/v2/keys/discovery/nosize"}, "x")
	if err == nil || !strings.Contains(out, "discovery: size key not found") {
		t.Fatalf("no size key: %v\n%s", err, out)
	}

	// The same name twice.
	v2Request(t, "PUT", ds.ClientURL(), "/v2/keys/discovery/dup/_config/size", form("value", "2"))
	v2Request(t, "PUT", ds.ClientURL(), "/v2/keys/discovery/dup/1", form("value", "twin=http://127.0.0.1:9"))
	out, err = runServe(t, "twin", "--discovery", ds.ClientURL()+"/v2/keys/discovery/dup")
	if err == nil || !strings.Contains(out, "discovery: found duplicate name") {
		t.Fatalf("duplicate name: %v\n%s", err, out)
	}

	// --discovery and --initial-cluster together.
	out, err = runServe(t, "both", "--discovery", durl, "--initial-cluster", "both=http://127.0.0.1:9")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(out, "--discovery and --initial-cluster cannot both be set") {
		t.Fatalf("both flags: %v\n%s", err, out)
	}
}

// runServe runs cairn serve as a member named name that is expected to
// fail before serving, and returns its output.
func runServe(t *testing.T, name string, args ...string) (string, error) {
	t.Helper()
	return runServeEnv(t, nil, name, args...)
}

func runServeEnv(t *testing.T, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	full := append([]string{"serve", "--name", name, "--data-dir", t.TempDir(),
		"--listen-client-urls", "http://127.0.0.1:0", "--listen-peer-urls", "http://127.0.0.1:0",
		"--initial-advertise-peer-urls", framework.FreeURL(t)}, args...)
	cmd := exec.CommandContext(ctx, framework.CairnBinary(t), full...)
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CAIRN_") && !strings.HasPrefix(kv, "ETCD_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, env...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("cairn serve %v did not exit: %s", args, out)
	}
	return string(out), err
}
