package watch

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
)

// TestRangeIndexAgreesWithScan adds and removes random ranges (nested,
// overlapping, repeated, open-ended) and checks after every change that the
// ranges the index finds for random keys are exactly those a scan of every
// range finds, and that every subtree records its latest end.
func TestRangeIndexAgreesWithScan(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	key := func() string {
		// Short keys over a small alphabet, so ranges overlap a lot.
		b := make([]byte, 1+rng.IntN(3))
		for i := range b {
			b[i] = "abcd"[rng.IntN(4)]
		}
		return string(b)
	}
	ix := newRangeIndex()
	type entry struct {
		rk rangeKey
		w  *watcher
	}
	var live []entry
	for step := range 3000 {
		if len(live) > 0 && rng.IntN(3) == 0 {
			i := rng.IntN(len(live))
			ix.remove(live[i].rk, live[i].w)
			live = slices.Delete(live, i, i+1)
		} else {
			rk := rangeKey{key: key()}
			switch rng.IntN(4) {
			case 0: // open-ended
			case 1:
				if len(live) > 0 { // the same range again
					rk = live[rng.IntN(len(live))].rk
					break
				}
				fallthrough
			default:
				if rk.end = key(); rk.end <= rk.key {
					rk.end = rk.key + rk.end
				}
			}
			w := &watcher{id: int64(step)}
			ix.add(rk, w)
			live = append(live, entry{rk, w})
		}
		if err := checkTree(ix.root); err != nil {
			t.Fatalf("step %d: %v", step, err)
		}
		want := map[rangeKey]int{}
		for _, e := range live {
			want[e.rk]++
		}
		if len(ix.nodes) != len(want) {
			t.Fatalf("step %d: %d nodes for %d distinct ranges", step, len(ix.nodes), len(want))
		}
		for range 5 {
			k := key()
			var scan []rangeKey
			for rk, n := range want {
				if rk.holds(k) {
					scan = append(scan, rk)
					if got := len(ix.nodes[rk].watchers); got != n {
						t.Fatalf("step %d: range %v holds %d watchers, want %d", step, rk, got, n)
					}
				}
			}
			var found []rangeKey
			for _, n := range ix.stab(k, nil) {
				found = append(found, n.rk)
			}
			slices.SortFunc(scan, rangeKey.compare)
			if !slices.Equal(found, scan) {
				t.Fatalf("step %d: ranges holding %q: index %v, scan %v", step, k, found, scan)
			}
		}
	}
}

// checkTree verifies the search order, the heap order of priorities and
// the subtree ends.
func checkTree(n *rangeNode) error {
	if n == nil {
		return nil
	}
	end := n.rk.end
	for _, c := range []*rangeNode{n.left, n.right} {
		if c == nil {
			continue
		}
		if c.prio > n.prio {
			return fmt.Errorf("node %v has a child %v of higher priority", n.rk, c.rk)
		}
		end = laterEnd(end, c.maxEnd)
		if err := checkTree(c); err != nil {
			return err
		}
	}
	if n.left != nil && n.left.rk.compare(n.rk) >= 0 || n.right != nil && n.right.rk.compare(n.rk) <= 0 {
		return fmt.Errorf("node %v is out of order with its children", n.rk)
	}
	if n.maxEnd != end {
		return fmt.Errorf("node %v records subtree end %q, want %q", n.rk, n.maxEnd, end)
	}
	return nil
}
