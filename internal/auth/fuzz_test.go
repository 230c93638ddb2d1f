package auth

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/golang-jwt/jwt/v5"
	"go.etcd.io/etcd/api/v3/authpb"

	"github.com/cairn-io/cairn/internal/storage"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// FuzzLoadAuthRecord reads an auth record from disk, whatever its key and
// value, beside a valid enabled state with user "u" in role "r": Load never
// panics and fails only with ErrCorrupt; after it loads, permission checks
// on any key never panic, answer only with the store's errors, and a range
// a user may read holds only keys the user may read.
func FuzzLoadAuthRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, suffix, val, key, rangeEnd, mid []byte) {
		db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		s := New(Config{Logger: quietLog()})
		defer s.Close()
		b := db.NewBatch()
		user, _ := (&authpb.User{Name: []byte("u"), Roles: []string{"r"}}).Marshal()
		role, _ := (&authpb.Role{Name: []byte("r"), KeyPermission: []*authpb.Permission{
			{PermType: authpb.READWRITE, Key: []byte("a"), RangeEnd: []byte("m")},
		}}).Marshal()
		b.Set(keyEnabled, []byte{1}, nil)
		b.Set(userKey("u"), user, nil)
		b.Set(roleKey("r"), role, nil)
		b.Set(append([]byte{storage.PrefixAuth}, suffix...), val, nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		if err := s.Load(db); err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Load of record %q = %x: %v, want ErrCorrupt", suffix, val, err)
			}
			return
		}
		for _, name := range append(s.UserList(), "", "nobody") {
			ai := &Info{Username: name, Revision: s.Revision()}
			for _, err := range []error{
				s.IsPutPermitted(ai, key),
				s.IsRangePermitted(ai, key, rangeEnd),
				s.IsDeleteRangePermitted(ai, key, rangeEnd),
				s.IsAdminPermitted(ai),
			} {
				if err != nil && !errors.Is(err, ErrPermissionDenied) && !errors.Is(err, ErrUserEmpty) && !errors.Is(err, ErrUserNotFound) {
					t.Fatalf("permission check of %q: %v", name, err)
				}
			}
			inRange := len(rangeEnd) > 0 && bytes.Compare(key, mid) <= 0 &&
				(bytes.Compare(mid, rangeEnd) < 0 || (len(rangeEnd) == 1 && rangeEnd[0] == 0))
			if inRange && s.IsRangePermitted(ai, key, rangeEnd) == nil && s.IsRangePermitted(ai, mid, nil) != nil {
				t.Fatalf("%q may read [%q, %q) but not %q in it", name, key, rangeEnd, mid)
			}
		}
		for _, name := range s.RoleList() {
			if _, err := s.RoleGet(name); err != nil {
				t.Fatalf("RoleGet(%q) of a listed role: %v", name, err)
			}
		}
	})
}

// FuzzSimpleToken checks simple tokens presented by clients: the token a
// login issued names its user; any other string is refused, without
// panicking.
func FuzzSimpleToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, token, user, prefix string, index uint64) {
		st := NewSimpleTokens(SimpleTokenConfig{TTL: time.Minute, Logger: quietLog()})
		st.enable()
		defer st.disable()
		issued, err := st.assignAtApply(user, 0, prefix, index)
		if err != nil {
			return
		}
		info, ok := st.info(context.Background(), issued, 3)
		valid := prefix != "" && !strings.Contains(prefix, ".")
		if valid && (!ok || info.Username != user || info.Revision != 3) {
			t.Fatalf("token %q issued to %q: %+v, %v", issued, user, info, ok)
		}
		if info, ok := st.info(context.Background(), token, 3); ok && (token != issued || info.Username != user) {
			t.Fatalf("token %q accepted as %+v; only %q was issued", token, info, issued)
		}
	})
}

// FuzzJWTToken checks JSON web tokens presented by clients: one the member
// signed carries the user and auth revision it was signed with; any other
// string, including a token signed with "none" or another key, is refused,
// without panicking.
func FuzzJWTToken(f *testing.F) {
	f.Fuzz(func(t *testing.T, token, user string, revision uint64) {
		jt := &JWTTokens{method: jwt.SigningMethodHS256, key: []byte("cairn-fuzz-key"), ttl: time.Minute, lg: quietLog()}
		signed, _, err := jt.assignAtEdge(user, revision)
		if !utf8.ValidString(user) {
			if !errors.Is(err, ErrAuthFailed) {
				t.Fatalf("token for a user name that is not UTF-8: %v, want ErrAuthFailed", err)
			}
			return
		}
		if err != nil {
			t.Fatal(err)
		}
		info, ok := jt.info(context.Background(), signed, 0)
		if !ok || info.Username != user {
			t.Fatalf("token signed for %q: %+v, %v", user, info, ok)
		}
		// The revision travels as a JSON number: exact up to 2^53.
		if revision <= 1<<53 && info.Revision != revision {
			t.Fatalf("token signed at revision %d read back at %d", revision, info.Revision)
		}
		info, ok = jt.info(context.Background(), token, 0)
		if !ok {
			return
		}
		if tk, _, err := jwt.NewParser().ParseUnverified(token, jwt.MapClaims{}); err != nil || tk.Method.Alg() != "HS256" {
			t.Fatalf("token %q accepted as %+v but not signed with HS256 (%v)", token, info, err)
		}
	})
}

func quietLog() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
