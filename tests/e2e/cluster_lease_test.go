package e2e

import (
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// leasesAcrossLeaderKill grants two leases and attaches a key to each, keeps
// one alive through a follower (which forwards renewals to the leader), and
// kills the leader with SIGKILL. The new leader must not expire the lease kept alive (watched for
// three TTLs after the kill), and must still expire the other: not before
// its TTL has run since it was granted, and within the TTL plus a few
// election timeouts after the kill. The killed member then returns.
func leasesAcrossLeaderKill(t *testing.T, c *framework.Cluster) {
	const ttl = 3 // seconds
	cli := c.Client(t)
	ctx := testCtx(t, 2*time.Minute)

	kept, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	old := c.Leader(t)
	var follower *framework.Member
	for _, m := range c.Members {
		if m != old {
			follower = m
			break
		}
	}
	ka, err := follower.Client(t).KeepAlive(ctx, kept.ID)
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		for range ka {
		}
	}()
	freeSent := time.Now()
	free, err := cli.Grant(ctx, ttl)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "lease/kept", "x", clientv3.WithLease(kept.ID)); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "lease/free", "x", clientv3.WithLease(free.ID)); err != nil {
		t.Fatal(err)
	}

	killedAt := time.Now()
	old.Kill(t)
	leader := c.Leader(t)
	lcli := leader.Client(t)

	// lease reports a lease's remaining TTL on the new leader (-1 once it
	// is gone) and whether its key is there.
	lease := func(id clientv3.LeaseID, key string) (int64, bool) {
		t.Helper()
		resp, err := lcli.TimeToLive(ctx, id)
		ttl := int64(-1)
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
		case err != nil:
			t.Fatalf("time-to-live of lease %x %v after the kill: %v", id, time.Since(killedAt).Round(time.Millisecond), err)
		default:
			ttl = resp.TTL
		}
		get, err := lcli.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		// Revocation removes the lease and its keys at once.
		if (ttl == -1) == (len(get.Kvs) == 1) {
			t.Fatalf("lease %x has TTL %d, its key %s: %v", id, ttl, key, get.Kvs)
		}
		return ttl, len(get.Kvs) == 1
	}
	var freeGone time.Time
	for time.Since(killedAt) < 3*ttl*time.Second || freeGone.IsZero() {
		if ttl, _ := lease(kept.ID, "lease/kept"); ttl <= 0 {
			t.Fatalf("the lease kept alive expired (TTL %d) %v after the leader was killed", ttl, time.Since(killedAt).Round(time.Millisecond))
		}
		if freeGone.IsZero() {
			if _, there := lease(free.ID, "lease/free"); !there {
				freeGone = time.Now()
				if early := freeSent.Add(ttl * time.Second); freeGone.Before(early) {
					t.Fatalf("the lease nobody kept alive was revoked %v after it was granted, before its TTL of %ds", freeGone.Sub(freeSent), ttl)
				}
				t.Logf("the lease nobody kept alive was revoked %v after the leader was killed", freeGone.Sub(killedAt).Round(time.Millisecond))
			} else if limit := ttl*time.Second + 5*electionTimeout; time.Since(killedAt) > limit {
				t.Fatalf("the lease nobody kept alive still exists %v after the leader was killed (TTL %ds)", time.Since(killedAt).Round(time.Millisecond), ttl)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	if _, err := cli.Revoke(ctx, kept.ID); err != nil {
		t.Fatal(err)
	}
	c.Restart(t)
	waitSameHash(t, c.Members)
	// The returning member holds neither lease.
	for _, m := range c.Members {
		leases, err := m.Client(t).Leases(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range leases.Leases {
			if l.ID == kept.ID || l.ID == free.ID {
				t.Fatalf("%s still lists lease %x", m.Name(), l.ID)
			}
		}
	}
}
