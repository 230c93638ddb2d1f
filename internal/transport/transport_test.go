package transport

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// fakeRaft records what the transport delivers and reports.
type fakeRaft struct {
	mu          sync.Mutex
	steps       []raftpb.Message
	unreachable map[uint64]int
	snapshots   []raft.SnapshotStatus
	notify      chan struct{}
}

func newFakeRaft() *fakeRaft {
	return &fakeRaft{unreachable: map[uint64]int{}, notify: make(chan struct{}, 1024)}
}

func (f *fakeRaft) Step(m raftpb.Message) {
	f.mu.Lock()
	f.steps = append(f.steps, m)
	f.mu.Unlock()
	f.notify <- struct{}{}
}

func (f *fakeRaft) ReportUnreachable(id uint64) {
	f.mu.Lock()
	f.unreachable[id]++
	f.mu.Unlock()
}

func (f *fakeRaft) ReportSnapshot(id uint64, st raft.SnapshotStatus) {
	f.mu.Lock()
	f.snapshots = append(f.snapshots, st)
	f.mu.Unlock()
	f.notify <- struct{}{}
}

// snapshotReport waits for the n-th snapshot report (from 1) and returns it.
func (f *fakeRaft) snapshotReport(t *testing.T, n int) raft.SnapshotStatus {
	t.Helper()
	waitFor(t, fmt.Sprintf("snapshot report %d", n), func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.snapshots) >= n
	})
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.snapshots[n-1]
}

// waitFor polls cond until it holds or 10s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type fakeSnapshots struct {
	data     []byte
	received []byte
	fail     bool
}

func (s *fakeSnapshots) OpenSnapshot(m raftpb.Message) (raftpb.Message, io.ReadCloser, error) {
	m.Snapshot = &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 42, Term: 3}}
	return m, io.NopCloser(bytes.NewReader(s.data)), nil
}

func (s *fakeSnapshots) ReceiveSnapshot(m raftpb.Message, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.fail {
		return errors.New("refused")
	}
	s.received = b
	return nil
}

// pair sets up member 1 sending to member 2 over a real HTTP server.
func pair(t *testing.T, cluster1, cluster2 uint64) (*Transport, *fakeRaft, *Transport, *fakeRaft, *fakeSnapshots) {
	t.Helper()
	r1, r2 := newFakeRaft(), newFakeRaft()
	snaps := &fakeSnapshots{data: bytes.Repeat([]byte("snapshot"), 100000)}
	t2 := New(Config{ClusterID: cluster2, MemberID: 2, Raft: r2, Snapshots: snaps})
	srv := httptest.NewServer(t2.Handler())
	t.Cleanup(srv.Close)
	t1 := New(Config{ClusterID: cluster1, MemberID: 1, Raft: r1, Snapshots: snaps})
	t1.AddPeer(2, []string{srv.URL})
	t.Cleanup(t1.Stop)
	t.Cleanup(t2.Stop)
	return t1, r1, t2, r2, snaps
}

func TestFrameRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	in := []raftpb.Message{
		{Type: raftpb.MsgApp, From: 1, To: 2, Term: 5, Entries: []raftpb.Entry{{Index: 9, Data: []byte("x")}}},
		{Type: raftpb.MsgHeartbeat, From: 1, To: 2},
	}
	for i := range in {
		if err := WriteFrame(&buf, &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range in {
		m, err := ReadFrame(&buf)
		if err != nil {
			t.Fatal(err)
		}
		if m.Type != in[i].Type || m.Term != in[i].Term || len(m.Entries) != len(in[i].Entries) {
			t.Fatalf("frame %d: got %+v", i, m)
		}
	}
	if _, err := ReadFrame(&buf); !errors.Is(err, io.EOF) {
		t.Fatalf("after the last frame: %v", err)
	}
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	if _, err := ReadFrame(bytes.NewReader(huge)); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("huge frame: %v", err)
	}
	if _, err := ReadFrame(bytes.NewReader([]byte{0, 0, 0, 10, 1, 2})); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("truncated frame: %v", err)
	}
}

func FuzzReadFrame(f *testing.F) {
	var buf bytes.Buffer
	WriteFrame(&buf, &raftpb.Message{Type: raftpb.MsgApp, From: 1, To: 2, Entries: []raftpb.Entry{{Index: 1, Data: []byte("d")}}})
	f.Add(buf.Bytes())
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{0, 0, 0, 3, 8, 1, 16})
	f.Fuzz(func(t *testing.T, b []byte) {
		r := bytes.NewReader(b)
		for {
			if _, err := ReadFrame(r); err != nil {
				return
			}
		}
	})
}

func TestMessagesArriveInOrder(t *testing.T) {
	t1, _, t2, r2, _ := pair(t, 7, 7)
	const n = 500
	for i := 1; i <= n; i++ {
		t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Index: uint64(i)}})
	}
	waitFor(t, "all messages", func() bool {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		return len(r2.steps) == n
	})
	r2.mu.Lock()
	defer r2.mu.Unlock()
	for i, m := range r2.steps {
		if m.Index != uint64(i+1) {
			t.Fatalf("message %d has index %d: out of order", i, m.Index)
		}
	}
	// The receiver now counts member 1 as active.
	if t2.ActiveSince(1).IsZero() {
		t.Fatal("the receiver does not count the sender as active after its messages")
	}
}

func TestActiveSinceFollowsInboundMessages(t *testing.T) {
	t1, _, t2, r2, _ := pair(t, 7, 7)
	if !t2.ActiveSince(1).IsZero() {
		t.Fatal("active before any message")
	}
	t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	<-r2.notify
	if t2.ActiveSince(1).IsZero() {
		t.Fatal("not active after a message")
	}
	t2.cfg.IdleTimeout = time.Millisecond
	time.Sleep(5 * time.Millisecond)
	if !t2.ActiveSince(1).IsZero() {
		t.Fatal("still active after the idle timeout")
	}
}

func TestOtherClusterIsRefused(t *testing.T) {
	t1, r1, _, r2, _ := pair(t, 7, 8)
	t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	// The stream is refused; with nothing queued after it, raft is told
	// the peer is unreachable once later messages are dropped.
	waitFor(t, "unreachable reports", func() bool {
		t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
		r1.mu.Lock()
		defer r1.mu.Unlock()
		return r1.unreachable[2] > 0
	})
	r2.mu.Lock()
	defer r2.mu.Unlock()
	if len(r2.steps) != 0 {
		t.Fatalf("a member of another cluster delivered %d messages", len(r2.steps))
	}
}

func TestRemovedMemberIsTold(t *testing.T) {
	r2 := newFakeRaft()
	t2 := New(Config{ClusterID: 7, MemberID: 2, Raft: r2, IsRemoved: func(id uint64) bool { return id == 1 }})
	srv := httptest.NewServer(t2.Handler())
	defer srv.Close()
	removed := make(chan struct{}, 1)
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: newFakeRaft(), OnRemoved: func() {
		select {
		case removed <- struct{}{}:
		default:
		}
	}})
	defer t1.Stop()
	t1.AddPeer(2, []string{srv.URL})
	t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	select {
	case <-removed:
	case <-time.After(10 * time.Second):
		t.Fatal("a removed member was not told")
	}
	// And the refusal is visible on the wire.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+StreamPath, strings.NewReader(""))
	req.Header.Set(HeaderCluster, "7")
	req.Header.Set(HeaderFrom, "1")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusGone {
		t.Fatalf("status %d, want 410", resp.StatusCode)
	}
}

// TestRemovedWhileStreaming: a member removed while its stream is open is
// told on that stream; it need not open a new one to hear the 410, which
// it would never do while the stream stays up.
func TestRemovedWhileStreaming(t *testing.T) {
	r2 := newFakeRaft()
	var gone atomic.Bool
	t2 := New(Config{ClusterID: 7, MemberID: 2, Raft: r2, IsRemoved: func(id uint64) bool { return id == 1 && gone.Load() }})
	srv := httptest.NewServer(t2.Handler())
	defer srv.Close()
	removed := make(chan struct{}, 1)
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: newFakeRaft(), OnRemoved: func() {
		select {
		case removed <- struct{}{}:
		default:
		}
	}})
	defer t1.Stop()
	t1.AddPeer(2, []string{srv.URL})
	t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	waitFor(t, "the first message", func() bool {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		return len(r2.steps) == 1
	})
	gone.Store(true)
	// The member goes on sending, as a removed member campaigning does.
	deadline := time.After(10 * time.Second)
	for {
		t1.Send([]raftpb.Message{{Type: raftpb.MsgPreVote, From: 1, To: 2}})
		select {
		case <-removed:
			return
		case <-deadline:
			t.Fatal("a member removed while streaming was not told")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func TestFullQueueDropsAndReports(t *testing.T) {
	r1 := newFakeRaft()
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: r1, QueueLength: 4})
	defer t1.Stop()
	// A peer nobody listens on: the queue fills, Send never blocks.
	t1.AddPeer(2, []string{"http://127.0.0.1:1"})
	done := make(chan struct{})
	go func() {
		for i := 0; i < 1000; i++ {
			t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2}})
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Send blocked on an unreachable peer")
	}
	r1.mu.Lock()
	defer r1.mu.Unlock()
	if r1.unreachable[2] == 0 {
		t.Fatal("dropped messages were not reported")
	}
}

func TestSnapshotTransfer(t *testing.T) {
	t1, r1, _, r2, snaps := pair(t, 7, 7)
	t1.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10}}}})
	if st := r1.snapshotReport(t, 1); st != raft.SnapshotFinish {
		t.Fatalf("snapshot status %v", st)
	}
	if !bytes.Equal(snaps.received, snaps.data) {
		t.Fatalf("received %d bytes, sent %d", len(snaps.received), len(snaps.data))
	}
	r2.mu.Lock()
	defer r2.mu.Unlock()
	// The receiver stepped the message with the metadata of the state
	// actually sent.
	if len(r2.steps) != 1 || r2.steps[0].Snapshot.Metadata.Index != 42 {
		t.Fatalf("stepped %+v", r2.steps)
	}

	snaps.fail = true
	t1.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 11}}}})
	if st := r1.snapshotReport(t, 2); st != raft.SnapshotFailure {
		t.Fatalf("a refused snapshot reported %v", st)
	}
}

// Guard serves only POSTs that name this cluster and a current member as
// the sender (and, if they name a recipient, this member); everything else
// is refused before the guarded handler runs.
func TestGuard(t *testing.T) {
	members := map[uint64]bool{1: true, 2: true}
	t2 := New(Config{ClusterID: 7, MemberID: 2,
		IsMember:  func(id uint64) bool { return members[id] },
		IsRemoved: func(id uint64) bool { return id == 3 }})
	var reached int
	srv := httptest.NewServer(t2.Guard(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		reached++
		io.WriteString(w, "ok")
	})))
	defer srv.Close()
	sender := New(Config{ClusterID: 7, MemberID: 1})

	for _, tc := range []struct {
		name   string
		method string
		header func(http.Header)
		want   int
	}{
		{"no headers", http.MethodPost, func(http.Header) {}, http.StatusPreconditionFailed},
		{"another cluster", http.MethodPost, func(h http.Header) {
			New(Config{ClusterID: 8, MemberID: 1}).SetHeaders(h, 2)
		}, http.StatusPreconditionFailed},
		{"no sender", http.MethodPost, func(h http.Header) { h.Set(HeaderCluster, "7") }, http.StatusBadRequest},
		{"a stranger", http.MethodPost, func(h http.Header) {
			New(Config{ClusterID: 7, MemberID: 9}).SetHeaders(h, 2)
		}, http.StatusForbidden},
		{"a removed member", http.MethodPost, func(h http.Header) {
			New(Config{ClusterID: 7, MemberID: 3}).SetHeaders(h, 2)
		}, http.StatusGone},
		{"meant for another member", http.MethodPost, func(h http.Header) { sender.SetHeaders(h, 4) }, http.StatusPreconditionFailed},
		{"not a POST", http.MethodGet, func(h http.Header) { sender.SetHeaders(h, 2) }, http.StatusMethodNotAllowed},
		{"a member", http.MethodPost, func(h http.Header) { sender.SetHeaders(h, 2) }, http.StatusOK},
	} {
		req, err := http.NewRequest(tc.method, srv.URL+"/members/change", strings.NewReader(`{"op":"add"}`))
		if err != nil {
			t.Fatal(err)
		}
		tc.header(req.Header)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %s %q, want %d", tc.name, resp.Status, body, tc.want)
		}
	}
	if reached != 1 {
		t.Fatalf("the guarded handler ran %d times, want once (for the member)", reached)
	}
}

// stallProxy forwards TCP connections to a target until stall is called:
// from then on it accepts connections and never reads from them, and the
// connections it was forwarding stop moving too, for good (as flows a
// middlebox lost). After resume, new connections pass again.
type stallProxy struct {
	ln      net.Listener
	target  string
	stalled atomic.Bool
	// held counts the connections accepted while stalled.
	held  atomic.Int32
	mu    sync.Mutex
	conns []net.Conn
}

func newStallProxy(t *testing.T, target string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, target: target}
	t.Cleanup(func() {
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
	})
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			p.conns = append(p.conns, in)
			p.mu.Unlock()
			if p.stalled.Load() {
				p.held.Add(1)
				continue
			}
			out, err := net.Dial("tcp", target)
			if err != nil {
				in.Close()
				continue
			}
			p.mu.Lock()
			p.conns = append(p.conns, out)
			p.mu.Unlock()
			stop := p.stalled.Load
			go p.pipe(out, in, stop)
			go p.pipe(in, out, stop)
		}
	}()
	return p
}

func (p *stallProxy) url() string { return "http://" + p.ln.Addr().String() }

// pipe copies src to dst until it fails or the proxy stalls, and then stops
// reading src.
func (p *stallProxy) pipe(dst, src net.Conn, stalled func() bool) {
	buf := make([]byte, 32<<10)
	for !stalled() {
		n, err := src.Read(buf)
		if n > 0 && !stalled() {
			if _, err := dst.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			dst.Close()
			return
		}
	}
}

// A stream whose connection stalls (nothing arrives either way, and the
// connection stays open) is given up after the connection timeout, and a
// new connection carries the messages once the network lets it.
func TestStalledStreamIsReplaced(t *testing.T) {
	r2 := newFakeRaft()
	t2 := New(Config{ClusterID: 7, MemberID: 2, Raft: r2, ConnTimeout: 300 * time.Millisecond})
	srv := httptest.NewServer(t2.Handler())
	defer srv.Close()
	proxy := newStallProxy(t, strings.TrimPrefix(srv.URL, "http://"))
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: newFakeRaft(), ConnTimeout: 300 * time.Millisecond})
	defer t1.Stop()
	defer t2.Stop()
	t1.AddPeer(2, []string{proxy.url()})

	delivered := func(index uint64) bool {
		r2.mu.Lock()
		defer r2.mu.Unlock()
		for _, m := range r2.steps {
			if m.Index == index {
				return true
			}
		}
		return false
	}
	t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Index: 1}})
	waitFor(t, "a message through the proxy", func() bool { return delivered(1) })

	proxy.stalled.Store(true)
	t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Index: 2}})
	// The sender gives up the stalled stream, and the next one, which the
	// proxy accepts and holds.
	waitFor(t, "the sender to give up two stalled streams", func() bool { return proxy.held.Load() >= 2 })
	if delivered(2) {
		t.Fatal("a message crossed the stalled proxy")
	}
	proxy.stalled.Store(false)
	waitFor(t, "a message sent after the stall cleared", func() bool {
		t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Index: 3}})
		return delivered(3)
	})
}

// A stream the peer accepts and keeps alive but stops reading fails its
// blocked write after the connection timeout, and the sender reconnects.
func TestBlockedWriteFailsTheStream(t *testing.T) {
	var streams atomic.Int32
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if streams.Add(1) > 1 {
			io.Copy(io.Discard, r.Body)
			return
		}
		// Accept, send keepalives, never read.
		rc := http.NewResponseController(w)
		rc.EnableFullDuplex()
		w.WriteHeader(http.StatusOK)
		rc.Flush()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-release:
				return
			case <-r.Context().Done():
				return
			case <-tick.C:
				if _, err := w.Write([]byte{0}); err != nil {
					return
				}
				rc.Flush()
			}
		}
	}))
	defer srv.Close()
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: newFakeRaft(), ConnTimeout: 300 * time.Millisecond})
	defer t1.Stop()
	t1.AddPeer(2, []string{srv.URL})
	big := bytes.Repeat([]byte("x"), 1<<20)
	waitFor(t, "a second stream after the first stopped reading", func() bool {
		t1.Send([]raftpb.Message{{Type: raftpb.MsgApp, From: 1, To: 2, Entries: []raftpb.Entry{{Data: big}}}})
		return streams.Load() > 1
	})
}

// A snapshot the peer reads but never answers fails after the connection
// timeout (plus time for its size), and raft is told.
func TestUnansweredSnapshotFails(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.Copy(io.Discard, r.Body)
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	r1 := newFakeRaft()
	snaps := &fakeSnapshots{data: bytes.Repeat([]byte("snapshot"), 1000)}
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: r1, Snapshots: snaps, ConnTimeout: 300 * time.Millisecond})
	defer t1.Stop()
	t1.AddPeer(2, []string{srv.URL})
	t1.Send([]raftpb.Message{{Type: raftpb.MsgSnap, From: 1, To: 2, Snapshot: &raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{Index: 10}}}})
	if st := r1.snapshotReport(t, 1); st != raft.SnapshotFailure {
		t.Fatalf("an unanswered snapshot reported %v", st)
	}
}

// An idle stream stays up: the sender's keepalives keep the receiver from
// giving up on it, and the receiver's keep the sender from doing so.
func TestIdleStreamStaysUp(t *testing.T) {
	r2 := newFakeRaft()
	t2 := New(Config{ClusterID: 7, MemberID: 2, Raft: r2, ConnTimeout: 300 * time.Millisecond})
	var streams atomic.Int32
	h := t2.Handler()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		streams.Add(1)
		h.ServeHTTP(w, r)
	}))
	defer srv.Close()
	t1 := New(Config{ClusterID: 7, MemberID: 1, Raft: newFakeRaft(), ConnTimeout: 300 * time.Millisecond})
	defer t1.Stop()
	defer t2.Stop()
	t1.AddPeer(2, []string{srv.URL})
	t1.Send([]raftpb.Message{{Type: raftpb.MsgHeartbeat, From: 1, To: 2}})
	<-r2.notify
	// Nothing to send for many connection timeouts.
	time.Sleep(10 * 300 * time.Millisecond)
	if n := streams.Load(); n != 1 {
		t.Fatalf("%d streams opened over an idle link, want 1", n)
	}
}

// A sender that opens a stream and then sends nothing, not even
// keepalives, is hung up on after the connection timeout.
func TestSilentSenderIsHungUp(t *testing.T) {
	t2 := New(Config{ClusterID: 7, MemberID: 2, Raft: newFakeRaft(), ConnTimeout: 300 * time.Millisecond})
	defer t2.Stop()
	srv := httptest.NewServer(t2.Handler())
	defer srv.Close()
	c, err := net.Dial("tcp", strings.TrimPrefix(srv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "POST "+StreamPath+" HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"+
		HeaderCluster+": 7\r\n"+HeaderFrom+": 1\r\n\r\n")
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	// The answer (200 and keepalives) and then the end of the connection.
	_, err = io.Copy(io.Discard, c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatal("the receiver kept a silent stream open for 10s")
	}
}
