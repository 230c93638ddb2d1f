package mvcc_test

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

// model is a naive reference implementation of etcd's KV semantics: every
// key's full history in a list, every read a scan.
type model struct {
	rev     int64 // newest revision
	compact int64 // reads below it fail; -1 before any compaction
	hist    map[string][]mrev
	leases  map[int64]bool
	// changes since the last publish, as "key@mod" or "key@mod-".
	changes []string
}

// mrev is one revision of a key: its state from then on.
type mrev struct {
	kv   mvccpb.KeyValue // ModRevision is the revision
	tomb bool
}

func newModel() *model {
	return &model{rev: 1, compact: -1, hist: map[string][]mrev{}, leases: map[int64]bool{7: true}}
}

// get returns key's state at revision at.
func (m *model) get(key string, at int64) (mvccpb.KeyValue, bool) {
	var cur *mrev
	for i, r := range m.hist[key] {
		if r.kv.ModRevision <= at {
			cur = &m.hist[key][i]
		}
	}
	if cur == nil || cur.tomb {
		return mvccpb.KeyValue{}, false
	}
	return cur.kv, true
}

func inRange(k string, key, end []byte) bool {
	switch {
	case end == nil:
		return k == string(key)
	case len(end) == 0 || (len(end) == 1 && end[0] == 0):
		return k >= string(key)
	}
	return k >= string(key) && k < string(end)
}

// keysAt returns the keys of [key, end) that exist at revision at, in order.
func (m *model) keysAt(key, end []byte, at int64) []mvccpb.KeyValue {
	var names []string
	for k := range m.hist {
		if inRange(k, key, end) {
			names = append(names, k)
		}
	}
	sort.Strings(names)
	var out []mvccpb.KeyValue
	for _, k := range names {
		if kv, ok := m.get(k, at); ok {
			out = append(out, kv)
		}
	}
	return out
}

// byTarget orders key-values by a sort target; sort.Sort over it gives the
// same order as etcd, ties included.
type byTarget struct {
	kvs    []mvccpb.KeyValue
	target pb.RangeRequest_SortTarget
}

func (s byTarget) Len() int      { return len(s.kvs) }
func (s byTarget) Swap(i, j int) { s.kvs[i], s.kvs[j] = s.kvs[j], s.kvs[i] }
func (s byTarget) Less(i, j int) bool {
	a, b := s.kvs[i], s.kvs[j]
	switch s.target {
	case pb.RangeRequest_KEY:
		return string(a.Key) < string(b.Key)
	case pb.RangeRequest_VERSION:
		return a.Version < b.Version
	case pb.RangeRequest_CREATE:
		return a.CreateRevision < b.CreateRevision
	case pb.RangeRequest_MOD:
		return a.ModRevision < b.ModRevision
	}
	return string(a.Value) < string(b.Value)
}

// rangeAt serves a range request for a reader whose newest revision is cur.
func (m *model) rangeAt(r *pb.RangeRequest, cur int64) (*pb.RangeResponse, error) {
	at := r.Revision
	if at > cur {
		return nil, mvcc.ErrFutureRev
	}
	if at <= 0 {
		at = cur
	}
	if at < m.compact {
		return nil, mvcc.ErrCompacted
	}
	kvs := m.keysAt(r.Key, r.RangeEnd, at)
	count := int64(len(kvs))
	if r.CountOnly {
		kvs = nil
	}
	filtered := r.MinModRevision != 0 || r.MaxModRevision != 0 || r.MinCreateRevision != 0 || r.MaxCreateRevision != 0
	// etcd applies the limit (plus one, for "more") before sorting
	// when there is no sort order and no filter.
	if r.Limit > 0 && r.SortOrder == pb.RangeRequest_NONE && !filtered && int64(len(kvs)) > r.Limit+1 {
		kvs = kvs[:r.Limit+1]
	}
	var kept []mvccpb.KeyValue
	for _, kv := range kvs {
		if (r.MinModRevision != 0 && kv.ModRevision < r.MinModRevision) ||
			(r.MaxModRevision != 0 && kv.ModRevision > r.MaxModRevision) ||
			(r.MinCreateRevision != 0 && kv.CreateRevision < r.MinCreateRevision) ||
			(r.MaxCreateRevision != 0 && kv.CreateRevision > r.MaxCreateRevision) {
			continue
		}
		kept = append(kept, kv)
	}
	order := r.SortOrder
	if order == pb.RangeRequest_NONE && r.SortTarget != pb.RangeRequest_KEY {
		order = pb.RangeRequest_ASCEND
	}
	switch {
	case order == pb.RangeRequest_ASCEND && r.SortTarget != pb.RangeRequest_KEY:
		sort.Sort(byTarget{kept, r.SortTarget})
	case order == pb.RangeRequest_DESCEND:
		sort.Sort(sort.Reverse(byTarget{kept, r.SortTarget}))
	}
	resp := &pb.RangeResponse{Header: &pb.ResponseHeader{Revision: cur}, Count: count}
	if r.Limit > 0 && int64(len(kept)) > r.Limit {
		kept = kept[:r.Limit]
		resp.More = true
	}
	for i := range kept {
		kv := kept[i]
		if r.KeysOnly {
			kv.Value = nil
		}
		resp.Kvs = append(resp.Kvs, &kv)
	}
	return resp, nil
}

// mtxn is a write transaction of the model: its writes get revision
// base+1 and are visible to its own later reads.
type mtxn struct {
	m    *model
	base int64
	subs int
}

func (m *model) begin() *mtxn { return &mtxn{m: m, base: m.rev} }

func (t *mtxn) cur() int64 {
	if t.subs > 0 {
		return t.base + 1
	}
	return t.base
}

func (t *mtxn) end() {
	if t.subs > 0 {
		t.m.rev = t.base + 1
	}
}

func (t *mtxn) put(key string, val []byte, lease int64) int64 {
	rev := t.base + 1
	kv := mvccpb.KeyValue{Key: []byte(key), Value: val, CreateRevision: rev, ModRevision: rev, Version: 1, Lease: lease}
	if old, ok := t.m.get(key, rev); ok {
		kv.CreateRevision, kv.Version = old.CreateRevision, old.Version+1
	}
	t.m.hist[key] = append(t.m.hist[key], mrev{kv: kv})
	t.m.changes = append(t.m.changes, fmt.Sprintf("%s@%d", key, rev))
	t.subs++
	return rev
}

func (t *mtxn) deleteRange(key, end []byte) (int64, int64) {
	victims := t.m.keysAt(key, end, t.cur())
	for _, kv := range victims {
		rev := t.base + 1
		t.m.hist[string(kv.Key)] = append(t.m.hist[string(kv.Key)], mrev{kv: mvccpb.KeyValue{Key: kv.Key, ModRevision: rev}, tomb: true})
		t.m.changes = append(t.m.changes, fmt.Sprintf("%s@%d-", kv.Key, rev))
		t.subs++
	}
	return int64(len(victims)), t.cur()
}

func (t *mtxn) doPut(p *pb.PutRequest) *pb.PutResponse {
	prev, exists := t.m.get(string(p.Key), t.cur())
	val, lease := p.Value, p.Lease
	if p.IgnoreValue {
		val = prev.Value
	}
	if p.IgnoreLease {
		lease = prev.Lease
	}
	resp := &pb.PutResponse{Header: &pb.ResponseHeader{}}
	if p.PrevKv && exists {
		resp.PrevKv = &prev
	}
	resp.Header.Revision = t.put(string(p.Key), val, lease)
	return resp
}

func (t *mtxn) doDelete(dr *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	resp := &pb.DeleteRangeResponse{Header: &pb.ResponseHeader{}}
	if dr.PrevKv {
		for _, kv := range t.m.keysAt(dr.Key, dr.RangeEnd, t.cur()) {
			kv := kv
			resp.PrevKvs = append(resp.PrevKvs, &kv)
		}
	}
	resp.Deleted, resp.Header.Revision = t.deleteRange(dr.Key, dr.RangeEnd)
	return resp
}

func (m *model) put(p *pb.PutRequest) (*pb.PutResponse, error) {
	if p.Lease != 0 && !m.leases[p.Lease] {
		return nil, mvcc.ErrLeaseNotFound
	}
	if _, ok := m.get(string(p.Key), m.rev); !ok && (p.IgnoreValue || p.IgnoreLease) {
		return nil, mvcc.ErrKeyNotFound
	}
	t := m.begin()
	defer t.end()
	return t.doPut(p), nil
}

func (m *model) deleteRange(dr *pb.DeleteRangeRequest) *pb.DeleteRangeResponse {
	t := m.begin()
	defer t.end()
	return t.doDelete(dr)
}

// compareHolds evaluates one compare at revision at.
func (m *model) compareHolds(c *pb.Compare, at int64) bool {
	kvs := m.keysAt(c.Key, c.RangeEnd, at)
	if len(kvs) == 0 {
		if c.Target == pb.Compare_VALUE {
			return false
		}
		kvs = []mvccpb.KeyValue{{}}
	}
	for _, kv := range kvs {
		var d int
		switch c.Target {
		case pb.Compare_VALUE:
			d = bytes.Compare(kv.Value, c.GetValue())
		case pb.Compare_CREATE:
			d = cmp64(kv.CreateRevision, c.GetCreateRevision())
		case pb.Compare_MOD:
			d = cmp64(kv.ModRevision, c.GetModRevision())
		case pb.Compare_VERSION:
			d = cmp64(kv.Version, c.GetVersion())
		case pb.Compare_LEASE:
			d = cmp64(kv.Lease, c.GetLease())
		}
		ok := true
		switch c.Result {
		case pb.Compare_EQUAL:
			ok = d == 0
		case pb.Compare_NOT_EQUAL:
			ok = d != 0
		case pb.Compare_GREATER:
			ok = d > 0
		case pb.Compare_LESS:
			ok = d < 0
		}
		if !ok {
			return false
		}
	}
	return true
}

func cmp64(a, b int64) int {
	if a < b {
		return -1
	}
	if a > b {
		return 1
	}
	return 0
}

// decide evaluates the compares of rt and of the nested txns on its chosen
// branch, all against the state before the txn.
func (m *model) decide(rt *pb.TxnRequest, at int64, out map[*pb.TxnRequest]bool) {
	ok := true
	for _, c := range rt.Compare {
		if !m.compareHolds(c, at) {
			ok = false
			break
		}
	}
	out[rt] = ok
	for _, op := range chosen(rt, out) {
		if n := op.GetRequestTxn(); n != nil {
			m.decide(n, at, out)
		}
	}
}

func chosen(rt *pb.TxnRequest, decided map[*pb.TxnRequest]bool) []*pb.RequestOp {
	if decided[rt] {
		return rt.Success
	}
	return rt.Failure
}

// check checks the chosen ops against the state before the txn.
func (m *model) check(rt *pb.TxnRequest, decided map[*pb.TxnRequest]bool) error {
	for _, op := range chosen(rt, decided) {
		switch {
		case op.GetRequestRange() != nil:
			r := op.GetRequestRange()
			if r.Revision != 0 && r.Revision > m.rev {
				return mvcc.ErrFutureRev
			}
			if r.Revision != 0 && r.Revision < m.compact {
				return mvcc.ErrCompacted
			}
		case op.GetRequestPut() != nil:
			p := op.GetRequestPut()
			if _, ok := m.get(string(p.Key), m.rev); !ok && (p.IgnoreValue || p.IgnoreLease) {
				return mvcc.ErrKeyNotFound
			}
			if p.Lease != 0 && !m.leases[p.Lease] {
				return mvcc.ErrLeaseNotFound
			}
		case op.GetRequestTxn() != nil:
			if err := m.check(op.GetRequestTxn(), decided); err != nil {
				return err
			}
		}
	}
	return nil
}

func (t *mtxn) exec(rt *pb.TxnRequest, decided map[*pb.TxnRequest]bool) *pb.TxnResponse {
	resp := &pb.TxnResponse{Header: &pb.ResponseHeader{}, Succeeded: decided[rt]}
	for _, op := range chosen(rt, decided) {
		switch {
		case op.GetRequestRange() != nil:
			r, err := t.m.rangeAt(op.GetRequestRange(), t.cur())
			if err != nil {
				panic(err)
			}
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: r}})
		case op.GetRequestPut() != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponsePut{ResponsePut: t.doPut(op.GetRequestPut())}})
		case op.GetRequestDeleteRange() != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseDeleteRange{ResponseDeleteRange: t.doDelete(op.GetRequestDeleteRange())}})
		case op.GetRequestTxn() != nil:
			resp.Responses = append(resp.Responses, &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: t.exec(op.GetRequestTxn(), decided)}})
		}
	}
	return resp
}

func (m *model) txn(rt *pb.TxnRequest) (*pb.TxnResponse, error) {
	decided := map[*pb.TxnRequest]bool{}
	m.decide(rt, m.rev, decided)
	if err := m.check(rt, decided); err != nil {
		return nil, err
	}
	t := m.begin()
	resp := t.exec(rt, decided)
	resp.Header.Revision = t.cur()
	t.end()
	return resp, nil
}

func (m *model) compactAt(rev int64) error {
	if rev <= m.compact {
		return mvcc.ErrCompacted
	}
	if rev > m.rev {
		return mvcc.ErrFutureRev
	}
	m.compact = rev
	return nil
}

// gen makes random requests over a small key space.
type gen struct {
	rng  *rand.Rand
	keys []string
	vals []string
	rev  func() int64
}

func newGen(seed int64, rev func() int64) *gen {
	g := &gen{rng: rand.New(rand.NewSource(seed)), rev: rev, vals: []string{"", "a", "b", "ab", "c"}}
	for i := 0; i < 14; i++ {
		g.keys = append(g.keys, fmt.Sprintf("k%02d", i))
	}
	g.keys = append(g.keys, "p", "p/1", "p/2", "q")
	return g
}

func (g *gen) key() []byte { return []byte(g.keys[g.rng.Intn(len(g.keys))]) }

func (g *gen) end(key []byte) []byte {
	switch g.rng.Intn(6) {
	case 0, 1:
		return nil
	case 2:
		return []byte{0}
	case 3:
		e := append([]byte(nil), key...)
		e[len(e)-1]++
		return e
	}
	return g.key()
}

func (g *gen) revision() int64 {
	if g.rng.Intn(3) == 0 {
		return 0
	}
	return g.rng.Int63n(g.rev()+3) - 1
}

func (g *gen) rangeReq() *pb.RangeRequest {
	k := g.key()
	r := &pb.RangeRequest{Key: k, RangeEnd: g.end(k)}
	if g.rng.Intn(5) == 0 {
		// Every key: sorts then see more than a dozen keys, with ties.
		r.Key, r.RangeEnd = []byte{0}, []byte{0}
	}
	if g.rng.Intn(2) == 0 {
		r.Limit = g.rng.Int63n(6)
	}
	if g.rng.Intn(3) == 0 {
		r.Revision = g.revision()
	}
	if g.rng.Intn(2) == 0 {
		r.SortOrder = pb.RangeRequest_SortOrder(g.rng.Intn(3))
		r.SortTarget = pb.RangeRequest_SortTarget(g.rng.Intn(5))
	}
	for _, f := range []*int64{&r.MinModRevision, &r.MaxModRevision, &r.MinCreateRevision, &r.MaxCreateRevision} {
		if g.rng.Intn(6) == 0 {
			*f = g.rng.Int63n(g.rev() + 1)
		}
	}
	r.KeysOnly = g.rng.Intn(5) == 0
	r.CountOnly = g.rng.Intn(8) == 0
	return r
}

func (g *gen) putReq() *pb.PutRequest {
	p := &pb.PutRequest{Key: g.key(), Value: []byte(g.vals[g.rng.Intn(len(g.vals))])}
	p.PrevKv = g.rng.Intn(3) == 0
	p.IgnoreValue = g.rng.Intn(10) == 0
	if g.rng.Intn(10) == 0 {
		p.IgnoreLease = true
	} else if g.rng.Intn(8) == 0 {
		p.Lease = int64(6 + g.rng.Intn(2)) // 7 exists, 6 does not
	}
	return p
}

func (g *gen) delReq() *pb.DeleteRangeRequest {
	k := g.key()
	return &pb.DeleteRangeRequest{Key: k, RangeEnd: g.end(k), PrevKv: g.rng.Intn(2) == 0}
}

func (g *gen) compare() *pb.Compare {
	c := &pb.Compare{Key: g.key(), Result: pb.Compare_CompareResult(g.rng.Intn(4)), Target: pb.Compare_CompareTarget(g.rng.Intn(5))}
	if g.rng.Intn(4) == 0 {
		c.RangeEnd = g.end(c.Key)
	}
	switch c.Target {
	case pb.Compare_VALUE:
		c.TargetUnion = &pb.Compare_Value{Value: []byte(g.vals[g.rng.Intn(len(g.vals))])}
	case pb.Compare_VERSION:
		c.TargetUnion = &pb.Compare_Version{Version: g.rng.Int63n(4)}
	case pb.Compare_CREATE:
		c.TargetUnion = &pb.Compare_CreateRevision{CreateRevision: g.rng.Int63n(g.rev() + 2)}
	case pb.Compare_MOD:
		c.TargetUnion = &pb.Compare_ModRevision{ModRevision: g.rng.Int63n(g.rev() + 2)}
	case pb.Compare_LEASE:
		c.TargetUnion = &pb.Compare_Lease{Lease: g.rng.Int63n(9)}
	}
	return c
}

func (g *gen) ops(depth int) []*pb.RequestOp {
	var out []*pb.RequestOp
	for i := g.rng.Intn(4); i > 0; i-- {
		switch r := g.rng.Intn(10); {
		case r < 3:
			out = append(out, opRange(g.rangeReq()))
		case r < 6:
			out = append(out, opPutReq(g.putReq()))
		case r < 8:
			out = append(out, &pb.RequestOp{Request: &pb.RequestOp_RequestDeleteRange{RequestDeleteRange: g.delReq()}})
		default:
			if depth < 2 {
				out = append(out, opTxn(g.txnReq(depth+1)))
			}
		}
	}
	return out
}

func (g *gen) txnReq(depth int) *pb.TxnRequest {
	rt := &pb.TxnRequest{}
	for i := g.rng.Intn(3); i > 0; i-- {
		rt.Compare = append(rt.Compare, g.compare())
	}
	rt.Success = g.ops(depth)
	rt.Failure = g.ops(depth)
	return rt
}

// apiValid reports whether the API edge would accept the txn: like etcd's,
// it refuses a txn that writes a key twice or puts a key it also deletes
// (checked here over all branches together, which is stricter).
func apiValid(rt *pb.TxnRequest) bool {
	puts := map[string]bool{}
	var dels []*pb.DeleteRangeRequest
	ok := true
	var walk func(rt *pb.TxnRequest)
	walk = func(rt *pb.TxnRequest) {
		for _, op := range append(append([]*pb.RequestOp(nil), rt.Success...), rt.Failure...) {
			switch {
			case op.GetRequestPut() != nil:
				k := string(op.GetRequestPut().Key)
				if puts[k] {
					ok = false
				}
				puts[k] = true
			case op.GetRequestDeleteRange() != nil:
				dels = append(dels, op.GetRequestDeleteRange())
			case op.GetRequestTxn() != nil:
				walk(op.GetRequestTxn())
			}
		}
	}
	walk(rt)
	for k := range puts {
		for _, d := range dels {
			if inRange(k, d.Key, d.RangeEnd) {
				ok = false
			}
		}
	}
	return ok
}

func render(resp interface{ String() string }, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return resp.String()
}

// TestModel runs random requests against the store and the reference model
// and compares every response: every read with every option, every write's
// revisions, the changes each batch publishes, compaction results, and
// everything again after restarts.
func TestModel(t *testing.T) {
	for seed := int64(1); seed <= 6; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			e := newEnv(t)
			e.leases = leaseSet{7: true}
			m := newModel()
			g := newGen(seed, func() int64 { return m.rev })
			var bt *wbatch
			var trail []string
			fail := func(format string, args ...any) {
				t.Helper()
				if len(trail) > 20 {
					trail = trail[len(trail)-20:]
				}
				t.Fatalf("seed %d: %s\nlast requests:\n  %s", seed, fmt.Sprintf(format, args...), strings.Join(trail, "\n  "))
			}
			same := func(what string, got, want string) {
				t.Helper()
				if got != want {
					fail("%s:\nstore %s\nmodel %s", what, got, want)
				}
			}
			flush := func() {
				t.Helper()
				if bt == nil {
					return
				}
				var got []string
				for _, c := range bt.commit() {
					s := fmt.Sprintf("%s@%d", c.KV.Key, c.KV.ModRevision)
					if c.Delete {
						s += "-"
					}
					got = append(got, s)
				}
				bt = nil
				same("published changes", strings.Join(got, " "), strings.Join(m.changes, " "))
				m.changes = nil
				checkRev(t, "published revision", e.s.Rev(), m.rev)
			}
			batch := func() *wbatch {
				if bt == nil {
					bt = e.batch()
				}
				return bt
			}
			for step := 0; step < 2500; step++ {
				switch r := g.rng.Intn(100); {
				case r < 30:
					flush()
					req := g.rangeReq()
					trail = append(trail, "range "+req.String())
					got, err := e.s.Range(req)
					want, werr := m.rangeAt(req, m.rev)
					same("range "+req.String(), render(got, err), render(want, werr))
				case r < 52:
					req := g.putReq()
					trail = append(trail, "put "+req.String())
					got, err := batch().putReq(req)
					want, werr := m.put(req)
					same("put "+req.String(), render(got, err), render(want, werr))
				case r < 64:
					req := g.delReq()
					trail = append(trail, "delete "+req.String())
					got := batch().delReq(req)
					want := m.deleteRange(req)
					same("delete "+req.String(), render(got, nil), render(want, nil))
				case r < 92:
					req := g.txnReq(0)
					for !apiValid(req) {
						req = g.txnReq(0)
					}
					trail = append(trail, "txn "+req.String())
					var got *pb.TxnResponse
					var err error
					if mvcc.IsReadOnlyTxn(req) {
						flush()
						got, err = e.s.ReadTxn(req)
					} else {
						got, err = batch().txn(req)
					}
					want, werr := m.txn(req)
					same("txn "+req.String(), render(got, err), render(want, werr))
				case r < 95:
					flush()
				case r < 98:
					flush()
					c := m.rev - g.rng.Int63n(5)
					if g.rng.Intn(4) == 0 {
						c = g.rng.Int63n(m.rev+3) - 1
					}
					trail = append(trail, fmt.Sprintf("compact %d", c))
					err, werr := e.compact(c), m.compactAt(c)
					if !errors.Is(err, werr) {
						fail("compact %d: store %v, model %v", c, err, werr)
					}
					checkRev(t, "compact revision", e.s.CompactRev(), m.compact)
				default:
					flush()
					trail = append(trail, "restart")
					e.reopen()
					checkRev(t, "revision after restart", e.s.Rev(), m.rev)
					checkRev(t, "compact revision after restart", e.s.CompactRev(), m.compact)
				}
			}
			flush()
			// Every readable revision, every key.
			from := m.compact
			if from < 1 {
				from = 1
			}
			for rev := from; rev <= m.rev; rev++ {
				req := &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Revision: rev}
				got, err := e.s.Range(req)
				want, werr := m.rangeAt(req, m.rev)
				same(fmt.Sprintf("everything at %d", rev), render(got, err), render(want, werr))
			}
		})
	}
}

type leaseSet map[int64]bool

func (l leaseSet) LeaseExists(id int64) bool { return l[id] }
