package e2e

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// ack is a write the server acknowledged.
type ack struct {
	key, value string
	rev        int64
}

// TestKill9KeepsAcknowledgedWrites runs concurrent writers against a member,
// kills it with SIGKILL while they write, restarts it, and checks that every
// write it acknowledged is there with the value and revision it was
// acknowledged with, and that revisions continue from there. Three rounds.
func TestKill9KeepsAcknowledgedWrites(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	var all []ack
	for round := 0; round < 3; round++ {
		acks := writeUntilKilled(t, m, round)
		if len(acks) == 0 {
			t.Fatalf("round %d: no write was acknowledged before the kill", round)
		}
		all = append(all, acks...)
		m.Restart(t)
		verifyAcks(t, m.Client(t), all)
	}
}

// writeUntilKilled starts 8 writers, lets them get at least 200 writes
// acknowledged, kills the member under them and returns what was
// acknowledged.
func writeUntilKilled(t *testing.T, m *framework.Member, round int) []ack {
	t.Helper()
	cli := m.Client(t)
	var (
		mu   sync.Mutex
		acks []ack
		wg   sync.WaitGroup
	)
	enough := make(chan struct{})
	var once sync.Once
	stop := make(chan struct{})
	for w := 0; w < 8; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				k := fmt.Sprintf("dur/r%d/w%d/%06d", round, w, i)
				v := fmt.Sprintf("value-%d-%d-%d", round, w, i)
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				resp, err := cli.Put(ctx, k, v)
				cancel()
				if err != nil {
					// The member is gone; an unacknowledged write may or
					// may not have happened, and is not checked.
					return
				}
				mu.Lock()
				acks = append(acks, ack{k, v, resp.Header.Revision})
				n := len(acks)
				mu.Unlock()
				if n >= 200 {
					once.Do(func() { close(enough) })
				}
			}
		}(w)
	}
	select {
	case <-enough:
	case <-time.After(60 * time.Second):
		t.Fatal("writers got fewer than 200 writes acknowledged in 60s")
	}
	m.Kill(t)
	close(stop)
	wg.Wait()
	return acks
}

func verifyAcks(t *testing.T, cli *clientv3.Client, acks []ack) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var maxRev int64
	for _, a := range acks {
		resp, err := cli.Get(ctx, a.key)
		if err != nil {
			t.Fatalf("get %s: %v", a.key, err)
		}
		if len(resp.Kvs) != 1 {
			t.Fatalf("acknowledged write %s (revision %d) lost after kill -9", a.key, a.rev)
		}
		kv := resp.Kvs[0]
		if string(kv.Value) != a.value || kv.ModRevision != a.rev || kv.CreateRevision != a.rev || kv.Version != 1 {
			t.Fatalf("key %s after restart: value %q mod %d create %d version %d; acknowledged %q at revision %d",
				a.key, kv.Value, kv.ModRevision, kv.CreateRevision, kv.Version, a.value, a.rev)
		}
		maxRev = max(maxRev, a.rev)
	}
	// Revisions continue: a new write lands above everything acknowledged.
	resp, err := cli.Put(ctx, "dur/after-restart", "x")
	if err != nil {
		t.Fatalf("put after restart: %v", err)
	}
	if resp.Header.Revision <= maxRev {
		t.Fatalf("revision after restart %d is not above the highest acknowledged %d", resp.Header.Revision, maxRev)
	}
	// Every acknowledged revision is distinct: no write was applied twice.
	seen := map[int64]string{}
	for _, a := range acks {
		if other, dup := seen[a.rev]; dup {
			t.Fatalf("revision %d acknowledged for both %s and %s", a.rev, other, a.key)
		}
		seen[a.rev] = a.key
	}
}

// TestRestartKeepsRevisionAndHistory checks that a clean stop and restart
// keeps the revision, compaction point and history exactly.
func TestRestartKeepsRevisionAndHistory(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := 0; i < 10; i++ {
		if _, err := cli.Put(ctx, "h", fmt.Sprint(i)); err != nil {
			t.Fatal(err)
		}
	}
	// Revisions 2..11 hold h=0..9.
	if _, err := cli.Compact(ctx, 5, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	m.Restart(t)
	cli = m.Client(t)
	resp, err := cli.Get(ctx, "h", clientv3.WithRev(7))
	if err != nil {
		t.Fatal(err)
	}
	if resp.Header.Revision != 11 || len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "5" || resp.Kvs[0].Version != 6 {
		t.Fatalf("get h@7 after restart: header rev %d, kvs %v", resp.Header.Revision, resp.Kvs)
	}
	if _, err := cli.Get(ctx, "h", clientv3.WithRev(4)); !errors.Is(err, rpctypesCompacted) {
		t.Fatalf("get h@4 after restart: got %v, want the compacted error", err)
	}
	if _, err := cli.Compact(ctx, 5); !errors.Is(err, rpctypesCompacted) {
		t.Fatalf("compact 5 again after restart: got %v, want the compacted error", err)
	}
}
