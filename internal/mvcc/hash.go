package mvcc

import (
	"fmt"
	"hash"
	"hash/crc32"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/storage"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// HashKV returns the hash etcd's HashKV computes, bit for bit, of the
// store's history up to revision rev (0 for the current one): a CRC-32C of
// the bucket name "key" and then, in revision order, each revision's key in
// etcd's encoding (8-byte main, '_', 8-byte sub, 't' for a tombstone) and
// its value as etcd stores it, counting every revision after the last
// compaction and, at or before it, only the revisions a compaction at rev
// would keep. Members with the same history return the same hash — and
// the same as an etcd member with that history — whether or not they have
// physically deleted the compacted revisions yet. It also returns the
// revision hashed and the compaction revision.
func (s *Store) HashKV(rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	// Holding mu keeps the index from being compacted while we hash.
	s.mu.RLock()
	defer s.mu.RUnlock()
	s.idxMu.RLock()
	cur, compactRev := s.currentRev, s.compactRev
	s.idxMu.RUnlock()
	switch {
	case rev > 0 && rev < compactRev:
		return 0, 0, compactRev, ErrCompacted
	case rev > 0 && rev > cur:
		return 0, cur, compactRev, ErrFutureRev
	case rev > 0:
		// Asked for a compaction revision by number, etcd answers from
		// the hash it took while compacting.
		s.idxMu.RLock()
		last := s.lastJob
		s.idxMu.RUnlock()
		if last != nil && last.rev == rev {
			// That hash is taken when the compaction's deletions run.
			<-last.done
		}
		if ch, ok := s.compactionHashAt(rev); ok {
			return ch.hash, rev, ch.compactRevision, nil
		}
	case rev == 0:
		rev = cur
	}
	h := crc32.New(castagnoli)
	h.Write([]byte("key"))
	if rev < 0 {
		return h.Sum32(), rev, compactRev, nil
	}
	err = s.hashRevisions(h, rev, compactRev, s.keepAt(rev))
	return h.Sum32(), rev, compactRev, err
}

// hashRevisions writes into h, in etcd's encodings, every stored revision
// up to rev, skipping those at or before compactRev that keep does not hold
// (unless keep is empty) and a deletion at exactly compactRev, as etcd's
// hasher does.
func (s *Store) hashRevisions(h hash.Hash32, rev, compactRev int64, keep map[revID]struct{}) error {
	lo, hi := storage.RevKeyBounds(0, rev+1)
	it, err := s.be.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mvcc: hash: %w", err)
	}
	defer it.Close()
	var kv mvccpb.KeyValue
	var ekey [18]byte
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := storage.ParseRevKey(it.Key())
		if err != nil {
			return fmt.Errorf("mvcc: hash: %w", err)
		}
		if r.Main <= compactRev && len(keep) > 0 {
			if _, ok := keep[revID{r.Main, r.Sub}]; !ok {
				continue
			}
		}
		if tomb && r.Main == compactRev {
			continue
		}
		k := ekey[:17]
		putBE(k[0:8], uint64(r.Main))
		k[8] = '_'
		putBE(k[9:17], uint64(r.Sub))
		v := it.Value()
		if tomb {
			k = append(k, 't')
			// etcd stores a deletion as the key alone.
			kv.Reset()
			if err := kv.Unmarshal(v); err != nil {
				return fmt.Errorf("mvcc: hash: revision %d.%d: %v: %w", r.Main, r.Sub, err, storage.ErrCorrupt)
			}
			if v, err = (&mvccpb.KeyValue{Key: kv.Key}).Marshal(); err != nil {
				return err
			}
		}
		h.Write(k)
		h.Write(v)
	}
	return it.Error()
}

type revID struct{ main, sub int64 }

// keepAt returns the revisions a compaction at rev would keep: each key's
// newest revision at or before rev, unless it is a deletion (etcd's
// index.Keep).
func (s *Store) keepAt(rev int64) map[revID]struct{} {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	keep := make(map[revID]struct{}, s.idx.len())
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		if r, live := ki.at(rev); live {
			keep[revID{r.main, int64(r.sub)}] = struct{}{}
		}
		return true
	})
	return keep
}

// compactionHash is a hash taken when a compaction ran, as etcd keeps them.
type compactionHash struct {
	hash            uint32
	revision        int64 // the compaction revision
	compactRevision int64 // the compaction before it
}

// maxCompactionHashes is how many compaction hashes are kept (etcd's).
const maxCompactionHashes = 10

// recordCompactionHash hashes, before the job deletes anything, what etcd
// hashes while compacting: every stored revision after the previous
// compaction up to this one, and the revisions at or before the previous
// compaction that this one keeps. HashKV at a compaction revision answers
// with it, as etcd's does.
func (s *Store) recordCompactionHash(job compactJob) {
	h := crc32.New(castagnoli)
	h.Write([]byte("key"))
	err := s.hashRevisions(h, job.rev, job.prev, job.keep)
	if err != nil {
		s.lg.Warn("hashing at compaction", "revision", job.rev, "err", err)
		return
	}
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	s.hashes = append(s.hashes, compactionHash{hash: h.Sum32(), revision: job.rev, compactRevision: job.prev})
	if len(s.hashes) > maxCompactionHashes {
		s.hashes = s.hashes[len(s.hashes)-maxCompactionHashes:]
	}
}

// compactionHashAt returns the hash recorded at compaction revision rev.
func (s *Store) compactionHashAt(rev int64) (compactionHash, bool) {
	s.hashMu.Lock()
	defer s.hashMu.Unlock()
	for _, ch := range s.hashes {
		if ch.revision == rev {
			return ch, true
		}
	}
	return compactionHash{}, false
}
