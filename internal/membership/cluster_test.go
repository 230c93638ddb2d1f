package membership_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/storage"
)

const clusterID = 0xcdf818194e3a8c32

// openDB opens a Pebble database on an in-memory file system that outlives
// it, so that tests can reopen what they wrote.
func openDB(t *testing.T, fs vfs.FS) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: fs})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return db
}

// write runs fn with a batch and commits it.
func write(t *testing.T, db *pebble.DB, fn func(b *pebble.Batch) error) error {
	t.Helper()
	b := db.NewBatch()
	defer b.Close()
	if err := fn(b); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatalf("commit: %v", err)
	}
	return nil
}

func load(t *testing.T, db *pebble.DB) *membership.Cluster {
	t.Helper()
	c, err := membership.Load(db, clusterID)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	return c
}

var (
	m1 = membership.Member{ID: 0x8e9e05c52164694d, Name: "default", PeerURLs: []string{"http://localhost:2380"}, ClientURLs: []string{"http://localhost:2379"}}
	m2 = membership.Member{ID: 0x91bc3c398fb3c146, Name: "infra2", PeerURLs: []string{"http://127.0.0.1:22380", "https://127.0.0.1:22381"}}
	m3 = membership.Member{ID: 0x1, PeerURLs: []string{"http://10.0.0.3:2380"}, IsLearner: true}
)

func TestClusterRoundTrip(t *testing.T) {
	fs := vfs.NewMem()
	db := openDB(t, fs)
	c := membership.New(clusterID)
	if c.ID() != clusterID || len(c.Members()) != 0 {
		t.Fatalf("New: ID %x, members %v", c.ID(), c.Members())
	}
	if err := write(t, db, func(b *pebble.Batch) error {
		for _, m := range []membership.Member{m2, m1, m3} {
			if err := c.Add(b, m); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatalf("Add: %v", err)
	}
	want := []membership.Member{m3, m1, m2} // ordered by ID
	if got := c.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("Members() = %+v, want %+v", got, want)
	}
	if got := load(t, db).Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("loaded %+v, want %+v", got, want)
	}

	// Promote the learner, give m2 new peer URLs, remove m1.
	if err := write(t, db, func(b *pebble.Batch) error {
		if err := c.Update(b, m3.ID, func(m *membership.Member) { m.IsLearner = false; m.Name = "three" }); err != nil {
			return err
		}
		if err := c.Update(b, m2.ID, func(m *membership.Member) { m.PeerURLs = []string{"http://127.0.0.1:22390"} }); err != nil {
			return err
		}
		return c.Remove(b, m1.ID)
	}); err != nil {
		t.Fatalf("update: %v", err)
	}
	n3 := m3
	n3.IsLearner, n3.Name = false, "three"
	n2 := m2
	n2.PeerURLs = []string{"http://127.0.0.1:22390"}
	want = []membership.Member{n3, n2}
	if got := c.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("after update Members() = %+v, want %+v", got, want)
	}
	if !c.IsRemoved(m1.ID) || c.IsRemoved(m2.ID) || c.IsRemoved(0x42) {
		t.Fatal("IsRemoved is wrong before a reload")
	}

	// Everything survives closing and reopening the database.
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, fs)
	defer db.Close()
	re := load(t, db)
	if got := re.Members(); !reflect.DeepEqual(got, want) {
		t.Fatalf("reloaded %+v, want %+v", got, want)
	}
	if !re.IsRemoved(m1.ID) || re.IsRemoved(m2.ID) || re.IsRemoved(m3.ID) {
		t.Fatal("IsRemoved is wrong after a reload")
	}
	if _, ok := re.Member(m1.ID); ok {
		t.Fatal("a removed member is still a member")
	}
	if got, ok := re.Member(m2.ID); !ok || !reflect.DeepEqual(got, n2) {
		t.Fatalf("Member(%x) = %+v, %v", m2.ID, got, ok)
	}
	if re.ID() != clusterID {
		t.Fatalf("ID() = %x", re.ID())
	}
}

func TestClusterErrors(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := membership.New(clusterID)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(write(t, db, func(b *pebble.Batch) error { return c.Add(b, m1) }))
	must(write(t, db, func(b *pebble.Batch) error { return c.Add(b, m2) }))
	must(write(t, db, func(b *pebble.Batch) error { return c.Remove(b, m2.ID) }))

	for _, cl := range []struct {
		name string
		c    *membership.Cluster
	}{{"in memory", c}, {"loaded", load(t, db)}} {
		t.Run(cl.name, func(t *testing.T) {
			c := cl.c
			noop := func(*membership.Member) {}
			for _, tc := range []struct {
				name string
				op   func(b *pebble.Batch) error
				want error
			}{
				{"add existing", func(b *pebble.Batch) error { return c.Add(b, m1) }, membership.ErrIDExists},
				{"add existing with other URLs", func(b *pebble.Batch) error {
					return c.Add(b, membership.Member{ID: m1.ID, PeerURLs: []string{"http://x:1"}})
				}, membership.ErrIDExists},
				{"add removed", func(b *pebble.Batch) error { return c.Add(b, m2) }, membership.ErrIDRemoved},
				{"remove removed", func(b *pebble.Batch) error { return c.Remove(b, m2.ID) }, membership.ErrIDRemoved},
				{"remove unknown", func(b *pebble.Batch) error { return c.Remove(b, 0x42) }, membership.ErrIDNotFound},
				{"update removed", func(b *pebble.Batch) error { return c.Update(b, m2.ID, noop) }, membership.ErrIDRemoved},
				{"update unknown", func(b *pebble.Batch) error { return c.Update(b, 0x42, noop) }, membership.ErrIDNotFound},
			} {
				b := db.NewBatch()
				err := tc.op(b)
				if !errors.Is(err, tc.want) {
					t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
				}
				if !b.Empty() {
					t.Errorf("%s: failed, yet wrote to the batch", tc.name)
				}
				b.Close()
			}
			if got := c.Members(); !reflect.DeepEqual(got, []membership.Member{m1}) {
				t.Fatalf("failed operations changed the members: %+v", got)
			}
		})
	}
}

// Members handed in and out are copies: callers cannot reach the set.
func TestClusterCopies(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := membership.New(clusterID)
	in := m2
	in.PeerURLs = append([]string(nil), m2.PeerURLs...)
	if err := write(t, db, func(b *pebble.Batch) error { return c.Add(b, in) }); err != nil {
		t.Fatal(err)
	}
	in.PeerURLs[0] = "http://changed:1"
	out := c.Members()
	out[0].PeerURLs[0] = "http://changed:2"
	one, _ := c.Member(m2.ID)
	one.PeerURLs[1] = "http://changed:3"
	if got, _ := c.Member(m2.ID); !reflect.DeepEqual(got, m2) {
		t.Fatalf("member changed from outside: %+v", got)
	}
}

func TestLoadCorrupt(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	if err := db.Set(storage.IDKey(storage.PrefixMember, 7), []byte("{not json"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := membership.Load(db, clusterID); !errors.Is(err, storage.ErrCorrupt) {
		t.Fatalf("Load of a bad record: %v, want storage.ErrCorrupt", err)
	}
	if err := db.Set(storage.IDKey(storage.PrefixMember, 7), []byte(`{"id":7,"peerURLs":["http://h:1"]}`), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if err := db.Set([]byte{storage.PrefixMember, 1, 2}, []byte("{}"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, err := membership.Load(db, clusterID); !errors.Is(err, storage.ErrBadKey) {
		t.Fatalf("Load with a short key: %v, want storage.ErrBadKey", err)
	}
}

// Other keyspaces do not leak into the member set.
func TestLoadReadsOnlyMembers(t *testing.T) {
	db := openDB(t, vfs.NewMem())
	defer db.Close()
	c := membership.New(clusterID)
	if err := write(t, db, func(b *pebble.Batch) error { return c.Add(b, m1) }); err != nil {
		t.Fatal(err)
	}
	for _, k := range [][]byte{
		storage.IDKey(storage.PrefixLease, 5),
		storage.IDKey(storage.PrefixMember-1, 6),
		storage.IDKey(storage.PrefixMember+1, 7),
	} {
		if err := db.Set(k, []byte("{garbage"), pebble.Sync); err != nil {
			t.Fatal(err)
		}
	}
	if got := load(t, db).Members(); !reflect.DeepEqual(got, []membership.Member{m1}) {
		t.Fatalf("loaded %+v", got)
	}
}
