package mvcc

import (
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/storage"
)

// Compact compacts history at rev: reads below rev fail with ErrCompacted
// from now on, and the revisions only such reads could see are deleted from
// storage in the background. The compaction revision is recorded in batch
// b; deletion starts once b is committed and Publish is called. The
// returned channel is closed when deletion has finished.
//
// Compact must be called with nothing unpublished (the apply loop commits
// and publishes its batch before applying a compaction), so that a
// compaction never runs ahead of what readers can see.
func (s *Store) Compact(b *pebble.Batch, rev int64) (<-chan struct{}, error) {
	if len(s.pending) > 0 {
		panic("mvcc: Compact called with unpublished writes")
	}
	if rev <= s.compactRev {
		return nil, ErrCompacted
	}
	if rev > s.currentRev {
		return nil, ErrFutureRev
	}
	var buf [8]byte
	putBE(buf[:], uint64(rev))
	if err := b.Set(storage.MetaKey(storage.MetaScheduledCompact), buf[:], nil); err != nil {
		return nil, fmt.Errorf("mvcc: record compaction: %w", err)
	}
	job := s.compactIndex(rev)
	if s.queuedJob != nil {
		// Two compactions in one batch: the later one's job covers the
		// earlier one's revisions too only if we merge them, and the
		// earlier one is finished when the merged job is.
		job.dropped = append(s.queuedJob.dropped, job.dropped...)
		job.merged = append(s.queuedJob.merged, s.queuedJob.done)
		job.start = s.queuedJob.start
	}
	s.queuedJob = &job
	return job.done, nil
}

// compactIndex moves the compaction revision to rev and removes from the
// index every revision no read at or after rev can see.
func (s *Store) compactIndex(rev int64) compactJob {
	start := time.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	job := s.compactIndexLocked(rev)
	job.start = start
	metricIndexCompactionPauseMs.Observe(float64(time.Since(start)) / float64(time.Millisecond))
	return job
}

// compactIndexLocked is compactIndex for callers holding mu and idxMu.
func (s *Store) compactIndexLocked(rev int64) compactJob {
	job := compactJob{rev: rev, prev: s.compactRev, done: make(chan struct{}), keep: map[revID]struct{}{}}
	s.compactRev = rev
	s.lastJob = &job
	var empty []*keyIndex
	s.idx.tree.Ascend(func(ki *keyIndex) bool {
		var gone bool
		job.dropped, gone = ki.compact(rev, job.dropped)
		if gone {
			empty = append(empty, ki)
		}
		for _, r := range ki.revs {
			if r.main > rev {
				break
			}
			job.keep[revID{r.main, int64(r.sub)}] = struct{}{}
		}
		return true
	})
	for _, ki := range empty {
		s.idx.delete(ki)
	}
	return job
}

func (s *Store) queueCompaction() {
	if s.queuedJob == nil {
		return
	}
	s.compactJobs <- *s.queuedJob
	s.queuedJob = nil
}

func (s *Store) compactLoop() {
	defer close(s.compactDone)
	for job := range s.compactJobs {
		s.deleteRevisions(job)
	}
}

// deleteRevisions deletes a job's revisions from storage in batches and
// then records the compaction as finished.
func (s *Store) deleteRevisions(job compactJob) {
	defer func() {
		for _, done := range job.merged {
			close(done)
		}
		close(job.done)
	}()
	s.recordCompactionHash(job)
	sort.Slice(job.dropped, func(i, j int) bool { return job.dropped[i].less(job.dropped[j]) })
	var kb []byte
	b := s.be.NewBatch()
	n := 0
	for _, r := range job.dropped {
		kb = storage.RevKey(kb[:0], storage.Revision{Main: r.main, Sub: int64(r.sub)}, r.tomb)
		if err := b.DeleteSized(kb, r.size, nil); err != nil {
			s.lg.Error("compaction: stage delete", "err", err)
		}
		n++
		if n == s.batchN {
			if err := b.Commit(pebble.NoSync); err != nil {
				s.lg.Error("compaction: delete batch", "err", err)
			}
			b.Close()
			b = s.be.NewBatch()
			n = 0
		}
	}
	var buf [8]byte
	putBE(buf[:], uint64(job.rev))
	if err := b.Set(storage.MetaKey(storage.MetaFinishedCompact), buf[:], nil); err != nil {
		s.lg.Error("compaction: record finished", "err", err)
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		s.lg.Error("compaction: finish", "err", err)
	}
	b.Close()
	s.lg.Debug("compaction finished", "revision", job.rev, "deleted", len(job.dropped))
	metricDBCompactionKeys.Add(float64(len(job.dropped)))
	metricDBCompactionLast.Set(float64(time.Now().Unix()))
	if !job.start.IsZero() {
		metricDBCompactionTotalMs.Observe(float64(time.Since(job.start)) / float64(time.Millisecond))
	}
	if s.reclaim != nil && len(job.dropped) > 0 {
		var bytes int64
		for _, r := range job.dropped {
			bytes += int64(r.size)
		}
		lo, hi := storage.RevKeyBounds(0, job.rev+1)
		s.reclaim(bytes, lo, hi)
	}
}

func putBE(b []byte, v uint64) {
	b[0], b[1], b[2], b[3] = byte(v>>56), byte(v>>48), byte(v>>40), byte(v>>32)
	b[4], b[5], b[6], b[7] = byte(v>>24), byte(v>>16), byte(v>>8), byte(v)
}
