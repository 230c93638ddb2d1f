// Package transport carries raft messages between members over the peer
// port. Each peer has one long-lived HTTP stream per direction: the sender
// writes length-prefixed messages into a request body for as long as the
// connection lives, batching whatever raft produced since the last write
// into one flush. Sending never blocks the raft loop: a peer's queue is
// bounded, and when it is full or the peer is down, messages are dropped and
// raft is told the peer is unreachable (raft retries on its own schedule).
// Reconnects back off up to a second. Snapshots travel on their own request,
// streamed, so a large snapshot never holds up heartbeats.
//
// No connection waits on a silent peer for longer than the connection
// timeout (ConnTimeout, 5s as etcd's): every write to a connection must
// complete within it; the receiver of a stream answers at once and then
// sends a keepalive byte every third of the timeout, and the sender sends an
// empty frame when it has had nothing else to send for as long, so each
// side gives up on a stream from which nothing arrived for a whole timeout
// and reconnects. A network that drops a connection's packets, or a peer
// that stops reading, costs a stream a few seconds, not the minutes TCP
// takes to give up.
//
// Every request carries the cluster ID and the sender's member ID: a member
// of another cluster is refused (412) and a removed member is told it was
// removed (410), so members of different clusters never mix.
package transport

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

// HTTP paths and headers of the peer protocol.
const (
	StreamPath    = "/raft/stream"
	SnapshotPath  = "/raft/snapshot"
	HeaderCluster = "X-Cairn-Cluster-ID"
	HeaderFrom    = "X-Cairn-From"
	HeaderTo      = "X-Cairn-To"
)

// Sentinel errors.
var (
	// ErrClusterMismatch: the peer belongs to another cluster.
	ErrClusterMismatch = errors.New("transport: cluster ID mismatch")
	// ErrMemberRemoved: the sender was removed from the cluster.
	ErrMemberRemoved = errors.New("transport: the member has been permanently removed from the cluster")
	// ErrFrameTooLarge: a frame exceeds MaxFrameBytes.
	ErrFrameTooLarge = errors.New("transport: frame too large")
	// ErrPeerSilent: nothing arrived from the peer within the connection
	// timeout, not even a keepalive.
	ErrPeerSilent = errors.New("transport: peer silent for the connection timeout")
)

// MaxFrameBytes bounds one raft message on a stream.
const MaxFrameBytes = 64 << 20

// Raft is the local raft node messages are delivered to.
type Raft interface {
	Step(m raftpb.Message)
	ReportUnreachable(id uint64)
	ReportSnapshot(id uint64, status raft.SnapshotStatus)
}

// Snapshots opens outgoing snapshots and stores incoming ones.
type Snapshots interface {
	// OpenSnapshot returns the snapshot message to send in place of m
	// (its metadata describing the state actually sent) and the state.
	OpenSnapshot(m raftpb.Message) (raftpb.Message, io.ReadCloser, error)
	// ReceiveSnapshot stores the state of snapshot message m read from r,
	// verified, where the apply loop will install it from.
	ReceiveSnapshot(m raftpb.Message, r io.Reader) error
}

// Config configures a Transport.
type Config struct {
	ClusterID uint64
	MemberID  uint64
	Raft      Raft
	Snapshots Snapshots
	// IsRemoved reports whether a member ID was removed from the cluster.
	IsRemoved func(id uint64) bool
	// IsMember reports whether a member ID is a current member; Guard
	// serves only those. Default: every ID.
	IsMember func(id uint64) bool
	// OnRemoved is called when a peer says this member was removed.
	OnRemoved func()
	// TLS, when set, is the client TLS configuration of peer requests (the
	// member's peer certificate and the peer CA).
	TLS *tls.Config
	// ConnTimeout bounds how long a peer connection may make no progress:
	// a write that does not complete, a stream on which nothing arrives, a
	// stream the peer does not accept, a snapshot the peer does not answer
	// (plus time for its size). Default 5s.
	ConnTimeout time.Duration
	// QueueLength bounds each peer's queue of unsent messages. Default 4096.
	QueueLength int
	// IdleTimeout is how long a peer may stay silent before it no longer
	// counts as active (see ActiveSince). Default 3s.
	IdleTimeout time.Duration
	Logger      *slog.Logger
}

// Transport is the member's peer messaging.
type Transport struct {
	cfg Config
	lg  *slog.Logger

	mu    sync.RWMutex
	peers map[uint64]*peer
	done  chan struct{}
	wg    sync.WaitGroup

	// Inbound activity per member: since when messages have kept coming
	// (with no gap longer than IdleTimeout), and when the last one came.
	seenMu sync.Mutex
	seen   map[uint64]activity

	// client makes the peer requests.
	client *http.Client
}

type activity struct{ since, last time.Time }

// dialTimeout bounds connecting to a peer.
const dialTimeout = time.Second

// New returns a transport with no peers.
func New(cfg Config) *Transport {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.QueueLength <= 0 {
		cfg.QueueLength = 4096
	}
	if cfg.IdleTimeout <= 0 {
		cfg.IdleTimeout = 3 * time.Second
	}
	if cfg.ConnTimeout <= 0 {
		cfg.ConnTimeout = 5 * time.Second
	}
	if cfg.IsRemoved == nil {
		cfg.IsRemoved = func(uint64) bool { return false }
	}
	if cfg.IsMember == nil {
		cfg.IsMember = func(uint64) bool { return true }
	}
	if cfg.OnRemoved == nil {
		cfg.OnRemoved = func() {}
	}
	return &Transport{cfg: cfg, lg: cfg.Logger.With("component", "transport"), peers: map[uint64]*peer{},
		done: make(chan struct{}), seen: map[uint64]activity{}, client: newClient(cfg.TLS, cfg.ConnTimeout)}
}

// keepaliveInterval is how often an idle stream carries a keepalive.
func (t *Transport) keepaliveInterval() time.Duration { return t.cfg.ConnTimeout / 3 }

// SetRaft sets the node messages are delivered to (the node is created
// after the transport it sends through).
func (t *Transport) SetRaft(r Raft) { t.cfg.Raft = r }

// Send queues messages for their peers. It never blocks.
func (t *Transport) Send(msgs []raftpb.Message) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	for i := range msgs {
		m := msgs[i]
		p := t.peers[m.To]
		if p == nil {
			continue
		}
		if m.Type == raftpb.MsgSnap {
			select {
			case p.snapc <- m:
			default:
				t.cfg.Raft.ReportSnapshot(m.To, raft.SnapshotFailure)
			}
			continue
		}
		select {
		case p.msgc <- m:
		default:
			metricDropped.Inc()
			p.sentFailures.Inc()
			t.cfg.Raft.ReportUnreachable(m.To)
		}
	}
}

// AddPeer starts sending to member id at urls (or updates its URLs).
func (t *Transport) AddPeer(id uint64, urls []string) {
	if id == t.cfg.MemberID {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if p := t.peers[id]; p != nil {
		p.setURLs(urls)
		return
	}
	select {
	case <-t.done:
		return
	default:
	}
	p := newPeer(t, id, urls)
	t.peers[id] = p
	t.wg.Add(3)
	go p.streamLoop()
	go p.snapshotLoop()
	go p.probeLoop()
}

// RemovePeer stops sending to member id.
func (t *Transport) RemovePeer(id uint64) {
	t.mu.Lock()
	p := t.peers[id]
	delete(t.peers, id)
	t.mu.Unlock()
	if p != nil {
		p.stop()
	}
}

// Peers returns the IDs of the peers sent to.
func (t *Transport) Peers() []uint64 {
	t.mu.RLock()
	defer t.mu.RUnlock()
	out := make([]uint64, 0, len(t.peers))
	for id := range t.peers {
		out = append(out, id)
	}
	return out
}

// ActiveSince returns since when member id has been sending messages to
// this member without a silence longer than IdleTimeout, or the zero time if
// it is silent now. On the leader every member answers heartbeats, so this
// is the leader's view of who is up.
func (t *Transport) ActiveSince(id uint64) time.Time {
	t.seenMu.Lock()
	defer t.seenMu.Unlock()
	a, ok := t.seen[id]
	if !ok || time.Since(a.last) > t.cfg.IdleTimeout {
		return time.Time{}
	}
	return a.since
}

func (t *Transport) sawFrom(id uint64) {
	now := time.Now()
	t.seenMu.Lock()
	a := t.seen[id]
	if a.last.IsZero() || now.Sub(a.last) > t.cfg.IdleTimeout {
		a.since = now
	}
	a.last = now
	t.seen[id] = a
	t.seenMu.Unlock()
}

// Stop stops every peer.
func (t *Transport) Stop() {
	t.mu.Lock()
	select {
	case <-t.done:
		t.mu.Unlock()
		return
	default:
	}
	close(t.done)
	peers := t.peers
	t.peers = map[uint64]*peer{}
	t.mu.Unlock()
	for _, p := range peers {
		p.stop()
	}
	t.wg.Wait()
}

// A stream's answer carries a keepalive byte (0) every keepalive interval,
// and removedByte, as its last byte, when the receiver found the sender
// removed from the cluster.
const removedByte = 'R'

// removalCheckInterval is how often a stream's receiver checks that the
// sender is still a member.
const removalCheckInterval = 500 * time.Millisecond

// keepaliveFrame is a frame of no message: a stream's sender writes it
// when it has had nothing to send for a while.
var keepaliveFrame = []byte{0, 0, 0, 0}

// WriteFrame writes one length-prefixed message.
func WriteFrame(w io.Writer, m *raftpb.Message) error {
	n := m.Size()
	buf := make([]byte, 4+n)
	binary.BigEndian.PutUint32(buf, uint32(n))
	if _, err := m.MarshalTo(buf[4:]); err != nil {
		return fmt.Errorf("transport: marshal: %w", err)
	}
	_, err := w.Write(buf)
	return err
}

// ReadFrame reads one length-prefixed message.
func ReadFrame(r io.Reader) (raftpb.Message, error) {
	m, _, err := readFrame(r)
	return m, err
}

// readFrame reads one length-prefixed message; keepalive reports a frame
// of no message (a keepalive: every encoded message has fields).
func readFrame(r io.Reader) (m raftpb.Message, keepalive bool, err error) {
	var hdr [4]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return m, false, err
	}
	n := binary.BigEndian.Uint32(hdr[:])
	if n == 0 {
		return m, true, nil
	}
	if n > MaxFrameBytes {
		return m, false, fmt.Errorf("%w: %d bytes", ErrFrameTooLarge, n)
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(r, buf); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return m, false, err
	}
	if err := m.Unmarshal(buf); err != nil {
		return m, false, fmt.Errorf("transport: decode message: %w", err)
	}
	return m, false, nil
}

// Handler serves the peer protocol's raft endpoints.
func (t *Transport) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc(StreamPath, t.serveStream)
	mux.HandleFunc(SnapshotPath, t.serveSnapshot)
	mux.HandleFunc(ProbePath, serveProbe)
	return mux
}

// Guard serves h, a peer endpoint besides raft's, only to POST requests
// from current members of this cluster, checked as the raft endpoints
// check theirs (see checkRequest); anything else is refused before h runs.
// Requests to it carry the headers SetHeaders sets.
func (t *Transport) Guard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		from, ok := t.checkRequest(w, r)
		if !ok {
			return
		}
		if !t.cfg.IsMember(from) {
			http.Error(w, fmt.Sprintf("%x is not a member of cluster %x", from, t.cfg.ClusterID), http.StatusForbidden)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// SetHeaders names this member's cluster, this member as the sender and
// member to as the recipient in the headers of a peer request.
func (t *Transport) SetHeaders(h http.Header, to uint64) {
	h.Set(HeaderCluster, strconv.FormatUint(t.cfg.ClusterID, 16))
	h.Set(HeaderFrom, strconv.FormatUint(t.cfg.MemberID, 16))
	h.Set(HeaderTo, strconv.FormatUint(to, 16))
}

// checkRequest validates a peer request's method, cluster, sender and
// recipient, answering it when they are wrong: a request from another
// cluster, or naming no cluster, gets 412 Precondition Failed, as does one
// meant for another member; one from a removed member gets 410 Gone.
func (t *Transport) checkRequest(w http.ResponseWriter, r *http.Request) (uint64, bool) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return 0, false
	}
	cid, err := strconv.ParseUint(r.Header.Get(HeaderCluster), 16, 64)
	if err != nil || cid != t.cfg.ClusterID {
		w.Header().Set(HeaderCluster, strconv.FormatUint(t.cfg.ClusterID, 16))
		http.Error(w, fmt.Sprintf("cluster ID mismatch: this member is in cluster %x, the request came from %q",
			t.cfg.ClusterID, r.Header.Get(HeaderCluster)), http.StatusPreconditionFailed)
		return 0, false
	}
	from, err := strconv.ParseUint(r.Header.Get(HeaderFrom), 16, 64)
	if err != nil {
		http.Error(w, "bad "+HeaderFrom, http.StatusBadRequest)
		return 0, false
	}
	if t.cfg.IsRemoved(from) {
		http.Error(w, ErrMemberRemoved.Error(), http.StatusGone)
		return 0, false
	}
	if to := r.Header.Get(HeaderTo); to != "" && to != strconv.FormatUint(t.cfg.MemberID, 16) {
		http.Error(w, fmt.Sprintf("this is member %x, not %s", t.cfg.MemberID, to), http.StatusPreconditionFailed)
		return 0, false
	}
	return from, true
}

// enableFullDuplex lets a raft endpoint answer without reading the body,
// which on a stream never ends: in full-duplex mode the server does not try
// to drain it before it can send the answer.
func enableFullDuplex(w http.ResponseWriter) {
	_ = http.NewResponseController(w).EnableFullDuplex()
}

// serveStream accepts a stream at once (200), keeps the sender's read side
// alive with a byte every keepalive interval, and steps the messages it
// reads until the stream ends or nothing, not even a keepalive, arrived for
// the connection timeout.
func (t *Transport) serveStream(w http.ResponseWriter, r *http.Request) {
	enableFullDuplex(w)
	from, ok := t.checkRequest(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	// The connection ends with the stream: one that ended for silence has
	// unread body, and must not wait for another request.
	w.Header().Set("Connection", "close")
	w.WriteHeader(http.StatusOK)
	if err := rc.Flush(); err != nil {
		return
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		t.sendKeepalives(w, rc, stop)
	}()
	stopKeepalives := sync.OnceFunc(func() {
		close(stop)
		wg.Wait()
	})
	defer stopKeepalives()
	br := bufio.NewReaderSize(&idleReader{r: r.Body, rc: rc, timeout: t.cfg.ConnTimeout}, 64<<10)
	var checked time.Time
	for {
		m, keepalive, err := readFrame(br)
		if err != nil {
			if !errors.Is(err, io.EOF) && !errors.Is(err, context.Canceled) {
				t.lg.Debug("peer stream ended", "from", fmt.Sprintf("%x", from), "err", err)
			}
			return
		}
		// A member removed while its stream is open may never apply its
		// own removal (it is no longer sent the entries after it): tell it
		// on the stream, as a new stream would be told with a 410.
		if now := time.Now(); now.Sub(checked) >= removalCheckInterval {
			checked = now
			if t.cfg.IsRemoved(from) {
				stopKeepalives()
				_ = rc.SetWriteDeadline(now.Add(t.cfg.ConnTimeout))
				if _, err := w.Write([]byte{removedByte}); err == nil {
					_ = rc.Flush()
				}
				t.lg.Info("ended the stream of a removed member", "from", fmt.Sprintf("%x", from))
				return
			}
		}
		if keepalive {
			continue
		}
		if m.From != from {
			t.lg.Warn("dropping a message whose sender does not match its stream", "stream-from", fmt.Sprintf("%x", from), "message-from", fmt.Sprintf("%x", m.From))
			continue
		}
		metricReceived.Inc()
		t.sawFrom(from)
		t.cfg.Raft.Step(m)
	}
}

// sendKeepalives writes a byte to a stream's answer every keepalive
// interval until stop is closed or a write fails.
func (t *Transport) sendKeepalives(w http.ResponseWriter, rc *http.ResponseController, stop <-chan struct{}) {
	tick := time.NewTicker(t.keepaliveInterval())
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tick.C:
		}
		if err := rc.SetWriteDeadline(time.Now().Add(t.cfg.ConnTimeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return
		}
		if _, err := w.Write([]byte{0}); err != nil {
			return
		}
		if err := rc.Flush(); err != nil {
			return
		}
	}
}

// idleReader reads a peer's request body, failing a read for which nothing
// arrived within timeout.
type idleReader struct {
	r       io.Reader
	rc      *http.ResponseController
	timeout time.Duration
	set     time.Time // when the deadline was last moved
}

func (ir *idleReader) Read(p []byte) (int, error) {
	// Moving the deadline at most a few times per timeout keeps it off the
	// path of every small read; a read may then wait between three quarters
	// of the timeout and all of it.
	if now := time.Now(); now.Sub(ir.set) > ir.timeout/4 {
		if err := ir.rc.SetReadDeadline(now.Add(ir.timeout)); err != nil && !errors.Is(err, http.ErrNotSupported) {
			return 0, err
		}
		ir.set = now
	}
	return ir.r.Read(p)
}

func (t *Transport) serveSnapshot(w http.ResponseWriter, r *http.Request) {
	enableFullDuplex(w)
	from, ok := t.checkRequest(w, r)
	if !ok {
		return
	}
	rc := http.NewResponseController(w)
	br := bufio.NewReaderSize(&idleReader{r: r.Body, rc: rc, timeout: t.cfg.ConnTimeout}, 256<<10)
	m, err := ReadFrame(br)
	if err != nil || m.Type != raftpb.MsgSnap || m.From != from {
		// What is left of the body is not read: the connection ends.
		w.Header().Set("Connection", "close")
		http.Error(w, fmt.Sprintf("bad snapshot message: %v", err), http.StatusBadRequest)
		return
	}
	if err := t.cfg.Snapshots.ReceiveSnapshot(m, br); err != nil {
		t.lg.Warn("receiving a snapshot", "from", fmt.Sprintf("%x", from), "index", m.Snapshot.Metadata.Index, "err", err)
		w.Header().Set("Connection", "close")
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	t.lg.Info("received a snapshot", "from", fmt.Sprintf("%x", from), "index", m.Snapshot.Metadata.Index)
	t.cfg.Raft.Step(m)
	w.WriteHeader(http.StatusNoContent)
}
