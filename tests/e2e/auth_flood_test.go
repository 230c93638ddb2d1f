package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/cairn-io/cairn/tests/framework"
)

// latencies runs n alternating puts and linearizable gets and returns their
// sorted durations.
func latencies(t *testing.T, cli *clientv3.Client, n int) []time.Duration {
	t.Helper()
	out := make([]time.Duration, 0, n)
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		start := time.Now()
		var err error
		if i%2 == 0 {
			_, err = cli.Put(ctx, "/a/flood", "v")
		} else {
			_, err = cli.Get(ctx, "/a/flood")
		}
		out = append(out, time.Since(start))
		cancel()
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	slices.Sort(out)
	return out
}

func pct(d []time.Duration, p int) time.Duration { return d[len(d)*p/100] }

// fromSource makes a client's connections come from the local address
// ip (any 127.0.0.0/8 address reaches a member on 127.0.0.1), so that the
// member sees it as another source than the test's other clients.
func fromSource(ip string) grpc.DialOption {
	return grpc.WithContextDialer(func(ctx context.Context, addr string) (net.Conn, error) {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
		return d.DialContext(ctx, "tcp", addr)
	})
}

// TestAuthenticateFlood: a flood of logins with wrong passwords must not
// slow everyone else down, nor keep other clients from logging in.
// Password checks (bcrypt at the default cost, tens of milliseconds of CPU
// each) are bounded per member and shared fairly between client
// addresses, and a password checked recently is not checked again.
//
// The flood: half the flooders guess a new password for alice with every
// call from another address (127.0.0.2), the other half repeat one wrong
// password from the test's own address. Meanwhile other clients, from
// the test's address: alice keeps working through her clientv3 client,
// which logs in again whenever an auth change (made every few hundred
// milliseconds during the flood) makes its token old; users who never
// logged in before log in once each; all of them must succeed. Other
// clients' latency under the flood is compared with their latency before
// it, on the same machine, and must stay within a small factor of it.
func TestAuthenticateFlood(t *testing.T) {
	m := framework.Start(t, framework.Config{Security: rootSecurity})
	root := m.Client(t)
	setupAuth(t, root)
	const rounds, freshPerRound = 3, 4
	ctx := ctx10(t)
	for i := range rounds * freshPerRound {
		if _, err := root.UserAdd(ctx, fmt.Sprintf("fresh%d", i), "freshpw"); err != nil {
			t.Fatal(err)
		}
	}
	alice := authClient(t, []string{m.Endpoint()}, nil, "alice", "alicepw")

	latencies(t, alice, 50) // warm up

	// Rounds of quiet and flood, alternating; the least disturbed round of
	// each kind is compared, so that load from outside the test (other
	// processes on the machine) does not decide the outcome.
	const flooders = 16
	var failed, tooMany, other atomic.Int64
	var otherErr atomic.Value
	var freshOK, freshFailed, bumps int
	var freshErr error
	anon, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer anon.Close()
	flooding := func(round int, measure func()) {
		// Stopped in this order (deferred, so also when measure fails
		// the test): the side work, the flooders, their clients.
		var clis []*clientv3.Client
		defer func() {
			for _, cli := range clis {
				cli.Close()
			}
		}()
		stop := make(chan struct{})
		var wg sync.WaitGroup
		defer wg.Wait()
		defer close(stop)
		for f := range flooders {
			guess := f%2 == 0
			cfg := clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()}
			if guess {
				cfg.DialOptions = []grpc.DialOption{fromSource("127.0.0.2")}
			}
			cli, err := clientv3.New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			clis = append(clis, cli)
			wg.Add(1)
			go func() {
				defer wg.Done()
				for n := 0; ; n++ {
					select {
					case <-stop:
						return
					default:
					}
					password := "wrong"
					if guess {
						password = fmt.Sprintf("guess-%d-%d-%d", round, f, n)
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					_, err := cli.Authenticate(ctx, "alice", password)
					cancel()
					switch {
					case errors.Is(err, rpctypes.ErrAuthFailed):
						failed.Add(1)
					case errors.Is(err, rpctypes.ErrTooManyRequests):
						tooMany.Add(1)
					default:
						other.Add(1)
						otherErr.Store(err)
					}
				}
			}()
		}
		// Let the flood reach its steady state before measuring.
		start := failed.Load() + tooMany.Load()
		deadline := time.Now().Add(10 * time.Second)
		for failed.Load()+tooMany.Load() < start+100 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		// Meanwhile: auth changes that make every token old, and first
		// logins.
		measured := make(chan struct{})
		var side sync.WaitGroup
		defer side.Wait()
		defer close(measured)
		side.Add(2)
		go func() {
			defer side.Done()
			for i := 0; ; i++ {
				select {
				case <-measured:
					return
				case <-time.After(300 * time.Millisecond):
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := root.RoleAdd(ctx, fmt.Sprintf("bump-%d-%d", round, i))
				cancel()
				if err != nil {
					t.Errorf("auth change during the flood: %v", err)
					return
				}
				bumps++
			}
		}()
		go func() {
			defer side.Done()
			for i := range freshPerRound {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := anon.Authenticate(ctx, fmt.Sprintf("fresh%d", round*freshPerRound+i), "freshpw")
				cancel()
				if err != nil {
					freshFailed++
					freshErr = err
				} else {
					freshOK++
				}
			}
		}()
		measure()
	}
	var base, during []time.Duration
	for round := range rounds {
		b := latencies(t, alice, 200)
		var d []time.Duration
		flooding(round, func() { d = latencies(t, alice, 200) })
		t.Logf("round: without flood p50 %v p90 %v; with %d flooders p50 %v p90 %v", pct(b, 50), pct(b, 90), flooders, pct(d, 50), pct(d, 90))
		if base == nil || pct(b, 50) < pct(base, 50) {
			base = b
		}
		if during == nil || pct(d, 50) < pct(during, 50) {
			during = d
		}
	}
	t.Logf("best rounds: without flood p50 %v p90 %v; with flood p50 %v p90 %v; flood logins refused as wrong %d, as too many %d; first logins during the flood %d of %d; auth changes %d",
		pct(base, 50), pct(base, 90), pct(during, 50), pct(during, 90), failed.Load(), tooMany.Load(), freshOK, freshOK+freshFailed, bumps)
	if n := other.Load(); n > 0 {
		t.Errorf("%d logins failed otherwise, e.g. %v", n, otherErr.Load())
	}
	if failed.Load() == 0 {
		t.Errorf("no login was checked (and refused as wrong)")
	}
	if tooMany.Load() == 0 {
		t.Errorf("no login was refused as too many: the flood queued instead")
	}
	if freshFailed > 0 {
		t.Errorf("%d of %d first logins of other users failed during the flood, e.g. %v", freshFailed, freshOK+freshFailed, freshErr)
	}
	if bumps == 0 {
		t.Errorf("no auth change was made during the flood: alice's client never had to log in again")
	}
	// A relative bound: the flood may cost others a few times their
	// latency (it takes a CPU of a small machine), not the orders of
	// magnitude that unbounded bcrypt on every core costs.
	const factor = 8
	if p50, b50 := pct(during, 50), pct(base, 50); p50 > factor*b50+time.Millisecond {
		t.Errorf("median latency under the flood %v, more than %d times the %v without it", p50, factor, b50)
	}
	if p90, b90 := pct(during, 90), pct(base, 90); p90 > 2*factor*b90+2*time.Millisecond {
		t.Errorf("p90 latency under the flood %v, more than %d times the %v without it", p90, 2*factor, b90)
	}
}
