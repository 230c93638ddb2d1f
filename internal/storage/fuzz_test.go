package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

func FuzzParseRevKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, k []byte, main, sub int64, tomb bool) {
		// Arbitrary bytes: an error or a key that encodes back to itself.
		r, gotTomb, err := ParseRevKey(k)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseRevKey(%x): %v is not ErrBadKey", k, err)
			}
		} else {
			if r.Main < 0 || r.Sub < 0 {
				t.Fatalf("ParseRevKey(%x) = negative %v", k, r)
			}
			if enc := RevKey(nil, r, gotTomb); !bytes.Equal(enc, k) {
				t.Fatalf("ParseRevKey(%x) = %v, %v, which encodes as %x", k, r, gotTomb, enc)
			}
		}

		// A revision: round trip, and byte order is revision order
		// against the parsed key.
		want := Revision{Main: main, Sub: sub}
		enc := RevKey(nil, want, tomb)
		got, gotTomb2, err := ParseRevKey(enc)
		if main < 0 || sub < 0 {
			if err == nil {
				t.Fatalf("negative revision %v parsed back as %v", want, got)
			}
			return
		}
		if err != nil || got != want || gotTomb2 != tomb {
			t.Fatalf("round trip of %v/%v: %v/%v, %v", want, tomb, got, gotTomb2, err)
		}
		if r, rt, err := ParseRevKey(k); err == nil {
			byteLess := bytes.Compare(k, enc) < 0
			revLess := r.Less(want) || (r == want && !rt && tomb)
			if byteLess != revLess {
				t.Fatalf("%x (%v/%v) vs %x (%v/%v): byte order %v, revision order %v", k, r, rt, enc, want, tomb, byteLess, revLess)
			}
		}
	})
}

func FuzzParseRaftLogKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, k []byte, index uint64) {
		i, err := ParseRaftLogKey(k)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseRaftLogKey(%x): %v is not ErrBadKey", k, err)
			}
		} else if enc := RaftLogKey(i); !bytes.Equal(enc, k) {
			t.Fatalf("ParseRaftLogKey(%x) = %d, which encodes as %x", k, i, enc)
		}
		enc := RaftLogKey(index)
		if got, err := ParseRaftLogKey(enc); err != nil || got != index {
			t.Fatalf("round trip of %d: %d, %v", index, got, err)
		}
		if err == nil && (bytes.Compare(k, enc) < 0) != (i < index) {
			t.Fatalf("order of %d and %d differs from the order of their keys", i, index)
		}
	})
}

func FuzzParseIDKey(f *testing.F) {
	f.Fuzz(func(t *testing.T, prefix byte, k []byte, id uint64) {
		got, err := ParseIDKey(prefix, k)
		if err != nil {
			if !errors.Is(err, ErrBadKey) {
				t.Fatalf("ParseIDKey(%q, %x): %v is not ErrBadKey", prefix, k, err)
			}
		} else if enc := IDKey(prefix, got); !bytes.Equal(enc, k) {
			t.Fatalf("ParseIDKey(%q, %x) = %d, which encodes as %x", prefix, k, got, enc)
		}
		enc := IDKey(prefix, id)
		if back, err := ParseIDKey(prefix, enc); err != nil || back != id {
			t.Fatalf("round trip of %q/%d: %d, %v", prefix, id, back, err)
		}
		if err == nil && (bytes.Compare(k, enc) < 0) != (got < id) {
			t.Fatalf("order of %d and %d differs from the order of their keys", got, id)
		}
	})
}

// logRecords decodes the fuzzer's description of a raft log: records of
// uvarint index, uvarint length, then that many bytes (fewer if the input
// ends).
func logRecords(data []byte) (idx []uint64, vals [][]byte) {
	for len(data) > 0 {
		i, n := binary.Uvarint(data)
		if n <= 0 {
			return
		}
		data = data[n:]
		l, n := binary.Uvarint(data)
		if n <= 0 {
			return
		}
		data = data[n:]
		if l > uint64(len(data)) {
			l = uint64(len(data))
		}
		idx = append(idx, i)
		vals = append(vals, data[:l])
		data = data[l:]
	}
	return
}

// FuzzLoadRaftState stores arbitrary bytes as the hard state, the snapshot
// and raft log entries, and loads them: LoadRaftState must return ErrCorrupt
// or a consistent state, never panic.
func FuzzLoadRaftState(f *testing.F) {
	d, _ := openMem(f, nil)
	f.Cleanup(func() { d.Close() })
	f.Fuzz(func(t *testing.T, hs, snap, log []byte) {
		b := d.Pebble().NewBatch()
		lo, hi := PrefixBounds(PrefixRaftLog)
		b.DeleteRange(lo, hi, nil)
		b.Delete(MetaKey(MetaHardState), nil)
		b.Delete(MetaKey(MetaRaftSnapshot), nil)
		if len(hs) > 0 {
			b.Set(MetaKey(MetaHardState), hs, nil)
		}
		if len(snap) > 0 {
			b.Set(MetaKey(MetaRaftSnapshot), snap, nil)
		}
		idx, vals := logRecords(log)
		for i := range idx {
			b.Set(RaftLogKey(idx[i]), vals[i], nil)
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()

		st, err := d.LoadRaftState()
		if err != nil {
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("LoadRaftState: %v is not ErrCorrupt", err)
			}
			return
		}
		var wantHS raftpb.HardState
		if len(hs) > 0 {
			if err := wantHS.Unmarshal(hs); err != nil {
				t.Fatalf("undecodable hard state accepted: %v", err)
			}
		}
		if st.HardState.String() != wantHS.String() {
			t.Fatalf("hard state %v, stored %v", st.HardState, wantHS)
		}
		next := st.Snapshot.Metadata.Index + 1
		for _, e := range st.Entries {
			if e.Index != next || e.Index <= st.Snapshot.Metadata.Index {
				t.Fatalf("entries %v do not follow snapshot %d", e.Index, st.Snapshot.Metadata.Index)
			}
			next++
		}
		// Every stored entry after the snapshot was returned.
		for _, i := range idx {
			if i >= st.Snapshot.Metadata.Index+1 && i >= next {
				t.Fatalf("stored entry %d missing from the loaded state (up to %d)", i, next-1)
			}
		}
	})
}
