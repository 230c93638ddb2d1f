package auth

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// passwordStore is an enabled store with root (password "pw") and the
// given bounds.
func passwordStore(t *testing.T, cfg Config) (*Store, *pebble.DB) {
	t.Helper()
	db := openMem(t)
	cfg.BcryptCost = 4
	s := New(cfg)
	if err := s.Load(db); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	addUser(t, s, db, "root", "pw")
	apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserGrantRole(b, &pb.AuthUserGrantRoleRequest{User: "root", Role: "root"})
	})
	if err := apply(t, db, s.ApplyEnable); err != nil {
		t.Fatal(err)
	}
	return s, db
}

// from is a context whose request comes from source.
func from(ctx context.Context, source string) context.Context {
	return WithCredentials(ctx, Credentials{Source: source}, false)
}

// waitInLine polls until n checks wait for a slot.
func waitInLine(t *testing.T, p *passwordChecker, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		w := p.waiting
		p.mu.Unlock()
		if w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checks wait, want %d", w, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// Password checks beyond the running and waiting bounds are refused at
// once instead of queueing.
func TestCheckPasswordBounded(t *testing.T) {
	s, _ := passwordStore(t, Config{MaxConcurrentChecks: 1, MaxWaitingChecks: 1, MaxChecksPerSource: 8})
	// Take the only slot, so that checks can only wait.
	s.pw.slots <- struct{}{}
	errs := make(chan error, 8)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.CheckPassword(from(ctx, fmt.Sprint("10.0.0.", i)), "root", fmt.Sprint("wrong", i))
			errs <- err
		}()
	}
	// Seven of the eight are refused while one waits.
	for range 7 {
		if err := <-errs; !errors.Is(err, ErrTooManyRequests) {
			t.Fatalf("check beyond the bound: %v, want ErrTooManyRequests", err)
		}
	}
	if err := s.Precheck(from(ctx, "10.0.1.1"), "root", "another"); !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("Precheck with every slot running and the line full: %v", err)
	}
	cancel()
	if err := <-errs; !errors.Is(err, context.Canceled) {
		t.Fatalf("waiting check: %v, want context.Canceled", err)
	}
	wg.Wait()
	<-s.pw.slots
	if _, err := s.CheckPassword(context.Background(), "root", "pw"); err != nil {
		t.Fatalf("check with a free slot: %v", err)
	}
}

// One client address cannot take every turn: its checks beyond its share
// are refused, while another address still gets in line and is served.
func TestCheckPasswordSharedBySource(t *testing.T) {
	s, _ := passwordStore(t, Config{MaxConcurrentChecks: 1, MaxWaitingChecks: 4, MaxChecksPerSource: 2})
	s.pw.slots <- struct{}{}
	ctx := context.Background()
	flood := make(chan error, 4)
	for i := range 4 {
		go func() {
			_, err := s.CheckPassword(from(ctx, "192.0.2.1"), "root", fmt.Sprint("guess", i))
			flood <- err
		}()
	}
	for range 2 {
		if err := <-flood; !errors.Is(err, ErrTooManyRequests) {
			t.Fatalf("a flooding source beyond its share: %v", err)
		}
	}
	if err := s.Precheck(from(ctx, "192.0.2.1"), "root", "pw"); !errors.Is(err, ErrTooManyRequests) {
		t.Errorf("Precheck for the flooding source: %v", err)
	}
	if err := s.Precheck(from(ctx, "192.0.2.2"), "root", "pw"); err != nil {
		t.Errorf("Precheck for another source: %v", err)
	}
	legit := make(chan error, 1)
	go func() {
		_, err := s.CheckPassword(from(ctx, "192.0.2.2"), "root", "pw")
		legit <- err
	}()
	waitInLine(t, s.pw, 3) // two of the flood's, and the other source's
	<-s.pw.slots
	if err := <-legit; err != nil {
		t.Errorf("another source's check: %v", err)
	}
	for range 2 {
		if err := <-flood; !errors.Is(err, ErrAuthFailed) {
			t.Errorf("a flooding source's admitted check: %v", err)
		}
	}
}

// A checked password is remembered: checking it again, right or wrong,
// needs no turn at bcrypt, until the user's password changes. Concurrent
// checks of the same password share one comparison.
func TestCheckPasswordRemembered(t *testing.T) {
	s, db := passwordStore(t, Config{MaxConcurrentChecks: 1, MaxWaitingChecks: 1, MaxChecksPerSource: 1})
	ctx := context.Background()
	if _, err := s.CheckPassword(ctx, "root", "pw"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckPassword(ctx, "root", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Fatal(err)
	}
	// With the only slot taken, a check that needed bcrypt would wait.
	s.pw.slots <- struct{}{}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.CheckPassword(short, "root", "pw"); err != nil {
		t.Errorf("remembered password: %v", err)
	}
	if _, err := s.CheckPassword(short, "root", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("remembered wrong password: %v", err)
	}
	if err := s.Precheck(ctx, "root", "pw"); err != nil {
		t.Errorf("Precheck for a remembered password: %v", err)
	}
	if err := s.Precheck(ctx, "root", "wrong"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Precheck for a remembered wrong password: %v", err)
	}

	// Five callers of one source with the same wrong password share one
	// check (the source's share is one).
	errs := make(chan error, 5)
	for range 5 {
		go func() {
			_, err := s.CheckPassword(ctx, "root", "same guess")
			errs <- err
		}()
	}
	waitInLine(t, s.pw, 1)
	<-s.pw.slots
	for range 5 {
		if err := <-errs; !errors.Is(err, ErrAuthFailed) {
			t.Errorf("shared check: %v, want ErrAuthFailed", err)
		}
	}

	// A new password forgets the old results.
	h, err := s.HashPassword(ctx, "wrong")
	if err != nil {
		t.Fatal(err)
	}
	if err := apply(t, db, func(b *pebble.Batch) error {
		return s.ApplyUserChangePassword(b, &pb.AuthUserChangePasswordRequest{Name: "root", HashedPassword: h})
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CheckPassword(ctx, "root", "pw"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("the old password after a change: %v", err)
	}
	if _, err := s.CheckPassword(ctx, "root", "wrong"); err != nil {
		t.Errorf("the new password, once a wrong one: %v", err)
	}
}

// The caches stay within their bounds, and a flood of wrong passwords
// does not push out the remembered right ones.
func TestPasswordCacheBounded(t *testing.T) {
	p := newPasswordChecker(1, 1, 1)
	now := time.Unix(1000, 0)
	p.now = func() time.Time { return now }
	hash := []byte("h")
	p.ok.put(p.key("alice", "right"), hash, now)
	for i := range passwordCacheFailures + 100 {
		p.bad.put(p.key("alice", fmt.Sprint(i)), hash, now)
	}
	if len(p.bad.m) != passwordCacheFailures {
		t.Errorf("%d failures kept, want %d", len(p.bad.m), passwordCacheFailures)
	}
	if ok, hit := p.cachedLocked(p.key("alice", "right"), hash); !ok || !hit {
		t.Errorf("the right password was forgotten")
	}
	now = now.Add(passwordCacheTTL)
	if _, hit := p.cachedLocked(p.key("alice", "right"), hash); hit {
		t.Errorf("a result was remembered past its time")
	}
}
