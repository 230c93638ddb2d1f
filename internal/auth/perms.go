package auth

import (
	"bytes"
	"sort"

	"go.etcd.io/etcd/api/v3/authpb"
)

// Key permissions. A role's permission is a key (RangeEnd empty), a range
// [Key, RangeEnd), or an open-ended range [Key, +inf) written with RangeEnd
// "\x00", as in etcd. A user's permissions are the union of its roles'. A
// request on one key is allowed when some permission holds the key; a
// request on a range is allowed only when the union covers the whole range,
// so a range can never reach a key outside the user's permissions.

// span is a half-open key interval [begin, end); a nil end is +inf.
type span struct {
	begin []byte
	end   []byte
}

// endLess orders ends, +inf (nil) last.
func endLess(a, b []byte) bool {
	switch {
	case a == nil:
		return false
	case b == nil:
		return true
	}
	return bytes.Compare(a, b) < 0
}

// spanSet is a sorted list of disjoint, non-adjacent spans.
type spanSet []span

// permSpan is the span a permission grants.
func permSpan(p *authpb.Permission) span {
	switch {
	case len(p.RangeEnd) == 0:
		return span{begin: p.Key, end: pointEnd(p.Key)}
	case isOpenEnded(p.RangeEnd):
		return span{begin: p.Key}
	default:
		return span{begin: p.Key, end: p.RangeEnd}
	}
}

// pointEnd is the end of the span that holds only key: key + "\x00".
func pointEnd(key []byte) []byte {
	e := make([]byte, len(key)+1)
	copy(e, key)
	return e
}

// isOpenEnded reports whether a range end means "to the end of the
// keyspace".
func isOpenEnded(rangeEnd []byte) bool { return len(rangeEnd) == 1 && rangeEnd[0] == 0 }

// newSpanSet merges spans into a sorted set, joining overlapping and
// adjacent ones. Empty spans (end <= begin) are dropped.
func newSpanSet(spans []span) spanSet {
	in := make([]span, 0, len(spans))
	for _, s := range spans {
		if s.end != nil && bytes.Compare(s.end, s.begin) <= 0 {
			continue
		}
		in = append(in, s)
	}
	sort.Slice(in, func(i, j int) bool { return bytes.Compare(in[i].begin, in[j].begin) < 0 })
	var out spanSet
	for _, s := range in {
		if n := len(out); n > 0 {
			last := &out[n-1]
			// Joins when s starts at or before the end of the last one.
			if last.end == nil || bytes.Compare(s.begin, last.end) <= 0 {
				if endLess(last.end, s.end) {
					last.end = s.end
				}
				continue
			}
		}
		out = append(out, s)
	}
	return out
}

// find returns the span holding key, if any.
func (ss spanSet) find(key []byte) (span, bool) {
	// The first span that begins after key; the one before it is the only
	// candidate.
	i := sort.Search(len(ss), func(i int) bool { return bytes.Compare(ss[i].begin, key) > 0 })
	if i == 0 {
		return span{}, false
	}
	s := ss[i-1]
	if s.end == nil || bytes.Compare(key, s.end) < 0 {
		return s, true
	}
	return span{}, false
}

// allows reports whether the set permits a request on key (rangeEnd
// empty), [key, rangeEnd), or [key, +inf) (rangeEnd "\x00"). A range that
// ends at or before its key selects nothing; like etcd, it is allowed when
// its key is.
func (ss spanSet) allows(key, rangeEnd []byte) bool {
	s, ok := ss.find(key)
	if !ok {
		return false
	}
	switch {
	case len(rangeEnd) == 0:
		return true
	case isOpenEnded(rangeEnd):
		return s.end == nil
	case bytes.Compare(rangeEnd, key) <= 0:
		return true
	}
	return s.end == nil || bytes.Compare(rangeEnd, s.end) <= 0
}

// userPerms are one user's merged read and write permissions.
type userPerms struct {
	read, write spanSet
}

func mergePerms(u *authpb.User, roles map[string]*authpb.Role) *userPerms {
	var read, write []span
	for _, name := range u.Roles {
		r := roles[name]
		if r == nil {
			continue
		}
		for _, p := range r.KeyPermission {
			sp := permSpan(p)
			switch p.PermType {
			case authpb.READ:
				read = append(read, sp)
			case authpb.WRITE:
				write = append(write, sp)
			case authpb.READWRITE:
				read = append(read, sp)
				write = append(write, sp)
			}
		}
	}
	return &userPerms{read: newSpanSet(read), write: newSpanSet(write)}
}

// ValidPermissionRange reports whether a permission may be granted on key
// and rangeEnd: a non-empty key, and either a single key, an open-ended
// range, or a range whose end is above its key.
func ValidPermissionRange(key, rangeEnd []byte) bool {
	if len(key) == 0 {
		return false
	}
	if len(rangeEnd) == 0 || isOpenEnded(rangeEnd) {
		return true
	}
	return bytes.Compare(key, rangeEnd) < 0
}
