package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/mvcc"
	"github.com/cairn-io/cairn/tests/framework"
)

// startTestMember runs a single member in this process, without client or
// peer listeners (it has no peers to talk to), and waits until it serves.
func startTestMember(t *testing.T, tune func(*Config)) *Server {
	t.Helper()
	const peer = "http://127.0.0.1:1" // never dialled: no other member
	cfg := Config{
		Name:           "m0",
		DataDir:        t.TempDir(),
		PeerURLs:       []string{peer},
		ClientURLs:     []string{"http://127.0.0.1:2"},
		InitialCluster: "m0=" + peer,
		CacheBytes:     8 << 20,
		Logger:         slog.New(slog.NewTextHandler(io.Discard, nil)),
	}
	tune(&cfg)
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Stop)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := s.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestAutoCompactionRevisionMode runs revision-mode auto compaction with a
// retention of 10 revisions, looking every 50ms instead of etcd's 5
// minutes: after 30 writes the store is compacted to exactly 10 revisions
// below the current one, so reads there still work and reads below fail
// with ErrCompacted.
func TestAutoCompactionRevisionMode(t *testing.T) {
	s := startTestMember(t, func(c *Config) {
		c.AutoCompactionMode = "revision"
		c.AutoCompactionRetention = "10"
		c.revisionCompactEvery = 50 * time.Millisecond
	})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for i := range 30 {
		if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("k"), Value: []byte(fmt.Sprint(i))}); err != nil {
			t.Fatal(err)
		}
		if cr, rev := s.kv.CompactRev(), s.Rev(); cr > 0 && cr > rev-10 {
			t.Fatalf("compacted to %d at revision %d, keeping fewer than 10 revisions", cr, rev)
		}
	}
	rev := s.Rev()
	framework.Poll(t, 30*time.Second, "compaction to 10 revisions below the current one", func() error {
		if cr := s.kv.CompactRev(); cr != rev-10 {
			return fmt.Errorf("compacted to %d at revision %d", cr, rev)
		}
		return nil
	})
	if _, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: rev - 10}); err != nil {
		t.Fatalf("read at the compaction revision %d: %v", rev-10, err)
	}
	if _, err := s.Range(ctx, &pb.RangeRequest{Key: []byte("k"), Revision: rev - 11}); !errors.Is(err, mvcc.ErrCompacted) {
		t.Fatalf("read below the compaction revision: %v, want %v", err, mvcc.ErrCompacted)
	}
}
