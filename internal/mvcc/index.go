package mvcc

import (
	"bytes"
	"sort"

	"github.com/google/btree"
)

// rev is one entry of a key's history in the in-memory index.
type rev struct {
	main int64
	sub  int32
	// size is the stored value's length in bytes, a hint for reclaiming
	// space when the revision is compacted away.
	size uint32
	// tomb marks a deletion: the key does not exist from this revision on
	// until a later put.
	tomb bool
}

func (r rev) less(o rev) bool { return r.main < o.main || (r.main == o.main && r.sub < o.sub) }

// keyIndex is the history of one key: every revision that still exists in
// storage, oldest first, plus what a put needs to know about the key's
// current generation without reading the disk.
type keyIndex struct {
	key  []byte
	revs []rev

	// Valid while the key is live (revs non-empty and the last is not a
	// tombstone): the create revision and version of its current
	// generation, and the lease it is attached to (0 for none).
	created int64
	version int64
	lease   int64
}

func keyLess(a, b *keyIndex) bool { return bytes.Compare(a.key, b.key) < 0 }

// live reports whether the key exists at the newest revision.
func (ki *keyIndex) live() bool {
	return len(ki.revs) > 0 && !ki.revs[len(ki.revs)-1].tomb
}

// at returns the newest revision of the key at or before main revision
// atRev, and whether the key exists then (the revision is not a tombstone).
func (ki *keyIndex) at(atRev int64) (rev, bool) {
	// Fast path: reads mostly want the newest revision.
	n := len(ki.revs)
	if n > 0 && ki.revs[n-1].main <= atRev {
		r := ki.revs[n-1]
		return r, !r.tomb
	}
	i := sort.Search(n, func(i int) bool { return ki.revs[i].main > atRev })
	if i == 0 {
		return rev{}, false
	}
	r := ki.revs[i-1]
	return r, !r.tomb
}

// compact drops the revisions that no read at or after atRev can see: all
// revisions older than the newest one at or before atRev, and that one too if
// it is a tombstone below atRev. The dropped revisions are appended to dropped. It reports
// whether the key has no revisions left.
func (ki *keyIndex) compact(atRev int64, dropped []rev) ([]rev, bool) {
	// i: number of revisions at or before atRev.
	i := sort.Search(len(ki.revs), func(i int) bool { return ki.revs[i].main > atRev })
	if i == 0 {
		return dropped, false
	}
	keep := i - 1
	// A tombstone older than atRev goes with everything before it. One at
	// exactly atRev stays until a later compaction: a watcher may start
	// at the compaction revision and must see that deletion.
	if ki.revs[keep].tomb && ki.revs[keep].main < atRev {
		keep = i
	}
	if keep == 0 {
		return dropped, false
	}
	dropped = append(dropped, ki.revs[:keep]...)
	n := copy(ki.revs, ki.revs[keep:])
	// Let the backing array shrink when most of the history went.
	if n < cap(ki.revs)/4 {
		ki.revs = append([]rev(nil), ki.revs[:n]...)
	} else {
		ki.revs = ki.revs[:n]
	}
	return dropped, len(ki.revs) == 0
}

// index maps keys to their histories, ordered by key.
type index struct {
	tree *btree.BTreeG[*keyIndex]
}

func newIndex() *index {
	return &index{tree: btree.NewG[*keyIndex](32, keyLess)}
}

func (x *index) get(key []byte) *keyIndex {
	ki, _ := x.tree.Get(&keyIndex{key: key})
	return ki
}

// getOrCreate returns the history of key, creating an empty one.
func (x *index) getOrCreate(key []byte) *keyIndex {
	if ki := x.get(key); ki != nil {
		return ki
	}
	ki := &keyIndex{key: append([]byte(nil), key...)}
	x.tree.ReplaceOrInsert(ki)
	return ki
}

// ascend calls fn for each key in [key, end) in order (end == nil: only key;
// len(end) == 0: every key >= key) until fn returns false.
func (x *index) ascend(key, end []byte, fn func(*keyIndex) bool) {
	if end == nil {
		if ki := x.get(key); ki != nil {
			fn(ki)
		}
		return
	}
	from := keyIndex{key: key}
	if len(end) == 0 {
		x.tree.AscendGreaterOrEqual(&from, fn)
		return
	}
	if bytes.Compare(key, end) >= 0 {
		return
	}
	to := keyIndex{key: end}
	x.tree.AscendRange(&from, &to, fn)
}

func (x *index) delete(ki *keyIndex) { x.tree.Delete(ki) }

func (x *index) len() int { return x.tree.Len() }
