package robustness

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/anishathalye/porcupine"
)

// The checks of a run. Each returns the problems it found, described for
// a person reading the test's output; an empty list means it passed.

// flatten returns the events of watch responses in order, up to revision
// to (the history after the run's final revision is not checked).
func flatten(resps []watchResponse, to int64) []event {
	var out []event
	for _, r := range resps {
		for _, e := range r.Events {
			if e.KV.Mod <= to {
				out = append(out, e)
			}
		}
	}
	return out
}

func eventsEqual(a, b event) bool {
	if a.Delete != b.Delete || a.KV != b.KV || (a.Prev == nil) != (b.Prev == nil) {
		return false
	}
	return a.Prev == nil || *a.Prev == *b.Prev
}

// checkReference checks the event history read after the run: every
// revision from start to final changed a key under keyPrefix (every
// revision of the run comes from its traffic), so each must be there, in
// order, once; each event must follow from the key's previous event
// (versions, create revisions, prev_kv); and no value may be written
// twice, since the traffic never writes a value twice.
func checkReference(ref []event, start, final int64) []string {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }
	state := map[string]keyValue{}
	seen := map[string]bool{}    // rev/key pairs
	values := map[string]int64{} // value -> revision it was written at
	rev := start - 1
	for _, e := range ref {
		switch r := e.KV.Mod; {
		case r < rev:
			add("event %v out of order: after revision %d", e, rev)
		case r > rev+1:
			if r-rev-1 == 1 {
				add("revision %d is missing from the history (next event: %v)", rev+1, e)
			} else {
				add("revisions %d to %d are missing from the history (next event: %v)", rev+1, r-1, e)
			}
		}
		rev = max(rev, e.KV.Mod)
		id := fmt.Sprintf("%d/%s", e.KV.Mod, e.KV.Key)
		if seen[id] {
			add("two events for key %s at revision %d", e.KV.Key, e.KV.Mod)
		}
		seen[id] = true
		prev, had := state[e.KV.Key]
		switch {
		case had && (e.Prev == nil || *e.Prev != prev):
			add("event %v: prev_kv should be %s=%s@%d", e, prev.Key, prev.Value, prev.Mod)
		case !had && e.Prev != nil:
			add("event %v: prev_kv should be empty, the key did not exist", e)
		}
		if e.Delete {
			if !had {
				add("event %v deletes a key that did not exist", e)
			}
			delete(state, e.KV.Key)
			continue
		}
		want := keyValue{Key: e.KV.Key, Value: e.KV.Value, Mod: e.KV.Mod, Create: e.KV.Mod, Version: 1, Lease: e.KV.Lease}
		if had {
			want.Create, want.Version = prev.Create, prev.Version+1
		}
		if e.KV != want {
			add("event %v: want create revision %d, version %d", e, want.Create, want.Version)
		}
		if r, dup := values[e.KV.Value]; dup {
			add("value %s written twice, at revisions %d and %d", e.KV.Value, r, e.KV.Mod)
		}
		values[e.KV.Value] = e.KV.Mod
		state[e.KV.Key] = e.KV
	}
	if rev < final {
		add("revisions %d to %d are missing from the end of the history", rev+1, final)
	}
	return problems
}

// checkWatcher checks what a watcher received against the reference: its
// responses in revision order, no revision split across responses or
// delivered twice, and exactly the reference's events from its start
// revision to the final one (a gap, a duplicate, a wrong prev_kv or a
// watch that never caught up are all differences).
func checkWatcher(name string, resps []watchResponse, ref []event, start, final int64) []string {
	var problems []string
	add := func(format string, args ...any) {
		problems = append(problems, fmt.Sprintf("watcher %s: ", name)+fmt.Sprintf(format, args...))
	}
	last := start - 1
	for i, r := range resps {
		first := r.Events[0].KV.Mod
		if first <= last {
			add("response %d (stream %d) starts at revision %d, but revision %d was already delivered", i, r.Stream, first, last)
		}
		for j := 1; j < len(r.Events); j++ {
			if r.Events[j].KV.Mod < r.Events[j-1].KV.Mod {
				add("response %d (stream %d): event %v after %v", i, r.Stream, r.Events[j], r.Events[j-1])
			}
		}
		end := r.Events[len(r.Events)-1].KV.Mod
		if r.Header < end {
			add("response %d (stream %d) has header revision %d below its last event's %d", i, r.Stream, r.Header, end)
		}
		last = max(last, end)
	}
	var want []event
	for _, e := range ref {
		if e.KV.Mod >= start && e.KV.Mod <= final {
			want = append(want, e)
		}
	}
	got := flatten(resps, final)
	for i := 0; i < len(want) || i < len(got); i++ {
		switch {
		case i >= len(got):
			add("received nothing after revision %d; missing %d events from %v on", last, len(want)-i, want[i])
		case i >= len(want):
			add("received %d events the history does not have, from %v on", len(got)-i, got[i])
		case eventsEqual(got[i], want[i]):
			continue
		case got[i].KV.Mod > want[i].KV.Mod:
			add("gap: %v was never delivered; the next event delivered was %v", want[i], got[i])
		case got[i].KV.Mod < want[i].KV.Mod:
			add("duplicate or out of order: %v delivered where %v was due", got[i], want[i])
		default:
			add("event at revision %d is %v, the history has %v", want[i].KV.Mod, got[i], want[i])
		}
		break
	}
	return problems
}

// checkAcknowledged checks the operations against the reference history:
// every acknowledged write is there at the revision it was acknowledged
// with, and every value in the history was written by some request.
func checkAcknowledged(ops []porcupine.Operation, ref []event) []string {
	var problems []string
	puts := map[string]event{}
	deletes := map[string]bool{}
	for _, e := range ref {
		if e.Delete {
			deletes[fmt.Sprintf("%d/%s", e.KV.Mod, e.KV.Key)] = true
		} else {
			puts[e.KV.Value] = e
		}
	}
	written := map[string]bool{}
	for _, op := range ops {
		req, resp := op.Input.(*request), op.Output.(*response)
		if req.Kind == opPut || req.Kind == opTxn {
			written[req.Value] = true
		}
		if resp.Unknown || resp.Error != "" {
			continue
		}
		switch {
		case req.Kind == opPut || (req.Kind == opTxn && resp.Succeeded):
			e, ok := puts[req.Value]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("acknowledged write lost: %s (acknowledged at %v) is not in the history",
					describeOp(req, resp), time.Duration(op.Return)))
			case e.KV.Key != req.Key || e.KV.Mod != resp.Rev:
				problems = append(problems, fmt.Sprintf("acknowledged write %s is in the history as %v", describeOp(req, resp), e))
			}
		case req.Kind == opDelete && resp.Deleted == 1:
			if !deletes[fmt.Sprintf("%d/%s", resp.Rev, req.Key)] {
				problems = append(problems, fmt.Sprintf("acknowledged %s has no delete event at revision %d", describeOp(req, resp), resp.Rev))
			}
		}
	}
	for _, e := range ref {
		if !e.Delete && !written[e.KV.Value] {
			problems = append(problems, fmt.Sprintf("event %v carries a value no request wrote", e))
		}
	}
	return problems
}

// patchHistory prepares the operations for the linearizability check.
// A request that failed before it was sent is dropped (notSent). Reads
// that failed are dropped: they changed nothing. A put or
// compare-and-swap that failed ambiguously took effect if and only if its
// value (unique in the run) is in the history: then its revision is known;
// otherwise it is dropped (a swap that took its else branch changed
// nothing either). Grants that failed are dropped: nobody uses a lease
// whose ID they never learnt. A delete that failed is dropped when the
// history has no delete of its key that an acknowledged request explains
// not: then it took no effect, or deleted nothing, which changes nothing.
// A revoke that failed is dropped when no unexplained delete removed a key
// of its lease and no other request used the lease after the revoke was
// sent: whether the lease still exists is then never observed. The other
// deletes and revokes that failed keep an unknown outcome (unknown
// revokes that are never observed would make the check exponential).
// Every remaining unknown operation returns after every call and every
// other return, as if it had never returned.
func patchHistory(ops []porcupine.Operation, ref []event) (patched []porcupine.Operation, dropped, unknown int) {
	puts := map[string]event{}
	for _, e := range ref {
		if !e.Delete {
			puts[e.KV.Value] = e
		}
	}
	// Delete events an acknowledged delete or revoke made.
	explained := map[string]bool{}
	revoked := map[int64]int64{} // revision -> lease revoked at it
	for _, op := range ops {
		req, resp := op.Input.(*request), op.Output.(*response)
		if resp.Unknown || resp.Error != "" {
			continue
		}
		switch {
		case req.Kind == opDelete && resp.Deleted == 1:
			explained[fmt.Sprintf("%d/%s", resp.Rev, req.Key)] = true
		case req.Kind == opLeaseRevoke:
			revoked[resp.Rev] = req.Lease
		}
	}
	unexplained := map[string]bool{}     // keys with an unexplained delete
	unexplainedLease := map[int64]bool{} // leases of keys deleted so
	for _, e := range ref {
		if !e.Delete || explained[fmt.Sprintf("%d/%s", e.KV.Mod, e.KV.Key)] {
			continue
		}
		if l, ok := revoked[e.KV.Mod]; ok && e.Prev != nil && e.Prev.Lease == l {
			continue
		}
		unexplained[e.KV.Key] = true
		if e.Prev != nil && e.Prev.Lease != 0 {
			unexplainedLease[e.Prev.Lease] = true
		}
	}
	// The latest return time of a request naming each lease.
	leaseUsed := map[int64]int64{}
	for _, op := range ops {
		if req := op.Input.(*request); req.Lease != 0 {
			leaseUsed[req.Lease] = max(leaseUsed[req.Lease], op.Return)
		}
	}
	// An operation whose outcome is unknown may take effect at any time
	// after its call: it returns after every other call and return.
	var end int64
	for _, op := range ops {
		end = max(end, op.Call)
		if !op.Output.(*response).Unknown {
			end = max(end, op.Return)
		}
	}
	end++
	for _, op := range ops {
		req, resp := op.Input.(*request), op.Output.(*response)
		if !resp.Unknown {
			patched = append(patched, op)
			continue
		}
		if notSent(resp.Error) {
			dropped++
			continue
		}
		switch req.Kind {
		case opGet, opRange, opLeaseGrant:
			dropped++
			continue
		case opPut, opTxn:
			e, ok := puts[req.Value]
			if !ok || e.KV.Key != req.Key {
				dropped++
				continue
			}
			op.Output = &response{Recovered: true, Error: resp.Error, Rev: e.KV.Mod, Succeeded: req.Kind == opTxn}
		case opDelete:
			if !unexplained[req.Key] {
				dropped++
				continue
			}
			unknown++
		case opLeaseRevoke:
			// Its own return time is the latest only if no other
			// request named the lease after it was sent.
			if !unexplainedLease[req.Lease] && leaseUsed[req.Lease] <= op.Return {
				dropped++
				continue
			}
			unknown++
		default:
			unknown++
		}
		op.Return = end
		patched = append(patched, op)
	}
	return patched, dropped, unknown
}

// notSent reports whether a request failed before it was sent: gRPC had
// no connection to send it on (dialing the member failed, or the member
// closed the new connection before its HTTP/2 preface), so it cannot have
// taken effect.
func notSent(err string) bool {
	return strings.HasPrefix(err, "Unavailable: connection error:") &&
		(strings.Contains(err, "Error while dialing") || strings.Contains(err, "error reading server preface"))
}

// checkLinearizable runs porcupine. On a violation it writes the
// visualization to dir (if dir is not empty) and describes the longest
// linearizable prefix it found and the operations it could not place.
func checkLinearizable(ops []porcupine.Operation, startRev int64, timeout time.Duration, dir string) []string {
	model := kvModel(startRev)
	res, info := porcupine.CheckOperationsVerbose(model, ops, timeout)
	switch res {
	case porcupine.Ok:
		return nil
	case porcupine.Unknown:
		return []string{fmt.Sprintf("the linearizability check of %d operations did not finish in %v (raise CAIRN_ROBUSTNESS_CHECK_TIMEOUT)", len(ops), timeout)}
	}
	problem := fmt.Sprintf("history of %d operations is not linearizable", len(ops))
	if dir != "" {
		path := filepath.Join(dir, "linearizability.html")
		if err := os.MkdirAll(dir, 0o755); err == nil {
			if err := porcupine.VisualizePath(model, info, path); err == nil {
				problem += "; visualization: " + path
			}
		}
	}
	return []string{problem + "\n" + describeViolation(model, ops, info)}
}

// describeViolation lists the end of the longest partial linearization and
// the operations after it that could not be placed.
func describeViolation(model porcupine.Model, ops []porcupine.Operation, info porcupine.LinearizationInfo) string {
	var longest []porcupine.Operation
	for _, partition := range info.PartialLinearizationsOperations() {
		for _, lin := range partition {
			if len(lin) > len(longest) {
				longest = lin
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "longest linearizable prefix: %d of %d operations; it ends with:\n", len(longest), len(ops))
	state := model.Init()
	for i, op := range longest {
		_, state = model.Step(state, op.Input, op.Output)
		if i >= len(longest)-8 {
			fmt.Fprintf(&b, "  %s client %d: %s\n", spanOf(op), op.ClientId, describeOp(op.Input.(*request), op.Output.(*response)))
		}
	}
	fmt.Fprintf(&b, "state then: %s\n", model.DescribeState(state))
	in := map[string]bool{}
	for _, op := range longest {
		in[opID(op)] = true
	}
	var rest []porcupine.Operation
	for _, op := range ops {
		if !in[opID(op)] {
			rest = append(rest, op)
		}
	}
	sort.SliceStable(rest, func(i, j int) bool { return rest[i].Return < rest[j].Return })
	fmt.Fprintf(&b, "operations that could not follow it (earliest to return first):\n")
	for i, op := range rest {
		if i == 12 {
			fmt.Fprintf(&b, "  ... %d more\n", len(rest)-i)
			break
		}
		fmt.Fprintf(&b, "  %s client %d: %s\n", spanOf(op), op.ClientId, describeOp(op.Input.(*request), op.Output.(*response)))
	}
	return b.String()
}

func opID(op porcupine.Operation) string {
	return fmt.Sprintf("%d/%d/%p", op.ClientId, op.Call, op.Input)
}

func spanOf(op porcupine.Operation) string {
	ret := "inf"
	if resp := op.Output.(*response); !resp.Unknown && !resp.Recovered {
		ret = time.Duration(op.Return).Round(time.Microsecond).String()
	}
	return fmt.Sprintf("[%v, %s]", time.Duration(op.Call).Round(time.Microsecond), ret)
}
