package auth

import (
	"bytes"
	"math/rand"
	"testing"

	"go.etcd.io/etcd/api/v3/authpb"
)

// universe is every key of up to four bytes over {0x00, 'a', 'b'}. The
// permissions and requests of the model test use keys of up to two bytes,
// so every boundary of a permission (a key, a range end, a key's point end
// key+"\x00") is in the universe, and a range is covered exactly when every
// universe key in it is.
var universe = func() [][]byte {
	alphabet := []byte{0, 'a', 'b'}
	out := [][]byte{}
	var gen func(prefix []byte)
	gen = func(prefix []byte) {
		if len(prefix) > 0 {
			out = append(out, append([]byte(nil), prefix...))
		}
		if len(prefix) == 4 {
			return
		}
		for _, c := range alphabet {
			gen(append(prefix, c))
		}
	}
	gen(nil)
	return out
}()

func randKey(r *rand.Rand) []byte {
	alphabet := []byte{0, 'a', 'b'}
	k := make([]byte, 1+r.Intn(2))
	for i := range k {
		k[i] = alphabet[r.Intn(len(alphabet))]
	}
	return k
}

// naiveAllows is the model: a point needs a permission holding it; a range
// needs every key in it held; an empty range is judged by its key.
func naiveAllows(perms []*authpb.Permission, key, end []byte) bool {
	held := func(k []byte) bool {
		for _, p := range perms {
			switch {
			case len(p.RangeEnd) == 0:
				if bytes.Equal(k, p.Key) {
					return true
				}
			case isOpenEnded(p.RangeEnd):
				if bytes.Compare(k, p.Key) >= 0 {
					return true
				}
			default:
				if bytes.Compare(k, p.Key) >= 0 && bytes.Compare(k, p.RangeEnd) < 0 {
					return true
				}
			}
		}
		return false
	}
	if len(end) == 0 || (!isOpenEnded(end) && bytes.Compare(end, key) <= 0) {
		return held(key)
	}
	for _, u := range universe {
		if bytes.Compare(u, key) < 0 {
			continue
		}
		if !isOpenEnded(end) && bytes.Compare(u, end) >= 0 {
			continue
		}
		if !held(u) {
			return false
		}
	}
	return true
}

func randEnd(r *rand.Rand, key []byte) []byte {
	switch r.Intn(4) {
	case 0:
		return nil
	case 1:
		return []byte{0}
	}
	return randKey(r)
}

func TestSpanSetMatchesModel(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	for iter := 0; iter < 3000; iter++ {
		var perms []*authpb.Permission
		for n := r.Intn(5); n > 0; n-- {
			k := randKey(r)
			e := randEnd(r, k)
			if !ValidPermissionRange(k, e) {
				continue
			}
			perms = append(perms, &authpb.Permission{Key: k, RangeEnd: e, PermType: authpb.READ})
		}
		u := &authpb.User{Name: []byte("u"), Roles: []string{"r"}}
		up := mergePerms(u, map[string]*authpb.Role{"r": {Name: []byte("r"), KeyPermission: perms}})
		for q := 0; q < 20; q++ {
			key := randKey(r)
			end := randEnd(r, key)
			if got, want := up.read.allows(key, end), naiveAllows(perms, key, end); got != want {
				t.Fatalf("perms %v: allows(%q, %q) = %v, model says %v", perms, key, end, got, want)
			}
			if up.write.allows(key, end) && len(perms) > 0 {
				t.Fatalf("read-only perms allow a write on %q", key)
			}
		}
	}
}

func TestSpanSetCases(t *testing.T) {
	perm := func(k, e string) *authpb.Permission {
		return &authpb.Permission{Key: []byte(k), RangeEnd: []byte(e), PermType: authpb.READWRITE}
	}
	set := func(ps ...*authpb.Permission) spanSet {
		u := &authpb.User{Roles: []string{"r"}}
		return mergePerms(u, map[string]*authpb.Role{"r": {KeyPermission: ps}}).read
	}
	tests := []struct {
		name     string
		perms    spanSet
		key, end string
		want     bool
	}{
		{"prefix covers its range", set(perm("/a/", "/a0")), "/a/", "/a0", true},
		{"prefix does not cover the next prefix", set(perm("/a/", "/a0")), "/a/", "/a1", false},
		{"prefix does not cover its bare name", set(perm("/a/", "/a0")), "/a", "", false},
		{"open end needs an open permission", set(perm("/a/", "/a0")), "/a/", "\x00", false},
		{"from-key permission covers open end", set(perm("/a", "\x00")), "/b", "\x00", true},
		{"all keys", set(perm("\x00", "\x00")), "\x00", "\x00", true},
		{"adjacent ranges join", set(perm("a", "b"), perm("b", "c")), "a", "c", true},
		{"gap between ranges", set(perm("a", "b"), perm("b\x00", "c")), "a", "c", false},
		{"point and range join", set(perm("a", "b"), perm("b", "")), "a", "b\x00", true},
		{"empty range judged by its key", set(perm("b", "")), "b", "a", true},
		{"empty range with key outside", set(perm("a", "")), "b", "a", false},
		{"no permissions", set(), "a", "", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.perms.allows([]byte(tc.key), []byte(tc.end)); got != tc.want {
				t.Errorf("allows(%q, %q) = %v, want %v", tc.key, tc.end, got, tc.want)
			}
		})
	}
}
