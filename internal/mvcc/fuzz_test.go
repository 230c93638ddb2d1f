package mvcc_test

import (
	"encoding/binary"
	"errors"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/storage"
)

// restoreRecord is one key-value pair the fuzzer stores before a restore.
type restoreRecord struct {
	key, val []byte
	main     int64 // for revision keys, -1 otherwise
}

// restoreRecords decodes the fuzzer's input into key-value pairs:
//
//	op%4 == 0 or 1: a revision key (1: tombstone): uvarint main, uvarint sub
//	op%4 == 2: 'k' + uvarint-length-prefixed bytes (any key in the keyspace)
//	op%4 == 3: the scheduled (op&4 == 0) or finished compaction meta key
//
// each followed by a uvarint-length-prefixed value (cut short at the end of
// the input).
func restoreRecords(data []byte) []restoreRecord {
	var out []restoreRecord
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, false
		}
		data = data[n:]
		return v, true
	}
	bytesOf := func() ([]byte, bool) {
		l, ok := uvarint()
		if !ok {
			return nil, false
		}
		if l > uint64(len(data)) {
			l = uint64(len(data))
		}
		b := data[:l]
		data = data[l:]
		return b, true
	}
	for len(data) > 0 {
		op := data[0]
		data = data[1:]
		rec := restoreRecord{main: -1}
		switch op % 4 {
		case 0, 1:
			main, ok1 := uvarint()
			sub, ok2 := uvarint()
			if !ok1 || !ok2 {
				return out
			}
			r := storage.Revision{Main: int64(main), Sub: int64(sub)}
			rec.key = storage.RevKey(nil, r, op%4 == 1)
			rec.main = r.Main
		case 2:
			k, ok := bytesOf()
			if !ok {
				return out
			}
			rec.key = append([]byte{storage.PrefixKV}, k...)
		case 3:
			if op&4 == 0 {
				rec.key = storage.MetaKey(storage.MetaScheduledCompact)
			} else {
				rec.key = storage.MetaKey(storage.MetaFinishedCompact)
			}
		}
		v, ok := bytesOf()
		if !ok {
			return out
		}
		rec.val = v
		out = append(out, rec)
	}
	return out
}

// FuzzRestore stores arbitrary bytes at revision keys (and the compaction
// marks) and opens a store over them: mvcc.New must fail with an error or
// give a store whose every readable revision can be read, written to and
// compacted. It must never panic.
func FuzzRestore(f *testing.F) {
	e := newEnv(f)
	e.s.Close()
	e.s = nil
	db := e.db.Pebble()
	f.Fuzz(func(t *testing.T, data []byte) {
		b := db.NewBatch()
		lo, hi := storage.PrefixBounds(storage.PrefixKV)
		b.DeleteRange(lo, hi, nil)
		b.Delete(storage.MetaKey(storage.MetaScheduledCompact), nil)
		b.Delete(storage.MetaKey(storage.MetaFinishedCompact), nil)
		maxMain := int64(1)
		recs := restoreRecords(data)
		for _, r := range recs {
			b.Set(r.key, r.val, nil)
			if r.main > maxMain {
				maxMain = r.main
			}
		}
		if err := b.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		b.Close()

		s, err := mvcc.New(mvcc.Config{Backend: db, Logger: quiet})
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) && !errors.Is(err, storage.ErrBadKey) {
				t.Fatalf("New: %v is neither ErrCorrupt nor ErrBadKey", err)
			}
			return
		}
		defer s.Close()
		rev, crev := s.Rev(), s.CompactRev()
		if rev < maxMain || rev < 1 || crev > rev {
			t.Fatalf("restored at revision %d (compacted %d) over revisions up to %d", rev, crev, maxMain)
		}
		// Every readable revision at which something was written, and
		// the newest, reads without error.
		readAll := func(at int64) {
			t.Helper()
			if _, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: at}); err != nil {
				t.Fatalf("range at %d (store at %d, compacted %d): %v", at, rev, crev, err)
			}
		}
		readAll(0)
		for _, r := range recs {
			if r.main >= crev && r.main >= 1 && r.main <= rev {
				readAll(r.main)
			}
		}
		if rev > 1<<60 {
			return
		}
		// A write and a compaction on top of what was restored.
		wb := db.NewBatch()
		tw := s.Write(wb)
		if _, err := mvcc.ApplyPut(tw, nil, &pb.PutRequest{Key: []byte("fuzz"), Value: []byte("v")}); err != nil {
			t.Fatal(err)
		}
		mvcc.ApplyDeleteRange(tw, &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte("fuzz")})
		tw.End()
		if err := wb.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		wb.Close()
		s.Publish()
		if s.Rev() != rev+1 {
			t.Fatalf("write after restore at %d made revision %d", rev, s.Rev())
		}
		readAll(0)
		cb := db.NewBatch()
		done, err := s.Compact(cb, rev+1)
		if err != nil {
			t.Fatalf("compact at %d: %v", rev+1, err)
		}
		if err := cb.Commit(pebble.NoSync); err != nil {
			t.Fatal(err)
		}
		cb.Close()
		s.Publish()
		<-done
		resp, err := s.Range(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.Kvs) == 0 || string(resp.Kvs[len(resp.Kvs)-1].Key) < "fuzz" {
			t.Fatalf("after write and compaction: %s", fmtKVs(resp.Kvs))
		}
	})
}
