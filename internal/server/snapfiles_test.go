package server

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/storage"
)

// snapFileNames lists the member's snapshot directory.
func snapFileNames(t *testing.T, s *Server) []string {
	t.Helper()
	entries, err := os.ReadDir(s.snapDir())
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// A received snapshot is kept, verified, under its index until it is
// installed; one raft did not take is removed once the member has applied
// past it; a damaged one is refused and leaves nothing; at start every
// leftover goes.
func TestReceivedSnapshotFiles(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if err := db.Set(append([]byte{storage.PrefixKV}, "k"...), []byte("v"), nil); err != nil {
		t.Fatal(err)
	}
	snap := db.NewSnapshot()
	var stream bytes.Buffer
	if err := snapshot.Write(&stream, snap, snapshot.Replica); err != nil {
		t.Fatal(err)
	}
	snap.Close()

	s := &Server{lg: slog.Default(), snapFiles: map[uint64]struct{}{}}
	s.cfg.DataDir = t.TempDir()
	receive := func(index uint64, data []byte) error {
		m := raftpb.Message{Type: raftpb.MsgSnap, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: index}}}
		return s.receiveSnapshot(m, bytes.NewReader(data))
	}
	if err := receive(100, stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	if err := receive(200, stream.Bytes()); err != nil {
		t.Fatal(err)
	}
	damaged := slices.Clone(stream.Bytes())
	damaged[len(damaged)-1] ^= 0xff
	if err := receive(300, damaged); err == nil {
		t.Fatal("a damaged snapshot was accepted")
	}
	want := []string{filepath.Base(s.snapPath(100)), filepath.Base(s.snapPath(200))}
	if got := snapFileNames(t, s); !slices.Equal(got, want) {
		t.Fatalf("snapshot files %v, want %v", got, want)
	}

	// Applied up to 150: raft did not take the snapshot at 100 (it would
	// have been installed before), the one at 200 may still come.
	s.appliedIndex.Store(150)
	s.dropRejectedSnapshots()
	if got := snapFileNames(t, s); !slices.Equal(got, want[1:]) {
		t.Fatalf("snapshot files after applying to 150: %v, want %v", got, want[1:])
	}

	// A partial receive and a file raft never heard of, at start.
	if err := os.WriteFile(filepath.Join(s.snapDir(), "receiving-123"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	s.dropOldSnapshotFiles()
	if got := snapFileNames(t, s); len(got) != 0 {
		t.Fatalf("snapshot files left at start: %v", got)
	}
}
