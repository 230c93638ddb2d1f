package server

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/storage"
)

// HashKV hashes the store's history up to rev (0: the current revision);
// see mvcc.Store.HashKV.
func (s *Server) HashKV(ctx context.Context, rev int64) (hash uint32, hashRev, compactRev int64, err error) {
	return s.kv.HashKV(rev)
}

// Hash hashes the member's whole replicated state: the MVCC history as
// HashKV sees it, then leases, auth and the v2 tree. Members with the same
// applied history have the same hash.
func (s *Server) Hash(ctx context.Context) (uint32, error) {
	kvHash, _, _, err := s.kv.HashKV(0)
	if err != nil {
		return 0, err
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	fmt.Fprintf(h, "%08x", kvHash)
	snap := s.db.Pebble().NewSnapshot()
	defer snap.Close()
	for _, p := range []byte{storage.PrefixLease, storage.PrefixAuth, storage.PrefixV2} {
		lo, hi := storage.PrefixBounds(p)
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return 0, err
		}
		for it.First(); it.Valid(); it.Next() {
			h.Write(it.Key())
			h.Write(it.Value())
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
	}
	return h.Sum32(), nil
}

// Defragment has little to do in cairn: deleted data is already given back
// by the storage engine's compactions. It asks the engine to flush and
// compact everything now, which runs beside reads and writes; nothing is
// blocked while it works.
func (s *Server) Defragment(ctx context.Context) error {
	if err := s.db.Flush(); err != nil {
		return err
	}
	lo, _ := storage.PrefixBounds(0)
	return s.db.CompactRange(ctx, lo, []byte{0xff})
}

// reclaimSpace follows a physical MVCC compaction that deleted deleted
// bytes of values in [lo, hi): the deletions are flushed so the storage
// engine's compaction picker sees them, and when they are a tenth of the
// state or more, that key range is compacted at once, in the background,
// so the space comes back without waiting for the engine to get there.
func (s *Server) reclaimSpace(deleted int64, lo, hi []byte) {
	if !s.reclaiming.CompareAndSwap(false, true) {
		return
	}
	s.reclaimWG.Add(1)
	go func() {
		defer s.reclaimWG.Done()
		defer s.reclaiming.Store(false)
		if err := s.db.Flush(); err != nil {
			s.lg.Warn("flushing after compaction", "err", err)
			return
		}
		total, _ := s.db.SizeNow()
		if deleted*10 < total {
			return
		}
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			select {
			case <-s.stopping:
				cancel()
			case <-ctx.Done():
			}
		}()
		if err := s.db.CompactRange(ctx, lo, hi); err != nil && ctx.Err() == nil {
			s.lg.Warn("compacting storage after an MVCC compaction", "err", err)
		}
	}()
}

// OpenSnapshot starts a snapshot of the member's state at this instant and
// returns its exact size and a reader of it. Close the reader when done.
func (s *Server) OpenSnapshot(ctx context.Context) (int64, io.ReadCloser, error) {
	snap := s.db.Pebble().NewSnapshot()
	size, err := snapshot.Size(snap, snapshot.Backup)
	if err != nil {
		snap.Close()
		return 0, nil, err
	}
	pr, pw := io.Pipe()
	go func() {
		err := snapshot.Write(pw, snap, snapshot.Backup)
		snap.Close()
		pw.CloseWithError(err)
	}()
	return size, pr, nil
}
