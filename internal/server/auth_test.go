package server

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/lease"
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

// The v2 API's checks: basic-auth users, paths as keys, recursion over the
// directory's keys, root for admin endpoints.
func TestAuthorizeV2(t *testing.T) {
	s, _ := authTestServer(t)
	ctx := context.Background()
	alice := V2Credentials{BasicAuth: true, Username: "alice", Password: "pw"}
	cases := []struct {
		name      string
		c         V2Credentials
		path      string
		recursive bool
		write     bool
		want      error
	}{
		{"read own key", alice, "/a/x", false, false, nil},
		{"write own key", alice, "/a/x", false, true, nil},
		{"recursive own dir", alice, "/a/x", true, true, nil},
		{"dir itself not granted", alice, "/a", false, false, auth.ErrPermissionDenied},
		{"recursive dir not covered", alice, "/a", true, false, auth.ErrPermissionDenied},
		{"other key", alice, "/b", false, false, auth.ErrPermissionDenied},
		{"wrong password", V2Credentials{BasicAuth: true, Username: "alice", Password: "x"}, "/a/x", false, false, auth.ErrAuthFailed},
		{"no credentials", V2Credentials{}, "/a/x", false, false, auth.ErrUserEmpty},
		{"root anything", V2Credentials{BasicAuth: true, Username: "root", Password: "pw"}, "/", true, true, nil},
	}
	for _, tc := range cases {
		if err := s.AuthorizeV2(ctx, tc.c, tc.path, tc.recursive, tc.write); !errors.Is(err, tc.want) && !(err == nil && tc.want == nil) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := s.AuthorizeV2Admin(ctx, alice); !errors.Is(err, auth.ErrPermissionDenied) {
		t.Errorf("alice admin: %v", err)
	}
	if err := s.AuthorizeV2Admin(ctx, V2Credentials{BasicAuth: true, Username: "root", Password: "pw"}); err != nil {
		t.Errorf("root admin: %v", err)
	}
}
