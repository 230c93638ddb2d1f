// Package snapshot writes, checks and restores cairn's snapshot files: a
// consistent point-in-time copy of a member's state (MVCC revisions,
// leases, auth, the v2 tree and the compaction revisions), as the
// Maintenance Snapshot call streams it and as cairn snapshot save stores it.
//
// The format is a magic line, then records (uvarint key length, key,
// uvarint value length, value) in key order, an empty key closing them, zero
// padding to a multiple of 512 bytes, and a SHA-256 of everything before it,
// so a truncated or damaged file is always detected. The padding makes the
// file look like an etcd snapshot to etcd's tools, which find the checksum
// by the file size (a multiple of 512, plus 32): etcdctl snapshot save works
// against cairn. Restore turns a snapshot into a fresh data directory for
// a new cluster, as etcdutl snapshot restore does: same data, new
// membership.
package snapshot

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/storage"
)

// Magic opens every snapshot.
const Magic = "cairn snapshot v1\n"

// Sentinel errors.
var (
	// ErrCorrupt: the file is not a complete cairn snapshot.
	ErrCorrupt = errors.New("snapshot: not a valid cairn snapshot (truncated or damaged)")
)

// Kind selects what a snapshot carries.
type Kind int

const (
	// Backup is what Maintenance Snapshot streams and cairn snapshot save
	// stores: the data, without the membership and alarms of the cluster
	// it came from, which a restore replaces.
	Backup Kind = iota
	// Replica is what the leader sends a member that fell behind the log:
	// every replicated keyspace, and the applied index, term and
	// configuration the state corresponds to.
	Replica
)

func (k Kind) prefixes() []byte {
	if k == Replica {
		return ReplicatedPrefixes
	}
	return []byte{storage.PrefixKV, storage.PrefixLease, storage.PrefixAuth, storage.PrefixV2}
}

func (k Kind) metaNames() []string {
	names := []string{storage.MetaScheduledCompact, storage.MetaFinishedCompact}
	if k == Replica {
		names = append(names, storage.MetaAppliedIndex, storage.MetaAppliedTerm, storage.MetaConfState)
	}
	return names
}

// ReplicatedPrefixes are the keyspaces every member holds identically.
var ReplicatedPrefixes = []byte{storage.PrefixKV, storage.PrefixLease, storage.PrefixAlarm,
	storage.PrefixMember, storage.PrefixAuth, storage.PrefixV2}

// Reader is the point-in-time view a snapshot is written from;
// *pebble.Snapshot implements it.
type Reader interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
	Get(key []byte) ([]byte, io.Closer, error)
}

// Size returns the exact number of bytes Write will produce from r.
func Size(r Reader, kind Kind) (int64, error) {
	n := int64(len(Magic))
	err := each(r, kind, func(k, v []byte) error {
		n += recordSize(k, v)
		return nil
	})
	n++ // the closing empty key
	return n + padding(n) + sha256.Size, err
}

// padding returns the zero bytes that bring n to a multiple of 512.
func padding(n int64) int64 { return (512 - n%512) % 512 }

func recordSize(k, v []byte) int64 {
	var b [binary.MaxVarintLen64]byte
	return int64(binary.PutUvarint(b[:], uint64(len(k))) + len(k) + binary.PutUvarint(b[:], uint64(len(v))) + len(v))
}

// Write writes a snapshot of r to w.
func Write(w io.Writer, r Reader, kind Kind) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	h := sha256.New()
	out := io.MultiWriter(bw, h)
	if _, err := io.WriteString(out, Magic); err != nil {
		return fmt.Errorf("snapshot: write: %w", err)
	}
	n := int64(len(Magic))
	var lb [binary.MaxVarintLen64]byte
	err := each(r, kind, func(k, v []byte) error {
		n += recordSize(k, v)
		if _, err := out.Write(lb[:binary.PutUvarint(lb[:], uint64(len(k)))]); err != nil {
			return err
		}
		if _, err := out.Write(k); err != nil {
			return err
		}
		if _, err := out.Write(lb[:binary.PutUvarint(lb[:], uint64(len(v)))]); err != nil {
			return err
		}
		_, err := out.Write(v)
		return err
	})
	if err != nil {
		return fmt.Errorf("snapshot: write: %w", err)
	}
	n++
	if _, err := out.Write(make([]byte, 1+padding(n))); err != nil {
		return fmt.Errorf("snapshot: write: %w", err)
	}
	if _, err := bw.Write(h.Sum(nil)); err != nil {
		return fmt.Errorf("snapshot: write: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("snapshot: write: %w", err)
	}
	return nil
}

// each calls fn with every record a snapshot of r holds, in key order.
func each(r Reader, kind Kind, fn func(k, v []byte) error) error {
	for _, name := range kind.metaNames() {
		key := storage.MetaKey(name)
		v, closer, err := r.Get(key)
		if errors.Is(err, pebble.ErrNotFound) {
			continue
		}
		if err != nil {
			return err
		}
		err = fn(key, v)
		closer.Close()
		if err != nil {
			return err
		}
	}
	for _, p := range kind.prefixes() {
		lo, hi := storage.PrefixBounds(p)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for it.First(); it.Valid(); it.Next() {
			if err := fn(it.Key(), it.Value()); err != nil {
				it.Close()
				return err
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	return nil
}

// Read reads a snapshot from r, calling fn with each record in order. It
// verifies the checksum at the end: if Read returns an error, the records
// already passed to fn must be thrown away (Restore writes into a scratch
// directory for that reason).
func Read(r io.Reader, fn func(k, v []byte) error) error {
	h := sha256.New()
	br := bufio.NewReaderSize(r, 256<<10)
	tr := &hashingReader{r: br, h: h}
	magic := make([]byte, len(Magic))
	if _, err := io.ReadFull(tr, magic); err != nil || string(magic) != Magic {
		return fmt.Errorf("%w: no snapshot header", ErrCorrupt)
	}
	for {
		k, err := readField(tr)
		if err != nil {
			return err
		}
		if len(k) == 0 {
			break
		}
		v, err := readField(tr)
		if err != nil {
			return err
		}
		if err := fn(k, v); err != nil {
			return err
		}
	}
	pad := make([]byte, padding(tr.n))
	if _, err := io.ReadFull(tr, pad); err != nil {
		return fmt.Errorf("%w: no padding", ErrCorrupt)
	}
	for _, b := range pad {
		if b != 0 {
			return fmt.Errorf("%w: bad padding", ErrCorrupt)
		}
	}
	sum := h.Sum(nil)
	want := make([]byte, sha256.Size)
	if _, err := io.ReadFull(br, want); err != nil {
		return fmt.Errorf("%w: no checksum", ErrCorrupt)
	}
	if !bytes.Equal(sum, want) {
		return fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if _, err := br.ReadByte(); err != io.EOF {
		return fmt.Errorf("%w: data after the checksum", ErrCorrupt)
	}
	return nil
}

// maxField bounds one key or value (well above --max-request-bytes).
const maxField = 1 << 30

func readField(r *hashingReader) ([]byte, error) {
	n, err := binary.ReadUvarint(r)
	if err != nil {
		return nil, ErrCorrupt
	}
	if n > maxField {
		return nil, fmt.Errorf("%w: a %d-byte record", ErrCorrupt, n)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(r, b); err != nil {
		return nil, ErrCorrupt
	}
	return b, nil
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r *bufio.Reader
	h hash.Hash
	n int64
}

func (r *hashingReader) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	r.h.Write(p[:n])
	r.n += int64(n)
	return n, err
}

func (r *hashingReader) ReadByte() (byte, error) {
	b, err := r.r.ReadByte()
	if err == nil {
		r.h.Write([]byte{b})
		r.n++
	}
	return b, err
}
