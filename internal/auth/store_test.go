package auth

import (
	"context"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"
)

func openMem(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// apply runs one apply step in a batch and commits it, as the apply loop
// does.
func apply(t *testing.T, db *pebble.DB, fn func(b *pebble.Batch) error) error {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	err := fn(b)
	if cerr := b.Commit(pebble.Sync); cerr != nil {
		t.Fatal(cerr)
	}
	return err
}

func newTestStore(t *testing.T) (*Store, *pebble.DB) {
	t.Helper()
	db := openMem(t)
	s := New(Config{BcryptCost: bcrypt.MinCost})
	if err := s.Load(db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, db
}

func addUser(t *testing.T, s *Store, db *pebble.DB, name, password string) {
	t.Helper()
	h, err := s.HashPassword(context.Background(), password)
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserAdd(b, &pb.AuthUserAddRequest{Name: name, HashedPassword: h})
	}); err != nil {
		t.Fatal(err)
	}
}

func TestStoreLifecycle(t *testing.T) {
	s, db := newTestStore(t)
	if en, rev := s.Status(); en || rev != 1 {
		t.Fatalf("fresh store: enabled %v revision %d, want false 1", en, rev)
	}
	if err := apply(t, db, s.ApplyEnable); !errors.Is(err, ErrRootUserNotExist) {
		t.Fatalf("enable without root: %v", err)
	}
	addUser(t, s, db, "root", "rootpw")
	if err := apply(t, db, s.ApplyEnable); !errors.Is(err, ErrRootRoleNotExist) {
		t.Fatalf("enable without root role: %v", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserGrantRole(b, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
	}))
	addUser(t, s, db, "alice", "alicepw")
	must(apply(t, db, func(b *pebble.Batch) error { return s.ApplyRoleAdd(b, &pb.AuthRoleAddRequest{Name: "r"}) }))
	must(apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyRoleGrantPermission(b, &pb.AuthRoleGrantPermissionRequest{Name: "r",
			Perm: &authpb.Permission{PermType: authpb.READ, Key: []byte("/a/"), RangeEnd: []byte("/a0")}})
	}))
	must(apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserGrantRole(b, &pb.AuthUserGrantRoleRequest{User: "alice", Role: "r"})
	}))
	must(apply(t, db, s.ApplyEnable))
	_, rev := s.Status()
	// root add, root grant, alice add, role add, permission, alice grant.
	if rev != 7 {
		t.Fatalf("revision after six changes = %d, want 7", rev)
	}

	alice := &Info{Username: "alice", Revision: rev}
	if err := s.IsRangePermitted(alice, []byte("/a/x"), nil); err != nil {
		t.Errorf("alice read /a/x: %v", err)
	}
	if err := s.IsPutPermitted(alice, []byte("/a/x")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("alice write /a/x: %v", err)
	}
	if err := s.IsRangePermitted(alice, []byte("/a/"), []byte("\x00")); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("alice read from /a/ to the end: %v", err)
	}
	if err := s.IsRangePermitted(&Info{Username: "alice", Revision: rev - 1}, []byte("/a/x"), nil); !errors.Is(err, ErrAuthOldRevision) {
		t.Errorf("stale revision: %v", err)
	}
	if err := s.IsRangePermitted(&Info{}, []byte("/a/x"), nil); !errors.Is(err, ErrUserEmpty) {
		t.Errorf("no user: %v", err)
	}
	if err := s.IsAdminPermitted(alice); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("alice admin: %v", err)
	}
	if err := s.IsAdminPermitted(&Info{Username: "root", Revision: rev}); err != nil {
		t.Errorf("root admin: %v", err)
	}
	if err := apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserDelete(b, &pb.AuthUserDeleteRequest{Name: "root"})
	}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Errorf("delete root while enabled: %v", err)
	}
	if err := apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserRevokeRole(b, &pb.AuthUserRevokeRoleRequest{Name: "root", Role: "root"})
	}); !errors.Is(err, ErrInvalidAuthMgmt) {
		t.Errorf("revoke root role while enabled: %v", err)
	}
	if _, rev2 := s.Status(); rev2 != rev {
		t.Errorf("refused changes moved the revision to %d", rev2)
	}

	// A fresh store loaded from the same storage has the same state.
	s2 := New(Config{BcryptCost: bcrypt.MinCost})
	if err := s2.Load(db); err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if en, r2 := s2.Status(); !en || r2 != rev {
		t.Fatalf("reloaded: enabled %v revision %d, want true %d", en, r2, rev)
	}
	if got := s2.UserList(); len(got) != 2 || got[0] != "alice" || got[1] != "root" {
		t.Errorf("reloaded users %v", got)
	}
	if err := s2.IsRangePermitted(alice, []byte("/a/x"), nil); err != nil {
		t.Errorf("reloaded alice read: %v", err)
	}
	if _, err := s2.CheckPassword(context.Background(), "alice", "alicepw"); err != nil {
		t.Errorf("reloaded password check: %v", err)
	}
	if _, err := s2.CheckPassword(context.Background(), "alice", "nope"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("wrong password: %v", err)
	}

	// Deleting the role revokes it from alice.
	must(apply(t, db, func(b *pebble.Batch) error { return s.ApplyRoleDelete(b, &pb.AuthRoleDeleteRequest{Role: "r"}) }))
	_, rev = s.Status()
	if roles, _ := s.UserGet("alice"); len(roles) != 0 {
		t.Errorf("alice still has %v", roles)
	}
	if err := s.IsRangePermitted(&Info{Username: "alice", Revision: rev}, []byte("/a/x"), nil); !errors.Is(err, ErrPermissionDenied) {
		t.Errorf("alice read after role delete: %v", err)
	}
	must(apply(t, db, s.ApplyDisable))
	if _, r3 := s.Status(); r3 != rev+1 {
		t.Errorf("disable revision %d, want %d", r3, rev+1)
	}
}
