package snapshot

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/storage"
)

// source builds a database with a few revisions, a lease, a member and an
// alarm (the last two must not travel) and returns a snapshot of it.
func source(t testing.TB) (*storage.DB, []byte) {
	t.Helper()
	db, err := storage.Open(storage.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	b := db.NewBatch()
	for i := int64(2); i < 40; i++ {
		kv := mvccpb.KeyValue{Key: []byte(fmt.Sprintf("k%d", i%7)), Value: bytes.Repeat([]byte{byte(i)}, int(i)), ModRevision: i, CreateRevision: i, Version: 1}
		v, _ := kv.Marshal()
		b.Set(storage.RevKey(nil, storage.Revision{Main: i}, false), v, nil)
	}
	b.Set(storage.IDKey(storage.PrefixLease, 99), make([]byte, 16), nil)
	b.Set(storage.IDKey(storage.PrefixMember, 1), []byte(`{"id":1}`), nil)
	b.Set([]byte{storage.PrefixAlarm, 1}, nil, nil)
	storage.PutUint64(b, storage.MetaScheduledCompact, 10)
	if err := db.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	snap := db.Pebble().NewSnapshot()
	defer snap.Close()
	size, err := Size(snap, Backup)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := Write(&buf, snap, Backup); err != nil {
		t.Fatal(err)
	}
	if int64(buf.Len()) != size {
		t.Fatalf("Size said %d, Write wrote %d", size, buf.Len())
	}
	if buf.Len()%512 != 32 {
		t.Fatalf("size %d: etcd's tools find the checksum only when size %% 512 == 32", buf.Len())
	}
	return db, buf.Bytes()
}

func TestRoundTrip(t *testing.T) {
	_, data := source(t)
	var keys [][]byte
	if err := Read(bytes.NewReader(data), func(k, v []byte) error {
		keys = append(keys, append([]byte(nil), k...))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var revs, leases, other int
	for _, k := range keys {
		switch k[0] {
		case storage.PrefixKV:
			revs++
		case storage.PrefixLease:
			leases++
		case storage.PrefixMeta:
		default:
			other++
		}
	}
	if revs != 38 || leases != 1 || other != 0 {
		t.Fatalf("records: %d revisions, %d leases, %d others; want 38, 1, 0 (members and alarms stay behind)", revs, leases, other)
	}
}

func TestDamageIsDetected(t *testing.T) {
	_, data := source(t)
	read := func(b []byte) error { return Read(bytes.NewReader(b), func(k, v []byte) error { return nil }) }
	for _, n := range []int{0, 5, len(Magic), len(Magic) + 3, len(data) / 2, len(data) - 33, len(data) - 1} {
		if err := read(data[:n]); !errors.Is(err, ErrCorrupt) {
			t.Errorf("truncated to %d bytes: %v, want ErrCorrupt", n, err)
		}
	}
	for _, i := range []int{0, len(Magic) + 1, len(data) / 3, len(data) - 40, len(data) - 1} {
		bad := append([]byte(nil), data...)
		bad[i] ^= 0x40
		if err := read(bad); !errors.Is(err, ErrCorrupt) {
			t.Errorf("bit flipped at %d: %v, want ErrCorrupt", i, err)
		}
	}
	if err := read(append(append([]byte(nil), data...), 0)); !errors.Is(err, ErrCorrupt) {
		t.Errorf("trailing byte: %v", err)
	}
}

func TestRestore(t *testing.T) {
	_, data := source(t)
	dir := filepath.Join(t.TempDir(), "restored")
	cfg := RestoreConfig{
		DataDir: dir, Name: "m1",
		InitialCluster:      "m1=http://127.0.0.1:1,m2=http://127.0.0.1:2",
		InitialClusterToken: "tok",
		PeerURLs:            []string{"http://127.0.0.1:1"},
	}
	if err := Restore(bytes.NewReader(data), cfg); err != nil {
		t.Fatal(err)
	}
	if err := Restore(bytes.NewReader(data), cfg); err == nil {
		t.Fatal("restore over an existing data dir succeeded")
	}
	db, err := storage.Open(storage.Config{Dir: storage.DataPath(dir)})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := db.LoadRaftState()
	if err != nil {
		t.Fatal(err)
	}
	if st.Snapshot.Metadata.Index != 2 || len(st.Snapshot.Metadata.ConfState.Voters) != 2 || st.HardState.Commit != 2 {
		t.Fatalf("raft state %+v", st)
	}
	n := 0
	lo, hi := storage.PrefixBounds(storage.PrefixKV)
	it, _ := db.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	for it.First(); it.Valid(); it.Next() {
		n++
	}
	it.Close()
	if n != 38 {
		t.Fatalf("%d revisions restored, want 38", n)
	}
	if v, ok, _ := db.Uint64(storage.MetaScheduledCompact); !ok || v != 10 {
		t.Fatalf("compaction revision %d %v, want 10", v, ok)
	}
	if _, ok, _ := db.Get([]byte{storage.PrefixAlarm, 1}); ok {
		t.Fatal("an alarm of the old cluster was restored")
	}
}

func TestRestoreRejectsDamageAndLeavesNothing(t *testing.T) {
	_, data := source(t)
	parent := t.TempDir()
	dir := filepath.Join(parent, "restored")
	bad := append([]byte(nil), data...)
	bad[len(bad)/2] ^= 1
	err := Restore(bytes.NewReader(bad), RestoreConfig{DataDir: dir, Name: "default", InitialCluster: "default=http://127.0.0.1:2380"})
	if !errors.Is(err, ErrCorrupt) {
		t.Fatalf("restore of a damaged snapshot: %v", err)
	}
	entries, _ := os.ReadDir(parent)
	if len(entries) != 0 {
		t.Fatalf("a failed restore left %v behind", entries)
	}
	err = Restore(bytes.NewReader(data), RestoreConfig{DataDir: dir, Name: "nobody", InitialCluster: "default=http://127.0.0.1:2380"})
	if err == nil {
		t.Fatal("restore with a name missing from the initial cluster succeeded")
	}
}

func TestReadStatus(t *testing.T) {
	_, data := source(t)
	path := filepath.Join(t.TempDir(), "snap.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	st, err := ReadStatus(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != 39 || st.TotalKey != 38 || st.TotalSize != int64(len(data)) || st.Hash == 0 {
		t.Fatalf("status %+v", st)
	}
}

func FuzzRead(f *testing.F) {
	_, data := source(f)
	f.Add(data)
	f.Add([]byte(Magic))
	f.Add([]byte(Magic + "\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_ = Read(bytes.NewReader(b), func(k, v []byte) error { return nil })
	})
}
