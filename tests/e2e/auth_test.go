package e2e

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-io/cairn/tests/framework"
)

var rootSecurity = framework.Security{Username: "root", Password: "rootpw"}

// inAlice reports whether alice may read key (the prefix /a/ and k1).
func inAlice(key []byte) bool {
	return bytes.HasPrefix(key, []byte("/a/")) || string(key) == "k1"
}

// TestAuthPermissions checks what a user may and may not do, with etcd's
// errors, and that no request returns a key outside the user's
// permissions: ranges with every kind of range end, txns, watches and
// lease key lists.
func TestAuthPermissions(t *testing.T) {
	m := framework.Start(t, framework.Config{Security: rootSecurity})
	root := m.Client(t)
	ctx := ctx10(t)
	// Before auth is on, Authenticate says so.
	if _, err := root.Authenticate(ctx, "root", "rootpw"); !errors.Is(err, rpctypes.ErrAuthNotEnabled) {
		t.Fatalf("authenticate with auth off: %v", err)
	}
	for _, k := range []string{"/a/1", "/a/2", "/a", "/a0", "/b", "k1", "k2", "w1", "w3", "\x00", "\xff"} {
		if _, err := root.Put(ctx, k, "v"); err != nil {
			t.Fatal(err)
		}
	}
	// A lease on alice's key and one on a key she may not write.
	own, err := root.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	foreign, err := root.Grant(ctx, 600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/a/leased", "v", clientv3.WithLease(own.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/b/leased", "v", clientv3.WithLease(foreign.ID)); err != nil {
		t.Fatal(err)
	}
	setupAuth(t, root)

	alice := authClient(t, []string{m.Endpoint()}, nil, "alice", "alicepw")
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()

	// Credentials.
	if _, err := anon.Get(ctx, "k1"); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("get without a user: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	if _, err := anon.Authenticate(ctx, "alice", "wrong"); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("wrong password: %v", err)
	}
	if _, err := anon.Authenticate(ctx, "nobody", "x"); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("unknown user: %v", err)
	}
	if _, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second,
		Username: "alice", Password: "wrong", Logger: zap.NewNop()}); !errors.Is(err, rpctypes.ErrAuthFailed) {
		t.Errorf("client with a wrong password: %v", err)
	}

	// Allowed operations.
	if _, err := alice.Put(ctx, "/a/new", "x"); err != nil {
		t.Errorf("alice put /a/new: %v", err)
	}
	if _, err := alice.Put(ctx, "w3", "x"); err != nil {
		t.Errorf("alice put w3: %v", err)
	}
	if _, err := alice.Delete(ctx, "w1", clientv3.WithRange("w5")); err != nil {
		t.Errorf("alice delete [w1, w5): %v", err)
	}

	// Ranges: every allowed one returns only alice's keys; every other is
	// refused.
	ranges := []struct {
		key, end string
		ok       bool
	}{
		{"/a/1", "", true},
		{"/a/", "/a0", true},
		{"/a/", "/a/2", true},
		{"/a/", "", true},
		{"/a/2", "/a/", true}, // empty range, key allowed
		{"k1", "", true},
		{"/a/", "/a1", false},
		{"/a/", "\x00", false},
		{"/a", "/a0", false},
		{"/a", "", false},
		{"\x00", "\x00", false},
		{"\x00", "", false},
		{"k1", "k2", false},
		{"k1", "k1\x00", true}, // exactly the key
		{"/b", "/a/", false},   // empty range, key not allowed
		{"w1", "", false},      // write-only
		{"\xff", "\x00", false},
	}
	for _, r := range ranges {
		var opts []clientv3.OpOption
		if r.end != "" {
			opts = append(opts, clientv3.WithRange(r.end))
		}
		for _, serializable := range []bool{false, true} {
			o := opts
			if serializable {
				o = append(o, clientv3.WithSerializable())
			}
			resp, err := alice.Get(ctx, r.key, o...)
			switch {
			case r.ok && err != nil:
				t.Errorf("alice get [%q, %q): %v", r.key, r.end, err)
			case !r.ok && !errors.Is(err, rpctypes.ErrPermissionDenied):
				t.Errorf("alice get [%q, %q): %v, want permission denied", r.key, r.end, err)
			case err == nil:
				for _, kv := range resp.Kvs {
					if !inAlice(kv.Key) {
						t.Errorf("alice get [%q, %q) returned %q", r.key, r.end, kv.Key)
					}
				}
			}
			// The same range as a read-only txn, and as a txn compare.
			tr, err := alice.Txn(ctx).Then(clientv3.OpGet(r.key, o...)).Commit()
			if r.ok != (err == nil) {
				t.Errorf("alice txn get [%q, %q): %v", r.key, r.end, err)
			}
			if err == nil {
				for _, kv := range tr.Responses[0].GetResponseRange().Kvs {
					if !inAlice(kv.Key) {
						t.Errorf("alice txn get [%q, %q) returned %q", r.key, r.end, kv.Key)
					}
				}
			}
		}
	}

	// Writes.
	for _, k := range []string{"/b", "k1", "w5", "/a"} {
		if _, err := alice.Put(ctx, k, "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("alice put %q: %v", k, err)
		}
	}
	if _, err := alice.Put(ctx, "w3", "x", clientv3.WithPrevKV()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice put w3 with prev kv (write-only key): %v", err)
	}
	if _, err := alice.Delete(ctx, "/a/", clientv3.WithFromKey()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice delete from /a/: %v", err)
	}
	if _, err := alice.Put(ctx, "/a/x", "v", clientv3.WithLease(foreign.ID)); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice attaches a lease holding a key she may not write: %v", err)
	}

	// Txns: every compare and both branches are checked, whichever runs.
	txns := []struct {
		name string
		txn  clientv3.Txn
	}{
		{"compare outside", alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("/b"), "=", "v")).Then(clientv3.OpPut("/a/1", "x"))},
		{"compare range outside", alice.Txn(ctx).If(clientv3.Compare(clientv3.Version("/a/"), ">", 0).WithRange("/a1"))},
		{"else branch outside", alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("/a/1"), "=", "v")).Then(clientv3.OpPut("/a/1", "y")).Else(clientv3.OpGet("/b"))},
		{"then branch outside", alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("/a/1"), "=", "nope")).Then(clientv3.OpDelete("/b")).Else(clientv3.OpGet("/a/1"))},
		{"nested outside", alice.Txn(ctx).Then(clientv3.OpTxn(nil, []clientv3.Op{clientv3.OpGet("\x00", clientv3.WithFromKey())}, nil))},
		{"delete prev kv of write-only", alice.Txn(ctx).Then(clientv3.OpDelete("w3", clientv3.WithPrevKV()))},
	}
	for _, tc := range txns {
		if _, err := tc.txn.Commit(); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("txn %s: %v, want permission denied", tc.name, err)
		}
	}
	if _, err := alice.Txn(ctx).If(clientv3.Compare(clientv3.Value("/a/1"), "=", "v")).
		Then(clientv3.OpPut("/a/1", "y"), clientv3.OpGet("/a/", clientv3.WithPrefix())).Else(clientv3.OpGet("k1")).Commit(); err != nil {
		t.Errorf("allowed txn: %v", err)
	}

	// Watches: a watch on a range alice may not read is canceled with
	// etcd's reason; an allowed one sees only her keys.
	for _, w := range []struct {
		key  string
		opts []clientv3.OpOption
	}{
		{"/b", nil},
		{"/a", []clientv3.OpOption{clientv3.WithPrefix()}},
		{"", []clientv3.OpOption{clientv3.WithPrefix()}},
		{"/a/", []clientv3.OpOption{clientv3.WithFromKey()}},
	} {
		wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		resp, ok := <-alice.Watch(wctx, w.key, w.opts...)
		cancel()
		if !ok || !resp.Canceled || resp.Err() == nil || !strings.Contains(resp.Err().Error(), rpctypes.ErrGRPCPermissionDenied.Error()) {
			t.Errorf("watch %q %d opts: %+v %v, want canceled with permission denied", w.key, len(w.opts), resp, resp.Err())
		}
	}
	wctx, cancel := context.WithCancel(ctx)
	wch := alice.Watch(wctx, "/a/", clientv3.WithPrefix(), clientv3.WithRev(1), clientv3.WithCreatedNotify(), clientv3.WithPrevKV())
	if _, err := root.Put(ctx, "/b/late", "v"); err != nil {
		t.Fatal(err)
	}
	if _, err := root.Put(ctx, "/a/1", "late"); err != nil {
		t.Fatal(err)
	}
	sawLate := false
	for !sawLate {
		resp, ok := <-wch
		if !ok || resp.Err() != nil {
			t.Fatalf("alice's watch ended: %v", resp.Err())
		}
		for _, ev := range resp.Events {
			if !inAlice(ev.Kv.Key) {
				t.Errorf("alice's watch delivered %q", ev.Kv.Key)
			}
			if string(ev.Kv.Value) == "late" {
				sawLate = true
				if ev.PrevKv == nil || ev.PrevKv.ModRevision == 0 {
					t.Errorf("alice's watch with prev_kv: no previous value for %q", ev.Kv.Key)
				}
			}
		}
	}
	cancel()

	// Leases: keys are listed only to those who may read them, and a lease
	// is revoked only by one who may write all of its keys.
	if ttl, err := alice.TimeToLive(ctx, own.ID, clientv3.WithAttachedKeys()); err != nil || len(ttl.Keys) != 1 {
		t.Errorf("alice time-to-live of her lease with keys: %v %v", ttl, err)
	}
	if _, err := alice.TimeToLive(ctx, foreign.ID, clientv3.WithAttachedKeys()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice time-to-live --keys of a foreign lease: %v", err)
	}
	if _, err := alice.TimeToLive(ctx, foreign.ID); err != nil {
		t.Errorf("alice time-to-live without keys: %v", err)
	}
	if _, err := alice.Leases(ctx); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice lease list: %v", err)
	}
	if _, err := alice.Revoke(ctx, foreign.ID); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice revoke of a foreign lease: %v", err)
	}
	if _, err := alice.KeepAliveOnce(ctx, foreign.ID); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice keep-alive of a foreign lease: %v", err)
	}
	if _, err := alice.Revoke(ctx, own.ID); err != nil {
		t.Errorf("alice revoke of her lease: %v", err)
	}
	if _, err := anon.Grant(ctx, 60); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("grant without a user: %v", err)
	}

	// Admin-only calls.
	if _, err := alice.Compact(ctx, 1); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice compact: %v", err)
	}
	if _, err := alice.Defragment(ctx, m.Endpoint()); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice defragment: %v", err)
	}
	if _, err := alice.HashKV(ctx, m.Endpoint(), 0); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice hashkv: %v", err)
	}
	if _, err := alice.MemberAdd(ctx, []string{"http://127.0.0.1:1"}); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice member add: %v", err)
	}
	if _, err := alice.AlarmDisarm(ctx, &clientv3.AlarmMember{MemberID: 1, Alarm: pb.AlarmType_NOSPACE}); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice alarm disarm: %v", err)
	}
	if _, err := alice.AlarmList(ctx); err != nil {
		t.Errorf("alice alarm list: %v", err)
	}
	if _, err := alice.Status(ctx, m.Endpoint()); err != nil {
		t.Errorf("alice status: %v", err)
	}
	if _, err := anon.Status(ctx, m.Endpoint()); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("status without a user: %v", err)
	}
	if _, err := alice.MemberList(ctx); err != nil {
		t.Errorf("alice member list: %v", err)
	}
	// As etcd 3.6: the member list needs a user, any user.
	if _, err := anon.MemberList(ctx); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("member list without a user: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	if _, err := anon.MemberList(ctx, clientv3.WithSerializable()); !errors.Is(err, rpctypes.ErrUserEmpty) {
		t.Errorf("serializable member list without a user: %v, want %v", err, rpctypes.ErrUserEmpty)
	}
	if _, err := alice.UserAdd(ctx, "eve", "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice user add: %v", err)
	}
	if _, err := alice.AuthDisable(ctx); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice auth disable: %v", err)
	}
	if _, err := root.UserDelete(ctx, "root"); !errors.Is(err, rpctypes.ErrInvalidAuthMgmt) {
		t.Errorf("delete root while auth is on: %v", err)
	}
	if _, err := root.UserGrantRole(ctx, "alice", "nope"); !errors.Is(err, rpctypes.ErrRoleNotFound) {
		t.Errorf("grant a missing role: %v", err)
	}
	if _, err := root.UserAdd(ctx, "alice", "x"); !errors.Is(err, rpctypes.ErrUserAlreadyExist) {
		t.Errorf("add alice again: %v", err)
	}

	// A revoked permission takes effect for a logged-in client at once.
	if _, err := root.RoleRevokePermission(ctx, "r-alice", "/a/", clientv3.GetPrefixRangeEnd("/a/")); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Get(ctx, "/a/1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice get after the revoke: %v", err)
	}
	if _, err := alice.Put(ctx, "/a/1", "z"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice put after the revoke: %v", err)
	}

	// Auth state survives a restart.
	st, err := root.AuthStatus(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Restart(t)
	root2 := m.Client(t)
	ctx = ctx10(t)
	st2, err := root2.AuthStatus(ctx)
	if err != nil || !st2.Enabled || st2.AuthRevision != st.AuthRevision {
		t.Fatalf("auth status after restart: %+v %v, want enabled at revision %d", st2, err, st.AuthRevision)
	}
	alice2 := authClient(t, []string{m.Endpoint()}, nil, "alice", "alicepw")
	if _, err := alice2.Get(ctx, "k1"); err != nil {
		t.Errorf("alice get k1 after restart: %v", err)
	}
	if _, err := alice2.Get(ctx, "/a/1"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice get /a/1 after restart: %v", err)
	}

	// Disabling auth lets anyone in again.
	if _, err := root2.AuthDisable(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := anon.Get(ctx, "/b"); err != nil {
		t.Errorf("get with auth off: %v", err)
	}
}

// TestAuthTokenLifecycle: simple tokens expire after --auth-token-ttl
// without use (each use extends them), and a password change, a user's
// deletion, or auth being disabled ends them, with etcd's errors; a
// clientv3 client logs in again by itself. Run against cairn and etcd
// 3.6, which must agree.
func TestAuthTokenLifecycle(t *testing.T) {
	for _, srv := range []string{"cairn", "etcd"} {
		t.Run(srv, func(t *testing.T) {
			cfg := framework.Config{Security: rootSecurity, Args: []string{"--auth-token-ttl", "3"}}
			if srv == "etcd" {
				cfg.Binary = framework.EtcdBinary(t)
			}
			m := framework.Start(t, cfg)
			root := m.Client(t)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if _, err := root.Put(ctx, "k1", "v"); err != nil {
				t.Fatal(err)
			}
			setupAuth(t, root)
			anon, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
			if err != nil {
				t.Fatal(err)
			}
			defer anon.Close()
			login := func(user, password string) string {
				t.Helper()
				resp, err := anon.Authenticate(ctx, user, password)
				if err != nil {
					t.Fatalf("login %s: %v", user, err)
				}
				return resp.Token
			}
			get := func(token string) error {
				tctx := metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, token))
				_, err := anon.Get(tctx, "k1")
				return err
			}
			refused := func(what, token string) {
				t.Helper()
				if err := get(token); !errors.Is(err, rpctypes.ErrInvalidAuthToken) {
					t.Errorf("%s: %v, want %v", what, err, rpctypes.ErrInvalidAuthToken)
				}
			}

			// waitExpired leaves token unused for longer and longer (a use
			// extends it) until it is refused as expired.
			waitExpired := func(what, token string) {
				t.Helper()
				for idle := 500 * time.Millisecond; ; idle *= 2 {
					if idle > 20*time.Second {
						t.Fatalf("%s: still valid after %v unused, with a TTL of 3s", what, idle/2)
					}
					time.Sleep(idle)
					err := get(token)
					if errors.Is(err, rpctypes.ErrInvalidAuthToken) {
						return
					}
					if err != nil {
						t.Fatalf("%s: %v", what, err)
					}
				}
			}

			// Used every few hundred milliseconds, a token outlives its
			// TTL; left alone, it expires.
			tok := login("alice", "alicepw")
			for range 15 {
				if err := get(tok); err != nil {
					t.Fatalf("a token in use: %v", err)
				}
				time.Sleep(300 * time.Millisecond)
			}
			waitExpired("an unused token", tok)

			// A client with credentials logs in again by itself once its
			// token expired. Its token is not visible; one made after its
			// last use stands for it.
			alice := authClient(t, []string{m.Endpoint()}, nil, "alice", "alicepw")
			if _, err := alice.Get(ctx, "k1"); err != nil {
				t.Fatal(err)
			}
			waitExpired("a token made after alice's client was last used", login("alice", "alicepw"))
			if _, err := alice.Get(ctx, "k1"); err != nil {
				t.Errorf("alice's client after its token expired: %v", err)
			}

			// A new password ends the user's tokens (and only hers).
			tok = login("alice", "alicepw")
			bobTok := login("bob", "bobpw")
			if _, err := root.UserChangePassword(ctx, "alice", "alicepw2"); err != nil {
				t.Fatal(err)
			}
			// bob has no permission on k1: his token is valid, his read
			// denied.
			if err := get(bobTok); !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("bob's token after alice's password changed: %v", err)
			}
			refused("alice's token after her password changed", tok)
			if _, err := anon.Authenticate(ctx, "alice", "alicepw"); !errors.Is(err, rpctypes.ErrAuthFailed) {
				t.Errorf("alice's old password: %v", err)
			}
			tok = login("alice", "alicepw2")
			if err := get(tok); err != nil {
				t.Errorf("alice's token with her new password: %v", err)
			}

			// Deleting a user ends her tokens.
			if _, err := root.UserDelete(ctx, "alice"); err != nil {
				t.Fatal(err)
			}
			refused("alice's token after she was deleted", tok)

			// A token from before auth was disabled is not valid once it is
			// enabled again.
			bobTok = login("bob", "bobpw")
			if _, err := root.AuthDisable(ctx); err != nil {
				t.Fatal(err)
			}
			if _, err := root.AuthEnable(ctx); err != nil {
				t.Fatal(err)
			}
			refused("bob's token from before auth was disabled", bobTok)
			if err := get(login("bob", "bobpw")); err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
				t.Errorf("bob's new token: %v", err)
			}
		})
	}
}
