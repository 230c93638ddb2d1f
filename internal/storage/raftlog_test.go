package storage

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"reflect"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// openMem opens a DB on fs (a fresh in-memory one when nil).
func openMem(t testing.TB, fs vfs.FS) (*DB, vfs.FS) {
	t.Helper()
	if fs == nil {
		fs = vfs.NewMem()
	}
	d, err := Open(Config{Dir: "db", FS: fs, Logger: quiet, CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return d, fs
}

func closeDB(t testing.TB, d *DB) {
	t.Helper()
	if err := d.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
}

// ents makes entries lo..hi (inclusive) of the given term; each entry's
// data names its index and term so that overwritten entries are told apart.
func ents(lo, hi, term uint64) []raftpb.Entry {
	var out []raftpb.Entry
	for i := lo; i <= hi; i++ {
		out = append(out, raftpb.Entry{Index: i, Term: term, Type: raftpb.EntryNormal, Data: []byte(fmt.Sprintf("%d@%d", i, term))})
	}
	return out
}

func cat(parts ...[]raftpb.Entry) []raftpb.Entry {
	var out []raftpb.Entry
	for _, p := range parts {
		out = append(out, p...)
	}
	return out
}

func mustLoad(t *testing.T, d *DB) RaftState {
	t.Helper()
	st, err := d.LoadRaftState()
	if err != nil {
		t.Fatalf("LoadRaftState: %v", err)
	}
	return st
}

func checkEntries(t *testing.T, got, want []raftpb.Entry) {
	t.Helper()
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("entries:\n got %s\nwant %s", entryList(got), entryList(want))
	}
}

func entryList(es []raftpb.Entry) string {
	s := "["
	for i, e := range es {
		if i > 0 {
			s += " "
		}
		s += fmt.Sprintf("%d/%d:%s", e.Index, e.Term, e.Data)
	}
	return s + "]"
}

// storedLogIndexes lists the raft log indexes present in Pebble.
func storedLogIndexes(t *testing.T, d *DB) []uint64 {
	t.Helper()
	lo, hi := PrefixBounds(PrefixRaftLog)
	it, err := d.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var out []uint64
	for it.First(); it.Valid(); it.Next() {
		i, err := ParseRaftLogKey(it.Key())
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, i)
	}
	return out
}

func span(lo, hi uint64) []uint64 {
	var out []uint64
	for i := lo; i <= hi; i++ {
		out = append(out, i)
	}
	return out
}

func checkStored(t *testing.T, d *DB, want []uint64) {
	t.Helper()
	got := storedLogIndexes(t, d)
	if len(got) == 0 && len(want) == 0 {
		return
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("stored log indexes %v, want %v", got, want)
	}
}

func TestLoadRaftStateEmpty(t *testing.T) {
	d, _ := openMem(t, nil)
	defer closeDB(t, d)
	st := mustLoad(t, d)
	if !reflect.DeepEqual(st.HardState, raftpb.HardState{}) || st.Snapshot.Metadata.Index != 0 || len(st.Entries) != 0 {
		t.Fatalf("fresh database: %+v", st)
	}
}

func TestSaveRaftRoundTrip(t *testing.T) {
	d, fs := openMem(t, nil)
	hs := raftpb.HardState{Term: 3, Vote: 2, Commit: 4}
	if err := d.SaveRaft(hs, ents(1, 5, 3), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	st := mustLoad(t, d)
	if !reflect.DeepEqual(st.HardState, hs) {
		t.Fatalf("hard state %+v, want %+v", st.HardState, hs)
	}
	checkEntries(t, st.Entries, ents(1, 5, 3))

	// An empty hard state leaves the stored one alone; entries append.
	if err := d.SaveRaft(raftpb.HardState{}, ents(6, 7, 3), raftpb.Snapshot{}, false); err != nil {
		t.Fatal(err)
	}
	// Nothing at all is a no-op.
	if err := d.SaveRaft(raftpb.HardState{}, nil, raftpb.Snapshot{}, false); err != nil {
		t.Fatal(err)
	}
	st = mustLoad(t, d)
	if !reflect.DeepEqual(st.HardState, hs) {
		t.Fatalf("hard state %+v, want %+v", st.HardState, hs)
	}
	checkEntries(t, st.Entries, ents(1, 7, 3))

	// Everything survives a restart.
	closeDB(t, d)
	d, _ = openMem(t, fs)
	defer closeDB(t, d)
	st = mustLoad(t, d)
	if !reflect.DeepEqual(st.HardState, hs) {
		t.Fatalf("after reopen: hard state %+v, want %+v", st.HardState, hs)
	}
	checkEntries(t, st.Entries, ents(1, 7, 3))
	hs2 := raftpb.HardState{Term: 4, Vote: 1, Commit: 7}
	if err := d.SaveRaft(hs2, nil, raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	if st = mustLoad(t, d); !reflect.DeepEqual(st.HardState, hs2) {
		t.Fatalf("hard state %+v, want %+v", st.HardState, hs2)
	}
}

func TestSaveRaftOverwritesConflictingSuffix(t *testing.T) {
	for _, reopen := range []bool{false, true} {
		t.Run(fmt.Sprintf("reopen=%v", reopen), func(t *testing.T) {
			d, fs := openMem(t, nil)
			if err := d.SaveRaft(raftpb.HardState{Term: 1}, ents(1, 10, 1), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			if reopen {
				// The log bounds then come from disk, not from memory.
				closeDB(t, d)
				d, _ = openMem(t, fs)
			}
			defer func() { closeDB(t, d) }()

			// A new leader overwrites 6..7: 8..10 came from the old
			// history and must go.
			if err := d.SaveRaft(raftpb.HardState{Term: 2}, ents(6, 7, 2), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, mustLoad(t, d).Entries, cat(ents(1, 5, 1), ents(6, 7, 2)))
			checkStored(t, d, span(1, 7))

			// Appending after the overwrite continues the log.
			if err := d.SaveRaft(raftpb.HardState{}, ents(8, 9, 2), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, mustLoad(t, d).Entries, cat(ents(1, 5, 1), ents(6, 9, 2)))

			// An overwrite that reaches past the old end replaces the
			// overlap and extends the log.
			if err := d.SaveRaft(raftpb.HardState{}, ents(8, 12, 3), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, mustLoad(t, d).Entries, cat(ents(1, 5, 1), ents(6, 7, 2), ents(8, 12, 3)))

			// Overwriting a single entry in the middle truncates
			// everything after it.
			if err := d.SaveRaft(raftpb.HardState{}, ents(3, 3, 4), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, mustLoad(t, d).Entries, cat(ents(1, 2, 1), ents(3, 3, 4)))
			checkStored(t, d, span(1, 3))

			// Overwriting the whole log from its first entry.
			if err := d.SaveRaft(raftpb.HardState{}, ents(1, 2, 5), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			checkEntries(t, mustLoad(t, d).Entries, ents(1, 2, 5))
			checkStored(t, d, span(1, 2))
		})
	}
}

func TestSaveRaftWithSnapshot(t *testing.T) {
	d, fs := openMem(t, nil)
	if err := d.SaveRaft(raftpb.HardState{Term: 1, Commit: 5}, ents(1, 8, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	// A snapshot from the leader replaces the whole log, including entries
	// after it from another history; entries after the snapshot in the
	// same Ready are kept.
	snap := raftpb.Snapshot{
		Data: []byte("state"),
		Metadata: raftpb.SnapshotMetadata{
			Index: 20, Term: 2,
			ConfState: raftpb.ConfState{Voters: []uint64{1, 2, 3}},
		},
	}
	hs := raftpb.HardState{Term: 2, Commit: 20}
	if err := d.SaveRaft(hs, ents(21, 22, 2), snap, true); err != nil {
		t.Fatal(err)
	}
	check := func(d *DB) {
		t.Helper()
		st := mustLoad(t, d)
		if !reflect.DeepEqual(st.Snapshot, snap) {
			t.Fatalf("snapshot %+v, want %+v", st.Snapshot, snap)
		}
		if !reflect.DeepEqual(st.HardState, hs) {
			t.Fatalf("hard state %+v", st.HardState)
		}
		checkEntries(t, st.Entries, ents(21, 22, 2))
		checkStored(t, d, span(21, 22))
	}
	check(d)
	closeDB(t, d)
	d, _ = openMem(t, fs)
	defer closeDB(t, d)
	check(d)
	// The bounds were reset by the snapshot: an overwrite of 22 works.
	if err := d.SaveRaft(raftpb.HardState{}, ents(22, 22, 3), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, mustLoad(t, d).Entries, cat(ents(21, 21, 2), ents(22, 22, 3)))
}

func TestSaveSnapshotTruncates(t *testing.T) {
	d, fs := openMem(t, nil)
	if err := d.SaveRaft(raftpb.HardState{Term: 1, Commit: 10}, ents(1, 10, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 7, Term: 1, ConfState: raftpb.ConfState{Voters: []uint64{1}}}}
	if err := d.SaveSnapshot(snap, 4); err != nil {
		t.Fatal(err)
	}
	// The log keeps 5..10 for followers catching up; the state loaded
	// for a restart starts after the snapshot.
	checkStored(t, d, span(5, 10))
	st := mustLoad(t, d)
	if !reflect.DeepEqual(st.Snapshot, snap) {
		t.Fatalf("snapshot %+v", st.Snapshot)
	}
	checkEntries(t, st.Entries, ents(8, 10, 1))

	// compactTo below the first kept entry deletes nothing.
	snap.Metadata.Index = 8
	if err := d.SaveSnapshot(snap, 3); err != nil {
		t.Fatal(err)
	}
	checkStored(t, d, span(5, 10))
	checkEntries(t, mustLoad(t, d).Entries, ents(9, 10, 1))

	// After a restart the bounds come from disk.
	closeDB(t, d)
	d, _ = openMem(t, fs)
	defer func() { closeDB(t, d) }()
	snap.Metadata.Index = 9
	if err := d.SaveSnapshot(snap, 6); err != nil {
		t.Fatal(err)
	}
	checkStored(t, d, span(7, 10))
	checkEntries(t, mustLoad(t, d).Entries, ents(10, 10, 1))

	// Truncating past the end empties the log; the next entries start a
	// new one.
	snap.Metadata.Index = 10
	if err := d.SaveSnapshot(snap, 10); err != nil {
		t.Fatal(err)
	}
	checkStored(t, d, nil)
	checkEntries(t, mustLoad(t, d).Entries, nil)
	if err := d.SaveRaft(raftpb.HardState{Term: 1, Commit: 11}, ents(11, 12, 1), raftpb.Snapshot{}, true); err != nil {
		t.Fatal(err)
	}
	checkEntries(t, mustLoad(t, d).Entries, ents(11, 12, 1))
	checkStored(t, d, span(11, 12))
	// The new log's bounds are right: a later truncation works.
	snap.Metadata.Index = 12
	if err := d.SaveSnapshot(snap, 11); err != nil {
		t.Fatal(err)
	}
	checkStored(t, d, span(12, 12))
}

// TestLoadRaftStateCorrupt writes bad data directly with Pebble.
func TestLoadRaftStateCorrupt(t *testing.T) {
	entryBytes := func(e raftpb.Entry) []byte {
		b, err := e.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	cases := []struct {
		name  string
		snap  uint64 // snapshot index, 0 for none
		setup func(b *pebble.Batch)
	}{
		{"gap", 0, func(b *pebble.Batch) { b.Delete(RaftLogKey(3), nil) }},
		{"undecodable entry", 0, func(b *pebble.Batch) { b.Set(RaftLogKey(2), []byte{0xff, 0xff}, nil) }},
		{"truncated entry", 0, func(b *pebble.Batch) { b.Set(RaftLogKey(5), entryBytes(ents(5, 5, 1)[0])[:4], nil) }},
		{"entry at the wrong key", 0, func(b *pebble.Batch) { b.Set(RaftLogKey(4), entryBytes(ents(7, 7, 1)[0]), nil) }},
		{"first entry missing", 0, func(b *pebble.Batch) { b.Delete(RaftLogKey(1), nil) }},
		{"entries do not follow the snapshot", 2, func(b *pebble.Batch) { b.Delete(RaftLogKey(3), nil) }},
		{"snapshot at the largest index", 0, func(b *pebble.Batch) {
			snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: math.MaxUint64, Term: 1}}
			data, err := snap.Marshal()
			if err != nil {
				t.Fatal(err)
			}
			b.Set(MetaKey(MetaRaftSnapshot), data, nil)
			b.Set(RaftLogKey(0), entryBytes(raftpb.Entry{Index: 0, Term: 1}), nil)
		}},
		{"undecodable hard state", 0, func(b *pebble.Batch) { b.Set(MetaKey(MetaHardState), []byte{0x08}, nil) }},
		{"undecodable snapshot", 0, func(b *pebble.Batch) { b.Set(MetaKey(MetaRaftSnapshot), []byte{0x0a, 0x05, 0x01}, nil) }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, _ := openMem(t, nil)
			defer closeDB(t, d)
			if err := d.SaveRaft(raftpb.HardState{Term: 1, Commit: 5}, ents(1, 5, 1), raftpb.Snapshot{}, true); err != nil {
				t.Fatal(err)
			}
			if tc.snap > 0 {
				snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: tc.snap, Term: 1}}
				if err := d.SaveSnapshot(snap, 0); err != nil {
					t.Fatal(err)
				}
			}
			b := d.Pebble().NewBatch()
			tc.setup(b)
			if err := b.Commit(pebble.Sync); err != nil {
				t.Fatal(err)
			}
			b.Close()
			_, err := d.LoadRaftState()
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadRaftState err = %v, want ErrCorrupt", err)
			}
		})
	}
}

func TestOpenRejectsBadRaftLogKey(t *testing.T) {
	d, fs := openMem(t, nil)
	if err := d.Pebble().Set([]byte{PrefixRaftLog, 1, 2}, []byte("x"), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	closeDB(t, d)
	_, err := Open(Config{Dir: "db", FS: fs, Logger: quiet})
	if !errors.Is(err, ErrBadKey) {
		t.Fatalf("Open err = %v, want ErrBadKey", err)
	}
}

func TestUint64Meta(t *testing.T) {
	d, _ := openMem(t, nil)
	defer closeDB(t, d)
	if _, ok, err := d.Uint64(MetaAppliedIndex); ok || err != nil {
		t.Fatalf("absent value: ok=%v err=%v", ok, err)
	}
	b := d.NewBatch()
	PutUint64(b, MetaAppliedIndex, 1<<40+5)
	if err := d.Commit(b, false); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := d.Uint64(MetaAppliedIndex); v != 1<<40+5 || !ok || err != nil {
		t.Fatalf("Uint64 = %d, %v, %v", v, ok, err)
	}
	if err := d.Pebble().Set(MetaKey(MetaAppliedIndex), []byte{1, 2, 3}, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	if _, _, err := d.Uint64(MetaAppliedIndex); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("short value: err = %v, want ErrCorrupt", err)
	}
}
