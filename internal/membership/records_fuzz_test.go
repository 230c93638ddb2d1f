package membership_test

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/storage"
)

// FuzzLoadMemberRecord reads a member record from disk, whatever its key
// and value: Load never panics and fails only with ErrBadKey (a key that is
// not a member ID) or ErrCorrupt (a value that is not a member record); an
// accepted record is either a removed member or a member Member returns as
// decoded, and what was loaded is written back and loaded again unchanged.
func FuzzLoadMemberRecord(f *testing.F) {
	f.Fuzz(func(t *testing.T, key, val []byte) {
		db := memDB(t)
		b := db.NewBatch()
		b.Set(append([]byte{storage.PrefixMember}, key...), val, nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		c, err := membership.Load(db, 0xc1)
		switch {
		case len(key) != 8:
			if !errors.Is(err, storage.ErrBadKey) {
				t.Fatalf("Load of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
			return
		case err != nil:
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Load of record %q: %v, want ErrCorrupt", val, err)
			}
			return
		}
		if c.ID() != 0xc1 {
			t.Fatalf("cluster ID %x", c.ID())
		}
		id := binary.BigEndian.Uint64(key)
		members := c.Members()
		m, ok := c.Member(id)
		switch {
		case c.IsRemoved(id):
			if ok || len(members) != 0 {
				t.Fatalf("record %q: member %x is both removed and present (%+v)", val, id, members)
			}
		case !ok || len(members) != 1 || !reflect.DeepEqual(members[0], m):
			t.Fatalf("record %q under ID %x: Member %+v, %v; Members %+v", val, id, m, ok, members)
		}

		// Write what was loaded back and load it again.
		db2 := memDB(t)
		c2 := membership.New(0xc1)
		b2 := db2.NewBatch()
		if ok {
			m.ID = id
			if err := c2.Add(b2, m); err != nil {
				t.Fatal(err)
			}
		} else {
			if err := c2.Add(b2, membership.Member{ID: id}); err != nil {
				t.Fatal(err)
			}
			if err := c2.Remove(b2, id); err != nil {
				t.Fatal(err)
			}
		}
		if err := b2.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		again, err := membership.Load(db2, 0xc1)
		if err != nil {
			t.Fatalf("loading what was written back: %v", err)
		}
		if again.IsRemoved(id) != !ok {
			t.Fatalf("record %q: removed %v, written back and loaded: removed %v", val, !ok, again.IsRemoved(id))
		}
		if got, _ := again.Member(id); ok && !reflect.DeepEqual(got, m) {
			t.Fatalf("record %q loads as %+v, written back and loaded as %+v", val, m, got)
		}
	})
}

func memDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
