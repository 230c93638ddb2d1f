// Package conformance_test is the differential conformance suite: every
// scenario runs the same sequence of clientv3 calls against a real etcd
// v3.6.16 and against a cairn member, each on a fresh store, and requires the
// responses to be identical after normalising only what legitimately differs
// between two clusters (cluster_id, member_id and raft_term in the top-level
// response header).
//
// Run it with
//
//	go test ./tests/conformance
//
// and prove the comparison itself with etcd on both sides:
//
//	CAIRN_CONFORMANCE_SELFTEST=1 go test ./tests/conformance
//
// A failure prints the first request whose responses differ, both responses
// and a line diff (- etcd, + cairn). Responses are taken from the wire by a
// gRPC interceptor, and errors are compared as (gRPC code, message) as the
// server sent them, before clientv3 maps them to its own error values.
//
// The KV, Lease and Maintenance services are compared call by call
// (scenarios_test.go, lease_test.go, maintenance_test.go). Watches are
// compared on raw Watch streams over the client's connection, response by
// response as they arrive on the wire, and through clientv3 watchers as
// clientv3 delivers them (watch_test.go, watch_steps_test.go). What
// legitimately differs between the servers, such as the lease IDs they
// choose, is normalised in services_test.go.
package conformance_test

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-io/cairn/tests/framework"
)

// selftest runs etcd on both sides, which must always agree.
var selftest = os.Getenv("CAIRN_CONFORMANCE_SELFTEST") == "1"

// side is one server under comparison and a client whose unary calls are
// recorded on the wire, with the state that steps build up on it: what the
// server chose (lease IDs) and the watch streams a scenario opened.
type side struct {
	name   string
	cli    *clientv3.Client
	rec    *recorder
	member *framework.Member
	// ctx lives as long as the test; watch streams and clientv3 watchers
	// are opened under it.
	ctx context.Context
	// self is the member's ID, which normalise replaces where a response
	// names it (alarms, the leader in Status).
	self uint64
	// leases are the lease IDs the server chose, in grant order.
	leases []int64
	// streams are the raw watch streams and watches the clientv3 watchers
	// a scenario opened, by the name the scenario gave them.
	streams map[string]*rawStream
	watches map[string]clientv3.WatchChan
}

// startPair starts the reference etcd and the subject (cairn, or etcd again
// in self-test mode), both with the extra server flags args.
func startPair(t *testing.T, args []string) (ref, sub *side) {
	t.Helper()
	subBinary, subName := framework.CairnBinary, "cairn"
	if selftest {
		subBinary, subName = framework.EtcdBinary, "etcd(subject)"
	}
	refMember := framework.Start(t, framework.Config{Binary: framework.EtcdBinary(t), Name: "ref", Args: args})
	subMember := framework.Start(t, framework.Config{Binary: subBinary(t), Name: "sub", Args: args})
	return newSide(t, "etcd", refMember), newSide(t, subName, subMember)
}

func newSide(t *testing.T, name string, m *framework.Member) *side {
	t.Helper()
	rec := &recorder{}
	cli, err := clientv3.New(clientv3.Config{
		Endpoints:   []string{m.Endpoint()},
		DialTimeout: 5 * time.Second,
		Logger:      zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(rec.intercept)},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	st, err := cli.Status(ctx, m.Endpoint())
	if err != nil {
		t.Fatalf("%s: status: %v", name, err)
	}
	return &side{
		name: name, cli: cli, rec: rec, member: m, ctx: ctx, self: st.Header.MemberId,
		streams: map[string]*rawStream{}, watches: map[string]clientv3.WatchChan{},
	}
}

// recorder keeps the last unary call of the etcd API made through a client. clientv3 installs
// its retry interceptor outside the ones given in DialOptions, so this sees
// each attempt exactly as it went over the wire.
type recorder struct {
	mu   sync.Mutex
	last *wireCall
}

type wireCall struct {
	method string
	req    any
	reply  any
	err    error
}

func (r *recorder) intercept(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoker(ctx, method, req, reply, cc, opts...)
	if strings.HasPrefix(method, "/etcdserverpb.") {
		r.mu.Lock()
		r.last = &wireCall{method: method, req: req, reply: reply, err: err}
		r.mu.Unlock()
	}
	return err
}

func (r *recorder) take() *wireCall {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := r.last
	r.last = nil
	return c
}

// outcome is what one side answered to one step.
type outcome struct {
	method string // e.g. "Range"; empty if no RPC was made
	req    any    // the request as sent
	resp   any    // the response message, nil on error
	err    *rpcErr
	// What normalise needs to know about the side that answered.
	self   uint64  // its member ID
	leases []int64 // the lease IDs it chose so far
	// violations are broken watch guarantees seen on the stream while
	// the step ran (see rawStream.check).
	violations []string
}

type rpcErr struct {
	code codes.Code
	msg  string
}

func (e *rpcErr) String() string { return fmt.Sprintf("error code=%s message=%q", e.code, e.msg) }

// run performs one step on the side and returns what the server answered.
func (s *side) run(st step) outcome {
	ctx, cancel := context.WithTimeout(s.ctx, stepTimeout)
	defer cancel()
	var o outcome
	if st.exec != nil {
		o = st.exec(ctx, s)
	} else {
		o = s.capture(func() error { return st.call(ctx, s.cli) })
	}
	o.self = s.self
	o.leases = slices.Clone(s.leases)
	return o
}

// stepTimeout bounds one step, waits for watch responses included.
const stepTimeout = 30 * time.Second

// capture makes one unary call through the recorder and returns what the
// server answered to it.
func (s *side) capture(call func() error) outcome {
	s.rec.take()
	callErr := call()
	wc := s.rec.take()
	if wc == nil {
		// No RPC left the client (it rejected the call itself).
		return outcome{err: toRPCErr(callErr)}
	}
	o := outcome{method: wc.method[strings.LastIndex(wc.method, "/")+1:], req: wc.req}
	if wc.err != nil {
		o.err = toRPCErr(wc.err)
		return o
	}
	o.resp = wc.reply
	return o
}

func toRPCErr(err error) *rpcErr {
	if err == nil {
		return &rpcErr{code: codes.OK, msg: "(no error and no RPC)"}
	}
	st, ok := status.FromError(err)
	if !ok {
		return &rpcErr{code: codes.Unknown, msg: "client: " + err.Error()}
	}
	return &rpcErr{code: st.Code(), msg: st.Message()}
}

// runSteps runs steps in order on both sides, stopping the test at the first
// step whose outcomes differ. Each step's own checks run against the
// reference, so a scenario that no longer exercises what it claims fails in
// self-test mode too.
func runSteps(t *testing.T, ref, sub *side, steps []step) {
	t.Helper()
	for i, st := range steps {
		if _, diff := runStep(ref, sub, st); diff != "" {
			t.Fatalf("step %d of %d: %s", i+1, len(steps), diff)
		}
	}
}

// runStep runs one step on the reference, then on the subject, and returns
// the reference's outcome and "" or a report of what went wrong.
func runStep(ref, sub *side, st step) (outcome, string) {
	want := ref.run(st)
	if len(want.violations) > 0 {
		return want, fmt.Sprintf("the reference etcd breaks a watch guarantee the suite checks, so the check is wrong: %s\nrequest: %s",
			strings.Join(want.violations, "; "), describeRequest(want))
	}
	for _, check := range st.checks {
		if err := check(want); err != nil {
			return want, fmt.Sprintf("the reference etcd does not behave as the scenario states: %v\nrequest: %s\netcd:\n%s",
				err, describeRequest(want), indent(render(normalise(want))))
		}
	}
	got := sub.run(st)
	if diff := compareOutcomes(want, got, sub.name); diff != "" {
		return want, fmt.Sprintf("%s answers differently from etcd\nrequest: %s\n%s", sub.name, describeRequest(want), diff)
	}
	return want, ""
}

// compareOutcomes returns "" when the outcomes agree, or a readable report.
func compareOutcomes(want, got outcome, subName string) string {
	w, g := normalise(want), normalise(got)
	ws, gs := render(w), render(g)
	if ws == gs && sameWire(w, g) {
		return ""
	}
	if ws == gs {
		// The renderer missed a field; fall back to the generated text form.
		ws, gs = fmt.Sprintf("%v", w.resp), fmt.Sprintf("%v", g.resp)
	}
	return fmt.Sprintf("etcd:\n%s\n%s:\n%s\ndiff (- etcd, + %s):\n%s", indent(ws), subName, indent(gs), subName, lineDiff(ws, gs))
}

// sameWire compares the encoded responses, so that a field the renderer
// does not print still counts.
func sameWire(a, b outcome) bool {
	if (a.err == nil) != (b.err == nil) {
		return false
	}
	if a.err != nil {
		return *a.err == *b.err
	}
	type marshaler interface{ Marshal() ([]byte, error) }
	am, aok := a.resp.(marshaler)
	bm, bok := b.resp.(marshaler)
	if !aok || !bok {
		return false
	}
	ab, err1 := am.Marshal()
	bb, err2 := bm.Marshal()
	return err1 == nil && err2 == nil && bytes.Equal(ab, bb)
}

// describeRequest prints the request as sent, in the generated text form,
// cut short for requests that carry large values.
func describeRequest(o outcome) string {
	if o.method == "" {
		return "(none sent)"
	}
	s := fmt.Sprintf("%s %v", o.method, o.req)
	if len(s) > 2000 {
		s = fmt.Sprintf("%s ...(%d bytes in all)", s[:2000], len(s))
	}
	return s
}

// normalise clears what legitimately differs between two clusters: the
// cluster_id, member_id and raft_term of the top-level header. Headers
// nested in a Txn response are compared as sent: etcd leaves all three
// zero there, and a compatible server must too.
//
// It also makes ranges sorted on a target other than the key comparable.
// etcd sorts those with sort.Sort, which is not stable, so the order of
// keys that tie on the target is an accident of its implementation. Within
// each run of equal targets the keys are compared as a set (by re-sorting
// both sides on the key), and when the response was cut by a limit, the last
// run is compared by its target value only, because which of the tied keys
// made the cut is just as unspecified. (With keys_only and a VALUE sort the
// values are gone, so such a response is compared as one set.)
//
// Lease IDs the server chose are renamed after the order they were granted
// in (renameLeases), and the responses of the Lease, Maintenance and Watch
// services are normalised by normaliseService.
func normalise(o outcome) outcome {
	if o.resp == nil {
		return o
	}
	if len(o.leases) > 0 {
		o.resp = renameLeases(o.resp, o.leases)
	}
	switch r := o.resp.(type) {
	case *pb.RangeResponse:
		r = cloneRange(r)
		clearIDs(r.Header)
		if req, ok := o.req.(*pb.RangeRequest); ok {
			normaliseSort(req, r)
		}
		o.resp = r
	case *pb.PutResponse:
		c := *r
		c.Header = cloneHeader(r.Header)
		clearIDs(c.Header)
		o.resp = &c
	case *pb.DeleteRangeResponse:
		c := *r
		c.Header = cloneHeader(r.Header)
		clearIDs(c.Header)
		o.resp = &c
	case *pb.CompactionResponse:
		c := *r
		c.Header = cloneHeader(r.Header)
		clearIDs(c.Header)
		o.resp = &c
	case *pb.TxnResponse:
		r = cloneTxn(r)
		clearIDs(r.Header)
		if req, ok := o.req.(*pb.TxnRequest); ok {
			normaliseTxnSorts(req, r)
		}
		o.resp = r
	default:
		o.resp = normaliseService(o)
	}
	return o
}

func clearIDs(h *pb.ResponseHeader) {
	if h != nil {
		h.ClusterId, h.MemberId, h.RaftTerm = 0, 0, 0
	}
}

func cloneHeader(h *pb.ResponseHeader) *pb.ResponseHeader {
	if h == nil {
		return nil
	}
	c := *h
	return &c
}

func cloneRange(r *pb.RangeResponse) *pb.RangeResponse {
	c := *r
	c.Header = cloneHeader(r.Header)
	c.Kvs = slices.Clone(r.Kvs)
	return &c
}

func cloneTxn(r *pb.TxnResponse) *pb.TxnResponse {
	c := *r
	c.Header = cloneHeader(r.Header)
	c.Responses = make([]*pb.ResponseOp, len(r.Responses))
	for i, op := range r.Responses {
		switch v := op.Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			if v.ResponseRange != nil {
				c.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseRange{ResponseRange: cloneRange(v.ResponseRange)}}
				continue
			}
		case *pb.ResponseOp_ResponseTxn:
			if v.ResponseTxn != nil {
				c.Responses[i] = &pb.ResponseOp{Response: &pb.ResponseOp_ResponseTxn{ResponseTxn: cloneTxn(v.ResponseTxn)}}
				continue
			}
		}
		c.Responses[i] = op
	}
	return &c
}

// normaliseTxnSorts walks the branch the server took alongside its responses.
func normaliseTxnSorts(req *pb.TxnRequest, resp *pb.TxnResponse) {
	ops := req.Success
	if !resp.Succeeded {
		ops = req.Failure
	}
	if len(ops) != len(resp.Responses) {
		return // a mismatch the comparison will show anyway
	}
	for i, op := range ops {
		switch r := resp.Responses[i].Response.(type) {
		case *pb.ResponseOp_ResponseRange:
			if q := op.GetRequestRange(); q != nil && r.ResponseRange != nil {
				normaliseSort(q, r.ResponseRange)
			}
		case *pb.ResponseOp_ResponseTxn:
			if q := op.GetRequestTxn(); q != nil && r.ResponseTxn != nil {
				normaliseTxnSorts(q, r.ResponseTxn)
			}
		}
	}
}

func normaliseSort(req *pb.RangeRequest, resp *pb.RangeResponse) {
	if req.SortTarget == pb.RangeRequest_KEY || len(resp.Kvs) < 2 {
		return
	}
	// Sort each run of consecutive equal targets by key, leaving the runs
	// where the server put them: the order of the targets is still checked.
	target := sortTarget(req.SortTarget)
	var runStart int
	for i := 1; i <= len(resp.Kvs); i++ {
		if i < len(resp.Kvs) && compareTargets(target(resp.Kvs[i]), target(resp.Kvs[runStart])) == 0 {
			continue
		}
		slices.SortFunc(resp.Kvs[runStart:i], func(a, b *mvccpb.KeyValue) int { return bytes.Compare(a.Key, b.Key) })
		if i == len(resp.Kvs) && resp.More {
			// Cut by the limit: keep only the target of the last run.
			for j := runStart; j < i; j++ {
				resp.Kvs[j] = onlyTarget(req.SortTarget, resp.Kvs[j])
			}
		}
		runStart = i
	}
}

func sortTarget(t pb.RangeRequest_SortTarget) func(*mvccpb.KeyValue) any {
	switch t {
	case pb.RangeRequest_VERSION:
		return func(kv *mvccpb.KeyValue) any { return kv.Version }
	case pb.RangeRequest_CREATE:
		return func(kv *mvccpb.KeyValue) any { return kv.CreateRevision }
	case pb.RangeRequest_MOD:
		return func(kv *mvccpb.KeyValue) any { return kv.ModRevision }
	default: // VALUE
		return func(kv *mvccpb.KeyValue) any { return kv.Value }
	}
}

func compareTargets(a, b any) int {
	switch a := a.(type) {
	case int64:
		return compareInt(a, b.(int64))
	default:
		return bytes.Compare(a.([]byte), b.([]byte))
	}
}

func compareInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// onlyTarget keeps the field a tied key was chosen by and marks the rest as
// unspecified.
func onlyTarget(t pb.RangeRequest_SortTarget, kv *mvccpb.KeyValue) *mvccpb.KeyValue {
	c := &mvccpb.KeyValue{Key: []byte("<one of the tied keys>")}
	switch t {
	case pb.RangeRequest_VERSION:
		c.Version = kv.Version
	case pb.RangeRequest_CREATE:
		c.CreateRevision = kv.CreateRevision
	case pb.RangeRequest_MOD:
		c.ModRevision = kv.ModRevision
	default:
		c.Value = kv.Value
	}
	return c
}

// render prints an outcome one field per line, every field shown even when
// zero, so that a line diff points at the difference.
func render(o outcome) string {
	var b strings.Builder
	if o.err != nil {
		b.WriteString(o.err.String() + "\n")
	} else {
		renderMsg(&b, "", o.resp)
	}
	for _, v := range o.violations {
		fmt.Fprintf(&b, "violation: %s\n", v)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func renderMsg(b *strings.Builder, ind string, m any) {
	p := func(format string, args ...any) { fmt.Fprintf(b, ind+format+"\n", args...) }
	switch r := m.(type) {
	case *pb.RangeResponse:
		p("Range")
		renderHeader(b, ind+"  ", r.Header)
		for i, kv := range r.Kvs {
			p("  kvs[%d]: %s", i, renderKV(kv))
		}
		p("  more: %v", r.More)
		p("  count: %d", r.Count)
	case *pb.PutResponse:
		p("Put")
		renderHeader(b, ind+"  ", r.Header)
		if r.PrevKv != nil {
			p("  prev_kv: %s", renderKV(r.PrevKv))
		}
	case *pb.DeleteRangeResponse:
		p("DeleteRange")
		renderHeader(b, ind+"  ", r.Header)
		p("  deleted: %d", r.Deleted)
		for i, kv := range r.PrevKvs {
			p("  prev_kvs[%d]: %s", i, renderKV(kv))
		}
	case *pb.CompactionResponse:
		p("Compaction")
		renderHeader(b, ind+"  ", r.Header)
	case *pb.TxnResponse:
		p("Txn")
		renderHeader(b, ind+"  ", r.Header)
		p("  succeeded: %v", r.Succeeded)
		for i, op := range r.Responses {
			p("  responses[%d]:", i)
			switch v := op.Response.(type) {
			case *pb.ResponseOp_ResponseRange:
				renderMsg(b, ind+"    ", v.ResponseRange)
			case *pb.ResponseOp_ResponsePut:
				renderMsg(b, ind+"    ", v.ResponsePut)
			case *pb.ResponseOp_ResponseDeleteRange:
				renderMsg(b, ind+"    ", v.ResponseDeleteRange)
			case *pb.ResponseOp_ResponseTxn:
				renderMsg(b, ind+"    ", v.ResponseTxn)
			default:
				p("    (empty)")
			}
		}
	case nil:
		p("(nil)")
	default:
		if !renderService(b, ind, m) {
			p("%T %v", m, m)
		}
	}
}

func renderHeader(b *strings.Builder, ind string, h *pb.ResponseHeader) {
	if h == nil {
		fmt.Fprintf(b, "%sheader: (nil)\n", ind)
		return
	}
	// The IDs are shown only when set: normalise clears them at the top
	// level, and etcd leaves them zero in nested headers.
	fmt.Fprintf(b, "%sheader: revision=%d", ind, h.Revision)
	if h.ClusterId != 0 || h.MemberId != 0 || h.RaftTerm != 0 {
		fmt.Fprintf(b, " cluster_id=%d member_id=%d raft_term=%d", h.ClusterId, h.MemberId, h.RaftTerm)
	}
	b.WriteString("\n")
}

func renderKV(kv *mvccpb.KeyValue) string {
	if kv == nil {
		return "(nil)"
	}
	return fmt.Sprintf("key=%s create=%d mod=%d version=%d lease=%s value=%s",
		quote(kv.Key), kv.CreateRevision, kv.ModRevision, kv.Version, leaseName(kv.Lease), quote(kv.Value))
}

// quote shows a byte string, shortening long ones to their length and ends.
func quote(b []byte) string {
	if len(b) > 64 {
		return fmt.Sprintf("%s...(%d bytes)...%s", strconv.Quote(string(b[:16])), len(b), strconv.Quote(string(b[len(b)-16:])))
	}
	return strconv.Quote(string(b))
}

func indent(s string) string { return "    " + strings.ReplaceAll(s, "\n", "\n    ") }

// lineDiff is a longest-common-subsequence diff of two short texts.
func lineDiff(a, b string) string {
	x, y := strings.Split(a, "\n"), strings.Split(b, "\n")
	lcs := make([][]int, len(x)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(y)+1)
	}
	for i := len(x) - 1; i >= 0; i-- {
		for j := len(y) - 1; j >= 0; j-- {
			if x[i] == y[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	var lines []string
	i, j := 0, 0
	for i < len(x) || j < len(y) {
		switch {
		case i < len(x) && j < len(y) && x[i] == y[j]:
			lines = append(lines, "      "+x[i])
			i, j = i+1, j+1
		case i < len(x) && (j == len(y) || lcs[i+1][j] >= lcs[i][j+1]):
			lines = append(lines, "    - "+x[i])
			i++
		default:
			lines = append(lines, "    + "+y[j])
			j++
		}
	}
	return strings.Join(elideEqual(lines, 3), "\n")
}

// elideEqual shortens runs of unchanged lines in a diff to ctx lines on
// each side of a change, so that a long watch history that differs in one
// place reports that place.
func elideEqual(lines []string, ctx int) []string {
	var out []string
	for i := 0; i < len(lines); {
		if !strings.HasPrefix(lines[i], "      ") {
			out = append(out, lines[i])
			i++
			continue
		}
		j := i
		for j < len(lines) && strings.HasPrefix(lines[j], "      ") {
			j++
		}
		head, tail := ctx, ctx
		if i == 0 {
			head = 0
		}
		if j == len(lines) {
			tail = 0
		}
		if j-i > head+tail+1 {
			out = append(out, lines[i:i+head]...)
			out = append(out, fmt.Sprintf("      ... %d equal lines ...", j-i-head-tail))
			out = append(out, lines[j-tail:j]...)
		} else {
			out = append(out, lines[i:j]...)
		}
		i = j
	}
	return out
}
