package e2e

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc/metadata"

	"github.com/cairn-io/cairn/tests/framework"
)

// tlsMemberArgs are the flags of a member whose client port needs a client
// certificate signed by ca.
func tlsMemberArgs(t *testing.T, ca *testCA, name string) []string {
	cert, key := ca.issue(t, name)
	return []string{
		"--cert-file", cert, "--key-file", key, "--trusted-ca-file", ca.File, "--client-cert-auth",
		"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca.File, "--peer-client-cert-auth",
	}
}

func dialFails(t *testing.T, what string, cfg clientv3.Config) {
	t.Helper()
	cfg.DialTimeout = 2 * time.Second
	cfg.Logger = zap.NewNop()
	cli, err := clientv3.New(cfg)
	if err == nil {
		ctx := ctx10(t)
		_, err = cli.Get(ctx, "k")
		cli.Close()
	}
	if err == nil {
		t.Errorf("%s: a request succeeded", what)
	}
}

// TestTLSClientPort serves clients over TLS with --client-cert-auth: a
// client with a certificate from the trusted CA connects (and acts as the
// user its CN names once auth is on), everything else is refused; gRPC,
// the JSON gateway and the HTTP endpoints share the port; etcdctl and
// cairn's client commands connect with --cacert, --cert and --key.
func TestTLSClientPort(t *testing.T) {
	ca := newTestCA(t, "ca")
	rogue := newTestCA(t, "rogue")
	rootCert, rootKey := ca.issue(t, "root")
	aliceCert, aliceKey := ca.issue(t, "alice")
	rogueCert, rogueKey := rogue.issue(t, "root")
	m := framework.Start(t, framework.Config{
		Args:     tlsMemberArgs(t, ca, "server"),
		Security: framework.Security{ClientTLS: ca.clientTLS(t, rootCert, rootKey), PeerTLS: true, Username: "root", Password: "rootpw"},
	})
	if !strings.HasPrefix(m.ClientURL(), "https://") {
		t.Fatalf("client URL %s", m.ClientURL())
	}
	root := m.Client(t)
	ctx := ctx10(t)
	if _, err := root.Put(ctx, "k1", "v"); err != nil {
		t.Fatal(err)
	}

	// Refused: no certificate, a certificate from another CA, plain text.
	dialFails(t, "no client certificate", clientv3.Config{Endpoints: []string{m.Endpoint()}, TLS: ca.clientTLS(t, "", "")})
	dialFails(t, "certificate from another CA", clientv3.Config{Endpoints: []string{m.Endpoint()}, TLS: ca.clientTLS(t, rogueCert, rogueKey)})
	dialFails(t, "plain text", clientv3.Config{Endpoints: []string{m.Endpoint()}})
	conn, err := net.DialTimeout("tcp", m.Endpoint(), time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(conn, "GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
	if reply, _ := io.ReadAll(conn); bytes.Contains(reply, []byte("200 OK")) {
		t.Errorf("plain-text HTTP on the TLS port was served: %q", reply)
	}
	conn.Close()

	// HTTP and the JSON gateway on the same TLS port.
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, aliceCert, aliceKey), ForceAttemptHTTP2: true}}
	resp, err := hc.Get(m.ClientURL() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		t.Errorf("/health over TLS: %d %s", resp.StatusCode, body)
	}
	resp, err = hc.Post(m.ClientURL()+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"azE="}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"value":"dg=="`)) {
		t.Errorf("gateway range over TLS: %d %s", resp.StatusCode, body)
	}

	// The command-line clients.
	tlsFlags := []string{"--cacert", ca.File, "--cert", rootCert, "--key", rootKey}
	out, errOut, err := framework.Etcdctl(t, []string{m.Endpoint()}, append(tlsFlags, "get", "k1", "--print-value-only")...)
	if err != nil || out != "v\n" {
		t.Errorf("etcdctl over TLS: %q %q %v", out, errOut, err)
	}
	out, errOut, err = framework.Cairn(t, append(append([]string{"get", "--endpoints", m.Endpoint()}, tlsFlags...), "k1", "--print-value-only")...)
	if err != nil || out != "v\n" {
		t.Errorf("cairn get over TLS: %q %q %v", out, errOut, err)
	}
	skip := []string{"--insecure-skip-tls-verify", "--cert", rootCert, "--key", rootKey}
	out, errOut, err = framework.Cairn(t, append(append([]string{"get", "--endpoints", m.Endpoint()}, skip...), "k1", "--print-value-only")...)
	if err != nil || out != "v\n" {
		t.Errorf("cairn get --insecure-skip-tls-verify: %q %q %v", out, errOut, err)
	}
	if _, _, err := framework.Cairn(t, "get", "--endpoints", m.Endpoint(), "--cacert", ca.File, "k1"); err == nil {
		t.Errorf("cairn get without a client certificate succeeded")
	}

	// With auth on, a request without a token acts as its certificate's CN.
	setupAuth(t, root)
	alice, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second,
		TLS: ca.clientTLS(t, aliceCert, aliceKey), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	ctx = ctx10(t)
	if _, err := alice.Get(ctx, "k1"); err != nil {
		t.Errorf("alice by certificate reading k1: %v", err)
	}
	if _, err := alice.Put(ctx, "k1", "x"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice by certificate writing k1: %v", err)
	}
	if _, err := alice.UserList(ctx); !errors.Is(err, rpctypes.ErrPermissionDenied) {
		t.Errorf("alice by certificate listing users: %v", err)
	}
	rootByCert, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second,
		TLS: ca.clientTLS(t, rootCert, rootKey), Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer rootByCert.Close()
	if _, err := rootByCert.UserList(ctx); err != nil {
		t.Errorf("root by certificate listing users: %v", err)
	}
	out, errOut, err = framework.Etcdctl(t, []string{m.Endpoint()}, "--cacert", ca.File, "--cert", aliceCert, "--key", aliceKey, "put", "k1", "x")
	if err == nil || !strings.Contains(errOut, "permission denied") {
		t.Errorf("etcdctl as alice by certificate: %q %q %v", out, errOut, err)
	}
	// The v2 API takes the certificate's CN as the user too, unless the
	// request has basic auth.
	v2 := func(method, target, user, password string) int {
		t.Helper()
		req, _ := http.NewRequest(method, m.ClientURL()+target, nil)
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := v2("PUT", "/v2/keys/a/tls?value=x", "", ""); code != http.StatusCreated {
		t.Errorf("v2 put of /a/tls as alice by certificate: %d", code)
	}
	if code := v2("PUT", "/v2/keys/b?value=x", "", ""); code != http.StatusUnauthorized {
		t.Errorf("v2 put of /b as alice by certificate: %d", code)
	}
	if code := v2("PUT", "/v2/keys/b?value=x", "root", "rootpw"); code != http.StatusCreated {
		t.Errorf("v2 put of /b as root by basic auth over alice's connection: %d", code)
	}
	if code := v2("GET", "/v2/keys/a/tls", "alice", "wrong"); code != http.StatusUnauthorized {
		t.Errorf("v2 get with a wrong password over alice's connection: %d", code)
	}
	// Health checks do not need a user.
	resp, err = hc.Get(m.ClientURL() + "/health")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Contains(body, []byte(`"health":"true"`)) {
		t.Errorf("/health with auth on: %d %s", resp.StatusCode, body)
	}
	// The gateway's own certificate names no user: its requests need a
	// token.
	resp, err = hc.Post(m.ClientURL()+"/v3/kv/range", "application/json", strings.NewReader(`{"key":"azE="}`))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK || !bytes.Contains(body, []byte("user name is empty")) {
		t.Errorf("gateway range without a token: %d %s", resp.StatusCode, body)
	}
}

// TestTLSPeers runs a three-member cluster whose peers authenticate each
// other with certificates; the peer port refuses a client without one from
// the peer CA.
func TestTLSPeers(t *testing.T) {
	ca := newTestCA(t, "peer-ca")
	rogue := newTestCA(t, "rogue")
	cert, key := ca.issue(t, "member")
	c := framework.StartCluster(t, 3, framework.Config{
		Args: []string{
			"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca.File, "--peer-client-cert-auth",
		},
		Security: framework.Security{PeerTLS: true},
	})
	cli := c.Client(t)
	ctx := ctx10(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if !strings.HasPrefix(m.PeerURL(), "https://") {
			t.Fatalf("peer URL %s", m.PeerURL())
		}
		mc := m.Client(t)
		if resp, err := mc.Get(ctx, "k"); err != nil || len(resp.Kvs) != 1 {
			t.Errorf("member %s: %v %v", m.Name(), resp, err)
		}
	}
	peerURL := c.Members[0].PeerURL() + "/members"
	get := func(cfg *tls.Config) error {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
		resp, err := hc.Get(peerURL)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	}
	if err := get(ca.clientTLS(t, cert, key)); err != nil {
		t.Errorf("peer request with the peer certificate: %v", err)
	}
	rc, rk := rogue.issue(t, "member")
	if err := get(ca.clientTLS(t, rc, rk)); err == nil {
		t.Errorf("peer request with a certificate from another CA succeeded")
	}
	if err := get(ca.clientTLS(t, "", "")); err == nil {
		t.Errorf("peer request without a certificate succeeded")
	}
	if resp, err := http.Get(strings.Replace(peerURL, "https://", "http://", 1)); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain-text peer request was served")
		}
	}

	// A simple token made on one member is known to the others: the login
	// went through raft.
	if _, err := cli.Put(ctx, "k1", "v"); err != nil {
		t.Fatal(err)
	}
	setupAuth(t, cli)
	ctx = ctx10(t)
	login, err := cli.Authenticate(ctx, "alice", "alicepw")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		anon, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
		if err != nil {
			t.Fatal(err)
		}
		defer anon.Close()
		tctx := metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, login.Token))
		if resp, err := anon.Get(tctx, "k1"); err != nil || len(resp.Kvs) != 1 {
			t.Errorf("alice's simple token on %s: %v %v", m.Name(), resp, err)
		}
		if _, err := anon.Get(tctx, "k"); !errors.Is(err, rpctypes.ErrPermissionDenied) {
			t.Errorf("alice's simple token on %s reading k: %v", m.Name(), err)
		}
		forged := metadata.NewOutgoingContext(ctx, metadata.Pairs(rpctypes.TokenFieldNameGRPC, "forged.1"))
		if _, err := anon.Get(forged, "k1"); !errors.Is(err, rpctypes.ErrInvalidAuthToken) {
			t.Errorf("a forged simple token on %s: %v", m.Name(), err)
		}
	}
}

// TestAutoTLS makes its own certificates in <data-dir>/fixtures, and an
// https URL without certificates, or client certificates without a CA,
// are refused with a clear error.
func TestAutoTLS(t *testing.T) {
	m := framework.Start(t, framework.Config{
		Args:     []string{"--auto-tls", "--peer-auto-tls"},
		Security: framework.Security{ClientTLS: &tls.Config{InsecureSkipVerify: true}, PeerTLS: true},
	})
	cli := m.Client(t)
	ctx := ctx10(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"client/cert.pem", "client/key.pem", "peer/cert.pem", "peer/key.pem"} {
		if _, err := os.Stat(filepath.Join(m.DataDir(), "fixtures", f)); err != nil {
			t.Errorf("auto TLS file: %v", err)
		}
	}
	dialFails(t, "plain text to an auto-TLS port", clientv3.Config{Endpoints: []string{m.Endpoint()}})

	dir := t.TempDir()
	_, errOut, err := framework.Cairn(t, "serve", "--data-dir", dir,
		"--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:0")
	if err == nil || !strings.Contains(errOut, "--cert-file, --key-file") {
		t.Errorf("https without certificates: %v %q", err, errOut)
	}

	// Client certificates without the CA to check them with are refused
	// (docs/security.md; etcd would check them against the system's
	// trust store).
	ca := newTestCA(t, "ca")
	cert, key := ca.issue(t, "server")
	for _, prefix := range []string{"", "peer-"} {
		_, errOut, err = framework.Cairn(t, "serve", "--data-dir", t.TempDir(),
			"--listen-client-urls", "https://127.0.0.1:0", "--advertise-client-urls", "https://127.0.0.1:2379",
			"--listen-peer-urls", "https://127.0.0.1:0", "--initial-advertise-peer-urls", "https://127.0.0.1:2380",
			"--"+prefix+"cert-file", cert, "--"+prefix+"key-file", key, "--"+prefix+"client-cert-auth", "--auto-tls", "--peer-auto-tls")
		want := "--" + prefix + "client-cert-auth needs --" + prefix + "trusted-ca-file to verify client certificates with"
		if err == nil || !strings.Contains(errOut, want) {
			t.Errorf("--%sclient-cert-auth without a CA: %v %q, want %q", prefix, err, errOut, want)
		}
	}
}

// TestPeerAutoTLS runs a three-member cluster whose peers use
// certificates each member made for itself (--peer-auto-tls): the peer
// URLs are https, the members replicate, and a plain-text peer request is
// refused.
func TestPeerAutoTLS(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{
		Args:     []string{"--peer-auto-tls"},
		Security: framework.Security{PeerTLS: true},
	})
	cli := c.Client(t)
	ctx := ctx10(t)
	if _, err := cli.Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}
	for _, m := range c.Members {
		if !strings.HasPrefix(m.PeerURL(), "https://") {
			t.Fatalf("peer URL %s", m.PeerURL())
		}
		if _, err := os.Stat(filepath.Join(m.DataDir(), "fixtures", "peer", "cert.pem")); err != nil {
			t.Errorf("member %s: %v", m.Name(), err)
		}
		if resp, err := m.Client(t).Get(ctx, "k", clientv3.WithSerializable()); err != nil || len(resp.Kvs) != 1 {
			t.Errorf("member %s: %v %v", m.Name(), resp, err)
		}
	}
	plain := strings.Replace(c.Members[0].PeerURL(), "https://", "http://", 1) + "/members"
	if resp, err := http.Get(plain); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Errorf("plain-text peer request was served")
		}
	}
	// Every member can lead: the peers reach each other both ways.
	for _, m := range c.Members {
		if m == c.Leader(t) {
			continue
		}
		if _, err := c.Leader(t).Client(t).MoveLeader(ctx, memberID(t, m)); err != nil {
			t.Fatalf("move leader to %s: %v", m.Name(), err)
		}
		if _, err := cli.Put(ctx, "k", m.Name()); err != nil {
			t.Fatalf("put with %s leading: %v", m.Name(), err)
		}
	}
}

// TestTLSPeerJoin adds a member to a cluster whose peers authenticate
// each other with certificates: a member with a certificate from the
// peer CA joins over https and serves; a real member whose certificate
// comes from another CA cannot join (the cluster refuses its connections
// though it trusts the cluster), and the cluster goes on without it.
func TestTLSPeerJoin(t *testing.T) {
	ca := newTestCA(t, "peer-ca")
	rogue := newTestCA(t, "rogue")
	cert, key := ca.issue(t, "member")
	peerArgs := func(cert, key string) []string {
		return []string{"--peer-cert-file", cert, "--peer-key-file", key, "--peer-trusted-ca-file", ca.File, "--peer-client-cert-auth"}
	}
	c := framework.StartCluster(t, 3, framework.Config{Args: peerArgs(cert, key), Security: framework.Security{PeerTLS: true}})
	cli := c.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := cli.Put(ctx, "before", "v"); err != nil {
		t.Fatal(err)
	}
	add := func(m *framework.Member) uint64 {
		t.Helper()
		var id uint64
		poll(t, 30*time.Second, "the cluster to accept a new member", func() error {
			actx, acancel := context.WithTimeout(ctx, 5*time.Second)
			defer acancel()
			resp, err := cli.MemberAdd(actx, []string{m.PeerURL()})
			if err == nil {
				id = resp.Member.ID
			}
			return err
		})
		return id
	}

	joiner := c.NewMember(t, "joiner")
	if !strings.HasPrefix(joiner.PeerURL(), "https://") {
		t.Fatalf("joiner peer URL %s", joiner.PeerURL())
	}
	add(joiner)
	joiner.Restart(t)
	c.Members = append(c.Members, joiner)
	jc := joiner.Client(t)
	if resp, err := jc.Get(ctx, "before"); err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("the joined member: %v %v", resp, err)
	}
	if _, err := jc.Put(ctx, "through-joiner", "v"); err != nil {
		t.Fatalf("a write through the joined member: %v", err)
	}

	// A member with a certificate from another CA: its own arguments
	// come last and win.
	rc, rk := rogue.issue(t, "member")
	intruder := c.NewMember(t, "intruder")
	intruderID := add(intruder)
	intruder.AppendArgs(peerArgs(rc, rk)...)
	intruder.Launch(t)
	// It must not get in: polled for a while, it never serves, and the
	// cluster never sees it started.
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) && intruder.Running() {
		ictx, icancel := context.WithTimeout(ctx, time.Second)
		_, err := intruder.Client(t).Get(ictx, "before")
		icancel()
		if err == nil {
			t.Fatal("a member with a certificate from another CA joined and serves")
		}
		time.Sleep(500 * time.Millisecond)
	}
	if intruder.Running() {
		intruder.Kill(t)
	} else {
		code := intruder.WaitExit(t, time.Second)
		logs := intruder.Logs()
		if i := strings.Index(logs, "Error:"); i >= 0 {
			logs = logs[i:]
		}
		t.Logf("the intruder exited with status %d: %.300s", code, logs)
		if code == 0 || !strings.Contains(logs, "certificate") {
			t.Errorf("the intruder exited with status %d, not for its certificate", code)
		}
	}
	ml, err := cli.MemberList(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ml.Members {
		if m.ID == intruderID && m.Name != "" {
			t.Errorf("the intruder published itself as %q", m.Name)
		}
	}
	// The cluster works (the intruder, a voter that never started, is
	// taken out first so that the quorum does not depend on it).
	if _, err := cli.MemberRemove(ctx, intruderID); err != nil {
		t.Fatalf("remove the intruder: %v", err)
	}
	if _, err := cli.Put(ctx, "after", "v"); err != nil {
		t.Fatalf("a write after the intruder: %v", err)
	}
}

// TestTLSDiscovery bootstraps a cluster through a discovery service
// served over https, whose CA the members trust through the system's
// trust store (SSL_CERT_FILE), as etcd's discovery does.
func TestTLSDiscovery(t *testing.T) {
	ca := newTestCA(t, "discovery-ca")
	cert, key := ca.issue(t, "discovery")
	ds := framework.Start(t, framework.Config{
		Name:     "discovery",
		Args:     []string{"--cert-file", cert, "--key-file", key},
		Security: framework.Security{ClientTLS: ca.clientTLS(t, "", "")},
	})
	if !strings.HasPrefix(ds.ClientURL(), "https://") {
		t.Fatalf("discovery URL %s", ds.ClientURL())
	}
	token := "tls-discovery-token"
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ca.clientTLS(t, "", "")}}
	req, _ := http.NewRequest("PUT", ds.ClientURL()+"/v2/keys/discovery/"+token+"/_config/size", strings.NewReader("value=3"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("size key: %d", resp.StatusCode)
	}
	c := framework.StartDiscovery(t, 3, framework.Config{Name: "d", Env: []string{"SSL_CERT_FILE=" + ca.File}},
		ds.ClientURL()+"/v2/keys/discovery/"+token)
	ctx := ctx10(t)
	ml, err := c.Client(t).MemberList(ctx)
	if err != nil || len(ml.Members) != 3 {
		t.Fatalf("members: %v %v", ml, err)
	}
	if _, err := c.Client(t).Put(ctx, "k", "v"); err != nil {
		t.Fatal(err)
	}

	// Without the CA, a member cannot reach the service: it fails with
	// the certificate error, and does not start a cluster of its own.
	token2 := "tls-discovery-untrusted"
	req, _ = http.NewRequest("PUT", ds.ClientURL()+"/v2/keys/discovery/"+token2+"/_config/size", strings.NewReader("value=1"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if resp, err = hc.Do(req); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// It retries, as etcd does, until stopped.
	dir := t.TempDir()
	sctx, scancel := context.WithTimeout(context.Background(), 8*time.Second)
	defer scancel()
	cmd := exec.CommandContext(sctx, framework.CairnBinary(t), "serve", "--name", "x", "--data-dir", dir,
		"--listen-client-urls", "http://127.0.0.1:0", "--advertise-client-urls", "http://127.0.0.1:2379",
		"--listen-peer-urls", "http://127.0.0.1:0", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--discovery", ds.ClientURL()+"/v2/keys/discovery/"+token2)
	var errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &errOut, &errOut
	err = cmd.Run()
	if err == nil || !strings.Contains(errOut.String(), "x509: certificate signed by unknown authority") ||
		strings.Contains(errOut.String(), `"serving"`) {
		t.Errorf("discovery over https with an untrusted CA: %v %q", err, errOut.String())
	}
}
