package storage

import (
	"encoding/binary"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/raft/v3/raftpb"
)

// RaftState is what a member restarts its raft node from.
type RaftState struct {
	HardState raftpb.HardState
	// Snapshot is the latest raft snapshot (metadata and data); empty if
	// none was taken.
	Snapshot raftpb.Snapshot
	// Entries are the persisted entries after the snapshot, in order.
	Entries []raftpb.Entry
}

// loadLogBounds finds the first and last persisted raft log index.
func (d *DB) loadLogBounds() error {
	lo, hi := PrefixBounds(PrefixRaftLog)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("storage: raft log bounds: %w", err)
	}
	defer it.Close()
	if it.First() {
		if d.firstIndex, err = ParseRaftLogKey(it.Key()); err != nil {
			return err
		}
	}
	if it.Last() {
		if d.lastIndex, err = ParseRaftLogKey(it.Key()); err != nil {
			return err
		}
	}
	return it.Error()
}

// LoadRaftState reads the hard state, the latest snapshot and the entries
// after it. A gap in the log, or entries that do not follow the snapshot,
// are reported as ErrCorrupt.
func (d *DB) LoadRaftState() (RaftState, error) {
	var st RaftState
	if v, ok, err := d.Get(MetaKey(MetaHardState)); err != nil {
		return st, err
	} else if ok {
		if err := st.HardState.Unmarshal(v); err != nil {
			return st, fmt.Errorf("storage: hard state: %v: %w", err, ErrCorrupt)
		}
	}
	if v, ok, err := d.Get(MetaKey(MetaRaftSnapshot)); err != nil {
		return st, err
	} else if ok {
		if err := st.Snapshot.Unmarshal(v); err != nil {
			return st, fmt.Errorf("storage: raft snapshot: %v: %w", err, ErrCorrupt)
		}
	}
	from := st.Snapshot.Metadata.Index + 1
	if from == 0 {
		// No entry can follow it, and the log scan below would wrap
		// around to index 0.
		return st, fmt.Errorf("storage: raft snapshot at index %d: %w", st.Snapshot.Metadata.Index, ErrCorrupt)
	}
	lo := RaftLogKey(from)
	_, hi := PrefixBounds(PrefixRaftLog)
	it, err := d.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return st, fmt.Errorf("storage: read raft log: %w", err)
	}
	defer it.Close()
	next := from
	for it.First(); it.Valid(); it.Next() {
		idx, err := ParseRaftLogKey(it.Key())
		if err != nil {
			return st, err
		}
		var e raftpb.Entry
		if err := e.Unmarshal(it.Value()); err != nil {
			return st, fmt.Errorf("storage: raft entry %d: %v: %w", idx, err, ErrCorrupt)
		}
		if e.Index != idx {
			return st, fmt.Errorf("storage: raft entry stored at %d claims index %d: %w", idx, e.Index, ErrCorrupt)
		}
		if idx != next {
			return st, fmt.Errorf("storage: raft log gap: want entry %d, found %d: %w", next, idx, ErrCorrupt)
		}
		st.Entries = append(st.Entries, e)
		next++
	}
	if err := it.Error(); err != nil {
		return st, fmt.Errorf("storage: read raft log: %w", err)
	}
	if n := len(st.Entries); n > 0 && st.Entries[0].Index != from {
		return st, fmt.Errorf("storage: raft log starts at %d, snapshot ends at %d: %w",
			st.Entries[0].Index, from-1, ErrCorrupt)
	}
	return st, nil
}

// SaveRaft persists a raft Ready's hard state, entries and snapshot in one
// batch, synced when sync is set (it always is for a Ready that carries
// entries or a changed hard state). Entries at or after the first new index
// that were persisted before are discarded, as raft requires.
func (d *DB) SaveRaft(hs raftpb.HardState, ents []raftpb.Entry, snap raftpb.Snapshot, sync bool) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	b := d.db.NewBatch()
	if !isEmptySnap(snap) {
		data, err := snap.Marshal()
		if err != nil {
			b.Close()
			return fmt.Errorf("storage: marshal snapshot: %w", err)
		}
		b.Set(MetaKey(MetaRaftSnapshot), data, nil)
		// Entries up to the snapshot are covered by it; anything after it
		// came from a different history and is discarded too.
		lo, hi := PrefixBounds(PrefixRaftLog)
		b.DeleteRange(lo, hi, nil)
	}
	if len(ents) > 0 {
		first, last := ents[0].Index, ents[len(ents)-1].Index
		if first <= d.lastIndex && last < d.lastIndex {
			b.DeleteRange(RaftLogKey(last+1), RaftLogKey(d.lastIndex+1), nil)
		}
		var buf []byte
		for i := range ents {
			n := ents[i].Size()
			if cap(buf) < n {
				buf = make([]byte, n, n*2)
			}
			buf = buf[:n]
			if _, err := ents[i].MarshalTo(buf); err != nil {
				b.Close()
				return fmt.Errorf("storage: marshal entry %d: %w", ents[i].Index, err)
			}
			b.Set(RaftLogKey(ents[i].Index), buf, nil)
		}
	}
	if !isEmptyHardState(hs) {
		data, err := hs.Marshal()
		if err != nil {
			b.Close()
			return fmt.Errorf("storage: marshal hard state: %w", err)
		}
		b.Set(MetaKey(MetaHardState), data, nil)
	}
	if err := d.Commit(b, sync); err != nil {
		return err
	}
	if !isEmptySnap(snap) {
		d.firstIndex, d.lastIndex = 0, 0
	}
	if len(ents) > 0 {
		if d.firstIndex == 0 {
			d.firstIndex = ents[0].Index
		}
		d.lastIndex = ents[len(ents)-1].Index
	}
	return nil
}

// SaveSnapshot records a raft snapshot's metadata (taken locally from applied
// state) and discards the log up to compactTo, keeping later entries for
// followers that are catching up. Unsynced: the entries it removes are
// already applied, and the state they produced precedes this write in the
// same write-ahead log.
func (d *DB) SaveSnapshot(snap raftpb.Snapshot, compactTo uint64) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	data, err := snap.Marshal()
	if err != nil {
		return fmt.Errorf("storage: marshal snapshot: %w", err)
	}
	b := d.db.NewBatch()
	b.Set(MetaKey(MetaRaftSnapshot), data, nil)
	if compactTo > 0 && d.firstIndex != 0 && compactTo >= d.firstIndex {
		b.DeleteRange(RaftLogKey(0), RaftLogKey(compactTo+1), nil)
	}
	if err := d.Commit(b, false); err != nil {
		return err
	}
	if compactTo > 0 && d.firstIndex != 0 && compactTo >= d.firstIndex {
		d.firstIndex = compactTo + 1
		if d.firstIndex > d.lastIndex {
			d.firstIndex, d.lastIndex = 0, 0
		}
	}
	return nil
}

// PutUint64 sets a uint64 metadata value in batch b.
func PutUint64(b *pebble.Batch, name string, v uint64) {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	b.Set(MetaKey(name), buf[:], nil)
}

// Uint64 reads a uint64 metadata value; ok is false when absent.
func (d *DB) Uint64(name string) (v uint64, ok bool, err error) {
	raw, ok, err := d.Get(MetaKey(name))
	if err != nil || !ok {
		return 0, ok, err
	}
	if len(raw) != 8 {
		return 0, false, fmt.Errorf("storage: meta %s has %d bytes: %w", name, len(raw), ErrCorrupt)
	}
	return binary.BigEndian.Uint64(raw), true, nil
}

func isEmptySnap(s raftpb.Snapshot) bool { return s.Metadata.Index == 0 }

func isEmptyHardState(hs raftpb.HardState) bool {
	return hs.Term == 0 && hs.Vote == 0 && hs.Commit == 0
}
