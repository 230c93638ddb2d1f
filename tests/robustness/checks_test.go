package robustness

import (
	"strings"
	"testing"

	"github.com/anishathalye/porcupine"
)

// The checks themselves must fail on bad histories: these tests feed them
// small hand-made ones.

// seq builds a sequential history: operation i is called at 10i and
// returns at 10i+5.
func seq(steps ...any) []porcupine.Operation {
	var ops []porcupine.Operation
	for i := 0; i < len(steps); i += 2 {
		n := int64(i / 2)
		ops = append(ops, porcupine.Operation{
			ClientId: 0, Input: steps[i], Output: steps[i+1], Call: 10 * n, Return: 10*n + 5,
		})
	}
	return ops
}

func kv(key, value string, mod, create, version int64) keyValue {
	return keyValue{Key: key, Value: value, Mod: mod, Create: create, Version: version}
}

func linearizable(ops []porcupine.Operation) bool {
	return porcupine.CheckOperations(kvModel(1), ops)
}

func TestModelAcceptsEtcdSemantics(t *testing.T) {
	const lease = 0x77
	ops := seq(
		&request{Kind: opPut, Key: "a", Value: "1"}, &response{Rev: 2},
		&request{Kind: opGet, Key: "a"}, &response{Rev: 2, KVs: []keyValue{kv("a", "1", 2, 2, 1)}},
		// A swap against the wrong mod revision reads the key instead.
		&request{Kind: opTxn, Key: "a", Value: "2", ExpectMod: 7}, &response{Rev: 2, KVs: []keyValue{kv("a", "1", 2, 2, 1)}},
		&request{Kind: opTxn, Key: "a", Value: "2", ExpectMod: 2}, &response{Rev: 3, Succeeded: true},
		// Creating a missing key: its mod revision compares as 0.
		&request{Kind: opTxn, Key: "b", Value: "3", ExpectMod: 0}, &response{Rev: 4, Succeeded: true},
		&request{Kind: opLeaseGrant}, &response{Rev: 4, LeaseID: lease},
		&request{Kind: opPut, Key: "c", Value: "4", Lease: lease}, &response{Rev: 5},
		&request{Kind: opPut, Key: "b", Value: "5", Lease: lease}, &response{Rev: 6},
		&request{Kind: opRange}, &response{Rev: 6, KVs: []keyValue{
			kv("a", "2", 3, 2, 2), {Key: "b", Value: "5", Mod: 6, Create: 4, Version: 2, Lease: lease}, {Key: "c", Value: "4", Mod: 5, Create: 5, Version: 1, Lease: lease},
		}},
		// Rewriting b without the lease detaches it.
		&request{Kind: opPut, Key: "b", Value: "6"}, &response{Rev: 7},
		// The revoke deletes c, in one revision.
		&request{Kind: opLeaseRevoke, Lease: lease}, &response{Rev: 8},
		&request{Kind: opPut, Key: "a", Value: "7", Lease: lease}, &response{Error: errLeaseNotFound},
		&request{Kind: opLeaseRevoke, Lease: lease}, &response{Error: errLeaseNotFound},
		&request{Kind: opDelete, Key: "c"}, &response{Rev: 8},
		&request{Kind: opDelete, Key: "a"}, &response{Rev: 9, Deleted: 1},
		&request{Kind: opRange}, &response{Rev: 9, KVs: []keyValue{kv("b", "6", 7, 4, 3)}},
	)
	if !linearizable(ops) {
		t.Fatal("a history following etcd's semantics is not linearizable under the model")
	}
}

func TestModelRejects(t *testing.T) {
	put := func(k, v string, rev int64) []any {
		return []any{&request{Kind: opPut, Key: k, Value: v}, &response{Rev: rev}}
	}
	for _, tc := range []struct {
		name string
		ops  []porcupine.Operation
	}{
		{"lost write", seq(append(put("a", "1", 2),
			&request{Kind: opGet, Key: "a"}, &response{Rev: 2})...)},
		{"revision reused", seq(append(put("a", "1", 2), put("b", "2", 2)...)...)},
		{"revision skipped", seq(append(put("a", "1", 2), put("b", "2", 4)...)...)},
		{"stale read", seq(append(append(put("a", "1", 2), put("a", "2", 3)...),
			&request{Kind: opGet, Key: "a"}, &response{Rev: 2, KVs: []keyValue{kv("a", "1", 2, 2, 1)}})...)},
		{"wrong version", seq(append(append(put("a", "1", 2), put("a", "2", 3)...),
			&request{Kind: opGet, Key: "a"}, &response{Rev: 3, KVs: []keyValue{kv("a", "2", 3, 2, 1)}})...)},
		{"swap that should fail", seq(append(append(put("a", "1", 2), put("a", "2", 3)...),
			&request{Kind: opTxn, Key: "a", Value: "3", ExpectMod: 2}, &response{Rev: 4, Succeeded: true})...)},
		{"delete of a missing key counted", seq(
			&request{Kind: opDelete, Key: "a"}, &response{Rev: 2, Deleted: 1})},
		{"revoke that left its key", seq(
			&request{Kind: opLeaseGrant}, &response{Rev: 1, LeaseID: 5},
			&request{Kind: opPut, Key: "a", Value: "1", Lease: 5}, &response{Rev: 2},
			&request{Kind: opLeaseRevoke, Lease: 5}, &response{Rev: 3},
			&request{Kind: opRange}, &response{Rev: 3, KVs: []keyValue{{Key: "a", Value: "1", Mod: 2, Create: 2, Version: 1, Lease: 5}}})},
	} {
		if linearizable(tc.ops) {
			t.Errorf("%s: the model accepts it", tc.name)
		}
	}
}

func TestModelUnknownOutcome(t *testing.T) {
	unknown := &response{Unknown: true, Error: "DeadlineExceeded"}
	// A write with an unknown outcome may have happened...
	happened := seq(
		&request{Kind: opPut, Key: "a", Value: "1"}, unknown,
		&request{Kind: opGet, Key: "a"}, &response{Rev: 2, KVs: []keyValue{kv("a", "1", 2, 2, 1)}},
	)
	// ...or not.
	notHappened := seq(
		&request{Kind: opPut, Key: "a", Value: "1"}, unknown,
		&request{Kind: opGet, Key: "a"}, &response{Rev: 1},
	)
	for name, ops := range map[string][]porcupine.Operation{"happened": happened, "not happened": notHappened} {
		ops[0].Return = 1 << 40 // after everything
		if !linearizable(ops) {
			t.Errorf("unknown write that %s: not linearizable", name)
		}
	}
	// But not both: once seen, it cannot disappear.
	both := seq(
		&request{Kind: opPut, Key: "a", Value: "1"}, unknown,
		&request{Kind: opGet, Key: "a"}, &response{Rev: 2, KVs: []keyValue{kv("a", "1", 2, 2, 1)}},
		&request{Kind: opGet, Key: "a"}, &response{Rev: 1},
	)
	both[0].Return = 1 << 40
	if linearizable(both) {
		t.Error("a write seen and then gone is accepted")
	}
}

func put(key, value string, rev, create, version int64, prev *keyValue) event {
	return event{KV: kv(key, value, rev, create, version), Prev: prev}
}

func TestCheckReference(t *testing.T) {
	a2 := kv("a", "x", 2, 2, 1)
	good := []event{
		put("a", "x", 2, 2, 1, nil),
		put("b", "y", 3, 3, 1, nil),
		put("a", "z", 4, 2, 2, &a2),
	}
	if p := checkReference(good, 2, 4); len(p) != 0 {
		t.Fatalf("a good history has problems: %v", p)
	}
	a4 := kv("a", "z", 4, 2, 2)
	for _, tc := range []struct {
		name   string
		events []event
		final  int64
		want   string
	}{
		{"gap", []event{good[0], good[2]}, 4, "revision 3 is missing"},
		{"missing end", good, 5, "revisions 5 to 5 are missing"},
		{"out of order", []event{good[0], good[2], good[1]}, 4, "out of order"},
		{"duplicate", []event{good[0], good[1], good[1], good[2]}, 4, "two events for key b"},
		{"wrong prev_kv", []event{good[0], good[1], put("a", "z", 4, 2, 2, nil)}, 4, "prev_kv should be a=x@2"},
		{"prev_kv of nothing", []event{put("a", "x", 2, 2, 1, &a4)}, 2, "prev_kv should be empty"},
		{"wrong version", []event{good[0], good[1], put("a", "z", 4, 2, 3, &a2)}, 4, "want create revision 2, version 2"},
		{"value twice", []event{good[0], good[1], put("a", "x", 4, 2, 2, &a2)}, 4, "value x written twice"},
		{"delete of nothing", []event{good[0], {Delete: true, KV: keyValue{Key: "b", Mod: 3}}}, 3, "deletes a key that did not exist"},
	} {
		p := checkReference(tc.events, 2, tc.final)
		if !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: problems %q, want one saying %q", tc.name, p, tc.want)
		}
	}
}

func TestCheckWatcher(t *testing.T) {
	a2 := kv("a", "x", 2, 2, 1)
	ref := []event{
		put("a", "x", 2, 2, 1, nil),
		put("b", "y", 3, 3, 1, nil),
		{Delete: true, KV: keyValue{Key: "a", Mod: 4}, Prev: &a2},
	}
	resp := func(stream int, events ...event) watchResponse {
		return watchResponse{Header: events[len(events)-1].KV.Mod, Events: events, Stream: stream}
	}
	// Resumed on a second stream after revision 3: fine.
	good := []watchResponse{resp(0, ref[0]), resp(0, ref[1]), resp(1, ref[2])}
	if p := checkWatcher("w", good, ref, 2, 4); len(p) != 0 {
		t.Fatalf("a good watch has problems: %v", p)
	}
	for _, tc := range []struct {
		name  string
		resps []watchResponse
		want  string
	}{
		{"gap", []watchResponse{resp(0, ref[0]), resp(1, ref[2])}, "gap: put b@3"},
		{"duplicate after resuming", []watchResponse{resp(0, ref[0]), resp(0, ref[1]), resp(1, ref[1]), resp(1, ref[2])}, "starts at revision 3, but revision 3 was already delivered"},
		{"never caught up", []watchResponse{resp(0, ref[0])}, "received nothing after revision 2"},
		{"wrong prev_kv", []watchResponse{resp(0, ref[0]), resp(0, ref[1]), resp(0, event{Delete: true, KV: keyValue{Key: "a", Mod: 4}})}, "event at revision 4"},
		{"header behind its events", []watchResponse{resp(0, ref[0]), {Header: 2, Events: ref[1:]}}, "header revision 2 below"},
	} {
		p := checkWatcher("w", tc.resps, ref, 2, 4)
		if !strings.Contains(strings.Join(p, "\n"), tc.want) {
			t.Errorf("%s: problems %q, want one saying %q", tc.name, p, tc.want)
		}
	}
}

func TestPatchHistory(t *testing.T) {
	a2 := kv("a", "v1", 2, 2, 1)
	ref := []event{
		put("a", "v1", 2, 2, 1, nil),
		{Delete: true, KV: keyValue{Key: "a", Mod: 3}, Prev: &a2},
	}
	fail := func() *response { return &response{Unknown: true, Error: "Unavailable"} }
	ops := []porcupine.Operation{
		{Input: &request{Kind: opPut, Key: "a", Value: "v1"}, Output: fail(), Call: 1, Return: 2},
		{Input: &request{Kind: opPut, Key: "b", Value: "v2"}, Output: fail(), Call: 3, Return: 4},
		{Input: &request{Kind: opDelete, Key: "a"}, Output: fail(), Call: 5, Return: 6},
		{Input: &request{Kind: opDelete, Key: "b"}, Output: fail(), Call: 7, Return: 8},
		{Input: &request{Kind: opGet, Key: "a"}, Output: fail(), Call: 9, Return: 10},
		{Input: &request{Kind: opGet, Key: "a"}, Output: &response{Rev: 3}, Call: 11, Return: 12},
	}
	patched, dropped, unknown := patchHistory(ops, ref)
	if dropped != 3 || unknown != 1 || len(patched) != 3 {
		t.Fatalf("dropped %d, unknown %d, kept %d; want 3 (the put of v2, the delete of b, the get), 1 (the delete of a), 3", dropped, unknown, len(patched))
	}
	if r := patched[0].Output.(*response); !r.Recovered || r.Rev != 2 {
		t.Errorf("the put found in the history: %v, want it recovered at revision 2", r)
	}
	if patched[1].Return <= 12 {
		t.Errorf("the unknown delete returns at %d, want after every other operation", patched[1].Return)
	}
	if !linearizable(patched) {
		t.Error("the patched history is not linearizable")
	}
	if p := checkAcknowledged(ops, ref); len(p) != 0 {
		t.Errorf("checkAcknowledged: %v", p)
	}
	// A failed revoke nobody observes is dropped; one whose lease is used
	// afterwards is kept.
	revokes := []porcupine.Operation{
		{Input: &request{Kind: opLeaseRevoke, Lease: 9}, Output: fail(), Call: 1, Return: 2},
		{Input: &request{Kind: opLeaseRevoke, Lease: 8}, Output: fail(), Call: 3, Return: 4},
		{Input: &request{Kind: opPut, Key: "a", Value: "v9", Lease: 8}, Output: &response{Error: errLeaseNotFound}, Call: 5, Return: 6},
	}
	patched, dropped, unknown = patchHistory(revokes, nil)
	if dropped != 1 || unknown != 1 || len(patched) != 2 || patched[0].Input.(*request).Lease != 8 {
		t.Errorf("revokes: dropped %d, unknown %d, kept %d; want the unobserved one dropped, the observed one kept", dropped, unknown, len(patched))
	}

	lost := append(ops, porcupine.Operation{Input: &request{Kind: opPut, Key: "c", Value: "v3"}, Output: &response{Rev: 4}, Call: 13, Return: 14})
	if p := checkAcknowledged(lost, ref); len(p) != 1 || !strings.Contains(p[0], "acknowledged write lost") {
		t.Errorf("checkAcknowledged of a lost write: %v", p)
	}
}

// TestPatchHistoryFailedLast: two writes that fail ambiguously at the end
// of a run, the later called taking effect first. Each may have taken
// effect at any time after its call, so neither may end before the other
// is called (a run once failed the check on such a history).
func TestPatchHistoryFailedLast(t *testing.T) {
	ref := []event{
		put("a", "v1", 2, 2, 1, nil),
		put("b", "v2", 3, 3, 1, nil),
	}
	fail := func() *response { return &response{Unknown: true, Error: "Canceled: context canceled"} }
	ops := []porcupine.Operation{
		{Input: &request{Kind: opGet, Key: "a"}, Output: &response{Rev: 1}, Call: 1, Return: 2},
		{Input: &request{Kind: opPut, Key: "b", Value: "v2"}, Output: fail(), Call: 10, Return: 11},
		{Input: &request{Kind: opPut, Key: "a", Value: "v1"}, Output: fail(), Call: 20, Return: 21},
	}
	patched, dropped, unknown := patchHistory(ops, ref)
	if dropped != 0 || unknown != 0 || len(patched) != 3 {
		t.Fatalf("dropped %d, unknown %d, kept %d; want both writes recovered", dropped, unknown, len(patched))
	}
	for _, op := range patched[1:] {
		if op.Return <= 20 {
			t.Errorf("%s returns at %d, before the last call", describeOp(op.Input.(*request), op.Output.(*response)), op.Return)
		}
	}
	if !linearizable(patched) {
		t.Error("the patched history is not linearizable")
	}
}
