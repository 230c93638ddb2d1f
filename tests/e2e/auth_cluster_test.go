package e2e

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-io/cairn/tests/framework"
)

// authState is what one member says about users, roles and the auth
// switch.
func authState(t *testing.T, endpoint string) string {
	t.Helper()
	cli := authClient(t, []string{endpoint}, nil, "root", "rootpw")
	ctx := ctx10(t)
	st, err := cli.AuthStatus(ctx)
	if err != nil {
		t.Fatalf("auth status on %s: %v", endpoint, err)
	}
	users, err := cli.UserList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "enabled=%v revision=%d users=%v\n", st.Enabled, st.AuthRevision, users.Users)
	for _, u := range users.Users {
		ur, err := cli.UserGet(ctx, u)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "user %s roles %v\n", u, ur.Roles)
	}
	roles, err := cli.RoleList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range roles.Roles {
		rr, err := cli.RoleGet(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(&b, "role %s perms %v\n", r, rr.Perm)
	}
	return b.String()
}

// TestAuthCluster runs a three-member cluster with JWT tokens: the auth
// state is the same on every member and after a restart of all of them,
// and a token one member signed works on the others.
func TestAuthCluster(t *testing.T) {
	priv, pub := writeRSAKeys(t)
	c := framework.StartCluster(t, 3, framework.Config{
		Security: rootSecurity,
		Args:     []string{"--auth-token", "jwt,pub-key=" + pub + ",priv-key=" + priv + ",sign-method=RS256,ttl=10m"},
	})
	root := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := root.Put(ctx, "k1", "v1"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/b", "v"); err != nil {
		t.Fatal(err)
	}
	setupAuth(t, root)

	states := make([]string, len(c.Members))
	for i, m := range c.Members {
		states[i] = authState(t, m.Endpoint())
		if states[i] != states[0] {
			t.Errorf("member %s:\n%s\nmember %s:\n%s", m.Name(), states[i], c.Members[0].Name(), states[0])
		}
	}
	if !strings.Contains(states[0], "enabled=true") || !strings.Contains(states[0], "user alice roles [r-alice]") {
		t.Fatalf("unexpected auth state:\n%s", states[0])
	}

	// A token from the first member, used on every member.
	anon := make([]*clientv3.Client, len(c.Members))
	for i, m := range c.Members {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		anon[i] = cli
	}
	login, err := anon[0].Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(login.Token, ".") != 2 {
		t.Fatalf("token %q is not a JWT", login.Token)
	}
	withToken := func(tok string) context.Context {
		return metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, tok))
	}
	check := func(when string) {
		t.Helper()
		for i, cli := range anon {
			if resp, err := cli.Get(withToken(login.Token), "k1"); err != nil || len(resp.Kvs) != 1 {
				t.Errorf("%s: alice's token on %s: %v %v", when, c.Members[i].Name(), resp, err)
			}
			if _, err := cli.Get(withToken(login.Token), "/b"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("%s: alice's token on %s reading /b: %v", when, c.Members[i].Name(), err)
			}
			forged := login.Token[:len(login.Token)-4] + "AAAA"
			if _, err := cli.Get(withToken(forged), "k1"); !errors.Is(err, rpctypes.ErrInvalidAuthToken) {
				t.Errorf("%s: a forged token on %s: %v", when, c.Members[i].Name(), err)
			}
		}
	}
	check("before restart")

	// A token carries the auth revision it was signed at: after any change
	// it is refused as old, and clients log in again.
	if _, err := root.RoleAdd(ctx, "r-other"); err != nil {
		t.Fatal(err)
	}
	if _, err := anon[1].Get(withToken(login.Token), "k1"); !errors.Is(err, rpctypes.ErrAuthOldRevision) {
		t.Errorf("a token from before an auth change: %v", err)
	}
	alice := authClient(t, []string{c.Members[2].Endpoint()}, nil, "alice", "alicepw")
	if _, err := alice.Get(ctx, "k1"); err != nil {
		t.Errorf("alice's client after the change: %v", err)
	}
	if login, err = anon[0].Authenticate(ctx, "alice", "alicepw"); err != nil {
		t.Fatal(err)
	}
	for i := range states {
		states[i] = authState(t, c.Members[i].Endpoint())
	}

	// Every member stops and comes back with the same state.
	for _, m := range c.Members {
		m.Stop(t)
	}
	c.Restart(t)
	for i, m := range c.Members {
		if got := authState(t, m.Endpoint()); got != states[0] {
			t.Errorf("member %s after restart:\n%s\nbefore:\n%s", m.Name(), got, states[i])
		}
	}
	for i, m := range c.Members {
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer cli.Close()
		anon[i] = cli
	}
	check("after restart")
}
