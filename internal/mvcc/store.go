// Package mvcc is cairn's multi-version key-value store, with etcd's
// revision semantics to the number: every write transaction that changes
// something produces one new main revision, each change within it a
// sub-revision; keys carry create revision, mod revision and version;
// history can be read at any revision not yet compacted.
//
// Values live in storage keyed by revision (see internal/storage); an
// in-memory index maps each key to its revisions, so a put never reads the
// disk and a range reads exactly the values it returns. The package is
// deterministic and has no goroutines of its own except the one that deletes
// compacted revisions, so it is tested without a server.
//
// Concurrency: one writer (the apply loop) and any number of readers. The
// writer stages each apply batch in a Pebble batch and publishes the new
// revisions to readers only after the batch is committed (Publish).
package mvcc

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/storage"
)

// Sentinel errors. Their texts are etcd's, because clients match on them
// after the API edge translates them to gRPC errors.
var (
	// ErrCompacted: the requested revision has been compacted away.
	ErrCompacted = errors.New("mvcc: required revision has been compacted")
	// ErrFutureRev: the requested revision is newer than the store's.
	ErrFutureRev = errors.New("mvcc: required revision is a future revision")
	// ErrKeyNotFound: a put with ignore_value or ignore_lease names a key
	// that does not exist.
	ErrKeyNotFound = errors.New("etcdserver: key not found")
	// ErrLeaseNotFound: a put names a lease that does not exist.
	ErrLeaseNotFound = errors.New("lease not found")
)

// Backend is the storage the store reads revisions from and writes
// compaction deletes to. *pebble.DB implements it.
type Backend interface {
	Get(key []byte) ([]byte, io.Closer, error)
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
	NewBatch(opts ...pebble.BatchOption) *pebble.Batch
}

// LeaseIndex is told which keys are attached to which leases as writes are
// applied; the lease table implements it. Calls happen on the apply loop.
type LeaseIndex interface {
	Attach(lease int64, key []byte)
	Detach(lease int64, key []byte)
}

// Config configures a Store.
type Config struct {
	// Backend holds the revisions. Required.
	Backend Backend
	// Leases, if set, is told about lease attachments.
	Leases LeaseIndex
	// Logger defaults to slog.Default().
	Logger *slog.Logger
	// CompactionBatch is the number of revisions deleted per storage batch
	// by physical compaction. Default 10000.
	CompactionBatch int
	// ValueCacheBytes bounds the in-memory cache of recent revisions'
	// values, in bytes. 0 means the default, 32 MiB; negative disables it.
	ValueCacheBytes int64
	// Reclaim, if set, is called after a physical compaction deleted
	// revisions, with the bytes of values deleted and the key range they
	// were in, so the storage engine can be asked to give the space back.
	Reclaim func(deleted int64, lo, hi []byte)
}

// Store is the MVCC key-value store.
type Store struct {
	be      Backend
	leases  LeaseIndex
	reclaim func(deleted int64, lo, hi []byte)
	cache   *valueCache
	lg      *slog.Logger
	batchN  int

	// mu is held shared by every read and write transaction for its
	// duration, and exclusively while the index is compacted, so that a
	// transaction never sees history disappear under it.
	mu sync.RWMutex

	// idxMu guards idx, currentRev and compactRev. Readers hold it shared
	// while they look revisions up; the writer holds it exclusively while
	// it changes the index or publishes.
	idxMu      sync.RWMutex
	idx        *index
	currentRev int64 // newest revision visible to readers
	compactRev int64 // reads below it fail; -1 before the first compaction

	// Writer-only state (the apply loop).
	pendingRev int64        // newest revision written, >= currentRev
	pending    []pendingRev // revisions (currentRev, pendingRev], oldest first

	// hashes are the hashes taken at the last compactions (see
	// recordCompactionHash), newest last.
	hashMu sync.Mutex
	hashes []compactionHash
	// lastJob is the latest compaction's job (guarded by idxMu), so HashKV
	// at its revision can wait for its hash.
	lastJob *compactJob

	// Physical compaction runs on its own goroutine, one job at a time.
	// A job is queued by Publish, after the batch that scheduled it is
	// committed.
	queuedJob   *compactJob
	compactJobs chan compactJob
	compactDone chan struct{}
	closeOnce   sync.Once
}

// Change is one key change made by a write transaction.
type Change struct {
	// KV is the key's new state. For a deletion only Key and ModRevision
	// are set.
	KV mvccpb.KeyValue
	// Delete marks a deletion.
	Delete bool
}

type pendingRev struct {
	main    int64
	changes []Change
}

type compactJob struct {
	rev     int64
	dropped []rev
	// prev is the compaction revision before this one; keep, the
	// revisions at or below rev the compaction kept. Both feed the hash
	// recorded when the job runs (etcd's compaction hash).
	prev int64
	keep map[revID]struct{}
	done chan struct{}
	// merged holds the done channels of earlier compactions in the same
	// batch, whose revisions this job deletes too.
	merged []chan struct{}
	// start is when the compaction was applied (zero for one a restart
	// resumes).
	start time.Time
}

// New opens the store over cfg.Backend, rebuilding the index from the
// revisions in storage and finishing any compaction a crash interrupted.
func New(cfg Config) (*Store, error) {
	if cfg.Backend == nil {
		return nil, errors.New("mvcc: no backend")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.CompactionBatch <= 0 {
		cfg.CompactionBatch = 10000
	}
	s := &Store{
		be:          cfg.Backend,
		leases:      cfg.Leases,
		reclaim:     cfg.Reclaim,
		cache:       newValueCache(cacheSize(cfg.ValueCacheBytes)),
		lg:          cfg.Logger.With("component", "mvcc"),
		batchN:      cfg.CompactionBatch,
		idx:         newIndex(),
		currentRev:  1,
		compactRev:  -1,
		compactJobs: make(chan compactJob, 16),
		compactDone: make(chan struct{}),
	}
	if err := s.restore(); err != nil {
		return nil, err
	}
	s.pendingRev = s.currentRev
	go s.compactLoop()
	return s, nil
}

func cacheSize(n int64) int64 {
	if n == 0 {
		return 32 << 20
	}
	return n
}

// Close stops the compaction goroutine after it finishes the job in hand.
func (s *Store) Close() {
	s.closeOnce.Do(func() {
		close(s.compactJobs)
		<-s.compactDone
	})
}

// restore rebuilds the index by scanning every stored revision in order.
func (s *Store) restore() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	return s.restoreLocked()
}

// restoreLocked is restore for callers that already exclude every
// transaction (New, before the store is shared, and Replace).
func (s *Store) restoreLocked() error {
	scheduled, err := s.metaRev(storage.MetaScheduledCompact)
	if err != nil {
		return err
	}
	finished, err := s.metaRev(storage.MetaFinishedCompact)
	if err != nil {
		return err
	}
	lo, hi := storage.RevKeyBounds(0, 0)
	it, err := s.be.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mvcc: restore: %w", err)
	}
	defer it.Close()
	var kv mvccpb.KeyValue
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := storage.ParseRevKey(it.Key())
		if err != nil {
			return fmt.Errorf("mvcc: restore: %w", err)
		}
		if r.Sub > math.MaxInt32 {
			// The index keeps sub-revisions in 32 bits.
			return fmt.Errorf("mvcc: restore: revision %d.%d: sub-revision out of range: %w", r.Main, r.Sub, storage.ErrCorrupt)
		}
		kv.Reset()
		val := it.Value()
		if err := kv.Unmarshal(val); err != nil {
			return fmt.Errorf("mvcc: restore: revision %d.%d: %v: %w", r.Main, r.Sub, err, storage.ErrCorrupt)
		}
		ki := s.idx.getOrCreate(kv.Key)
		ir := rev{main: r.Main, sub: int32(r.Sub), size: uint32(len(val)), tomb: tomb}
		if n := len(ki.revs); n > 0 && !ki.revs[n-1].less(ir) {
			return fmt.Errorf("mvcc: restore: key %q revisions out of order: %w", kv.Key, storage.ErrCorrupt)
		}
		ki.revs = append(ki.revs, ir)
		if tomb {
			ki.created, ki.version, ki.lease = 0, 0, 0
		} else {
			ki.created, ki.version, ki.lease = kv.CreateRevision, kv.Version, kv.Lease
		}
		if r.Main > s.currentRev {
			s.currentRev = r.Main
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("mvcc: restore: %w", err)
	}
	if s.leases != nil {
		s.idx.ascend([]byte{0}, []byte{}, func(ki *keyIndex) bool {
			if ki.live() && ki.lease != 0 {
				s.leases.Attach(ki.lease, ki.key)
			}
			return true
		})
	}
	if scheduled >= 0 {
		s.compactRev = scheduled
		if s.currentRev < scheduled {
			s.currentRev = scheduled
		}
		// Compacting the index again is idempotent: it returns exactly the
		// revisions a crash left behind, and the job deletes them.
		job := s.compactIndexLocked(scheduled)
		if len(job.dropped) > 0 || scheduled != finished {
			s.lg.Info("finishing interrupted compaction", "revision", scheduled, "revisions", len(job.dropped))
			s.deleteRevisions(job)
		}
	}
	return nil
}

func (s *Store) metaRev(name string) (int64, error) {
	v, closer, err := s.be.Get(storage.MetaKey(name))
	if errors.Is(err, pebble.ErrNotFound) {
		return -1, nil
	}
	if err != nil {
		return 0, fmt.Errorf("mvcc: read %s: %w", name, err)
	}
	defer closer.Close()
	if len(v) != 8 {
		return 0, fmt.Errorf("mvcc: meta %s: %w", name, storage.ErrCorrupt)
	}
	return int64(uint64(v[0])<<56 | uint64(v[1])<<48 | uint64(v[2])<<40 | uint64(v[3])<<32 |
		uint64(v[4])<<24 | uint64(v[5])<<16 | uint64(v[6])<<8 | uint64(v[7])), nil
}

// Rev returns the newest revision visible to readers.
func (s *Store) Rev() int64 {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return s.currentRev
}

// CompactRev returns the revision of the last compaction, -1 if none.
func (s *Store) CompactRev() int64 {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return s.compactRev
}

// Publish makes every revision written since the last Publish visible to
// readers and returns their changes in order. Call it after the batch the
// writes went into is committed.
func (s *Store) Publish() []Change {
	if len(s.pending) == 0 {
		s.queueCompaction()
		return nil
	}
	var out []Change
	if len(s.pending) == 1 {
		out = s.pending[0].changes
	} else {
		n := 0
		for _, p := range s.pending {
			n += len(p.changes)
		}
		out = make([]Change, 0, n)
		for _, p := range s.pending {
			out = append(out, p.changes...)
		}
	}
	// Freshly written values are the likeliest to be read next.
	var sub, main int64
	for i := range out {
		kv := &out[i].KV
		if kv.ModRevision != main {
			main, sub = kv.ModRevision, 0
		}
		if !out[i].Delete {
			s.cache.put(revID{main, sub}, *kv)
		}
		sub++
	}
	s.idxMu.Lock()
	s.currentRev = s.pendingRev
	s.idxMu.Unlock()
	s.pending = nil
	s.queueCompaction()
	return out
}

// RangeOptions are the options of a range read.
type RangeOptions struct {
	// Limit caps the number of keys returned; 0 means no limit.
	Limit int64
	// Rev is the revision to read at; <= 0 means the newest.
	Rev int64
	// Count asks for the number of keys only.
	Count bool
}

// RangeResult is the result of a range read.
type RangeResult struct {
	KVs []mvccpb.KeyValue
	// Rev is the store revision the read was served at (the newest one,
	// whatever revision was asked for, as in etcd).
	Rev int64
	// Count is the number of keys in the range at the requested revision,
	// regardless of Limit.
	Count int
}

// readView is what range reads need from a transaction.
type readView interface {
	// viewRev is the newest revision the transaction sees.
	viewRev() int64
	firstRev() int64
	value(r rev) (mvccpb.KeyValue, error)
}

// rangeKeys reads [key, end) at ro.Rev from view v: end == nil reads only
// key, an empty end reads every key >= key.
func (s *Store) rangeKeys(v readView, key, end []byte, ro RangeOptions, locked bool) (*RangeResult, error) {
	curRev := v.viewRev()
	atRev := ro.Rev
	if atRev > curRev {
		return &RangeResult{Count: -1, Rev: curRev}, ErrFutureRev
	}
	if atRev <= 0 {
		atRev = curRev
	}
	if atRev < v.firstRev() {
		return &RangeResult{Count: -1}, ErrCompacted
	}
	var revs []rev
	total := 0
	if !locked {
		s.idxMu.RLock()
	}
	s.idx.ascend(key, end, func(ki *keyIndex) bool {
		r, ok := ki.at(atRev)
		if !ok {
			return true
		}
		total++
		if !ro.Count && (ro.Limit <= 0 || int64(len(revs)) < ro.Limit) {
			revs = append(revs, r)
		}
		return true
	})
	if !locked {
		s.idxMu.RUnlock()
	}
	res := &RangeResult{Rev: curRev, Count: total}
	if ro.Count || len(revs) == 0 {
		return res, nil
	}
	res.KVs = make([]mvccpb.KeyValue, len(revs))
	for i, r := range revs {
		kv, err := v.value(r)
		if err != nil {
			return nil, err
		}
		res.KVs[i] = kv
	}
	return res, nil
}

// readValue loads the value of revision r, from the cache or storage.
func (s *Store) readValue(r rev) (mvccpb.KeyValue, error) {
	id := revID{r.main, int64(r.sub)}
	if kv, ok := s.cache.get(id); ok {
		return kv, nil
	}
	kv, err := s.loadValue(r)
	if err == nil && !r.tomb {
		s.cache.put(id, kv)
	}
	return kv, err
}

// loadValue loads the value of revision r from storage.
func (s *Store) loadValue(r rev) (mvccpb.KeyValue, error) {
	var kv mvccpb.KeyValue
	var kb [18]byte
	key := storage.RevKey(kb[:0], storage.Revision{Main: r.main, Sub: int64(r.sub)}, r.tomb)
	val, closer, err := s.be.Get(key)
	if err != nil {
		// The index says the revision exists and compaction cannot remove
		// it while a transaction is open: storage lost it.
		return kv, fmt.Errorf("mvcc: revision %d.%d in the index but not in storage: %v: %w",
			r.main, r.sub, err, storage.ErrCorrupt)
	}
	err = kv.Unmarshal(val)
	closer.Close()
	if err != nil {
		return kv, fmt.Errorf("mvcc: revision %d.%d: %v: %w", r.main, r.sub, err, storage.ErrCorrupt)
	}
	return kv, nil
}

// TxnRead is a read transaction: every read in it sees the same revision.
type TxnRead struct {
	s     *Store
	rev   int64
	first int64
}

// Read begins a read transaction at the newest published revision. End it
// with End.
func (s *Store) Read() *TxnRead {
	s.mu.RLock()
	s.idxMu.RLock()
	tr := &TxnRead{s: s, rev: s.currentRev, first: s.compactRev}
	s.idxMu.RUnlock()
	return tr
}

func (tr *TxnRead) viewRev() int64                       { return tr.rev }
func (tr *TxnRead) firstRev() int64                      { return tr.first }
func (tr *TxnRead) value(r rev) (mvccpb.KeyValue, error) { return tr.s.readValue(r) }

// Rev returns the revision the transaction reads at.
func (tr *TxnRead) Rev() int64 { return tr.rev }

// FirstRev returns the compaction revision when the transaction began.
func (tr *TxnRead) FirstRev() int64 { return tr.first }

// Range reads [key, end) (see RangeOptions).
func (tr *TxnRead) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	return tr.s.rangeKeys(tr, key, end, ro, false)
}

// End ends the transaction.
func (tr *TxnRead) End() { tr.s.mu.RUnlock() }

// TxnWrite is a write transaction. Only the apply loop writes, one
// transaction at a time; all of a transaction's changes share one main
// revision.
type TxnWrite struct {
	s        *Store
	b        *pebble.Batch
	beginRev int64
	changes  []Change
	kbuf     []byte
	vbuf     []byte
}

// Write begins a write transaction whose writes go into batch b. Several
// transactions may share a batch; commit it, then call Publish.
func (s *Store) Write(b *pebble.Batch) *TxnWrite {
	s.mu.RLock()
	return &TxnWrite{s: s, b: b, beginRev: s.pendingRev}
}

// Rev returns the revision the transaction started from.
func (tw *TxnWrite) Rev() int64 { return tw.beginRev }

// FirstRev returns the compaction revision.
func (tw *TxnWrite) FirstRev() int64 { return tw.s.compactRev }

func (tw *TxnWrite) viewRev() int64 {
	if len(tw.changes) > 0 {
		return tw.beginRev + 1
	}
	return tw.beginRev
}

func (tw *TxnWrite) firstRev() int64 { return tw.s.compactRev }

func (tw *TxnWrite) value(r rev) (mvccpb.KeyValue, error) {
	s := tw.s
	switch {
	case r.main == tw.beginRev+1:
		return tw.changes[r.sub].KV, nil
	case r.main > s.currentRev:
		return s.pending[r.main-s.currentRev-1].changes[r.sub].KV, nil
	}
	return s.readValue(r)
}

// Range reads [key, end), seeing the transaction's own earlier writes.
func (tw *TxnWrite) Range(key, end []byte, ro RangeOptions) (*RangeResult, error) {
	// The writer is the only goroutine that changes the index, so it
	// reads it without taking idxMu.
	return tw.s.rangeKeys(tw, key, end, ro, true)
}

// Put writes key=value attached to lease (0 for none) and returns the
// revision the transaction will have.
func (tw *TxnWrite) Put(key, value []byte, lease int64) int64 {
	s := tw.s
	main := tw.beginRev + 1
	sub := int32(len(tw.changes))
	ki := s.idx.get(key)
	created, version, oldLease := main, int64(1), int64(0)
	if ki != nil && ki.live() {
		created, version, oldLease = ki.created, ki.version+1, ki.lease
	}
	kv := mvccpb.KeyValue{
		Key:            key,
		Value:          value,
		CreateRevision: created,
		ModRevision:    main,
		Version:        version,
		Lease:          lease,
	}
	size := tw.stage(kv, main, sub, false)
	s.idxMu.Lock()
	if ki == nil {
		ki = s.idx.getOrCreate(key)
	}
	ki.revs = append(ki.revs, rev{main: main, sub: sub, size: size})
	ki.created, ki.version, ki.lease = created, version, lease
	s.idxMu.Unlock()
	tw.changes = append(tw.changes, Change{KV: kv})
	if s.leases != nil && oldLease != lease {
		if oldLease != 0 {
			s.leases.Detach(oldLease, key)
		}
		if lease != 0 {
			s.leases.Attach(lease, key)
		}
	}
	return main
}

// DeleteRange deletes the live keys in [key, end) (same end conventions as
// Range) and returns how many it deleted and the transaction's revision.
func (tw *TxnWrite) DeleteRange(key, end []byte) (int64, int64) {
	s := tw.s
	var victims []*keyIndex
	s.idx.ascend(key, end, func(ki *keyIndex) bool {
		if ki.live() {
			victims = append(victims, ki)
		}
		return true
	})
	if len(victims) == 0 {
		if len(tw.changes) > 0 {
			return 0, tw.beginRev + 1
		}
		return 0, tw.beginRev
	}
	main := tw.beginRev + 1
	for _, ki := range victims {
		sub := int32(len(tw.changes))
		kv := mvccpb.KeyValue{Key: ki.key, ModRevision: main}
		size := tw.stage(kv, main, sub, true)
		oldLease := ki.lease
		s.idxMu.Lock()
		ki.revs = append(ki.revs, rev{main: main, sub: sub, size: size, tomb: true})
		ki.created, ki.version, ki.lease = 0, 0, 0
		s.idxMu.Unlock()
		tw.changes = append(tw.changes, Change{KV: kv, Delete: true})
		if s.leases != nil && oldLease != 0 {
			s.leases.Detach(oldLease, ki.key)
		}
	}
	return int64(len(victims)), main
}

// stage writes kv at revision (main, sub) into the batch and returns the
// stored size.
func (tw *TxnWrite) stage(kv mvccpb.KeyValue, main int64, sub int32, tomb bool) uint32 {
	tw.kbuf = storage.RevKey(tw.kbuf[:0], storage.Revision{Main: main, Sub: int64(sub)}, tomb)
	n := kv.Size()
	if cap(tw.vbuf) < n {
		tw.vbuf = make([]byte, n, 2*n)
	}
	tw.vbuf = tw.vbuf[:n]
	if _, err := kv.MarshalTo(tw.vbuf); err != nil {
		panic(fmt.Sprintf("mvcc: marshal key-value: %v", err))
	}
	if err := tw.b.Set(tw.kbuf, tw.vbuf, nil); err != nil {
		panic(fmt.Sprintf("mvcc: stage revision: %v", err))
	}
	return uint32(n)
}

// Changes returns the changes made so far.
func (tw *TxnWrite) Changes() []Change { return tw.changes }

// End ends the transaction. If it changed anything, its revision becomes
// the store's pending revision.
func (tw *TxnWrite) End() {
	s := tw.s
	if len(tw.changes) > 0 {
		s.pendingRev = tw.beginRev + 1
		s.pending = append(s.pending, pendingRev{main: s.pendingRev, changes: tw.changes})
	}
	s.mu.RUnlock()
}

// Keys returns the number of keys in the index (live or with history).
func (s *Store) Keys() int {
	s.idxMu.RLock()
	defer s.idxMu.RUnlock()
	return s.idx.len()
}

// History calls fn with every change at revisions [from, to], in revision
// order, read from storage, until fn returns false. It returns ErrCompacted
// if from is below the compaction revision. As in etcd, reading from the
// compaction revision itself is allowed; the deletions made at exactly that
// revision are gone by then. Watchers catching up use it.
func (s *Store) History(from, to int64, fn func(Change) bool) error {
	if from > to {
		return nil
	}
	lo, hi := storage.RevKeyBounds(from, to+1)
	// The iterator is a point-in-time view; checking the compaction
	// revision after creating it is what makes the view complete: revisions
	// are only deleted after the compaction revision has moved past them.
	it, err := s.be.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("mvcc: history: %w", err)
	}
	defer it.Close()
	if from < s.CompactRev() {
		return ErrCompacted
	}
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := storage.ParseRevKey(it.Key())
		if err != nil {
			return fmt.Errorf("mvcc: history: %w", err)
		}
		var c Change
		if err := c.KV.Unmarshal(it.Value()); err != nil {
			return fmt.Errorf("mvcc: history: revision %d.%d: %v: %w", r.Main, r.Sub, err, storage.ErrCorrupt)
		}
		if tomb {
			c.Delete = true
			c.KV = mvccpb.KeyValue{Key: c.KV.Key, ModRevision: r.Main}
		}
		if !fn(c) {
			return nil
		}
	}
	return it.Error()
}

// WriteRev returns the newest revision written, published or not: the
// revision the next write transaction starts from. Only the writer (the
// apply loop) may call it.
func (s *Store) WriteRev() int64 { return s.pendingRev }

// Replace swaps the store's whole content: with every transaction locked
// out, rewrite runs (it replaces the revision keyspace in storage, e.g. with
// a snapshot from the leader), then the index is rebuilt from storage. The
// caller must not hold unpublished writes.
func (s *Store) Replace(rewrite func() error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.pending) > 0 {
		panic("mvcc: Replace called with unpublished writes")
	}
	if err := rewrite(); err != nil {
		return err
	}
	s.idxMu.Lock()
	defer s.idxMu.Unlock()
	s.idx = newIndex()
	s.currentRev, s.compactRev = 1, -1
	if err := s.restoreLocked(); err != nil {
		return err
	}
	s.pendingRev = s.currentRev
	return nil
}
