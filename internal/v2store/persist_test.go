package v2store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/storage"
)

func memDB(t testing.TB) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// dump describes everything a store holds that must survive a restart:
// the index, every node (hidden ones too) and the history.
func dump(s *Store) string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	var b strings.Builder
	fmt.Fprintf(&b, "index %d\n", s.index)
	var walk func(n *node)
	walk = func(n *node) {
		fmt.Fprintf(&b, "%q dir=%v c=%d m=%d exp=%d v=%q heap=%v\n", n.path, n.isDir(), n.createdIndex, n.modifiedIndex,
			n.expireTime.UnixNano(), n.value, n.heapIndex >= 0)
		for _, c := range n.sortedChildren() {
			if c.parent != n {
				fmt.Fprintf(&b, "  bad parent of %q\n", c.path)
			}
			walk(c)
		}
	}
	walk(s.root)
	for _, e := range s.hist.all() {
		fmt.Fprintf(&b, "event %d %s refresh=%v\n", e.Index(), encodeEvent(e), e.Refresh)
	}
	return b.String()
}

func v2Keyspace(t testing.TB, db *pebble.DB) []byte {
	var out []byte
	eachV2(t, db, func(k, v []byte) { out = fmt.Appendf(out, "%q=%q\n", k, v) })
	return out
}

// eachV2 calls fn with every key and value of the v2 keyspace, in order.
func eachV2(t testing.TB, db *pebble.DB, fn func(k, v []byte)) {
	t.Helper()
	lo, hi := storage.PrefixBounds(storage.PrefixV2)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		fn(it.Key(), it.Value())
	}
}

// randomRequest makes a v2 request over a small key space, so that
// operations collide: directories, hidden keys, TTLs, CAS, deletes, SYNCs.
func randomRequest(rng *rand.Rand, now time.Time) *pb.Request {
	names := []string{"a", "b", "_h", "c"}
	var p strings.Builder
	for depth := 1 + rng.Intn(3); depth > 0; depth-- {
		p.WriteString("/" + names[rng.Intn(len(names))])
	}
	r := &pb.Request{Path: p.String(), Time: now.UnixNano(), Val: fmt.Sprint(rng.Intn(3))}
	if rng.Intn(4) == 0 {
		r.Expiration = now.Add(time.Duration(rng.Intn(5)) * time.Second).UnixNano()
	}
	yes, no := true, false
	switch rng.Intn(10) {
	case 0, 1, 2:
		r.Method = "PUT"
		r.Dir = rng.Intn(5) == 0
	case 3:
		r.Method, r.PrevExist = "PUT", &yes
		if rng.Intn(3) == 0 {
			r.Refresh = &yes
			r.Val = ""
		}
	case 4:
		r.Method, r.PrevExist = "PUT", &no
	case 5:
		r.Method, r.PrevValue = "PUT", fmt.Sprint(rng.Intn(3))
	case 6:
		r.Method = "POST"
	case 7:
		r.Method, r.Dir, r.Recursive = "DELETE", rng.Intn(2) == 0, rng.Intn(2) == 0
	case 8:
		r.Method, r.PrevIndex = "DELETE", uint64(rng.Intn(20))
	case 9:
		r.Method = "SYNC"
	}
	return r
}

// TestPersistence applies random requests to a store writing to storage,
// committing after each batch, and checks that a store loaded from storage
// is the same as the live one; and that a second store applying the same
// requests writes byte-identical storage (members agree on their hash).
func TestPersistence(t *testing.T) {
	for seed := int64(1); seed <= 20; seed++ {
		rng := rand.New(rand.NewSource(seed))
		db1, db2 := memDB(t), memDB(t)
		s1, s2 := New(), New()
		now := at(0)
		for round := 0; round < 40; round++ {
			b1, b2 := db1.NewBatch(), db2.NewBatch()
			for i := 0; i < 1+rng.Intn(10); i++ {
				now = now.Add(time.Duration(rng.Intn(700)) * time.Millisecond)
				r := randomRequest(rng, now)
				ev1, err1 := s1.Apply(b1, r)
				ev2, err2 := s2.Apply(b2, r)
				if show(ev1, err1) != show(ev2, err2) {
					t.Fatalf("seed %d: the same request gave %s and %s", seed, show(ev1, err1), show(ev2, err2))
				}
				var ve *Error
				if err1 != nil && !errors.As(err1, &ve) {
					t.Fatalf("seed %d: storage error %v", seed, err1)
				}
			}
			if err := b1.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			if err := b2.Commit(pebble.NoSync); err != nil {
				t.Fatal(err)
			}
			loaded, err := Load(db1)
			if err != nil {
				t.Fatalf("seed %d round %d: load: %v", seed, round, err)
			}
			if got, want := dump(loaded), dump(s1); got != want {
				t.Fatalf("seed %d round %d: loaded store differs\n--- loaded\n%s--- live\n%s", seed, round, got, want)
			}
		}
		if !bytes.Equal(v2Keyspace(t, db1), v2Keyspace(t, db2)) {
			t.Fatalf("seed %d: two stores applying the same requests wrote different storage", seed)
		}
	}
}

// TestReload: after Reload the store is what storage holds, and open
// watchers are dropped.
func TestReload(t *testing.T) {
	db := memDB(t)
	s := New()
	b := db.NewBatch()
	s.Set(b, "/a", false, "1", none, at(0))
	if err := b.Commit(pebble.NoSync); err != nil {
		t.Fatal(err)
	}
	s.Set(nil, "/b", false, "not persisted", none, at(0))
	w, err := s.Watch("/", true, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Reload(db); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-w.EventChan(); ok {
		t.Fatal("watcher still open after Reload")
	}
	w.Remove()
	if s.Index() != 1 {
		t.Fatalf("index %d after reload", s.Index())
	}
	if _, err := s.Get("/b", false, false, at(0)); err == nil {
		t.Fatal("/b survived the reload")
	}
}

// TestLoadCorrupt: damaged records stop the load with storage.ErrCorrupt.
func TestLoadCorrupt(t *testing.T) {
	for name, kv := range map[string][2]string{
		"short index":      {"vi", "x"},
		"orphan node":      {"vn/a/b", string(encodeNode(newKV("/a/b", "v", 1, nil, time.Time{})))},
		"unclean path":     {"vn/a//b", string(encodeNode(newKV("/a//b", "v", 1, nil, time.Time{})))},
		"bad node":         {"vn/a", "\x09"},
		"bad event":        {"ve\x00\x00\x00\x00\x00\x00\x00\x01", "junk"},
		"event after idx":  {"ve\x00\x00\x00\x00\x00\x00\x00\x05", string(encodeEvent(newEvent(Set, "/a", 5, 5)))},
		"event before idx": {"ve\x00\x00\x00\x00\x00\x00\x00\x01", string(encodeEvent(newEvent(Set, "/a", 1, 1)))},
		"node after idx":   {"vn/a", string(encodeNode(newKV("/a", "v", 5, nil, time.Time{})))},
	} {
		db := memDB(t)
		// The store index is 2 unless a case sets it.
		if err := db.Set([]byte("vi"), []byte{0, 0, 0, 0, 0, 0, 0, 2}, nil); err != nil {
			t.Fatal(err)
		}
		if err := db.Set([]byte(kv[0]), []byte(kv[1]), nil); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(db); !errors.Is(err, storage.ErrCorrupt) {
			t.Errorf("%s: Load = %v, want ErrCorrupt", name, err)
		}
	}
}

// FuzzStorePaths: arbitrary paths and values never panic the store, and
// every failure is a v2 error with a known code.
func FuzzStorePaths(f *testing.F) {
	for _, s := range []string{"/a", "", "/", "a/../../b", "/_x/y", "//", "/a/./b/", "\x00", "/%2F", "/ä/ö"} {
		f.Add(s, "v", uint8(0))
	}
	known := map[int]bool{}
	for _, c := range Codes() {
		known[c] = true
	}
	f.Fuzz(func(t *testing.T, p, v string, op uint8) {
		s := New()
		s.Set(nil, "/a/b", false, "x", none, at(0))
		s.Set(nil, "/f", false, "x", ttl(1), at(0))
		yes := true
		r := &pb.Request{Path: p, Val: v, Time: at(0).UnixNano()}
		switch op % 8 {
		case 0:
			r.Method = "PUT"
		case 1:
			r.Method, r.Dir = "PUT", true
		case 2:
			r.Method, r.PrevExist = "PUT", &yes
		case 3:
			r.Method = "POST"
		case 4:
			r.Method, r.Recursive = "DELETE", true
		case 5:
			r.Method, r.PrevValue = "DELETE", v
		case 6:
			r.Method = "QGET"
		case 7:
			r.Method, r.PrevValue = "PUT", v
		}
		_, err := s.Apply(nil, r)
		var ve *Error
		if err != nil && (!errors.As(err, &ve) || !known[ve.ErrorCode]) {
			t.Fatalf("%s %q: %v", r.Method, p, err)
		}
		if w, err := s.Watch(p, true, false, 1); err == nil {
			w.Remove()
		}
		s.DeleteExpiredKeys(nil, at(10))
		if _, err := s.Get(p, true, true, at(0)); err != nil && !errors.As(err, &ve) {
			t.Fatalf("get %q: %v", p, err)
		}
	})
}
