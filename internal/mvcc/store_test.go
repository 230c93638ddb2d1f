package mvcc_test

import (
	"errors"
	"fmt"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

func TestFreshStore(t *testing.T) {
	e := newEnv(t)
	if e.s.Rev() != 1 || e.s.CompactRev() != -1 || e.s.Keys() != 0 {
		t.Fatalf("fresh store: rev %d, compact rev %d, keys %d", e.s.Rev(), e.s.CompactRev(), e.s.Keys())
	}
	resp := e.all(0)
	if resp.Header.Revision != 1 || resp.Count != 0 || len(resp.Kvs) != 0 || resp.More {
		t.Fatalf("fresh store range: %+v", resp)
	}
	tr := e.s.Read()
	if tr.Rev() != 1 || tr.FirstRev() != -1 {
		t.Fatalf("read txn: rev %d first %d", tr.Rev(), tr.FirstRev())
	}
	tr.End()
	// Publishing nothing changes nothing.
	if ch := e.s.Publish(); ch != nil {
		t.Fatalf("Publish on a fresh store returned %v", ch)
	}
	checkRev(t, "after empty publish", e.s.Rev(), 1)
	e.checkStored()
}

func TestFirstWrite(t *testing.T) {
	e := newEnv(t)
	bt := e.batch()
	resp := bt.put("a", "1")
	checkRev(t, "put response", resp.Header.Revision, 2)
	if resp.PrevKv != nil {
		t.Fatalf("prev kv without asking: %v", resp.PrevKv)
	}
	// Not visible until published.
	checkRev(t, "before publish", e.s.Rev(), 1)
	if r := e.get("a"); len(r.Kvs) != 0 || r.Header.Revision != 1 {
		t.Fatalf("unpublished write visible: %+v", r)
	}
	changes := bt.commit()
	if len(changes) != 1 || changes[0].Delete || !kvEqual(&changes[0].KV, kv("a", "1", 2, 2, 1)) {
		t.Fatalf("changes: %+v", changes)
	}
	checkRev(t, "after publish", e.s.Rev(), 2)
	r := e.get("a")
	checkRev(t, "range header", r.Header.Revision, 2)
	checkKVs(t, "a", r.Kvs, kv("a", "1", 2, 2, 1))
	if r.Count != 1 || r.More {
		t.Fatalf("count %d more %v", r.Count, r.More)
	}
	e.checkStored(storedRev{2, 0, false})
}

func TestOverwrite(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.put("b", "1") // 3
	resp := e.put("a", "2")
	checkRev(t, "overwrite", resp.Header.Revision, 4)
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "2", 2, 4, 2))
	e.put("a", "3") // 5
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "3", 2, 5, 3))
	checkKVs(t, "b", e.get("b").Kvs, kv("b", "1", 3, 3, 1))
	// Overwriting with the same value is still a new revision.
	checkRev(t, "same value", e.put("a", "3").Header.Revision, 6)
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "3", 2, 6, 4))
}

func TestDeleteStartsNewGeneration(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.put("a", "2") // 3
	bt := e.batch()
	dr := bt.del("a", "")
	changes := bt.commit()
	if dr.Deleted != 1 || dr.Header.Revision != 4 {
		t.Fatalf("delete: deleted %d at %d", dr.Deleted, dr.Header.Revision)
	}
	if len(changes) != 1 || !changes[0].Delete ||
		!kvEqual(&changes[0].KV, &mvccpb.KeyValue{Key: []byte("a"), ModRevision: 4}) {
		t.Fatalf("delete change: %+v", changes)
	}
	if r := e.get("a"); len(r.Kvs) != 0 || r.Count != 0 || r.Header.Revision != 4 {
		t.Fatalf("deleted key visible: %+v", r)
	}
	checkRev(t, "re-put", e.put("a", "3").Header.Revision, 5)
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "3", 5, 5, 1))
	e.put("a", "4") // 6
	checkKVs(t, "a", e.get("a").Kvs, kv("a", "4", 5, 6, 2))
	// History of both generations.
	checkKVs(t, "a@2", e.getAt("a", 2).Kvs, kv("a", "1", 2, 2, 1))
	checkKVs(t, "a@3", e.getAt("a", 3).Kvs, kv("a", "2", 2, 3, 2))
	checkKVs(t, "a@4", e.getAt("a", 4).Kvs)
	checkKVs(t, "a@5", e.getAt("a", 5).Kvs, kv("a", "3", 5, 5, 1))
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false}, storedRev{4, 0, true}, storedRev{5, 0, false}, storedRev{6, 0, false})
}

func TestDeleteNothing(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.del("a", "")  // 3
	for _, tc := range []struct{ key, end string }{
		{"a", ""},        // deleted already: history only
		{"zz", ""},       // never existed
		{"b", "c"},       // empty range
		{"c", "a"},       // end before key
		{"b", "\x00"},    // nothing at or after b
		{"\x00", "\x00"}, // every key, none live
	} {
		bt := e.batch()
		dr := bt.del(tc.key, tc.end)
		if changes := bt.commit(); len(changes) != 0 {
			t.Fatalf("delete %q-%q changed %v", tc.key, tc.end, changes)
		}
		if dr.Deleted != 0 || dr.Header.Revision != 3 {
			t.Fatalf("delete %q-%q: deleted %d at %d, want 0 at 3", tc.key, tc.end, dr.Deleted, dr.Header.Revision)
		}
		checkRev(t, "store", e.s.Rev(), 3)
	}
	checkRev(t, "next write", e.put("b", "1").Header.Revision, 4)
}

func TestDeleteRange(t *testing.T) {
	e := newEnv(t)
	for _, k := range []string{"a", "b", "c", "d", "e"} {
		e.put(k, "v"+k) // a=2 ... e=6
	}
	dr := e.delReq(&pb.DeleteRangeRequest{Key: []byte("b"), RangeEnd: []byte("d"), PrevKv: true})
	if dr.Deleted != 2 || dr.Header.Revision != 7 {
		t.Fatalf("delete [b, d): deleted %d at %d", dr.Deleted, dr.Header.Revision)
	}
	checkKVs(t, "prev kvs", dr.PrevKvs, kv("b", "vb", 3, 3, 1), kv("c", "vc", 4, 4, 1))
	// Both deletions share revision 7 with sub-revisions 0 and 1.
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false}, storedRev{4, 0, false}, storedRev{5, 0, false},
		storedRev{6, 0, false}, storedRev{7, 0, true}, storedRev{7, 1, true})
	checkKVs(t, "left", e.all(0).Kvs, kv("a", "va", 2, 2, 1), kv("d", "vd", 5, 5, 1), kv("e", "ve", 6, 6, 1))

	dr = e.delReq(&pb.DeleteRangeRequest{Key: []byte("d"), RangeEnd: []byte{0}, PrevKv: true})
	if dr.Deleted != 2 || dr.Header.Revision != 8 {
		t.Fatalf("delete from d: deleted %d at %d", dr.Deleted, dr.Header.Revision)
	}
	checkKVs(t, "prev kvs", dr.PrevKvs, kv("d", "vd", 5, 5, 1), kv("e", "ve", 6, 6, 1))
	// prev_kv on a delete of nothing.
	dr = e.delReq(&pb.DeleteRangeRequest{Key: []byte("x"), PrevKv: true})
	if dr.Deleted != 0 || dr.Header.Revision != 8 || len(dr.PrevKvs) != 0 {
		t.Fatalf("delete x: %+v", dr)
	}
	checkKVs(t, "left", e.all(0).Kvs, kv("a", "va", 2, 2, 1))
}

func TestTxnOneRevisionWithSubRevisions(t *testing.T) {
	e := newEnv(t)
	e.put("c", "1") // 2
	bt := e.batch()
	resp, err := bt.txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("a", "1"), opPut("b", "1"), opDel("c", "")}})
	if err != nil {
		t.Fatal(err)
	}
	changes := bt.commit()
	checkRev(t, "txn header", resp.Header.Revision, 3)
	if !resp.Succeeded || len(resp.Responses) != 3 {
		t.Fatalf("txn response: %+v", resp)
	}
	checkRev(t, "put a", resp.Responses[0].GetResponsePut().Header.Revision, 3)
	checkRev(t, "put b", resp.Responses[1].GetResponsePut().Header.Revision, 3)
	d := resp.Responses[2].GetResponseDeleteRange()
	checkRev(t, "delete c", d.Header.Revision, 3)
	if d.Deleted != 1 {
		t.Fatalf("deleted %d", d.Deleted)
	}
	if len(changes) != 3 || changes[0].Delete || changes[1].Delete || !changes[2].Delete {
		t.Fatalf("changes %+v", changes)
	}
	checkRev(t, "store", e.s.Rev(), 3)
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false}, storedRev{3, 1, false}, storedRev{3, 2, true})
	checkKVs(t, "all", e.all(0).Kvs, kv("a", "1", 3, 3, 1), kv("b", "1", 3, 3, 1))
	checkKVs(t, "all@2", e.all(2).Kvs, kv("c", "1", 2, 2, 1))
	checkRev(t, "next", e.put("d", "1").Header.Revision, 4)
}

func TestReadOnlyTxnKeepsRevision(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	rt := &pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "1")},
		Success: []*pb.RequestOp{opGet("a", "")},
	}
	if !mvcc.IsReadOnlyTxn(rt) {
		t.Fatal("txn with only a range is not read-only")
	}
	resp, err := e.s.ReadTxn(rt)
	if err != nil {
		t.Fatal(err)
	}
	checkRev(t, "read txn header", resp.Header.Revision, 2)
	checkRev(t, "range header", resp.Responses[0].GetResponseRange().Header.Revision, 2)
	checkKVs(t, "range", resp.Responses[0].GetResponseRange().Kvs, kv("a", "1", 2, 2, 1))

	// Through the write path too: no change, no revision.
	for _, rt := range []*pb.TxnRequest{
		rt,
		{}, // empty txn
		{Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "2")}, Success: []*pb.RequestOp{opPut("a", "2")}},
		{Success: []*pb.RequestOp{opDel("zz", "")}},
		{Success: []*pb.RequestOp{opTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opGet("a", "")}})}},
	} {
		bt := e.batch()
		resp, err := bt.txn(rt)
		if err != nil {
			t.Fatal(err)
		}
		if changes := bt.commit(); len(changes) != 0 {
			t.Fatalf("txn %v changed %v", rt, changes)
		}
		checkRev(t, "write-path txn header", resp.Header.Revision, 2)
		checkRev(t, "store", e.s.Rev(), 2)
	}
	checkRev(t, "next", e.put("b", "1").Header.Revision, 3)
}

func TestReadsAtOldRevisions(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1")                                                                       // 2
	e.put("b", "1")                                                                       // 3
	e.put("a", "2")                                                                       // 4
	e.del("b", "")                                                                        // 5
	e.mustTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "2"), opPut("c", "1")}}) // 6
	e.del("a", "c")                                                                       // 7
	want := map[int64][]*mvccpb.KeyValue{
		1: nil,
		2: {kv("a", "1", 2, 2, 1)},
		3: {kv("a", "1", 2, 2, 1), kv("b", "1", 3, 3, 1)},
		4: {kv("a", "2", 2, 4, 2), kv("b", "1", 3, 3, 1)},
		5: {kv("a", "2", 2, 4, 2)},
		6: {kv("a", "2", 2, 4, 2), kv("b", "2", 6, 6, 1), kv("c", "1", 6, 6, 1)},
		7: {kv("c", "1", 6, 6, 1)},
	}
	for rev := int64(1); rev <= 7; rev++ {
		r := e.all(rev)
		checkRev(t, "header of a read at an old revision", r.Header.Revision, 7)
		checkKVs(t, "all", r.Kvs, want[rev]...)
		if r.Count != int64(len(want[rev])) {
			t.Fatalf("count at %d: %d", rev, r.Count)
		}
		for _, w := range want[rev] {
			checkKVs(t, string(w.Key), e.getAt(string(w.Key), rev).Kvs, w)
		}
	}
	// Revision 0 and negative revisions read the newest.
	checkKVs(t, "rev 0", e.all(0).Kvs, want[7]...)
	checkKVs(t, "rev -1", e.all(-1).Kvs, want[7]...)
}

func TestFutureRevision(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 3}); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("range at 3: %v, want ErrFutureRev", err)
	}
	checkKVs(t, "range at 2", e.getAt("a", 2).Kvs, kv("a", "1", 2, 2, 1))

	// The low-level read transaction reports the header revision too.
	tr := e.s.Read()
	defer tr.End()
	rr, err := tr.Range([]byte("a"), nil, mvcc.RangeOptions{Rev: 3})
	if !errors.Is(err, mvcc.ErrFutureRev) || rr.Rev != 2 || rr.Count != -1 {
		t.Fatalf("TxnRead.Range at 3: %+v, %v", rr, err)
	}
	// A read transaction keeps its revision while writes go on.
	bt := e.batch()
	bt.put("a", "2")
	bt.commit()
	rr, err = tr.Range([]byte("a"), nil, mvcc.RangeOptions{})
	if err != nil || rr.Rev != 2 || len(rr.KVs) != 1 || rr.KVs[0].ModRevision != 2 {
		t.Fatalf("read txn after a later write: %+v, %v", rr, err)
	}
	if _, err := tr.Range([]byte("a"), nil, mvcc.RangeOptions{Rev: 3}); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("read txn at 3: %v", err)
	}
}

func TestRangeCountAndLimitLowLevel(t *testing.T) {
	e := newEnv(t)
	for _, k := range []string{"a", "b", "c"} {
		e.put(k, k)
	}
	tr := e.s.Read()
	defer tr.End()
	rr, err := tr.Range([]byte("a"), []byte{}, mvcc.RangeOptions{Limit: 2})
	if err != nil || rr.Count != 3 || len(rr.KVs) != 2 || rr.Rev != 4 {
		t.Fatalf("limit 2: %+v, %v", rr, err)
	}
	rr, err = tr.Range([]byte("a"), []byte{}, mvcc.RangeOptions{Count: true})
	if err != nil || rr.Count != 3 || len(rr.KVs) != 0 {
		t.Fatalf("count: %+v, %v", rr, err)
	}
	rr, err = tr.Range([]byte("a"), nil, mvcc.RangeOptions{Rev: 2})
	if err != nil || rr.Count != 1 || len(rr.KVs) != 1 || rr.Rev != 4 {
		t.Fatalf("single at 2: %+v, %v", rr, err)
	}
}

// TestRangeInsideWriteTxn: a txn's reads see its earlier operations, and
// their header revision becomes the txn's once it has written.
func TestRangeInsideWriteTxn(t *testing.T) {
	e := newEnv(t)
	e.put("a", "1") // 2
	e.put("b", "1") // 3
	resp := e.mustTxn(&pb.TxnRequest{Success: []*pb.RequestOp{
		opGet("a", "c"),
		opPut("a", "2"),
		opGet("a", "c"),
		opDel("b", ""),
		opGet("a", "c"),
		opPut("c", "1"),
		opGet("a", "\x00"),
		opRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte{0}, Revision: 3}),
	}})
	checkRev(t, "txn", resp.Header.Revision, 4)
	r := func(i int) *pb.RangeResponse { return resp.Responses[i].GetResponseRange() }
	checkRev(t, "range before any write", r(0).Header.Revision, 3)
	checkKVs(t, "range before any write", r(0).Kvs, kv("a", "1", 2, 2, 1), kv("b", "1", 3, 3, 1))
	checkRev(t, "range after put", r(2).Header.Revision, 4)
	checkKVs(t, "range after put", r(2).Kvs, kv("a", "2", 2, 4, 2), kv("b", "1", 3, 3, 1))
	checkKVs(t, "range after delete", r(4).Kvs, kv("a", "2", 2, 4, 2))
	checkKVs(t, "range after second put", r(6).Kvs, kv("a", "2", 2, 4, 2), kv("c", "1", 4, 4, 1))
	checkKVs(t, "range at 3 inside txn", r(7).Kvs, kv("a", "1", 2, 2, 1), kv("b", "1", 3, 3, 1))
	checkRev(t, "range at 3 inside txn", r(7).Header.Revision, 4)
	if d := resp.Responses[3].GetResponseDeleteRange(); d.Deleted != 1 || d.Header.Revision != 4 {
		t.Fatalf("delete: %+v", d)
	}
	checkKVs(t, "after txn", e.all(0).Kvs, kv("a", "2", 2, 4, 2), kv("c", "1", 4, 4, 1))

	// A txn whose first op is a delete of nothing reports the old revision
	// for it, and the txn's own for what follows a write.
	resp = e.mustTxn(&pb.TxnRequest{Success: []*pb.RequestOp{opDel("zz", ""), opPut("d", "1"), opDel("zz", "")}})
	checkRev(t, "delete of nothing first", resp.Responses[0].GetResponseDeleteRange().Header.Revision, 4)
	checkRev(t, "put", resp.Responses[1].GetResponsePut().Header.Revision, 5)
	checkRev(t, "delete of nothing after a write", resp.Responses[2].GetResponseDeleteRange().Header.Revision, 5)
	checkRev(t, "txn", resp.Header.Revision, 5)
}

// TestBatchOfTxns applies several transactions in one batch before
// publishing, as the apply loop does: each sees the unpublished writes of
// the ones before it, readers see none of them until Publish.
func TestBatchOfTxns(t *testing.T) {
	e := newEnv(t)
	e.put("a", "0") // 2
	bt := e.batch()
	checkRev(t, "1st", bt.put("a", "1").Header.Revision, 3)
	checkRev(t, "2nd", bt.put("b", "1").Header.Revision, 4)

	// Compares, range, prev_kv and ignore_value see the unpublished
	// writes.
	resp, err := bt.txn(&pb.TxnRequest{
		Compare: []*pb.Compare{cmpValue("a", pb.Compare_EQUAL, "1"), cmpVersion("a", pb.Compare_EQUAL, 2), cmpCreate("b", pb.Compare_EQUAL, 4)},
		Success: []*pb.RequestOp{
			opGet("a", "c"),
			opPutReq(&pb.PutRequest{Key: []byte("b"), Value: []byte("2"), PrevKv: true}),
			opPutReq(&pb.PutRequest{Key: []byte("a"), IgnoreValue: true}),
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	if !resp.Succeeded {
		t.Fatal("compares on unpublished writes failed")
	}
	checkRev(t, "3rd", resp.Header.Revision, 5)
	checkRev(t, "range in 3rd", resp.Responses[0].GetResponseRange().Header.Revision, 4)
	checkKVs(t, "range in 3rd", resp.Responses[0].GetResponseRange().Kvs, kv("a", "1", 2, 3, 2), kv("b", "1", 4, 4, 1))
	checkKVs(t, "prev kv", []*mvccpb.KeyValue{resp.Responses[1].GetResponsePut().PrevKv}, kv("b", "1", 4, 4, 1))

	// Readers still see revision 2.
	checkRev(t, "readers", e.s.Rev(), 2)
	checkKVs(t, "reader", e.all(0).Kvs, kv("a", "0", 2, 2, 1))
	if _, err := e.s.Range(&pb.RangeRequest{Key: []byte("a"), Revision: 3}); !errors.Is(err, mvcc.ErrFutureRev) {
		t.Fatalf("reader at an unpublished revision: %v", err)
	}

	// A delete and a put with prev_kv, and a write txn that reads a key
	// written two txns earlier at its exact revision.
	checkRev(t, "4th", bt.del("b", "").Header.Revision, 6)
	p, err := bt.putReq(&pb.PutRequest{Key: []byte("b"), Value: []byte("3"), PrevKv: true})
	if err != nil || p.PrevKv != nil || p.Header.Revision != 7 {
		t.Fatalf("put after delete in the same batch: %+v, %v", p, err)
	}
	resp, err = bt.txn(&pb.TxnRequest{Success: []*pb.RequestOp{
		opRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Revision: 4}),
		opRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Revision: 6}),
		opRange(&pb.RangeRequest{Key: []byte("a"), RangeEnd: []byte("c"), Revision: 7}),
	}})
	if err != nil {
		t.Fatal(err)
	}
	checkRev(t, "read-only txn in the batch", resp.Header.Revision, 7)
	checkKVs(t, "at 4", resp.Responses[0].GetResponseRange().Kvs, kv("a", "1", 2, 3, 2), kv("b", "1", 4, 4, 1))
	checkKVs(t, "at 6", resp.Responses[1].GetResponseRange().Kvs, kv("a", "1", 2, 5, 3))
	checkKVs(t, "at 7", resp.Responses[2].GetResponseRange().Kvs, kv("a", "1", 2, 5, 3), kv("b", "3", 7, 7, 1))

	changes := bt.commit()
	want := []struct {
		key string
		mod int64
		del bool
	}{{"a", 3, false}, {"b", 4, false}, {"b", 5, false}, {"a", 5, false}, {"b", 6, true}, {"b", 7, false}}
	if len(changes) != len(want) {
		t.Fatalf("changes %+v", changes)
	}
	for i, w := range want {
		if string(changes[i].KV.Key) != w.key || changes[i].KV.ModRevision != w.mod || changes[i].Delete != w.del {
			t.Fatalf("change %d: %+v, want %+v", i, changes[i], w)
		}
	}
	checkRev(t, "published", e.s.Rev(), 7)
	checkKVs(t, "after publish", e.all(0).Kvs, kv("a", "1", 2, 5, 3), kv("b", "3", 7, 7, 1))
	checkKVs(t, "at 5", e.all(5).Kvs, kv("a", "1", 2, 5, 3), kv("b", "2", 4, 5, 2))
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false}, storedRev{4, 0, false}, storedRev{5, 0, false},
		storedRev{5, 1, false}, storedRev{6, 0, true}, storedRev{7, 0, false})

	// The next batch starts from the published revision; its values are
	// read from storage.
	bt = e.batch()
	p, err = bt.putReq(&pb.PutRequest{Key: []byte("a"), Value: []byte("2"), PrevKv: true})
	if err != nil {
		t.Fatal(err)
	}
	bt.commit()
	checkRev(t, "next batch", p.Header.Revision, 8)
	checkKVs(t, "prev", []*mvccpb.KeyValue{p.PrevKv}, kv("a", "1", 2, 5, 3))
}

// TestFailedWriteInBatch: a put that fails its checks changes nothing and
// does not disturb the revisions of the batch around it.
func TestFailedWriteInBatch(t *testing.T) {
	e := newEnv(t)
	bt := e.batch()
	bt.put("a", "1") // 2
	if _, err := bt.putReq(&pb.PutRequest{Key: []byte("zz"), IgnoreValue: true}); !errors.Is(err, mvcc.ErrKeyNotFound) {
		t.Fatalf("ignore_value on a missing key: %v", err)
	}
	if _, err := bt.putReq(&pb.PutRequest{Key: []byte("a"), Value: []byte("x"), Lease: 9}); !errors.Is(err, mvcc.ErrLeaseNotFound) {
		t.Fatalf("unknown lease: %v", err)
	}
	if _, err := bt.txn(&pb.TxnRequest{Success: []*pb.RequestOp{opPut("b", "1"), opPutReq(&pb.PutRequest{Key: []byte("zz"), IgnoreLease: true})}}); !errors.Is(err, mvcc.ErrKeyNotFound) {
		t.Fatalf("txn with a failing put: %v", err)
	}
	checkRev(t, "after failures", bt.put("c", "1").Header.Revision, 3)
	changes := bt.commit()
	if len(changes) != 2 {
		t.Fatalf("changes: %+v", changes)
	}
	checkKVs(t, "all", e.all(0).Kvs, kv("a", "1", 2, 2, 1), kv("c", "1", 3, 3, 1))
	e.checkStored(storedRev{2, 0, false}, storedRev{3, 0, false})
}

// TestConcurrentReaders runs readers against the apply loop's writes,
// batches and compactions. Each read transaction must see one consistent
// revision: every value names the revision that wrote it, nothing is newer
// than the transaction, and every revision from the compaction mark on
// stays readable for the transaction's whole life.
func TestConcurrentReaders(t *testing.T) {
	e := newEnv(t)
	keys := []string{"a", "b", "c", "d"}
	stop := make(chan struct{})
	errc := make(chan error, 4)
	for r := 0; r < 4; r++ {
		go func() {
			for {
				select {
				case <-stop:
					errc <- nil
					return
				default:
				}
				if err := readConsistent(e.s); err != nil {
					errc <- err
					return
				}
			}
		}()
	}
	for i := 0; i < 600; i++ {
		switch {
		case i%50 == 49:
			if err := e.compact(e.s.Rev() - 5); err != nil {
				t.Fatal(err)
			}
		case i%7 == 0:
			bt := e.batch()
			for j := 0; j < 3; j++ {
				rev := e.s.Rev() + int64(j) + 1
				bt.put(keys[(i+j)%len(keys)], fmt.Sprint(rev))
			}
			bt.commit()
		case i%11 == 0:
			e.del(keys[i%len(keys)], "")
		default:
			e.put(keys[i%len(keys)], fmt.Sprint(e.s.Rev()+1))
		}
	}
	close(stop)
	for r := 0; r < 4; r++ {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
}

func readConsistent(s *mvcc.Store) error {
	tr := s.Read()
	defer tr.End()
	from := tr.FirstRev()
	if from < 1 {
		from = 1
	}
	for _, at := range []int64{0, from, (from + tr.Rev()) / 2} {
		rr, err := tr.Range([]byte{0}, []byte{}, mvcc.RangeOptions{Rev: at})
		if err != nil {
			return fmt.Errorf("read at %d in a txn at %d (first %d): %w", at, tr.Rev(), tr.FirstRev(), err)
		}
		if rr.Rev != tr.Rev() {
			return fmt.Errorf("range reports revision %d in a txn at %d", rr.Rev, tr.Rev())
		}
		for _, kv := range rr.KVs {
			if string(kv.Value) != fmt.Sprint(kv.ModRevision) || kv.ModRevision > tr.Rev() || (at > 0 && kv.ModRevision > at) {
				return fmt.Errorf("read at %d in a txn at %d: %s", at, tr.Rev(), fmtKV(&kv))
			}
		}
	}
	return nil
}
