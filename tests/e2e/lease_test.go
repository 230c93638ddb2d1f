package e2e

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// expiryLimit bounds how long after its TTL a lease must be gone: the
// leader looks for expired leases twice a second and revokes them through
// raft, so a few seconds is plenty; the limit is generous for slow machines.
const expiryLimit = 30 * time.Second

// TestLeaseExpiry grants a lease nobody keeps alive, attaches three keys to
// it and watches them: when the lease expires, the keys are deleted in one
// revision, which a watcher sees as one response of three DELETE events, and
// not before the TTL has passed.
func TestLeaseExpiry(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)

	wch := cli.Watch(ctx, "exp/", clientv3.WithPrefix(), clientv3.WithCreatedNotify())
	if wr := <-wch; !wr.Created {
		t.Fatalf("first watch response %+v is not the created one", wr)
	}
	const ttl = 3
	granted := time.Now()
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if lease.TTL != ttl {
		t.Fatalf("granted TTL %d, asked for %d", lease.TTL, ttl)
	}
	for _, k := range []string{"exp/a", "exp/b", "exp/c"} {
		if _, err := cli.Put(ctx, k, "v", clientv3.WithLease(lease.ID)); err != nil {
			t.Fatal(err)
		}
	}
	last, err := cli.Put(ctx, "exp/keep", "v")
	if err != nil {
		t.Fatal(err)
	}
	rev := last.Header.Revision
	// The four puts, then the expiry.
	var deletes []*clientv3.Event
	var responses int
	timeout := time.After(ttl*time.Second + expiryLimit)
	for len(deletes) < 3 {
		select {
		case wr, ok := <-wch:
			if !ok || wr.Err() != nil {
				t.Fatalf("watch ended: %v", wr.Err())
			}
			for _, ev := range wr.Events {
				if ev.Type == mvccpb.DELETE {
					deletes = append(deletes, ev)
				}
			}
			if len(wr.Events) > 0 && wr.Events[0].Type == mvccpb.DELETE {
				responses++
			}
		case <-timeout:
			t.Fatalf("lease with TTL %ds not expired %v after its grant: %d DELETE events seen", ttl, time.Since(granted).Round(time.Millisecond), len(deletes))
		}
	}
	elapsed := time.Since(granted)
	t.Logf("a %ds lease expired %v after its grant", ttl, elapsed.Round(10*time.Millisecond))
	if elapsed < ttl*time.Second {
		t.Errorf("keys deleted %v after the grant, before the %ds TTL", elapsed, ttl)
	}
	if responses != 1 {
		t.Errorf("the expiry's DELETE events came in %d responses, want 1", responses)
	}
	for _, ev := range deletes {
		if ev.Kv.ModRevision != rev+1 {
			t.Errorf("DELETE of %s at revision %d, want all at %d (one revision)", ev.Kv.Key, ev.Kv.ModRevision, rev+1)
		}
	}
	got, err := cli.Get(ctx, "exp/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Kvs) != 1 || string(got.Kvs[0].Key) != "exp/keep" || got.Header.Revision != rev+1 {
		t.Errorf("after expiry: keys %v at revision %d, want only exp/keep at %d", got.Kvs, got.Header.Revision, rev+1)
	}
	// etcd answers TimeToLive of a lease that is gone with TTL -1, not an
	// error.
	ttlResp, err := cli.TimeToLive(ctx, lease.ID)
	switch {
	case err != nil:
		t.Errorf("TimeToLive of the expired lease: error %v, want TTL -1", err)
	case ttlResp.TTL != -1:
		t.Errorf("TimeToLive of the expired lease: TTL %d, want -1", ttlResp.TTL)
	}
	if n := metricValue(t, scrapeMetrics(t, m.ClientURL()), "etcd_debugging_server_lease_expired_total"); n != 1 {
		t.Errorf("etcd_debugging_server_lease_expired_total is %v after one lease expired", n)
	}
}

// TestKeepAlive keeps a lease alive with clientv3's KeepAlive for four
// times its TTL, then stops; the key outlives the TTL while kept alive and
// goes once it is not.
func TestKeepAlive(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)
	const ttl = 2
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "ka", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	kaCtx, stopKA := context.WithCancel(ctx)
	defer stopKA()
	var renewals atomic.Int64
	kach, err := cli.KeepAlive(kaCtx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range kach {
			renewals.Add(1)
		}
	}()
	start := time.Now()
	waitFor(t, 4*ttl*time.Second+expiryLimit, 200*time.Millisecond, "lease kept alive for 4 TTLs", func() (bool, string) {
		r, err := cli.Get(ctx, "ka")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) != 1 {
			t.Fatalf("key of a lease kept alive gone %v after the grant (TTL %ds, %d renewals)", time.Since(start).Round(time.Millisecond), ttl, renewals.Load())
		}
		return time.Since(start) > 4*ttl*time.Second, fmt.Sprintf("%d renewals", renewals.Load())
	})
	if n := renewals.Load(); n < 3 {
		t.Errorf("only %d keep-alive responses in %ds", n, 4*ttl)
	}
	ttlResp, err := cli.TimeToLive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ttlResp.GrantedTTL != ttl || ttlResp.TTL <= 0 || ttlResp.TTL > ttl {
		t.Errorf("TimeToLive while kept alive: TTL %d granted %d", ttlResp.TTL, ttlResp.GrantedTTL)
	}
	// Stop: now it expires.
	stopKA()
	stopped := time.Now()
	waitFor(t, ttl*time.Second+expiryLimit, 200*time.Millisecond, "lease expires once no longer kept alive", func() (bool, string) {
		r, err := cli.Get(ctx, "ka")
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Kvs) == 0, fmt.Sprintf("key still there %v after the last keep-alive", time.Since(stopped).Round(time.Millisecond))
	})
}

// TestLeaseKeptAliveAcrossRestart kills the member with SIGKILL while a
// client keeps a lease alive: the restarted member gives the lease its TTL
// again instead of expiring it, the client's keep-alives resume, and the key
// outlives two more TTLs.
func TestLeaseKeptAliveAcrossRestart(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 3*time.Minute)
	const ttl = 10
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "ka", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	var renewals atomic.Int64
	kach, err := cli.KeepAlive(ctx, lease.ID)
	if err != nil {
		t.Fatal(err)
	}
	closed := make(chan struct{})
	go func() {
		defer close(closed)
		for range kach {
			renewals.Add(1)
		}
	}()
	waitFor(t, 30*time.Second, 50*time.Millisecond, "first keep-alive", func() (bool, string) {
		return renewals.Load() > 0, "no keep-alive response yet"
	})

	m.Kill(t)
	m.Restart(t)
	restarted := time.Now()
	before := renewals.Load()
	var ttlResp *clientv3.LeaseTimeToLiveResponse
	waitFor(t, 10*time.Second, 100*time.Millisecond, "TimeToLive answers after the restart", func() (bool, string) {
		var err error
		ttlResp, err = cli.TimeToLive(ctx, lease.ID)
		return err == nil, fmt.Sprint(err)
	})
	if ttlResp.TTL <= 0 || ttlResp.GrantedTTL != ttl {
		t.Fatalf("after kill -9 and restart the lease has TTL %d (granted %d): the restart expired it", ttlResp.TTL, ttlResp.GrantedTTL)
	}
	waitFor(t, 30*time.Second, 50*time.Millisecond, "keep-alives resume after the restart", func() (bool, string) {
		select {
		case <-closed:
			t.Fatalf("clientv3 gave up the keep-alive across the restart (%d renewals)", renewals.Load())
		default:
		}
		return renewals.Load() > before, fmt.Sprintf("%d renewals, as before the restart", before)
	})
	waitFor(t, 2*ttl*time.Second+expiryLimit, 250*time.Millisecond, "key outlives two TTLs after the restart", func() (bool, string) {
		r, err := cli.Get(ctx, "ka")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) != 1 {
			t.Fatalf("key of a lease kept alive gone %v after the restart", time.Since(restarted).Round(time.Millisecond))
		}
		return time.Since(restarted) > 2*ttl*time.Second, "waiting"
	})
}

// TestLeaseExpiresAfterRestart: a lease nobody keeps alive still expires
// when the member is killed and restarted before its TTL is up.
func TestLeaseExpiresAfterRestart(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 3*time.Minute)
	const ttl = 5
	lease, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "orphan", "v", clientv3.WithLease(lease.ID)); err != nil {
		t.Fatal(err)
	}
	m.Kill(t)
	m.Restart(t)
	restarted := time.Now()
	cli = m.Client(t)
	r, err := cli.Get(ctx, "orphan")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 1 {
		t.Fatalf("the key of a %ds lease is gone right after the restart", ttl)
	}
	waitFor(t, ttl*time.Second+expiryLimit, 200*time.Millisecond, "orphaned lease expires after the restart", func() (bool, string) {
		r, err := cli.Get(ctx, "orphan")
		if err != nil {
			t.Fatal(err)
		}
		return len(r.Kvs) == 0, fmt.Sprintf("key still there %v after the restart", time.Since(restarted).Round(time.Millisecond))
	})
	t.Logf("a %ds lease granted before the restart expired %v after it", ttl, time.Since(restarted).Round(100*time.Millisecond))
	leases, err := cli.Leases(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(leases.Leases) != 0 {
		t.Errorf("leases after expiry: %v", leases.Leases)
	}
}
