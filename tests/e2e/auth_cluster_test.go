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

// TestAuthSnapshotsAndJoins: the auth state travels in snapshots, reaches
// members that join later, and survives kill -9.
//
// A follower is stopped while users, roles, permissions and passwords
// change and enough keys are written that the leader snapshots and
// truncates its log (--snapshot-count 20); restarted, it catches up from a
// snapshot and must hold the same auth state and enforce it. A member
// added after auth was enabled must hold it too. Finally every member is
// killed with SIGKILL right after an auth change was acknowledged; after
// the restart every member has it.
func TestAuthSnapshotsAndJoins(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{
		Security: rootSecurity,
		Args:     []string{"--snapshot-count", "20", "--snapshot-catchup-entries", "10"},
	})
	root := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, k := range []string{"k1", "/a/1", "/c/1"} {
		if _, err := root.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	setupAuth(t, root)
	leader := c.Leader(t)
	f := c.FollowerOf(leader)
	f.Stop(t)

	// Auth changes while f is down, between writes that outrun the log.
	steps := []func() error{
		func() error { _, err := root.UserAdd(ctx, "carol", "carolpw"); return err },
		func() error { _, err := root.RoleAdd(ctx, "r-carol"); return err },
		func() error {
			_, err := root.RoleGrantPermission(ctx, "r-carol", "/c/", clientv3.GetPrefixRangeEnd("/c/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := root.UserGrantRole(ctx, "carol", "r-carol"); return err },
		func() error {
			_, err := root.RoleRevokePermission(ctx, "r-alice", "/a/", clientv3.GetPrefixRangeEnd("/a/"))
			return err
		},
		func() error { _, err := root.UserChangePassword(ctx, "bob", "bobpw2"); return err },
	}
	for i, step := range steps {
		if err := step(); err != nil {
			t.Fatalf("auth change %d: %v", i, err)
		}
		for j := range 25 {
			if _, err := root.Put(ctx, fmt.Sprintf("/fill/%d/%d", i, j), "x"); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := authState(t, leader.Endpoint())
	f.Restart(t)
	poll(t, 30*time.Second, "the restarted follower to hold the auth state", func() error {
		if got := authState(t, f.Endpoint()); got != want {
			return fmt.Errorf("%s holds\n%s\nthe leader\n%s", f.Name(), got, want)
		}
		return nil
	})
	if !strings.Contains(f.Logs(), "installed a snapshot from the leader") {
		t.Fatal("the follower caught up without a snapshot; the test needs more writes")
	}
	checkEnforced := func(m *framework.Member) {
		t.Helper()
		eps := []string{m.Endpoint()}
		carol := authClient(t, eps, nil, "carol", "carolpw")
		if _, err := carol.Put(ctx, "/c/2", "x"); err != nil {
			t.Errorf("carol on %s: %v", m.Name(), err)
		}
		if _, err := carol.Get(ctx, "/a/1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("carol reads /a/1 on %s: %v", m.Name(), err)
		}
		alice := authClient(t, eps, nil, "alice", "alicepw")
		if _, err := alice.Get(ctx, "/a/1", clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("alice reads /a/1 on %s after the revoke: %v", m.Name(), err)
		}
		if _, err := alice.Get(ctx, "k1", clientv3.WithSerializable()); err != nil {
			t.Errorf("alice reads k1 on %s: %v", m.Name(), err)
		}
		anon, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer anon.Close()
		if _, err := anon.Authenticate(ctx, "bob", "bobpw"); !errors.Is(err, rpctypes.ErrAuthFailed) {
			t.Errorf("bob's old password on %s: %v", m.Name(), err)
		}
		if _, err := anon.Authenticate(ctx, "bob", "bobpw2"); err != nil {
			t.Errorf("bob's new password on %s: %v", m.Name(), err)
		}
	}
	checkEnforced(f)

	// A member added now, with auth on, gets the same state.
	joiner := c.NewMember(t, "joiner")
	poll(t, 30*time.Second, "the cluster to accept a new member", func() error {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		defer acancel()
		_, err := root.MemberAdd(actx, []string{joiner.PeerURL()})
		return err
	})
	joiner.Restart(t)
	c.Members = append(c.Members, joiner)
	poll(t, 30*time.Second, "the new member to hold the auth state", func() error {
		if got := authState(t, joiner.Endpoint()); got != want {
			return fmt.Errorf("%s holds\n%s\nthe others\n%s", joiner.Name(), got, want)
		}
		return nil
	})
	checkEnforced(joiner)

	// An auth change acknowledged right before every member is killed.
	if _, err := root.UserAdd(ctx, "dave", "davepw"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.UserGrantRole(ctx, "dave", "r-carol"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		m.Kill(t)
	}
	c.Restart(t)
	want = authState(t, c.Members[0].Endpoint())
	if !strings.Contains(want, "user dave roles [r-carol]") {
		t.Errorf("the change acknowledged before kill -9 is lost:\n%s", want)
	}
	for _, m := range c.Members[1:] {
		if got := authState(t, m.Endpoint()); got != want {
			t.Errorf("%s after kill -9:\n%s\n%s:\n%s", m.Name(), got, c.Members[0].Name(), want)
		}
	}
	dave := authClient(t, []string{c.Members[0].Endpoint()}, nil, "dave", "davepw")
	if _, err := dave.Get(ctx, "/c/1"); err != nil {
		t.Errorf("dave after kill -9: %v", err)
	}
}
