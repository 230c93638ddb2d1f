package storage

import (
	"bytes"
	"errors"
	"math"
	"math/rand"
	"sort"
	"testing"
)

func TestRevKeyRoundTrip(t *testing.T) {
	revs := []Revision{
		{0, 0}, {1, 0}, {2, 1}, {255, 256}, {1 << 32, 1<<31 - 1},
		{math.MaxInt64, 0}, {0, math.MaxInt64}, {math.MaxInt64, math.MaxInt64},
	}
	for _, r := range revs {
		for _, tomb := range []bool{false, true} {
			k := RevKey(nil, r, tomb)
			wantLen := 17
			if tomb {
				wantLen = 18
			}
			if len(k) != wantLen || k[0] != PrefixKV {
				t.Fatalf("RevKey(%v, %v) = %x: want %d bytes starting with %q", r, tomb, k, wantLen, PrefixKV)
			}
			got, gotTomb, err := ParseRevKey(k)
			if err != nil {
				t.Fatalf("ParseRevKey(%x): %v", k, err)
			}
			if got != r || gotTomb != tomb {
				t.Fatalf("ParseRevKey(RevKey(%v, %v)) = %v, %v", r, tomb, got, gotTomb)
			}
		}
	}
}

func TestRevKeyAppends(t *testing.T) {
	dst := []byte("prefix")
	k := RevKey(dst, Revision{Main: 7, Sub: 3}, true)
	if !bytes.HasPrefix(k, []byte("prefix")) {
		t.Fatalf("RevKey dropped dst: %x", k)
	}
	want := []byte{'k', 0, 0, 0, 0, 0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 3, 't'}
	if !bytes.Equal(k[len("prefix"):], want) {
		t.Fatalf("RevKey = %x, want %x", k[len("prefix"):], want)
	}
}

func TestParseRevKeyRejects(t *testing.T) {
	good := RevKey(nil, Revision{Main: 5, Sub: 1}, false)
	cases := map[string][]byte{
		"nil":             nil,
		"empty":           {},
		"prefix only":     {PrefixKV},
		"short":           good[:16],
		"wrong prefix":    append([]byte{PrefixRaftLog}, good[1:]...),
		"bad tomb mark":   append(append([]byte(nil), good...), 'x'),
		"too long":        append(append([]byte(nil), good...), 't', 't'),
		"negative main":   RevKey(nil, Revision{Main: -1, Sub: 0}, false),
		"negative sub":    RevKey(nil, Revision{Main: 1, Sub: -1}, true),
		"min int64 main":  RevKey(nil, Revision{Main: math.MinInt64}, false),
		"meta key":        MetaKey(MetaHardState),
		"raft log key":    RaftLogKey(5),
		"one byte longer": append([]byte{PrefixKV}, make([]byte, 17)...),
	}
	for name, k := range cases {
		if _, _, err := ParseRevKey(k); !errors.Is(err, ErrBadKey) {
			t.Errorf("%s: ParseRevKey(%x) err = %v, want ErrBadKey", name, k, err)
		}
	}
}

// TestRevKeyOrder checks that byte order of revision keys is revision order,
// with a tombstone sorting right after the plain key of the same revision
// and before the next sub-revision.
func TestRevKeyOrder(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	type item struct {
		r    Revision
		tomb bool
		key  []byte
	}
	var items []item
	add := func(r Revision, tomb bool) {
		items = append(items, item{r, tomb, RevKey(nil, r, tomb)})
	}
	for _, m := range []int64{0, 1, 2, 255, 256, 65535, 65536, 1 << 40, math.MaxInt64} {
		for _, s := range []int64{0, 1, 255, 256, math.MaxInt32} {
			add(Revision{m, s}, false)
			add(Revision{m, s}, true)
		}
	}
	for i := 0; i < 500; i++ {
		add(Revision{rng.Int63n(1 << uint(rng.Intn(62)+1)), rng.Int63n(1 << uint(rng.Intn(31)+1))}, rng.Intn(2) == 0)
	}
	less := func(a, b item) bool {
		if a.r != b.r {
			return a.r.Less(b.r)
		}
		return !a.tomb && b.tomb
	}
	for i := range items {
		for j := range items {
			a, b := items[i], items[j]
			byBytes := bytes.Compare(a.key, b.key) < 0
			if byBytes != less(a, b) {
				t.Fatalf("order of %v/%v (%x) and %v/%v (%x): bytes say less=%v, revisions say %v",
					a.r, a.tomb, a.key, b.r, b.tomb, b.key, byBytes, less(a, b))
			}
		}
	}
	// The revision keyspace sorts between the raft log and meta keyspaces
	// only by prefix: every revision key lies inside RevKeyBounds(0, 0).
	lo, hi := RevKeyBounds(0, 0)
	for _, it := range items {
		if bytes.Compare(it.key, lo) < 0 || bytes.Compare(it.key, hi) >= 0 {
			t.Fatalf("%x outside [%x, %x)", it.key, lo, hi)
		}
	}
}

func TestRevKeyBounds(t *testing.T) {
	lo, hi := RevKeyBounds(5, 9)
	in := []Revision{{5, 0}, {5, 7}, {8, math.MaxInt64}}
	out := []Revision{{4, math.MaxInt64}, {9, 0}, {10, 0}}
	for _, r := range in {
		for _, tomb := range []bool{false, true} {
			k := RevKey(nil, r, tomb)
			if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
				t.Errorf("%v (tomb %v) should be inside [5, 9)", r, tomb)
			}
		}
	}
	for _, r := range out {
		for _, tomb := range []bool{false, true} {
			k := RevKey(nil, r, tomb)
			if bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0 {
				t.Errorf("%v (tomb %v) should be outside [5, 9)", r, tomb)
			}
		}
	}
	_, hi = RevKeyBounds(5, 0)
	if !bytes.Equal(hi, []byte{PrefixKV + 1}) {
		t.Errorf("unbounded upper = %x, want %x", hi, []byte{PrefixKV + 1})
	}
	k := RevKey(nil, Revision{math.MaxInt64, math.MaxInt64}, true)
	if bytes.Compare(k, hi) >= 0 {
		t.Errorf("largest revision key %x not below unbounded upper %x", k, hi)
	}
}

func TestRaftLogKey(t *testing.T) {
	idxs := []uint64{0, 1, 2, 255, 256, 1 << 32, math.MaxUint64 - 1, math.MaxUint64}
	var keys [][]byte
	for _, i := range idxs {
		k := RaftLogKey(i)
		if len(k) != 9 || k[0] != PrefixRaftLog {
			t.Fatalf("RaftLogKey(%d) = %x", i, k)
		}
		got, err := ParseRaftLogKey(k)
		if err != nil || got != i {
			t.Fatalf("ParseRaftLogKey(RaftLogKey(%d)) = %d, %v", i, got, err)
		}
		keys = append(keys, k)
	}
	if !sort.SliceIsSorted(keys, func(i, j int) bool { return bytes.Compare(keys[i], keys[j]) < 0 }) {
		t.Fatalf("raft log keys not in index order")
	}
	lo, hi := PrefixBounds(PrefixRaftLog)
	for _, k := range keys {
		if bytes.Compare(k, lo) < 0 || bytes.Compare(k, hi) >= 0 {
			t.Fatalf("%x outside the raft log keyspace", k)
		}
	}
	for _, bad := range [][]byte{nil, {}, {PrefixRaftLog}, RaftLogKey(1)[:8], append(RaftLogKey(1), 0), IDKey(PrefixKV, 1)} {
		if _, err := ParseRaftLogKey(bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseRaftLogKey(%x) err = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestIDKey(t *testing.T) {
	ids := []uint64{0, 1, 0x1234, 1 << 63, math.MaxUint64}
	for _, p := range []byte{PrefixLease, PrefixMember} {
		var prev []byte
		for _, id := range ids {
			k := IDKey(p, id)
			if len(k) != 9 || k[0] != p {
				t.Fatalf("IDKey(%q, %d) = %x", p, id, k)
			}
			got, err := ParseIDKey(p, k)
			if err != nil || got != id {
				t.Fatalf("ParseIDKey(IDKey(%q, %d)) = %d, %v", p, id, got, err)
			}
			if prev != nil && bytes.Compare(prev, k) >= 0 {
				t.Fatalf("IDKey order: %x !< %x", prev, k)
			}
			prev = k
		}
	}
	if _, err := ParseIDKey(PrefixMember, IDKey(PrefixLease, 1)); !errors.Is(err, ErrBadKey) {
		t.Errorf("wrong prefix accepted: %v", err)
	}
	for _, bad := range [][]byte{nil, {PrefixLease}, IDKey(PrefixLease, 1)[:8], append(IDKey(PrefixLease, 1), 0)} {
		if _, err := ParseIDKey(PrefixLease, bad); !errors.Is(err, ErrBadKey) {
			t.Errorf("ParseIDKey(%x) err = %v, want ErrBadKey", bad, err)
		}
	}
}

func TestMetaKeyAndPrefixBounds(t *testing.T) {
	k := MetaKey(MetaHardState)
	if !bytes.Equal(k, append([]byte{PrefixMeta}, MetaHardState...)) {
		t.Fatalf("MetaKey = %q", k)
	}
	prefixes := []byte{PrefixMeta, PrefixRaftLog, PrefixKV, PrefixLease, PrefixAlarm, PrefixMember, PrefixAuth, PrefixV2}
	seen := map[byte]bool{}
	for _, p := range prefixes {
		if seen[p] {
			t.Fatalf("prefix %q used twice", p)
		}
		seen[p] = true
		lo, hi := PrefixBounds(p)
		for _, q := range prefixes {
			k := []byte{q, 0xff, 0xff}
			inside := bytes.Compare(k, lo) >= 0 && bytes.Compare(k, hi) < 0
			if inside != (p == q) {
				t.Fatalf("key %x inside bounds of %q: %v", k, p, inside)
			}
		}
	}
}
