package server

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/storage"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// FuzzLoadAlarms reads alarm keys from disk, whatever they hold: loading
// never panics and fails only with ErrBadKey (a key that is not a member ID
// and an alarm type); an accepted key is listed as its member and type,
// encodes back to itself, and sits beside an alarm written the normal way.
func FuzzLoadAlarms(f *testing.F) {
	f.Fuzz(func(t *testing.T, key []byte, member uint64, typ int32) {
		db, err := pebble.Open("db", &pebble.Options{FS: vfs.NewMem()})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		raw := append([]byte{storage.PrefixAlarm}, key...)
		written := alarmKey{member: member, typ: pb.AlarmType(typ)}
		b := db.NewBatch()
		b.Set(raw, nil, nil)
		b.Set(alarmStorageKey(written), nil, nil)
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		a, err := loadAlarms(db)
		if len(key) != 12 {
			if !errors.Is(err, storage.ErrBadKey) {
				t.Fatalf("loading alarm key %x: %v, want ErrBadKey", raw, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("loading alarm key %x: %v", raw, err)
		}
		read := alarmKey{member: binary.BigEndian.Uint64(key[:8]), typ: pb.AlarmType(binary.BigEndian.Uint32(key[8:]))}
		if !bytes.Equal(alarmStorageKey(read), raw) {
			t.Fatalf("alarm key %x loads as %+v, which encodes as %x", raw, read, alarmStorageKey(read))
		}
		want := map[alarmKey]bool{read: true, written: true}
		all := a.list(pb.AlarmType_NONE)
		if len(all) != len(want) {
			t.Fatalf("loaded %v, want %v", all, want)
		}
		for i, m := range all {
			if !want[alarmKey{member: m.MemberID, typ: m.Alarm}] {
				t.Fatalf("loaded %v, want %v", all, want)
			}
			if i > 0 && (all[i-1].MemberID > m.MemberID || (all[i-1].MemberID == m.MemberID && all[i-1].Alarm >= m.Alarm)) {
				t.Fatalf("alarms listed out of order: %v", all)
			}
		}
		if !a.active(read.typ) || !a.active(written.typ) {
			t.Fatalf("loaded alarms %v not active", all)
		}
		if got := a.list(read.typ); len(got) == 0 {
			t.Fatalf("list(%v) of loaded %v is empty", read.typ, all)
		}
	})
}
