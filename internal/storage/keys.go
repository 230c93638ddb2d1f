package storage

import (
	"encoding/binary"
	"fmt"
)

// Key layout. Every member keeps all of its state in one Pebble database, so
// that one synced write makes everything before it durable (see DESIGN.md).
// The first byte of a key names its keyspace; keyspaces never interleave.
const (
	// PrefixMeta holds small named values: hard state, raft snapshot
	// metadata, applied index, compaction revisions, cluster and member IDs.
	PrefixMeta byte = 'm'
	// PrefixRaftLog holds raft entries: 'r' + 8-byte big-endian index.
	PrefixRaftLog byte = 'r'
	// PrefixKV holds MVCC revisions: 'k' + 8-byte main + 8-byte sub
	// revision (big-endian), plus a trailing 't' for a tombstone. The value
	// is a marshalled mvccpb.KeyValue. Revision order is key order, so
	// watch catch-up and hashing are sequential scans.
	PrefixKV byte = 'k'
	// PrefixLease holds leases: 'l' + 8-byte big-endian lease ID.
	PrefixLease byte = 'l'
	// PrefixAlarm holds raised alarms: 'a' + 8-byte member ID + 4-byte type.
	PrefixAlarm byte = 'a'
	// PrefixMember holds cluster members: 'c' + 8-byte member ID.
	PrefixMember byte = 'c'
	// PrefixAuth holds users, roles and the auth switch.
	PrefixAuth byte = 'u'
	// PrefixV2 holds the v2 keys API tree.
	PrefixV2 byte = 'v'
)

// Sizes of the fixed-width parts of keys.
const (
	revKeyLen     = 1 + 8 + 8
	raftLogKeyLen = 1 + 8
	tombstoneMark = 't'
)

// Revision is an MVCC revision: Main is the store revision a write produced,
// Sub orders the changes made within that revision (a txn or a multi-key
// delete changes several keys at one main revision).
type Revision struct {
	Main int64
	Sub  int64
}

// Less orders revisions.
func (a Revision) Less(b Revision) bool {
	return a.Main < b.Main || (a.Main == b.Main && a.Sub < b.Sub)
}

// RevKey appends the storage key of revision r to dst and returns it.
func RevKey(dst []byte, r Revision, tombstone bool) []byte {
	dst = append(dst, PrefixKV)
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Main))
	dst = binary.BigEndian.AppendUint64(dst, uint64(r.Sub))
	if tombstone {
		dst = append(dst, tombstoneMark)
	}
	return dst
}

// ParseRevKey decodes a key made by RevKey.
func ParseRevKey(k []byte) (r Revision, tombstone bool, err error) {
	switch {
	case len(k) == revKeyLen:
	case len(k) == revKeyLen+1 && k[revKeyLen] == tombstoneMark:
		tombstone = true
	default:
		return Revision{}, false, fmt.Errorf("revision key %x: %w", k, ErrBadKey)
	}
	if k[0] != PrefixKV {
		return Revision{}, false, fmt.Errorf("revision key %x: %w", k, ErrBadKey)
	}
	r.Main = int64(binary.BigEndian.Uint64(k[1:9]))
	r.Sub = int64(binary.BigEndian.Uint64(k[9:17]))
	if r.Main < 0 || r.Sub < 0 {
		return Revision{}, false, fmt.Errorf("revision key %x: negative revision: %w", k, ErrBadKey)
	}
	return r, tombstone, nil
}

// RevKeyBounds returns the smallest key of revisions with main revision >=
// from and the smallest key of revisions with main revision >= to: the
// bounds for iterating [from, to). to <= 0 means no upper limit.
func RevKeyBounds(from, to int64) (lower, upper []byte) {
	lower = RevKey(nil, Revision{Main: from}, false)
	if to <= 0 {
		upper = []byte{PrefixKV + 1}
	} else {
		upper = RevKey(nil, Revision{Main: to}, false)
	}
	return lower, upper
}

// RaftLogKey returns the key of the raft entry at index.
func RaftLogKey(index uint64) []byte {
	k := make([]byte, 0, raftLogKeyLen)
	k = append(k, PrefixRaftLog)
	return binary.BigEndian.AppendUint64(k, index)
}

// ParseRaftLogKey decodes a key made by RaftLogKey.
func ParseRaftLogKey(k []byte) (uint64, error) {
	if len(k) != raftLogKeyLen || k[0] != PrefixRaftLog {
		return 0, fmt.Errorf("raft log key %x: %w", k, ErrBadKey)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// MetaKey returns the key of the named metadata value.
func MetaKey(name string) []byte {
	return append([]byte{PrefixMeta}, name...)
}

// PrefixBounds returns the bounds of the keyspace with the given prefix byte.
func PrefixBounds(prefix byte) (lower, upper []byte) {
	return []byte{prefix}, []byte{prefix + 1}
}

// IDKey returns prefix + 8-byte big-endian id, the key shape of leases and
// members.
func IDKey(prefix byte, id uint64) []byte {
	k := make([]byte, 0, 9)
	k = append(k, prefix)
	return binary.BigEndian.AppendUint64(k, id)
}

// ParseIDKey decodes a key made by IDKey.
func ParseIDKey(prefix byte, k []byte) (uint64, error) {
	if len(k) != 9 || k[0] != prefix {
		return 0, fmt.Errorf("id key %x: %w", k, ErrBadKey)
	}
	return binary.BigEndian.Uint64(k[1:]), nil
}

// Names of metadata values (under PrefixMeta).
const (
	MetaHardState        = "raft/hardstate"
	MetaRaftSnapshot     = "raft/snapshot"
	MetaAppliedIndex     = "applied/index"
	MetaAppliedTerm      = "applied/term"
	MetaScheduledCompact = "mvcc/scheduled_compact_rev"
	MetaFinishedCompact  = "mvcc/finished_compact_rev"
	MetaClusterID        = "cluster/id"
	MetaMemberID         = "member/id"
	MetaMemberName       = "member/name"
	MetaConfState        = "raft/confstate"
	MetaLayoutVersion    = "layout/version"
)
