// Package storage owns a member's on-disk state: one Pebble database holding
// the raft log, the raft hard state and snapshot metadata, the MVCC
// revisions, leases, alarms, membership and auth, under the key layout in
// keys.go. Keeping everything in one database means one write-ahead log: a
// synced write of raft entries also makes durable every state-machine write
// that preceded it, which is what lets the apply path write without syncing.
// DESIGN.md explains the layout and why compaction gives disk space back
// without a stop-the-world defragmentation.
package storage

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
)

// Sentinel errors of the storage layer.
var (
	// ErrBadKey means a key does not have the shape its keyspace requires:
	// the data directory is corrupt or was written by something else.
	ErrBadKey = errors.New("storage: malformed key")
	// ErrCorrupt means persisted state is internally inconsistent (a gap in
	// the raft log, an undecodable record).
	ErrCorrupt = errors.New("storage: corrupt data")
	// ErrLocked means another process has the data directory open.
	ErrLocked = errors.New("storage: data directory is in use by another process")
)

// Config configures Open.
type Config struct {
	// Dir is the directory of the Pebble database. Created if missing.
	Dir string
	// CacheBytes is the size of the block cache in bytes. Default 64 MiB.
	CacheBytes int64
	// MemTableBytes is the size of one memtable in bytes. Default 16 MiB.
	// Pebble preallocates each write-ahead log file to about this size and
	// keeps MemTableStopWritesThreshold+1 flushed ones for reuse, so it
	// sets the fixed disk cost of a member.
	MemTableBytes uint64
	// Logger receives Pebble's log lines at debug level and errors at
	// error level. Default slog.Default().
	Logger *slog.Logger
	// FS replaces the real file system (tests use vfs.NewMem()). Default
	// the operating system's.
	FS vfs.FS
}

// DB is a member's database.
type DB struct {
	db     *pebble.DB
	cache  interface{ Unref() }
	logger *slog.Logger

	// mu serialises raft log writes and guards lastIndex.
	mu sync.Mutex
	// lastIndex is the highest raft log index persisted, 0 if none.
	lastIndex uint64
	// firstIndex is the lowest raft log index kept, 0 if none.
	firstIndex uint64

	// The cached result of Size.
	sizeMu               sync.Mutex
	sizeAt               atomic.Int64 // unix nanoseconds
	sizeTotal, sizeInUse atomic.Int64
}

// Open opens (creating if needed) the database in cfg.Dir.
func Open(cfg Config) (*DB, error) {
	if cfg.Dir == "" {
		return nil, errors.New("storage: no directory given")
	}
	if cfg.CacheBytes <= 0 {
		cfg.CacheBytes = 64 << 20
	}
	if cfg.MemTableBytes == 0 {
		cfg.MemTableBytes = 16 << 20
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.FS == nil {
		if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
			return nil, fmt.Errorf("storage: create %s: %w", cfg.Dir, err)
		}
	}
	logger := cfg.Logger.With("component", "storage")
	cache := pebble.NewCache(cfg.CacheBytes)
	opts := &pebble.Options{
		Cache:                       cache,
		FS:                          cfg.FS,
		FormatMajorVersion:          pebble.FormatNewest,
		MemTableSize:                cfg.MemTableBytes,
		MemTableStopWritesThreshold: 2,
		L0CompactionThreshold:       2,
		L0StopWritesThreshold:       1000,
		LBaseMaxBytes:               64 << 20,
		Logger:                      pebbleLogger{logger},
		DisableWAL:                  disableWAL,
	}
	for i := range opts.Levels {
		opts.Levels[i].BlockSize = 32 << 10
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	opts.EnsureDefaults()
	pdb, err := pebble.Open(cfg.Dir, opts)
	if err == nil {
		pdb, err = reopenIfEmpty(cfg.Dir, opts, pdb)
	}
	cache.Unref()
	if err != nil {
		if isLockErr(err) {
			return nil, fmt.Errorf("%w (cannot lock %s): is another cairn serve running with this --data-dir?", ErrLocked, cfg.Dir)
		}
		return nil, fmt.Errorf("storage: open %s: %w", cfg.Dir, err)
	}
	d := &DB{db: pdb, logger: logger}
	if err := d.loadLogBounds(); err != nil {
		pdb.Close()
		return nil, err
	}
	return d, nil
}

// reopenIfEmpty closes and reopens a database that holds no keys yet. Pebble
// creates a new database's first write-ahead log before it raises the
// database to FormatNewest, so that log lacks the sync offsets by which
// Pebble tells a damaged record in the middle of a log from a torn tail: a
// flipped bit there would end replay early and silently drop every later
// write. Reopening starts a fresh log in the newest format.
func reopenIfEmpty(dir string, opts *pebble.Options, pdb *pebble.DB) (*pebble.DB, error) {
	it, err := pdb.NewIter(nil)
	if err != nil {
		pdb.Close()
		return nil, err
	}
	empty := !it.First()
	if err := it.Close(); err != nil || !empty {
		if err != nil {
			pdb.Close()
		}
		return pdb, err
	}
	if err := pdb.Close(); err != nil {
		return nil, err
	}
	return pebble.Open(dir, opts)
}

// isLockErr reports whether Open failed because another process holds the
// database's lock file (flock answers EAGAIN or EWOULDBLOCK).
func isLockErr(err error) bool {
	return errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK)
}

// Close closes the database. Unsynced writes are flushed to the OS.
func (d *DB) Close() error {
	if err := d.db.Flush(); err != nil {
		d.logger.Warn("flush before close failed", "err", err)
	}
	return d.db.Close()
}

// Pebble returns the underlying database for the packages that read and
// write their own keyspaces (mvcc, lease, ...).
func (d *DB) Pebble() *pebble.DB { return d.db }

// NewBatch returns a write batch. Commit it with Commit.
func (d *DB) NewBatch() *pebble.Batch { return d.db.NewBatch() }

// Commit commits b, waiting for an fsync when sync is set, and closes it.
func (d *DB) Commit(b *pebble.Batch, sync bool) error {
	err := d.Apply(b, sync)
	b.Close()
	return err
}

// Apply commits b like Commit but leaves it open, to be Reset and reused.
func (d *DB) Apply(b *pebble.Batch, sync bool) error {
	opts := pebble.NoSync
	if sync && !disableWAL {
		opts = pebble.Sync
	}
	start := time.Now()
	walWriteBytes.Add(float64(b.Len()))
	err := b.Commit(opts)
	if sync {
		walFsyncSec.Observe(time.Since(start).Seconds())
	} else {
		backendCommitSec.Observe(time.Since(start).Seconds())
	}
	if err != nil {
		return fmt.Errorf("storage: commit: %w", err)
	}
	return nil
}

// Get returns a copy of the value stored at key, or ok=false if absent.
func (d *DB) Get(key []byte) (val []byte, ok bool, err error) {
	return get(d.db, key)
}

type getter interface {
	Get(key []byte) ([]byte, io.Closer, error)
}

func get(g getter, key []byte) ([]byte, bool, error) {
	v, closer, err := g.Get(key)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("storage: get %q: %w", key, err)
	}
	out := append([]byte(nil), v...)
	closer.Close()
	return out, true, nil
}

// Size reports the bytes the member's state takes and an estimate of the
// bytes live data needs. Like etcd's db size it leaves out the write-ahead
// log's files (Pebble keeps a few flushed ones to reuse), but counts the
// data they hold that is not in tables yet. Computing the figures walks
// Pebble's metadata, so Size answers from a cache up to sizeRefresh old:
// the quota check asks on every write. Answers to users (Status, metrics)
// come from SizeNow.
func (d *DB) Size() (total, inUse int64) {
	if time.Now().UnixNano()-d.sizeAt.Load() < int64(sizeRefresh) {
		return d.sizeTotal.Load(), d.sizeInUse.Load()
	}
	return d.SizeNow()
}

// SizeNow is Size computed now, counting every write made so far; it
// refreshes the cache Size answers from.
func (d *DB) SizeNow() (total, inUse int64) {
	d.sizeMu.Lock()
	defer d.sizeMu.Unlock()
	m := d.db.Metrics()
	tables := m.Table.Local.LiveSize + m.Table.Local.ObsoleteSize + m.Table.Local.ZombieSize +
		m.BlobFiles.Local.LiveSize + m.BlobFiles.Local.ObsoleteSize + m.BlobFiles.Local.ZombieSize
	total = int64(tables + m.WAL.Size)
	live, err := d.db.EstimateDiskUsage([]byte{0}, []byte{0xff})
	if err != nil {
		live = tables
	}
	inUse = min(int64(live+m.WAL.Size), total)
	d.sizeTotal.Store(total)
	d.sizeInUse.Store(inUse)
	d.sizeAt.Store(time.Now().UnixNano())
	return total, inUse
}

// DiskUsage returns the bytes the database occupies on disk, everything
// included.
func (d *DB) DiskUsage() int64 { return int64(d.db.Metrics().DiskSpaceUsage()) }

// Flush writes the memtable out to a table.
func (d *DB) Flush() error {
	if err := d.db.Flush(); err != nil {
		return fmt.Errorf("storage: flush: %w", err)
	}
	return nil
}

// sizeRefresh is how long Size may answer from its cache.
const sizeRefresh = 100 * time.Millisecond

// CompactRange asks Pebble to compact [start, end) now, dropping deleted
// data from disk. It runs beside reads and writes; nothing is blocked.
func (d *DB) CompactRange(ctx context.Context, start, end []byte) error {
	if err := d.db.Compact(ctx, start, end, true); err != nil {
		return fmt.Errorf("storage: compact: %w", err)
	}
	return nil
}

// Checkpoint writes a consistent copy of the database to dir, which must not
// exist.
func (d *DB) Checkpoint(dir string) error {
	if err := d.db.Checkpoint(dir, pebble.WithFlushedWAL()); err != nil {
		return fmt.Errorf("storage: checkpoint to %s: %w", dir, err)
	}
	return nil
}

// DataPath returns the Pebble directory inside a member's data directory.
func DataPath(dataDir string) string { return filepath.Join(dataDir, "member", "db") }

type pebbleLogger struct{ l *slog.Logger }

func (p pebbleLogger) Infof(format string, args ...any) {
	p.l.Debug(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Errorf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
}

func (p pebbleLogger) Fatalf(format string, args ...any) {
	p.l.Error(fmt.Sprintf(format, args...))
	panic(fmt.Sprintf(format, args...))
}
