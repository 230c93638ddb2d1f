package mvcc_test

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/internal/storage"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// env is a store over a real Pebble database on an in-memory file system,
// written the way the server's apply loop writes it.
type env struct {
	t      testing.TB
	fs     vfs.FS
	db     *storage.DB
	s      *mvcc.Store
	leases mvcc.LeaseLookup
	index  mvcc.LeaseIndex
	// batchN is the store's CompactionBatch (0 for the default).
	batchN int
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, fs: vfs.NewMem()}
	e.open()
	t.Cleanup(e.close)
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := storage.Open(storage.Config{Dir: "db", FS: e.fs, Logger: quiet, CacheBytes: 1 << 20, MemTableBytes: 1 << 20})
	if err != nil {
		e.t.Fatalf("open storage: %v", err)
	}
	e.db = db
	s, err := mvcc.New(mvcc.Config{Backend: db.Pebble(), Logger: quiet, Leases: e.index, CompactionBatch: e.batchN})
	if err != nil {
		db.Close()
		e.db = nil
		e.t.Fatalf("open store: %v", err)
	}
	e.s = s
}

func (e *env) close() {
	if e.s != nil {
		e.s.Close()
		e.s = nil
	}
	if e.db != nil {
		if err := e.db.Close(); err != nil {
			e.t.Errorf("close storage: %v", err)
		}
		e.db = nil
	}
}

// reopen closes the store and the database and opens both again, which
// rebuilds the index from storage.
func (e *env) reopen() {
	e.t.Helper()
	e.close()
	e.open()
}

// write applies fn in one write transaction in a batch of its own, commits
// the batch and publishes it, as the apply loop does for a lone entry.
func (e *env) write(fn func(tw *mvcc.TxnWrite)) []mvcc.Change {
	e.t.Helper()
	bt := e.batch()
	bt.write(fn)
	return bt.commit()
}

// wbatch is an apply batch holding several write transactions that are
// published together.
type wbatch struct {
	e *env
	b *pebble.Batch
}

func (e *env) batch() *wbatch { return &wbatch{e: e, b: e.db.NewBatch()} }

func (bt *wbatch) write(fn func(tw *mvcc.TxnWrite)) {
	tw := bt.e.s.Write(bt.b)
	defer tw.End()
	fn(tw)
}

// commit commits the batch and publishes its revisions.
func (bt *wbatch) commit() []mvcc.Change {
	bt.e.t.Helper()
	if err := bt.e.db.Commit(bt.b, false); err != nil {
		bt.e.t.Fatalf("commit: %v", err)
	}
	return bt.e.s.Publish()
}

func (bt *wbatch) put(key, val string) *pb.PutResponse {
	bt.e.t.Helper()
	resp, err := bt.putReq(&pb.PutRequest{Key: []byte(key), Value: []byte(val)})
	if err != nil {
		bt.e.t.Fatalf("put %q: %v", key, err)
	}
	return resp
}

func (bt *wbatch) putReq(p *pb.PutRequest) (resp *pb.PutResponse, err error) {
	bt.write(func(tw *mvcc.TxnWrite) { resp, err = mvcc.ApplyPut(tw, bt.e.leases, p) })
	return resp, err
}

func (bt *wbatch) del(key, end string) *pb.DeleteRangeResponse {
	return bt.delReq(&pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: bend(end)})
}

func (bt *wbatch) delReq(dr *pb.DeleteRangeRequest) (resp *pb.DeleteRangeResponse) {
	bt.e.t.Helper()
	var err error
	bt.write(func(tw *mvcc.TxnWrite) { resp, err = mvcc.ApplyDeleteRange(tw, dr) })
	if err != nil {
		bt.e.t.Fatalf("delete %q: %v", dr.Key, err)
	}
	return resp
}

func (bt *wbatch) txn(rt *pb.TxnRequest) (resp *pb.TxnResponse, err error) {
	bt.write(func(tw *mvcc.TxnWrite) { resp, err = mvcc.ApplyTxn(tw, bt.e.leases, rt) })
	return resp, err
}

// Single-write shorthands: one write, one batch, published.

func (e *env) put(key, val string) *pb.PutResponse {
	e.t.Helper()
	bt := e.batch()
	resp := bt.put(key, val)
	bt.commit()
	return resp
}

func (e *env) putReq(p *pb.PutRequest) (*pb.PutResponse, error) {
	bt := e.batch()
	resp, err := bt.putReq(p)
	bt.commit()
	return resp, err
}

func (e *env) del(key, end string) *pb.DeleteRangeResponse {
	e.t.Helper()
	bt := e.batch()
	resp := bt.del(key, end)
	bt.commit()
	return resp
}

func (e *env) delReq(dr *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	e.t.Helper()
	bt := e.batch()
	resp := bt.delReq(dr)
	bt.commit()
	return resp
}

func (e *env) txn(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	bt := e.batch()
	resp, err := bt.txn(rt)
	bt.commit()
	return resp, err
}

func (e *env) mustTxn(rt *pb.TxnRequest) *pb.TxnResponse {
	e.t.Helper()
	resp, err := e.txn(rt)
	if err != nil {
		e.t.Fatalf("txn: %v", err)
	}
	return resp
}

// compact compacts at rev in a batch of its own, publishes, and waits for
// the physical deletion to finish.
func (e *env) compact(rev int64) error {
	e.t.Helper()
	b := e.db.NewBatch()
	done, err := e.s.Compact(b, rev)
	if cerr := e.db.Commit(b, false); cerr != nil {
		e.t.Fatalf("commit: %v", cerr)
	}
	e.s.Publish()
	if err != nil {
		return err
	}
	<-done
	return nil
}

func (e *env) get(key string) *pb.RangeResponse {
	e.t.Helper()
	return e.rangeReq(&pb.RangeRequest{Key: []byte(key)})
}

func (e *env) getAt(key string, rev int64) *pb.RangeResponse {
	e.t.Helper()
	return e.rangeReq(&pb.RangeRequest{Key: []byte(key), Revision: rev})
}

func (e *env) rangeReq(r *pb.RangeRequest) *pb.RangeResponse {
	e.t.Helper()
	resp, err := e.s.Range(r)
	if err != nil {
		e.t.Fatalf("range %q-%q@%d: %v", r.Key, r.RangeEnd, r.Revision, err)
	}
	return resp
}

// all reads every key at rev (0 for the newest).
func (e *env) all(rev int64) *pb.RangeResponse {
	e.t.Helper()
	return e.rangeReq(&pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev})
}

// bend turns a test's range end into a request's: "" is a single key.
func bend(end string) []byte {
	if end == "" {
		return nil
	}
	return []byte(end)
}

// kv builds the expected state of a key.
func kv(key, val string, create, mod, ver int64) *mvccpb.KeyValue {
	return &mvccpb.KeyValue{Key: []byte(key), Value: []byte(val), CreateRevision: create, ModRevision: mod, Version: ver}
}

func fmtKV(k *mvccpb.KeyValue) string {
	if k == nil {
		return "<nil>"
	}
	s := fmt.Sprintf("%s=%q c%d m%d v%d", k.Key, k.Value, k.CreateRevision, k.ModRevision, k.Version)
	if k.Lease != 0 {
		s += fmt.Sprintf(" l%d", k.Lease)
	}
	return s
}

func fmtKVs(kvs []*mvccpb.KeyValue) string {
	parts := make([]string, len(kvs))
	for i, k := range kvs {
		parts[i] = fmtKV(k)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func kvEqual(a, b *mvccpb.KeyValue) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Key, b.Key) && bytes.Equal(a.Value, b.Value) &&
		a.CreateRevision == b.CreateRevision && a.ModRevision == b.ModRevision &&
		a.Version == b.Version && a.Lease == b.Lease
}

func kvsEqual(a, b []*mvccpb.KeyValue) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !kvEqual(a[i], b[i]) {
			return false
		}
	}
	return true
}

func checkKVs(t testing.TB, what string, got []*mvccpb.KeyValue, want ...*mvccpb.KeyValue) {
	t.Helper()
	if !kvsEqual(got, want) {
		t.Fatalf("%s:\n got %s\nwant %s", what, fmtKVs(got), fmtKVs(want))
	}
}

func checkRev(t testing.TB, what string, got, want int64) {
	t.Helper()
	if got != want {
		t.Fatalf("%s: revision %d, want %d", what, got, want)
	}
}

// storedRev is one revision key found in the 'k' keyspace.
type storedRev struct {
	Main, Sub int64
	Tomb      bool
}

func (r storedRev) String() string {
	if r.Tomb {
		return fmt.Sprintf("%d.%dt", r.Main, r.Sub)
	}
	return fmt.Sprintf("%d.%d", r.Main, r.Sub)
}

// storedRevs scans the revision keyspace of the database.
func (e *env) storedRevs() []storedRev {
	e.t.Helper()
	lo, hi := storage.PrefixBounds(storage.PrefixKV)
	it, err := e.db.Pebble().NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		e.t.Fatal(err)
	}
	defer it.Close()
	var out []storedRev
	for it.First(); it.Valid(); it.Next() {
		r, tomb, err := storage.ParseRevKey(it.Key())
		if err != nil {
			e.t.Fatalf("bad revision key %x: %v", it.Key(), err)
		}
		out = append(out, storedRev{r.Main, r.Sub, tomb})
	}
	return out
}

func (e *env) checkStored(want ...storedRev) {
	e.t.Helper()
	got := e.storedRevs()
	if fmt.Sprint(got) != fmt.Sprint(want) {
		e.t.Fatalf("stored revisions:\n got %v\nwant %v", got, want)
	}
}

func (e *env) meta(name string) (int64, bool) {
	e.t.Helper()
	v, ok, err := e.db.Uint64(name)
	if err != nil {
		e.t.Fatalf("meta %s: %v", name, err)
	}
	return int64(v), ok
}

// Request builders.

func opPut(key, val string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(key), Value: []byte(val)}}}
}

func opPutReq(p *pb.PutRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestPut{RequestPut: p}}
}

func opGet(key, end string) *pb.RequestOp {
	return opRange(&pb.RangeRequest{Key: []byte(key), RangeEnd: bend(end)})
}

func opRange(r *pb.RangeRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestRange{RequestRange: r}}
}

func opDel(key, end string) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: &pb.DeleteRangeRequest{Key: []byte(key), RangeEnd: bend(end)}}}
}

func opTxn(rt *pb.TxnRequest) *pb.RequestOp {
	return &pb.RequestOp{Request: &pb.RequestOp_RequestTxn{RequestTxn: rt}}
}

func cmpValue(key string, res pb.Compare_CompareResult, val string) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_VALUE, Result: res, TargetUnion: &pb.Compare_Value{Value: []byte(val)}}
}

func cmpVersion(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_VERSION, Result: res, TargetUnion: &pb.Compare_Version{Version: v}}
}

func cmpCreate(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_CREATE, Result: res, TargetUnion: &pb.Compare_CreateRevision{CreateRevision: v}}
}

func cmpMod(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_MOD, Result: res, TargetUnion: &pb.Compare_ModRevision{ModRevision: v}}
}

func cmpLease(key string, res pb.Compare_CompareResult, v int64) *pb.Compare {
	return &pb.Compare{Key: []byte(key), Target: pb.Compare_LEASE, Result: res, TargetUnion: &pb.Compare_Lease{Lease: v}}
}

// withEnd makes a compare apply to [key, end).
func withEnd(c *pb.Compare, end string) *pb.Compare {
	c.RangeEnd = []byte(end)
	return c
}

// fakeLeases is a LeaseLookup and LeaseIndex that records attachments.
type fakeLeases struct {
	exists map[int64]bool
	log    []string
}

func (f *fakeLeases) LeaseExists(id int64) bool { return f.exists[id] }
func (f *fakeLeases) Attach(id int64, key []byte) {
	f.log = append(f.log, fmt.Sprintf("attach %d %s", id, key))
}
func (f *fakeLeases) Detach(id int64, key []byte) {
	f.log = append(f.log, fmt.Sprintf("detach %d %s", id, key))
}

func (f *fakeLeases) take() string {
	s := strings.Join(f.log, "; ")
	f.log = nil
	return s
}
