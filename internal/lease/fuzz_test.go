package lease

import (
	"context"
	"encoding/binary"
	"errors"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/cairn-io/cairn/internal/storage"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// FuzzLoad reads a lease record from disk, whatever its key and value: Load
// never panics and fails only with ErrBadKey (a key that is not 8 bytes
// after the prefix) or ErrCorrupt (a value that is not 16 bytes); what it
// accepts is the record's TTLs, and survives being promoted, expired,
// checkpointed and persisted again. A record Grant could have written
// (TTL 1 to MaxTTL, remaining 0 to TTL) does not expire the moment its
// lessor becomes primary.
func FuzzLoad(f *testing.F) {
	f.Fuzz(func(t *testing.T, key, val []byte) {
		db := openFuzzDB(t)
		b := db.NewBatch()
		k := append([]byte{storage.PrefixLease}, key...)
		if err := b.Set(k, val, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		clock := &fakeClock{now: time.Unix(1_000_000, 0)}
		le := New(Config{MinTTL: 2, Clock: clock})
		err := le.Load(db)
		switch {
		case len(key) != 8:
			if !errors.Is(err, storage.ErrBadKey) {
				t.Fatalf("Load of a %d-byte key: %v, want ErrBadKey", len(key), err)
			}
			return
		case len(val) != 16:
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Load of a %d-byte record: %v, want ErrCorrupt", len(val), err)
			}
			return
		case err != nil:
			t.Fatalf("Load of a well-formed record: %v", err)
		}
		id := int64(binary.BigEndian.Uint64(key))
		ttl, rem := int64(binary.BigEndian.Uint64(val[:8])), int64(binary.BigEndian.Uint64(val[8:]))
		info, err := le.Get(id, true)
		if err != nil || info.ID != id || info.GrantedTTL != ttl || len(info.Keys) != 0 {
			t.Fatalf("Get(%x) after loading TTL %d: %+v, %v", id, ttl, info, err)
		}

		le.Promote(time.Second)
		valid := ttl >= 1 && ttl <= MaxTTL && rem >= 0 && rem <= ttl
		if exp := le.Expired(10, time.Second); valid && len(exp) != 0 {
			t.Fatalf("lease with TTL %d, remaining %d expired as its lessor was promoted", ttl, rem)
		}
		info, left, err := le.TimeToLive(id, false)
		if err != nil || info.Remaining < 0 {
			t.Fatalf("TimeToLive(%x): %+v, %v, %v", id, info, left, err)
		}
		if valid && left <= 0 {
			t.Fatalf("lease with TTL %d, remaining %d has %v left right after promotion", ttl, rem, left)
		}
		le.Checkpoints(time.Second)
		clock.advance(time.Duration(min(max(ttl, 0), 1000)) * time.Second)
		le.Expired(10, time.Second)
		le.Renew(context.Background(), id)

		// What was loaded persists back to the same record.
		db2 := openFuzzDB(t)
		b2 := db2.NewBatch()
		if err := persist(b2, &Lease{ID: id, TTL: ttl, RemainingTTL: rem}); err != nil {
			t.Fatal(err)
		}
		if err := b2.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		got, closer, err := db2.Get(k)
		if err != nil {
			t.Fatal(err)
		}
		defer closer.Close()
		if string(got) != string(val) {
			t.Fatalf("record %x persists back as %x", val, got)
		}
	})
}

func openFuzzDB(t *testing.T) *pebble.DB {
	t.Helper()
	db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem(), Logger: quietLogger{}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
