package portmux

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// waitTimeout bounds every wait; reaching it means the test failed.
const waitTimeout = 5 * time.Second

// newMux starts a mux on a fresh loopback port with the given sniff
// timeout (0 keeps the default) and returns it with its address.
func newMux(t *testing.T, sniff time.Duration) (*Mux, string) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m := New(l)
	if sniff > 0 {
		m.sniffTimout = sniff
	}
	served := make(chan error, 1)
	go func() { served <- m.Serve() }()
	t.Cleanup(func() {
		m.Close()
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve: %v", err)
			}
		case <-time.After(waitTimeout):
			t.Error("Serve did not return after Close")
		}
	})
	return m, l.Addr().String()
}

// serve runs a gRPC server with the health service on m.GRPC() and an HTTP
// server answering "hello" on m.HTTP().
func serve(t *testing.T, m *Mux) *grpc.Server {
	t.Helper()
	gs := grpc.NewServer()
	healthpb.RegisterHealthServer(gs, health.NewServer())
	go gs.Serve(m.GRPC())
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "hello %s", r.URL.Path)
	})}
	go hs.Serve(m.HTTP())
	t.Cleanup(func() {
		m.Close()
		gs.Stop()
		hs.Close()
	})
	return gs
}

func checkGRPC(ctx context.Context, addr string) error {
	cc, err := grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer cc.Close()
	resp, err := healthpb.NewHealthClient(cc).Check(ctx, &healthpb.HealthCheckRequest{})
	if err != nil {
		return fmt.Errorf("health check: %w", err)
	}
	if resp.Status != healthpb.HealthCheckResponse_SERVING {
		return fmt.Errorf("health status %v", resp.Status)
	}
	return nil
}

func checkHTTP(ctx context.Context, addr, path string) error {
	// A new connection per request, so that every request is routed.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK || string(body) != "hello "+path {
		return fmt.Errorf("GET %s: %s %q", path, resp.Status, body)
	}
	return nil
}

func TestGRPCAndHTTPShareAPort(t *testing.T) {
	m, addr := newMux(t, 0)
	serve(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()

	var wg sync.WaitGroup
	errs := make(chan error, 40)
	for i := range 20 {
		wg.Add(2)
		go func() { defer wg.Done(); errs <- checkGRPC(ctx, addr) }()
		go func() { defer wg.Done(); errs <- checkHTTP(ctx, addr, fmt.Sprintf("/%d", i)) }()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
}

// Connections that have not said anything yet are sniffed on their own
// goroutines: with a sniff timeout far longer than the test, clients that
// never speak do not delay anyone else.
func TestSilentClientsDoNotBlock(t *testing.T) {
	m, addr := newMux(t, time.Hour)
	serve(t, m)
	for range 5 {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := checkGRPC(ctx, addr); err != nil {
		t.Fatal(err)
	}
	if err := checkHTTP(ctx, addr, "/after-silence"); err != nil {
		t.Fatal(err)
	}
}

// expectClosedByServer fails unless the server closes c (the client reads
// EOF or a reset) before waitTimeout.
func expectClosedByServer(t *testing.T, c net.Conn, what string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(waitTimeout))
	n, err := c.Read(make([]byte, 1))
	var ne net.Error
	switch {
	case n > 0:
		t.Fatalf("%s: the server sent data", what)
	case errors.As(err, &ne) && ne.Timeout():
		t.Fatalf("%s: the server kept the connection open", what)
	case err == nil:
		t.Fatalf("%s: read returned nothing and no error", what)
	}
}

// No servers run here: a connection the mux handed to a virtual listener
// would stay open, waiting for an Accept that never comes.
func TestSilentClientTimesOut(t *testing.T) {
	_, addr := newMux(t, 50*time.Millisecond)
	for _, greeting := range []string{"", "P", "GE"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, greeting); err != nil {
			t.Fatal(err)
		}
		expectClosedByServer(t, c, fmt.Sprintf("silent after %q", greeting))
	}
}

// A connection that ends before its first three bytes is dropped, not
// routed. The sniff timeout is long, so it is the end that decides.
func TestShortConnectionDropped(t *testing.T) {
	m, addr := newMux(t, time.Hour)
	for _, greeting := range []string{"", "G", "PR"} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := io.WriteString(c, greeting); err != nil {
			t.Fatal(err)
		}
		if err := c.(*net.TCPConn).CloseWrite(); err != nil {
			t.Fatal(err)
		}
		expectClosedByServer(t, c, fmt.Sprintf("ended after %q", greeting))
	}

	// The mux still routes what comes next.
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := m.HTTP().Accept()
		if err == nil {
			accepted <- c
		}
	}()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\n")
	select {
	case sc := <-accepted:
		defer sc.Close()
		buf := make([]byte, 3)
		if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != "GET" {
			t.Fatalf("accepted a connection that starts with %q, %v", buf, err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("nothing accepted after the short connections")
	}
}

// The first bytes decide the listener, and the connection handed over
// still starts with them.
func TestRouting(t *testing.T) {
	m, addr := newMux(t, 0)
	if m.GRPC().Addr().String() != addr || m.HTTP().Addr().String() != addr {
		t.Fatalf("listener addresses %v and %v, want %v", m.GRPC().Addr(), m.HTTP().Addr(), addr)
	}
	for _, tc := range []struct {
		greeting string
		grpc     bool
	}{
		{h2Preface, true},
		{"PRI", true},
		{"GET / HTTP/1.1\r\nHost: x\r\n\r\n", false},
		{"PRX * HTTP/2.0", false},
		{"\x16\x03\x01", false}, // a TLS client hello goes to the HTTP side
	} {
		l := m.HTTP()
		if tc.grpc {
			l = m.GRPC()
		}
		got := make(chan net.Conn, 1)
		go func() {
			if c, err := l.Accept(); err == nil {
				got <- c
			}
		}()
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, tc.greeting)
		select {
		case sc := <-got:
			buf := make([]byte, len(tc.greeting))
			if _, err := io.ReadFull(sc, buf); err != nil || string(buf) != tc.greeting {
				t.Errorf("%q: the routed connection reads %q, %v", tc.greeting, buf, err)
			}
			sc.Close()
		case <-time.After(waitTimeout):
			t.Fatalf("%q: not routed to the %s listener", tc.greeting, map[bool]string{true: "gRPC", false: "HTTP"}[tc.grpc])
		}
		c.Close()
	}
}

func TestCloseEndsAccept(t *testing.T) {
	m, addr := newMux(t, 0)
	errs := make(chan error, 2)
	for _, l := range []net.Listener{m.GRPC(), m.HTTP()} {
		go func() {
			c, err := l.Accept()
			if c != nil {
				c.Close()
			}
			errs <- err
		}()
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for range 2 {
		select {
		case err := <-errs:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("Accept after Close: %v, want net.ErrClosed", err)
			}
		case <-time.After(waitTimeout):
			t.Fatal("Accept did not return after Close")
		}
	}
	for _, l := range []net.Listener{m.GRPC(), m.HTTP()} {
		if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept on a closed mux: %v", err)
		}
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if c, err := net.DialTimeout("tcp", addr, waitTimeout); err == nil {
		c.Close()
		t.Fatal("the port still accepts connections after Close")
	}
}

// A server shutting down closes its listener: that ends the server (gRPC's
// Stop waits for its Accept to return) while the port keeps serving the
// other protocol, and connections of the stopped one are closed.
func TestServerStopLeavesOtherProtocol(t *testing.T) {
	m, addr := newMux(t, 0)
	gs := serve(t, m)
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	// Once a call has gone through, the server is in its Accept loop.
	if err := checkGRPC(ctx, addr); err != nil {
		t.Fatal(err)
	}
	stopped := make(chan struct{})
	go func() { gs.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(waitTimeout):
		t.Fatal("grpc.Server.Stop did not return while the mux was open")
	}
	accepted := make(chan error, 1)
	go func() {
		c, err := m.GRPC().Accept()
		if c != nil {
			c.Close()
		}
		accepted <- err
	}()
	select {
	case err := <-accepted:
		if !errors.Is(err, net.ErrClosed) {
			t.Fatalf("Accept on the closed gRPC listener: %v", err)
		}
	case <-time.After(waitTimeout):
		t.Fatal("Accept on the closed gRPC listener blocked")
	}
	if err := checkHTTP(ctx, addr, "/still-here"); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, h2Preface)
	expectClosedByServer(t, c, "gRPC after its server stopped")
}
