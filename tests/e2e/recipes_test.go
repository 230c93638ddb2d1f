package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.etcd.io/etcd/client/v3/concurrency"

	"github.com/cairn-io/cairn/tests/framework"
)

// etcd's client recipes (go.etcd.io/etcd/client/v3/concurrency) against
// cairn: they are built on leases, watches, txns with revision compares and
// key ordering by create revision, so they exercise those together.

// TestSession: a session's lease outlives its TTL while the session lives,
// Close revokes it (deleting what was attached), and losing the lease to
// someone else ends the session.
func TestSession(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)

	s, err := concurrency.NewSession(cli, concurrency.WithTTL(2))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Put(ctx, "session/k", "v", clientv3.WithLease(s.Lease())); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitFor(t, 8*time.Second+expiryLimit, 200*time.Millisecond, "a session outlives four TTLs", func() (bool, string) {
		r, err := cli.Get(ctx, "session/k")
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Kvs) != 1 {
			t.Fatalf("the session's key vanished %v into a 2s-TTL session", time.Since(start).Round(time.Millisecond))
		}
		return time.Since(start) > 8*time.Second, "waiting"
	})
	if err := s.Close(); err != nil {
		t.Fatalf("session close: %v", err)
	}
	r, err := cli.Get(ctx, "session/k")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Kvs) != 0 {
		t.Errorf("Close did not revoke the session's lease: the key is still there")
	}

	// Revoked by another client: the session notices.
	s2, err := concurrency.NewSession(cli, concurrency.WithTTL(5))
	if err != nil {
		t.Fatal(err)
	}
	other := m.Client(t)
	if _, err := other.Revoke(ctx, s2.Lease()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-s2.Done():
	case <-time.After(5*time.Second + expiryLimit):
		t.Fatal("a session whose lease was revoked elsewhere did not end")
	}
}

// TestMutex: several clients, each with its own session, take a
// concurrency.Mutex in a loop and read-modify-write a counter in the store
// inside it. An in-process detector counts critical sections that overlap,
// and the final counter must equal the number of critical sections.
func TestMutex(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	ctx := deadlineCtx(t, 3*time.Minute)
	const clients, rounds = 5, 20
	if _, err := m.Client(t).Put(ctx, "counter", "0"); err != nil {
		t.Fatal(err)
	}
	var inside, overlaps atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, clients)
	for c := range clients {
		cli := m.Client(t)
		s, err := concurrency.NewSession(cli, concurrency.WithTTL(10))
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		mu := concurrency.NewMutex(s, "/lock/")
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range rounds {
				if err := mu.Lock(ctx); err != nil {
					errs <- fmt.Errorf("client %d round %d: lock: %w", c, i, err)
					return
				}
				if inside.Add(1) != 1 {
					overlaps.Add(1)
				}
				r, err := cli.Get(ctx, "counter")
				if err == nil && len(r.Kvs) != 1 {
					err = fmt.Errorf("counter missing")
				}
				var n int
				if err == nil {
					n, err = strconv.Atoi(string(r.Kvs[0].Value))
				}
				if err == nil {
					// Hold the lock across a scheduling point, so that a
					// broken lock shows up as an overlap or a lost update.
					time.Sleep(time.Duration(rand.IntN(3)) * time.Millisecond)
					_, err = cli.Put(ctx, "counter", strconv.Itoa(n+1))
				}
				inside.Add(-1)
				if uerr := mu.Unlock(ctx); err == nil {
					err = uerr
				}
				if err != nil {
					errs <- fmt.Errorf("client %d round %d: %w", c, i, err)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := overlaps.Load(); n != 0 {
		t.Errorf("%d critical sections overlapped", n)
	}
	r, err := m.Client(t).Get(ctx, "counter")
	if err != nil {
		t.Fatal(err)
	}
	if got := string(r.Kvs[0].Value); got != strconv.Itoa(clients*rounds) {
		t.Errorf("counter is %s after %d locked increments: updates were lost", got, clients*rounds)
	}
	left, err := m.Client(t).Get(ctx, "/lock/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		t.Fatal(err)
	}
	if left.Count != 0 {
		t.Errorf("%d lock keys left after every client unlocked", left.Count)
	}
}

// TestElection: a leader proclaims values that an observer sees in order;
// a second candidate's Campaign blocks until the leader resigns, and the
// observer then sees the new leader's value.
func TestElection(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	ctx := deadlineCtx(t, 2*time.Minute)
	session := func() *concurrency.Session {
		s, err := concurrency.NewSession(m.Client(t), concurrency.WithTTL(10))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	e1 := concurrency.NewElection(session(), "/election/")
	e2 := concurrency.NewElection(session(), "/election/")
	observer := concurrency.NewElection(session(), "/election/")

	if err := e1.Campaign(ctx, "one"); err != nil {
		t.Fatal(err)
	}
	obsCtx, stopObs := context.WithCancel(ctx)
	defer stopObs()
	observed := observer.Observe(obsCtx)
	expect := func(want string) {
		t.Helper()
		select {
		case r, ok := <-observed:
			if !ok {
				t.Fatalf("Observe ended while waiting for %q", want)
			}
			if got := string(r.Kvs[0].Value); got != want {
				t.Fatalf("Observe saw %q, want %q", got, want)
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("Observe did not see %q", want)
		}
	}
	expect("one")

	campaigned := make(chan error, 1)
	go func() { campaigned <- e2.Campaign(ctx, "two") }()
	for _, v := range []string{"one-a", "one-b", "one-c"} {
		if err := e1.Proclaim(ctx, v); err != nil {
			t.Fatal(err)
		}
		expect(v)
	}
	select {
	case err := <-campaigned:
		t.Fatalf("a second candidate won (%v) while the first still led", err)
	default:
	}
	leader, err := observer.Leader(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got := string(leader.Kvs[0].Value); got != "one-c" {
		t.Errorf("Leader is %q, want one-c", got)
	}

	if err := e1.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-campaigned:
		if err != nil {
			t.Fatalf("second candidate: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the second candidate did not win after the leader resigned")
	}
	expect("two")
	if err := e2.Proclaim(ctx, "two-a"); err != nil {
		t.Fatal(err)
	}
	expect("two-a")
	if err := e1.Proclaim(ctx, "stale"); err == nil {
		t.Error("a resigned leader could still proclaim")
	}
	if err := e2.Resign(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := observer.Leader(ctx); err != concurrency.ErrElectionNoLeader {
		t.Errorf("Leader after both resigned: %v, want ErrElectionNoLeader", err)
	}
}

// TestSTM: concurrent transfers between accounts in software transactional
// memory (serializable snapshot isolation) keep the total, and every
// consistent read of all accounts sees that total.
func TestSTM(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	ctx := deadlineCtx(t, 3*time.Minute)
	const accounts, initial, workers, transfers = 6, 100, 4, 40
	setup := m.Client(t)
	for i := range accounts {
		if _, err := setup.Put(ctx, fmt.Sprintf("acct/%d", i), strconv.Itoa(initial)); err != nil {
			t.Fatal(err)
		}
	}
	total := func(r *clientv3.GetResponse) (int, error) {
		sum := 0
		for _, kv := range r.Kvs {
			n, err := strconv.Atoi(string(kv.Value))
			if err != nil {
				return 0, err
			}
			if n < 0 {
				return 0, fmt.Errorf("account %s is negative: %d", kv.Key, n)
			}
			sum += n
		}
		return sum, nil
	}

	// First a conflict made on purpose: a transfer reads account 0, a
	// second transfer from account 0 commits, and only then does the first
	// try to commit. It must be refused and run again on the new balance.
	read, changed := make(chan struct{}), make(chan struct{})
	attempts := 0
	firstDone := make(chan error, 1)
	go func() {
		_, err := concurrency.NewSTM(m.Client(t), func(s concurrency.STM) error {
			attempts++
			a, _ := strconv.Atoi(s.Get("acct/0"))
			b, _ := strconv.Atoi(s.Get("acct/1"))
			if attempts == 1 {
				close(read)
				<-changed
			}
			s.Put("acct/0", strconv.Itoa(a-10))
			s.Put("acct/1", strconv.Itoa(b+10))
			return nil
		}, concurrency.WithAbortContext(ctx))
		firstDone <- err
	}()
	<-read
	if _, err := concurrency.NewSTM(setup, func(s concurrency.STM) error {
		a, _ := strconv.Atoi(s.Get("acct/0"))
		c, _ := strconv.Atoi(s.Get("acct/2"))
		s.Put("acct/0", strconv.Itoa(a-5))
		s.Put("acct/2", strconv.Itoa(c+5))
		return nil
	}, concurrency.WithAbortContext(ctx)); err != nil {
		t.Fatal(err)
	}
	close(changed)
	if err := <-firstDone; err != nil {
		t.Fatal(err)
	}
	r, err := setup.Get(ctx, "acct/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if attempts != 2 || string(r.Kvs[0].Value) != strconv.Itoa(initial-15) {
		t.Fatalf("a transfer whose read was changed under it ran %d times and left account 0 at %s; want 2 runs and %d",
			attempts, r.Kvs[0].Value, initial-15)
	}

	stop := make(chan struct{})
	var auditorErr atomic.Value
	var audits atomic.Int64
	go func() {
		cli := m.Client(t)
		for {
			select {
			case <-stop:
				return
			default:
			}
			r, err := cli.Get(ctx, "acct/", clientv3.WithPrefix())
			if err != nil {
				return
			}
			if sum, err := total(r); err != nil || sum != accounts*initial {
				auditorErr.Store(fmt.Sprintf("at revision %d the accounts hold %d (%v), want %d", r.Header.Revision, sum, err, accounts*initial))
				return
			}
			audits.Add(1)
		}
	}()

	var wg sync.WaitGroup
	errs := make(chan error, workers)
	var conflicts atomic.Int64
	for w := range workers {
		cli := m.Client(t)
		wg.Add(1)
		go func() {
			defer wg.Done()
			rnd := rand.New(rand.NewPCG(uint64(w), 1))
			for range transfers {
				from, to := rnd.IntN(accounts), rnd.IntN(accounts-1)
				if to >= from {
					to++
				}
				amount := 1 + rnd.IntN(30)
				attempts := 0
				_, err := concurrency.NewSTM(cli, func(s concurrency.STM) error {
					attempts++
					a, err1 := strconv.Atoi(s.Get(fmt.Sprintf("acct/%d", from)))
					b, err2 := strconv.Atoi(s.Get(fmt.Sprintf("acct/%d", to)))
					if err1 != nil || err2 != nil {
						return fmt.Errorf("bad balance: %v %v", err1, err2)
					}
					if a < amount {
						return nil
					}
					s.Put(fmt.Sprintf("acct/%d", from), strconv.Itoa(a-amount))
					s.Put(fmt.Sprintf("acct/%d", to), strconv.Itoa(b+amount))
					return nil
				}, concurrency.WithAbortContext(ctx))
				conflicts.Add(int64(attempts - 1))
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(stop)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if v := auditorErr.Load(); v != nil {
		t.Error(v)
	}
	r, err = setup.Get(ctx, "acct/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	if sum, err := total(r); err != nil || sum != accounts*initial {
		t.Errorf("after %d transfers the accounts hold %d (%v), want %d", workers*transfers, sum, err, accounts*initial)
	}
	t.Logf("%d transfers, %d retried after a conflict, %d consistent audits", workers*transfers, conflicts.Load(), audits.Load())
	if conflicts.Load() == 0 {
		t.Logf("no transfer conflicted: the workers did not contend")
	}
}
