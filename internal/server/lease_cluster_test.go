package server_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/internal/embed"
	"github.com/cairn-io/cairn/internal/server"
	"github.com/cairn-io/cairn/tests/framework"
)

// startCluster starts n members of one new cluster in this process, on free
// loopback ports, each with its data in a temporary directory. tune adjusts
// each member's configuration; it is how a test reaches settings that are
// not flags (Config.LeaseCheckpointInterval).
func startCluster(t *testing.T, n int, tune func(*server.Config)) []*embed.Member {
	t.Helper()
	lg := slog.New(slog.NewTextHandler(io.Discard, nil))
	clientURLs, peerURLs := make([]string, n), make([]string, n)
	var initial []string
	for i := range n {
		clientURLs[i], peerURLs[i] = freeURL(t), freeURL(t)
		initial = append(initial, fmt.Sprintf("m%d=%s", i, peerURLs[i]))
	}
	members := make([]*embed.Member, n)
	errc := make(chan error, n)
	for i := range n {
		go func() {
			cfg := embed.Config{
				Member: server.Config{
					Name:           fmt.Sprintf("m%d", i),
					DataDir:        t.TempDir(),
					PeerURLs:       []string{peerURLs[i]},
					ClientURLs:     []string{clientURLs[i]},
					InitialCluster: strings.Join(initial, ","),
					CacheBytes:     8 << 20,
				},
				ListenClientURLs: []string{clientURLs[i]},
				ListenPeerURLs:   []string{peerURLs[i]},
				Logger:           lg,
			}
			tune(&cfg.Member)
			m, err := embed.Start(cfg)
			members[i] = m
			errc <- err
		}()
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatalf("start member: %v", err)
		}
	}
	for _, m := range members {
		t.Cleanup(m.Close)
	}
	return members
}

func freeURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return "http://" + l.Addr().String()
}

func newClient(t *testing.T, members ...*embed.Member) *clientv3.Client {
	t.Helper()
	var eps []string
	for _, m := range members {
		eps = append(eps, strings.TrimPrefix(m.ClientURLs()[0], "http://"))
	}
	cli, err := clientv3.New(clientv3.Config{Endpoints: eps, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cli.Close() })
	return cli
}

// leaderOf waits until one of members leads and returns its index.
func leaderOf(t *testing.T, members []*embed.Member) int {
	t.Helper()
	lead := -1
	framework.Poll(t, time.Minute, "a leader", func() error {
		for i, m := range members {
			if m.Server.IsLeader() {
				lead = i
				return nil
			}
		}
		return fmt.Errorf("none of %d members leads", len(members))
	})
	return lead
}

// TestRenewedLeaseOutlivesLeaderLossAfterCheckpoint lets a lease run down
// while the leader checkpoints its remaining TTL every 2s, renews it
// once when little is left, and stops the leader. A renewal clears the
// checkpoint on every member, so the new leader must give the lease its
// full TTL from about the renewal; a member still holding the old
// checkpoint would expire it a few seconds after the election.
func TestRenewedLeaseOutlivesLeaderLossAfterCheckpoint(t *testing.T) {
	members := startCluster(t, 3, func(c *server.Config) { c.LeaseCheckpointInterval = 2 * time.Second })
	leaderOf(t, members)
	cli := newClient(t, members...)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	const ttl = 20
	l, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "k", "v", clientv3.WithLease(l.ID)); err != nil {
		t.Fatal(err)
	}
	// Checkpoints run every two seconds, so by the time a third of the TTL
	// is left the followers hold a remaining TTL about that small.
	framework.Poll(t, 2*ttl*time.Second, "the lease runs down to a third of its TTL", func() error {
		r, err := cli.TimeToLive(ctx, l.ID)
		if err != nil {
			return err
		}
		if r.TTL > ttl/3 {
			return fmt.Errorf("%ds left", r.TTL)
		}
		return nil
	})
	ka, err := cli.KeepAliveOnce(ctx, l.ID)
	if err != nil {
		t.Fatal(err)
	}
	renewed := time.Now()
	if ka.TTL != ttl {
		t.Fatalf("keep-alive answered TTL %d, want %d", ka.TTL, ttl)
	}
	// Stop the leader's raft at once, before its next checkpoint records
	// the renewed TTL anyway (closing the member first would let it serve,
	// and checkpoint, for up to two more seconds while its clients go).
	lead := leaderOf(t, members)
	members[lead].Server.Stop()
	members[lead].Close()
	var rest []*embed.Member
	for i, m := range members {
		if i != lead {
			rest = append(rest, m)
		}
	}
	leaderOf(t, rest)
	rcli := newClient(t, rest...)
	// Until a second before the full TTL since the renewal, the key must be
	// there; a failed read (the election) proves nothing either way.
	for time.Since(renewed) < (ttl-1)*time.Second {
		gctx, gcancel := context.WithTimeout(ctx, 2*time.Second)
		r, err := rcli.Get(gctx, "k")
		gcancel()
		if err == nil && len(r.Kvs) == 0 {
			t.Fatalf("the lease expired %v after its renewal, before its %ds TTL: the new leader kept the checkpoint from before the renewal",
				time.Since(renewed).Round(100*time.Millisecond), ttl)
		}
		time.Sleep(200 * time.Millisecond)
	}
	// And it still expires.
	framework.Poll(t, ttl*time.Second+30*time.Second, "the lease expires on the new leader", func() error {
		r, err := rcli.Get(ctx, "k")
		if err != nil {
			return err
		}
		if len(r.Kvs) != 0 {
			return fmt.Errorf("key still there %v after the renewal", time.Since(renewed).Round(time.Second))
		}
		return nil
	})
}
