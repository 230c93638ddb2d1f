package robustness

import (
	"fmt"
	"hash/fnv"
	"slices"
	"sort"
	"strings"

	"github.com/anishathalye/porcupine"
)

// The model is etcd's key-value store as one sequential state machine: the
// store revision, every live key with its value, create and mod revisions,
// version and lease, and the live leases. Every response carries the
// revision, so the whole store is one object (there is no partition by key).
//
// An operation that failed ambiguously (a timeout, an unavailable member, a
// broken connection) has an unknown outcome: its response is unknown and its
// return time is after every other operation's, so the checker may place it
// anywhere after its call, including after everything (it never happened).
// Its step applies the request and accepts whatever state follows.
//
// Leases are granted with a TTL far longer than any run, so none expires on
// its own; the model has no clock.

type opKind uint8

const (
	opGet opKind = iota
	opRange
	opPut
	opDelete
	// opTxn is a compare-and-swap: if the key's mod revision is ExpectMod
	// (0: the key does not exist) put Value, else get the key.
	opTxn
	opLeaseGrant
	opLeaseRevoke
)

var opNames = [...]string{"get", "range", "put", "delete", "txn", "lease-grant", "lease-revoke"}

func (k opKind) String() string { return opNames[k] }

// request is one client request.
type request struct {
	Kind      opKind `json:"kind"`
	Key       string `json:"key,omitempty"`
	Value     string `json:"value,omitempty"`
	Lease     int64  `json:"lease,omitempty"`      // put: the lease to attach; revoke: the lease
	ExpectMod int64  `json:"expect_mod,omitempty"` // txn
}

// keyValue is a key's state, as a response or the model holds it.
type keyValue struct {
	Key     string `json:"key"`
	Value   string `json:"value"`
	Mod     int64  `json:"mod"`
	Create  int64  `json:"create"`
	Version int64  `json:"version"`
	Lease   int64  `json:"lease,omitempty"`
}

// response is what a request got back.
type response struct {
	// Unknown: the request failed ambiguously.
	Unknown bool `json:"unknown,omitempty"`
	// Recovered: the request failed ambiguously, and the watch history
	// showed it took effect, with the revision below.
	Recovered bool   `json:"recovered,omitempty"`
	Error     string `json:"error,omitempty"` // the ambiguous failure, or errLeaseNotFound
	// Rev is the response header's revision.
	Rev       int64      `json:"rev,omitempty"`
	KVs       []keyValue `json:"kvs,omitempty"`     // get, range, a failed txn's get
	Deleted   int64      `json:"deleted,omitempty"` // delete
	Succeeded bool       `json:"succeeded,omitempty"`
	LeaseID   int64      `json:"lease_id,omitempty"` // lease grant
}

// errLeaseNotFound is the one definite error the traffic expects: a put
// with, or a revoke of, a lease that does not exist. It changes nothing.
const errLeaseNotFound = "lease not found"

// modelState is immutable once built: steps return new states.
type modelState struct {
	rev    int64
	kvs    map[string]keyValue
	leases map[int64]bool
	hash   uint64
}

func newModelState(rev int64, kvs map[string]keyValue, leases map[int64]bool) *modelState {
	s := &modelState{rev: rev, kvs: kvs, leases: leases}
	h := fnv.New64a()
	fmt.Fprintf(h, "%d|", rev)
	for _, k := range sortedKeys(kvs) {
		kv := kvs[k]
		fmt.Fprintf(h, "%s=%s,%d,%d,%d,%d|", k, kv.Value, kv.Mod, kv.Create, kv.Version, kv.Lease)
	}
	ids := make([]int64, 0, len(leases))
	for id := range leases {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		fmt.Fprintf(h, "L%d|", id)
	}
	s.hash = h.Sum64()
	return s
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

func (s *modelState) equal(o *modelState) bool {
	if s.hash != o.hash || s.rev != o.rev || len(s.kvs) != len(o.kvs) || len(s.leases) != len(o.leases) {
		return false
	}
	for k, kv := range s.kvs {
		if okv, ok := o.kvs[k]; !ok || okv != kv {
			return false
		}
	}
	for id := range s.leases {
		if !o.leases[id] {
			return false
		}
	}
	return true
}

// writer copies a state for one step's changes.
type writer struct {
	rev     int64
	kvs     map[string]keyValue
	leases  map[int64]bool
	changed bool // a key changed: the step takes a new revision
}

func (s *modelState) edit() *writer {
	w := &writer{rev: s.rev, kvs: make(map[string]keyValue, len(s.kvs)+1), leases: make(map[int64]bool, len(s.leases)+1)}
	for k, v := range s.kvs {
		w.kvs[k] = v
	}
	for id := range s.leases {
		w.leases[id] = true
	}
	return w
}

func (w *writer) put(key, value string, lease int64) {
	rev := w.rev + 1
	kv, ok := w.kvs[key]
	if ok {
		kv.Version++
	} else {
		kv = keyValue{Key: key, Create: rev, Version: 1}
	}
	kv.Value, kv.Mod, kv.Lease = value, rev, lease
	w.kvs[key] = kv
	w.changed = true
}

func (w *writer) delete(key string) bool {
	if _, ok := w.kvs[key]; !ok {
		return false
	}
	delete(w.kvs, key)
	w.changed = true
	return true
}

func (w *writer) done() *modelState {
	if w.changed {
		w.rev++
	}
	return newModelState(w.rev, w.kvs, w.leases)
}

// apply runs req on s and returns the response etcd would give and the
// state after it. LeaseGrant takes the granted ID from the response, since
// the server chooses it.
func (s *modelState) apply(req *request, got *response) (*response, *modelState) {
	switch req.Kind {
	case opGet:
		resp := &response{Rev: s.rev}
		if kv, ok := s.kvs[req.Key]; ok {
			resp.KVs = []keyValue{kv}
		}
		return resp, s
	case opRange:
		resp := &response{Rev: s.rev}
		for _, k := range sortedKeys(s.kvs) {
			resp.KVs = append(resp.KVs, s.kvs[k])
		}
		return resp, s
	case opPut:
		if req.Lease != 0 && !s.leases[req.Lease] {
			return &response{Error: errLeaseNotFound}, s
		}
		w := s.edit()
		w.put(req.Key, req.Value, req.Lease)
		next := w.done()
		return &response{Rev: next.rev}, next
	case opDelete:
		w := s.edit()
		resp := &response{}
		if w.delete(req.Key) {
			resp.Deleted = 1
		}
		next := w.done()
		resp.Rev = next.rev
		return resp, next
	case opTxn:
		var mod int64
		kv, ok := s.kvs[req.Key]
		if ok {
			mod = kv.Mod
		}
		if mod != req.ExpectMod {
			resp := &response{Rev: s.rev}
			if ok {
				resp.KVs = []keyValue{kv}
			}
			return resp, s
		}
		w := s.edit()
		w.put(req.Key, req.Value, 0)
		next := w.done()
		return &response{Rev: next.rev, Succeeded: true}, next
	case opLeaseGrant:
		if got == nil || got.Unknown || got.LeaseID == 0 || s.leases[got.LeaseID] {
			// An unknown grant leaves a lease nobody refers to.
			return &response{Rev: s.rev}, s
		}
		w := s.edit()
		w.leases[got.LeaseID] = true
		return &response{Rev: s.rev, LeaseID: got.LeaseID}, w.done()
	case opLeaseRevoke:
		if !s.leases[req.Lease] {
			return &response{Error: errLeaseNotFound}, s
		}
		w := s.edit()
		delete(w.leases, req.Lease)
		// All of the lease's keys go in one revision.
		for _, k := range sortedKeys(s.kvs) {
			if s.kvs[k].Lease == req.Lease {
				w.delete(k)
			}
		}
		next := w.done()
		return &response{Rev: next.rev}, next
	}
	panic(fmt.Sprintf("unknown operation kind %d", req.Kind))
}

// matches reports whether a definite response is the one the model expects.
func (got *response) matches(want *response) bool {
	if got.Recovered {
		return want.Error == "" && got.Rev == want.Rev && got.Succeeded == want.Succeeded
	}
	if got.Error != want.Error {
		return false
	}
	if got.Error != "" {
		return true
	}
	return got.Rev == want.Rev && got.Deleted == want.Deleted && got.Succeeded == want.Succeeded &&
		got.LeaseID == want.LeaseID && slices.Equal(got.KVs, want.KVs)
}

// kvModel returns the porcupine model of a store whose revision is rev and
// which holds no keys and no leases when the history starts.
func kvModel(rev int64) porcupine.Model {
	return porcupine.Model{
		Init: func() any { return newModelState(rev, map[string]keyValue{}, map[int64]bool{}) },
		Step: func(state, input, output any) (bool, any) {
			s := state.(*modelState)
			req := input.(*request)
			got := output.(*response)
			want, next := s.apply(req, got)
			if got.Unknown {
				return true, next
			}
			return got.matches(want), next
		},
		Equal: func(a, b any) bool { return a.(*modelState).equal(b.(*modelState)) },
		Hash:  func(state any) uint64 { return state.(*modelState).hash },
		DescribeOperation: func(input, output any) string {
			return describeOp(input.(*request), output.(*response))
		},
		DescribeState: func(state any) string {
			s := state.(*modelState)
			var b strings.Builder
			fmt.Fprintf(&b, "rev %d", s.rev)
			for _, k := range sortedKeys(s.kvs) {
				kv := s.kvs[k]
				fmt.Fprintf(&b, ", %s=%s@%d", k, kv.Value, kv.Mod)
				if kv.Lease != 0 {
					fmt.Fprintf(&b, "(lease %x)", kv.Lease)
				}
			}
			if len(s.leases) > 0 {
				ids := make([]string, 0, len(s.leases))
				for id := range s.leases {
					ids = append(ids, fmt.Sprintf("%x", id))
				}
				sort.Strings(ids)
				fmt.Fprintf(&b, ", leases %s", strings.Join(ids, " "))
			}
			return b.String()
		},
	}
}

// describeOp renders one operation for reports and the visualization.
func describeOp(req *request, resp *response) string {
	var in string
	switch req.Kind {
	case opGet, opDelete:
		in = fmt.Sprintf("%s(%s)", req.Kind, req.Key)
	case opRange:
		in = "range(all)"
	case opPut:
		in = fmt.Sprintf("put(%s, %s)", req.Key, req.Value)
		if req.Lease != 0 {
			in = fmt.Sprintf("put(%s, %s, lease %x)", req.Key, req.Value, req.Lease)
		}
	case opTxn:
		in = fmt.Sprintf("txn(mod(%s)==%d ? put %s : get)", req.Key, req.ExpectMod, req.Value)
	case opLeaseGrant:
		in = "lease-grant()"
	case opLeaseRevoke:
		in = fmt.Sprintf("lease-revoke(%x)", req.Lease)
	}
	return in + " -> " + resp.String()
}

func (r *response) String() string {
	if r.Unknown {
		return "unknown (" + r.Error + ")"
	}
	if r.Error != "" {
		return "error: " + r.Error
	}
	parts := []string{fmt.Sprintf("rev %d", r.Rev)}
	if r.Recovered {
		parts[0] = fmt.Sprintf("failed (%s) but took effect at rev %d", r.Error, r.Rev)
	}
	if r.Succeeded {
		parts = append(parts, "succeeded")
	}
	if r.Deleted != 0 {
		parts = append(parts, fmt.Sprintf("deleted %d", r.Deleted))
	}
	if r.LeaseID != 0 {
		parts = append(parts, fmt.Sprintf("lease %x", r.LeaseID))
	}
	for _, kv := range r.KVs {
		s := fmt.Sprintf("%s=%s@%d", kv.Key, kv.Value, kv.Mod)
		if kv.Lease != 0 {
			s += fmt.Sprintf("(lease %x)", kv.Lease)
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}
