package server

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/lease"
	"github.com/cairn-io/cairn/internal/v2store"
)

// authTestServer is a member with just what the auth checks use: the auth
// store (root, and alice with read-write on the prefix /a/), alarms and
// leases.
func authTestServer(t *testing.T) (*Server, *pebble.DB) {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	as := auth.New(auth.Config{BcryptCost: 4})
	if err := as.Load(db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(as.Close)
	s := &Server{authStore: as, alarms: &alarmStore{}, lessor: lease.New(lease.Config{})}
	ctx := context.Background()
	steps := []func(b *pebble.Batch) error{
		func(b *pebble.Batch) error {
			h, err := as.HashPassword(ctx, "pw")
			if err != nil {
				return err
			}
			if err := as.ApplyUserAdd(b, &pb.AuthUserAddRequest{Name: "root", HashedPassword: h}); err != nil {
				return err
			}
			return as.ApplyUserAdd(b, &pb.AuthUserAddRequest{Name: "alice", HashedPassword: h})
		},
		func(b *pebble.Batch) error {
			return as.ApplyUserGrantRole(b, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
		},
		func(b *pebble.Batch) error { return as.ApplyRoleAdd(b, &pb.AuthRoleAddRequest{Name: "r"}) },
		func(b *pebble.Batch) error {
			return as.ApplyRoleGrantPermission(b, &pb.AuthRoleGrantPermissionRequest{Name: "r",
				Perm: &authpb.Permission{PermType: authpb.READWRITE, Key: []byte("/a/"), RangeEnd: []byte("/a0")}})
		},
		func(b *pebble.Batch) error {
			return as.ApplyUserGrantRole(b, &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"})
		},
		as.ApplyEnable,
	}
	for i, step := range steps {
		b := db.NewBatch()
		if err := step(b); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if err := b.Commit(pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	return s, db
}

// A permission revoked after the edge checked a request, but before the
// request is applied, is enforced when it is applied: the request carries
// the auth revision of its check, which the revocation made old.
func TestApplyEnforcesRevocationAfterEdgeCheck(t *testing.T) {
	s, db := authTestServer(t)
	ai := &auth.Info{Username: "alice", Revision: s.authStore.Revision()}
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1}, Put: &pb.PutRequest{Key: []byte("/a/1"), Value: []byte("v")}}
	// The edge stamps and checks the request.
	req.Header.Username, req.Header.AuthRevision = ai.Username, ai.Revision
	if err := s.checkRequest(ai, req); err != nil {
		t.Fatalf("edge check: %v", err)
	}
	// Applied now, the request passes the check (and is left to the KV
	// apply).
	b := db.NewBatch()
	defer b.Close()
	if res, handled := s.applyAuth(b, req, 10); handled {
		t.Fatalf("allowed put was stopped at apply: %v", res.err)
	}
	// The permission is revoked before the request is applied.
	if err := s.authStore.ApplyRoleRevokePermission(b, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("/a/"), RangeEnd: []byte("/a0")}); err != nil {
		t.Fatal(err)
	}
	res, handled := s.applyAuth(b, req, 11)
	if !handled || !errors.Is(res.err, auth.ErrAuthOldRevision) {
		t.Fatalf("put applied after the revocation: handled %v, err %v; want %v", handled, res.err, auth.ErrAuthOldRevision)
	}
	// Re-authenticated at the new revision, the request is denied.
	req.Header.AuthRevision = s.authStore.Revision()
	res, handled = s.applyAuth(b, req, 12)
	if !handled || !errors.Is(res.err, auth.ErrPermissionDenied) {
		t.Fatalf("put with fresh credentials after the revocation: handled %v, err %v", handled, res.err)
	}
	// A request that came without a user is refused, and root passes.
	req.Header.Username, req.Header.AuthRevision = "", 0
	if res, _ := s.applyAuth(b, req, 13); !errors.Is(res.err, auth.ErrUserEmpty) {
		t.Fatalf("put without a user: %v", res.err)
	}
	req.Header.Username, req.Header.AuthRevision = "root", s.authStore.Revision()
	if res, handled := s.applyAuth(b, req, 14); handled {
		t.Fatalf("root's put stopped at apply: %v", res.err)
	}
	// Admin requests are checked when applied too.
	adm := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 2, Username: "alice", AuthRevision: s.authStore.Revision()},
		AuthUserAdd: &pb.AuthUserAddRequest{Name: "eve"}}
	if res, _ := s.applyAuth(b, adm, 15); !errors.Is(res.err, auth.ErrPermissionDenied) {
		t.Fatalf("alice's user add at apply: %v", res.err)
	}
}

// The v2 API's checks: basic-auth users, paths as keys, the prefix below
// a directory for recursive operations, in-order creates and directory
// listings, and the same check when a v2 write is applied.
func TestV2Auth(t *testing.T) {
	s, db := authTestServer(t)
	// alice may also read the key /p and the key /p/mine, but not all of
	// the directory /p; and the keys below /q/, but not the key /q.
	b := db.NewBatch()
	for _, k := range [][2]string{{"/p", ""}, {"/p/mine", ""}, {"/q/", "/q0"}} {
		if err := s.authStore.ApplyRoleGrantPermission(b, &pb.AuthRoleGrantPermissionRequest{Name: "r",
			Perm: &authpb.Permission{PermType: authpb.READ, Key: []byte(k[0]), RangeEnd: []byte(k[1])}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	alice := &auth.Info{Username: "alice", Revision: s.authStore.Revision()}
	yes := true
	cases := []struct {
		name string
		ai   *auth.Info
		r    *pb.Request
		want error
	}{
		{"read own key", alice, &pb.Request{Method: "GET", Path: "/a/x"}, nil},
		{"quorum read own key", alice, &pb.Request{Method: "QGET", Path: "/a/x"}, nil},
		{"recursive read below own prefix", alice, &pb.Request{Method: "GET", Path: "/a/d", Recursive: true}, nil},
		{"the directory key is not granted", alice, &pb.Request{Method: "GET", Path: "/a"}, auth.ErrPermissionDenied},
		{"recursive read of a partly owned directory", alice, &pb.Request{Method: "GET", Path: "/p", Recursive: true}, auth.ErrPermissionDenied},
		{"recursive read of everything", alice, &pb.Request{Method: "GET", Path: "/", Recursive: true}, auth.ErrPermissionDenied},
		{"other key", alice, &pb.Request{Method: "HEAD", Path: "/b"}, auth.ErrPermissionDenied},
		{"write own key", alice, &pb.Request{Method: "PUT", Path: "/a/x", Val: "v"}, nil},
		{"write a read-only key", alice, &pb.Request{Method: "PUT", Path: "/p/mine", Val: "v"}, auth.ErrPermissionDenied},
		{"in-order create in own directory", alice, &pb.Request{Method: "POST", Path: "/a/q", Val: "v"}, nil},
		{"in-order create below a key she owns alone", alice, &pb.Request{Method: "POST", Path: "/p/mine", Val: "v"}, auth.ErrPermissionDenied},
		{"recursive delete of own directory", alice, &pb.Request{Method: "DELETE", Path: "/a/d", Recursive: true}, nil},
		{"recursive delete of a directory she does not own", alice, &pb.Request{Method: "DELETE", Path: "/a", Recursive: true}, auth.ErrPermissionDenied},
		{"TTL on own directory", alice, &pb.Request{Method: "PUT", Path: "/a/d", Dir: true, Expiration: 1}, nil},
		{"compare on own key", alice, &pb.Request{Method: "PUT", Path: "/a/x", PrevValue: "v"}, nil},
		{"refresh own key", alice, &pb.Request{Method: "PUT", Path: "/a/x", Refresh: &yes, Expiration: 1}, nil},
		{"no user", &auth.Info{}, &pb.Request{Method: "GET", Path: "/a/x"}, auth.ErrUserEmpty},
		{"an expiry needs no user", &auth.Info{}, &pb.Request{Method: "SYNC"}, nil},
		{"unknown method", alice, &pb.Request{Method: "PATCH", Path: "/a/x"}, auth.ErrPermissionDenied},
		{"root anything", &auth.Info{Username: "root", Revision: 1}, &pb.Request{Method: "DELETE", Path: "/", Recursive: true}, nil},
	}
	for _, tc := range cases {
		if err := s.checkV2(tc.ai, tc.r); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}

	// Reads: a directory alice may read the key of, but not all the
	// children of, is refused; so is a watch of it recursively.
	s.v2 = &v2State{store: v2store.New(), stats: newV2Stats()}
	now := time.Now()
	for _, k := range []string{"/p/mine", "/p/theirs", "/a/d/x", "/q/x"} {
		if _, err := s.v2.store.Set(nil, k, false, "v", v2store.TTLOptions{}, now); err != nil {
			t.Fatal(err)
		}
	}
	basic := func(user, pw string) context.Context {
		return auth.WithCredentials(context.Background(), auth.Credentials{BasicAuth: true, Username: user, Password: pw}, true)
	}
	ctx := basic("alice", "pw")
	for _, tc := range []struct {
		r    *pb.Request
		want error
	}{
		{&pb.Request{Method: "GET", Path: "/p/mine"}, nil},
		{&pb.Request{Method: "GET", Path: "/p"}, auth.ErrPermissionDenied},
		{&pb.Request{Method: "GET", Path: "/p/theirs"}, auth.ErrPermissionDenied},
		{&pb.Request{Method: "GET", Path: "/a/d"}, nil},
		{&pb.Request{Method: "GET", Path: "/a"}, nil}, // a directory needs its prefix, not its key
		{&pb.Request{Method: "GET", Path: "/a/nope"}, v2store.NewError(v2store.EcodeKeyNotFound, "/a/nope", 0)},
		{&pb.Request{Method: "GET", Path: "/nope"}, auth.ErrPermissionDenied},
		{&pb.Request{Method: "GET", Path: "/a", Wait: true, Recursive: true}, nil},
		{&pb.Request{Method: "GET", Path: "/p", Wait: true}, nil}, // the directory node alone
		{&pb.Request{Method: "GET", Path: "/p", Wait: true, Recursive: true}, auth.ErrPermissionDenied},
		{&pb.Request{Method: "GET", Path: "/p/theirs", Wait: true}, auth.ErrPermissionDenied},
	} {
		ev, w, err := s.V2Do(ctx, tc.r)
		var verr, vwant *v2store.Error
		if errors.As(err, &verr) && errors.As(tc.want, &vwant) && verr.ErrorCode == vwant.ErrorCode {
			continue
		}
		if !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("V2Do %s %s wait=%v recursive=%v: %v, want %v", tc.r.Method, tc.r.Path, tc.r.Wait, tc.r.Recursive, err, tc.want)
		}
		if err == nil && ev == nil && w == nil {
			t.Errorf("V2Do %s %s: no answer", tc.r.Method, tc.r.Path)
		}
		if w != nil {
			w.Remove()
		}
	}
	for _, tc := range []struct {
		ctx  context.Context
		want error
	}{
		{context.Background(), auth.ErrUserEmpty},
		{basic("alice", "wrong"), auth.ErrAuthFailed},
		{basic("nobody", "pw"), auth.ErrAuthFailed},
		{basic("root", "pw"), nil},
	} {
		if _, _, err := s.V2Do(tc.ctx, &pb.Request{Method: "GET", Path: "/p/theirs"}); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("read with other credentials: %v, want %v", err, tc.want)
		}
	}

	// Every event of a watch is checked as it is delivered: the watched
	// path turning into a value alice may not read, or a revoked
	// permission, ends the watch.
	_, qw, err := s.V2Do(ctx, &pb.Request{Method: "GET", Path: "/q", Wait: true, Stream: true})
	if err != nil {
		t.Fatalf("watch of /q: %v", err)
	}
	_, aw, err := s.V2Do(ctx, &pb.Request{Method: "GET", Path: "/a", Wait: true, Recursive: true, Stream: true})
	if err != nil {
		t.Fatalf("watches: %v", err)
	}
	if _, err := s.v2.store.Set(nil, "/a/d/y", false, "v", v2store.TTLOptions{}, now); err != nil {
		t.Fatal(err)
	}
	if ev, ok := <-aw.EventChan(); !ok || ev.Node.Key != "/a/d/y" {
		t.Fatalf("alice's watch of /a: %+v %v", ev, ok)
	}
	if _, err := s.v2.store.Delete(nil, "/q", true, true, now); err != nil {
		t.Fatal(err)
	}
	if _, err := s.v2.store.Set(nil, "/q", false, "now a value", v2store.TTLOptions{}, now); err != nil {
		t.Fatal(err)
	}
	// The deletion (a directory's event) arrives, the value does not,
	// and the watch ends.
	sawDelete := false
	for ev := range qw.EventChan() {
		if !ev.Node.Dir {
			t.Fatalf("alice's watch of /q delivered a value she may not read: %+v", ev.Node)
		}
		sawDelete = sawDelete || ev.Action == v2store.Delete
	}
	if !sawDelete {
		t.Errorf("alice's watch of the directory /q missed its deletion")
	}
	b = db.NewBatch()
	if err := s.authStore.ApplyRoleRevokePermission(b, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("/a/"), RangeEnd: []byte("/a0")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.v2.store.Set(nil, "/a/d/z", false, "v", v2store.TTLOptions{}, now); err != nil {
		t.Fatal(err)
	}
	if ev, ok := <-aw.EventChan(); ok {
		t.Fatalf("alice's watch delivered an event after the revocation: %+v", ev.Node)
	}
	b.Close()
	if err := s.authStore.Load(db); err != nil { // undo the revocation, which was not committed
		t.Fatal(err)
	}

	// A v2 write checked at the edge is checked again when applied,
	// against the auth state it is applied at: a change of another user
	// does not refuse it, a revocation does.
	req := &pb.InternalRaftRequest{Header: &pb.RequestHeader{ID: 1, Username: "alice", AuthRevision: alice.Revision},
		V2: &pb.Request{Method: "PUT", Path: "/a/x", Val: "v"}}
	b = db.NewBatch()
	defer b.Close()
	if err := s.authStore.ApplyRoleAdd(b, &pb.AuthRoleAddRequest{Name: "other"}); err != nil {
		t.Fatal(err)
	}
	if res, handled := s.applyAuth(b, req, 20); handled {
		t.Fatalf("alice's v2 put stopped at apply after an unrelated change: %v", res.err)
	}
	if err := s.authStore.ApplyRoleRevokePermission(b, &pb.AuthRoleRevokePermissionRequest{Role: "r", Key: []byte("/a/"), RangeEnd: []byte("/a0")}); err != nil {
		t.Fatal(err)
	}
	if res, handled := s.applyAuth(b, req, 21); !handled || !errors.Is(res.err, auth.ErrPermissionDenied) {
		t.Fatalf("alice's v2 put applied after the revocation: %v %v", handled, res.err)
	}
	req.Header.Username, req.Header.AuthRevision = "", 0
	if res, handled := s.applyAuth(b, req, 22); !handled || !errors.Is(res.err, auth.ErrUserEmpty) {
		t.Fatalf("an anonymous v2 put at apply: %v %v", handled, res.err)
	}
}
