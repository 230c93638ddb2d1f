package v2store

import (
	"encoding/binary"
	"errors"
	"math/rand"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/storage"
)

// The fuzz input is a list of records of the v2 keyspace, each
// kind (1 byte: 'i', 'n' or 'e'), key length (1 byte), key, value length
// (2 bytes, big-endian), value; the key of each record follows the kind's
// prefix.
func appendRecord(b []byte, kind byte, key, value []byte) []byte {
	b = append(b, kind, byte(len(key)))
	b = append(b, key...)
	b = binary.BigEndian.AppendUint16(b, uint16(len(value)))
	return append(b, value...)
}

// v2Records turns the v2 keyspace of db into fuzz input.
func v2Records(t testing.TB, db *pebble.DB) []byte {
	var out []byte
	eachV2(t, db, func(k, v []byte) {
		if len(k) >= 2 && len(k)-2 <= 255 && len(v) <= 65535 {
			out = appendRecord(out, k[1], k[2:], v)
		}
	})
	return out
}

// writeRecords stores fuzz input in db; it reports false for input that
// is not a list of records.
func writeRecords(db *pebble.DB, data []byte) bool {
	b := db.NewBatch()
	for len(data) > 0 {
		if len(data) < 2 {
			return false
		}
		kind, klen := data[0], int(data[1])
		data = data[2:]
		if len(data) < klen+2 {
			return false
		}
		key := append([]byte{storage.PrefixV2, kind}, data[:klen]...)
		vlen := int(binary.BigEndian.Uint16(data[klen:]))
		data = data[klen+2:]
		if len(data) < vlen {
			return false
		}
		if err := b.Set(key, data[:vlen], nil); err != nil {
			return false
		}
		data = data[vlen:]
	}
	return b.Commit(pebble.NoSync) == nil
}

// FuzzLoad: whatever the v2 keyspace on disk holds, Load either refuses it
// with storage.ErrCorrupt or builds a store that works: reads and watches
// answer, writes, TTL expiry and a recursive delete apply, and what they
// persist loads back as the same store.
func FuzzLoad(f *testing.F) {
	// Seeds: the storage of stores built by random requests.
	for seed := int64(1); seed <= 6; seed++ {
		rng := rand.New(rand.NewSource(seed))
		db := memDB(f)
		s := New()
		now := at(0)
		for round := 0; round < 10; round++ {
			b := db.NewBatch()
			for i := 0; i < 1+rng.Intn(6); i++ {
				now = now.Add(time.Duration(rng.Intn(700)) * time.Millisecond)
				s.Apply(b, randomRequest(rng, now))
			}
			if err := b.Commit(pebble.NoSync); err != nil {
				f.Fatal(err)
			}
		}
		f.Add(v2Records(f, db))
	}
	f.Add(appendRecord(nil, kindIndex, nil, []byte{0, 0, 0, 0, 0, 0, 0, 9}))
	f.Add(appendRecord(nil, kindNode, []byte("/a/b"), encodeNode(newKV("/a/b", "v", 1, nil, time.Time{}))))
	f.Add(appendRecord(nil, kindEvent, []byte{0, 0, 0, 0, 0, 0, 0, 1}, encodeEvent(newEvent(Set, "/a", 1, 1))))

	f.Fuzz(func(t *testing.T, data []byte) {
		db := memDB(t)
		if !writeRecords(db, data) {
			return
		}
		s, err := Load(db)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Load refused damaged records without ErrCorrupt: %v", err)
			}
			return
		}
		if _, err := s.Get("/", true, true, at(0)); err != nil {
			t.Fatalf("get of the root: %v", err)
		}
		if w, err := s.Watch("/", true, false, 0); err == nil {
			w.Remove()
		}
		b := db.NewBatch()
		s.Set(b, "/fuzz/new", false, "v", none, at(1))
		s.DeleteExpiredKeys(b, at(1e6))
		s.Apply(b, randomRequest(rand.New(rand.NewSource(int64(len(data)))), at(2)))
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		again, err := Load(db)
		if err != nil {
			t.Fatalf("a store that loaded wrote records that do not: %v", err)
		}
		if got, want := dump(again), dump(s); got != want {
			t.Fatalf("what the store wrote loads as another store\n--- loaded\n%s--- live\n%s", got, want)
		}
	})
}
