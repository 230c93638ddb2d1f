package mvcc

import (
	"fmt"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/storage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns a CRC-32C of the store's history up to revision rev (0 for
// the current one), as etcd's HashKV does: of every revision from the last
// compaction on, plus the revisions the compaction kept. Members with the
// same history return the same hash whether or not they have physically
// deleted the compacted revisions yet. It also returns the revision hashed
// and the compaction revision.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	// Holding mu keeps the index from being compacted while we hash.
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.idxMu.RLock()
	cur, compactRev := s.currentRev, s.compactRev
	s.idxMu.RUnlock()
	if rev <= 0 {
		rev = cur
	}
	if rev > cur {
		return 0, cur, compactRev, ErrFutureRev
	}
	if rev < compactRev {
		return 0, cur, compactRev, ErrCompacted
	}
	h := crc32.New(castagnoli)
	err = s.eachKeptRevision(rev, compactRev, func(k, v []byte) {
		h.Write(k)
		h.Write(v)
	})
	return h.Sum32(), rev, compactRev, err
}

// eachKeptRevision calls fn with the storage key and value of every
// revision up to upTo that reads at or after compactRev can see.
func (s *Store) eachKeptRevision(upTo, compactRev int64, fn func(k, v []byte)) error {
	lo, hi := storage.RevKeyBounds(0, upTo+1)
	it, err := s.be.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mvcc: hash: %w", err)
	}
	defer it.Close()
	var kv mvccpb.KeyValue
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := storage.ParseRevKey(it.Key())
		if err != nil {
			return fmt.Errorf("mvcc: hash: %w", err)
		}
		if r.Main <= compactRev {
			// Only what the compaction kept counts; the rest may or may
			// not have been deleted yet on this member.
			kv.Reset()
			if err := kv.Unmarshal(it.Value()); err != nil {
				return fmt.Errorf("mvcc: hash: revision %d.%d: %v: %w", r.Main, r.Sub, err, storage.ErrCorrupt)
			}
			if !s.keptLocked(kv.Key, rev{main: r.Main, sub: int32(r.Sub), tomb: tomb}) {
				continue
			}
		}
		fn(it.Key(), it.Value())
	}
	return it.Error()
}

// keptLocked reports whether the index still holds revision r of key.
func (s *Store) keptLocked(key []byte, r rev) bool {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	ki := s.idx.get(key)
	if ki == nil {
		return false
	}
	for _, x := range ki.revs {
		if x.main == r.main && x.sub == r.sub {
			return x.tomb == r.tomb
		}
		if x.main > r.main {
			break
		}
	}
	return false
}
