package transport

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.etcd.io/raft/v3"
	"go.etcd.io/raft/v3/raftpb"
)

var (
	metricDropped = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cairn", Subsystem: "network", Name: "peer_messages_dropped_total",
		Help: "Raft messages dropped because a peer's queue was full or it was unreachable.",
	})
	metricSent = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cairn", Subsystem: "network", Name: "peer_messages_sent_total",
		Help: "Raft messages written to peer streams.",
	})
	metricReceived = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: "cairn", Subsystem: "network", Name: "peer_messages_received_total",
		Help: "Raft messages received from peer streams.",
	})
	metricSnapshotsSent = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "etcd", Subsystem: "network", Name: "snapshot_send_success",
		Help: "Total number of successful snapshot sends",
	}, []string{"To"})
)

func init() {
	prometheus.MustRegister(metricDropped, metricSent, metricReceived, metricSnapshotsSent)
}

// newClient returns the client of peer requests: connections dial within
// dialTimeout, and every write to one must complete within writeTimeout.
// There is no overall timeout: streams are long-lived.
func newClient(tlsCfg *tls.Config, writeTimeout time.Duration) *http.Client {
	d := &net.Dialer{Timeout: dialTimeout, KeepAlive: 30 * time.Second}
	tr := &http.Transport{
		Proxy:               nil,
		MaxIdleConnsPerHost: 4,
		IdleConnTimeout:     time.Minute,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &writeDeadlineConn{Conn: c, timeout: writeTimeout}, nil
		},
	}
	if tlsCfg != nil {
		tr.TLSClientConfig = tlsCfg.Clone()
	}
	return &http.Client{Transport: tr}
}

// writeDeadlineConn fails a write that does not complete within timeout,
// as to a peer that stopped reading or a network that drops everything,
// instead of letting it block until TCP gives up.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}

const (
	minBackoff = 50 * time.Millisecond
	maxBackoff = time.Second
)

// peer sends to one member.
type peer struct {
	t     *Transport
	id    uint64
	msgc  chan raftpb.Message
	snapc chan raftpb.Message
	// sentFailures counts the messages to this peer that were dropped.
	sentFailures prometheus.Counter

	mu       sync.Mutex
	urls     []string
	next     int // index of the URL to try next
	stopc    chan struct{}
	stopOnce sync.Once
}

func newPeer(t *Transport, id uint64, urls []string) *peer {
	p := &peer{
		t:     t,
		id:    id,
		msgc:  make(chan raftpb.Message, t.cfg.QueueLength),
		snapc: make(chan raftpb.Message, 1),
		urls:  append([]string(nil), urls...),
		stopc: make(chan struct{}),
	}
	p.sentFailures = metricPeerSentFailures.WithLabelValues(fmt.Sprintf("%x", id))
	return p
}

func (p *peer) setURLs(urls []string) {
	p.mu.Lock()
	p.urls = append([]string(nil), urls...)
	p.next = 0
	p.mu.Unlock()
}

func (p *peer) url() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.urls) == 0 {
		return ""
	}
	u := p.urls[p.next%len(p.urls)]
	return strings.TrimSuffix(u, "/")
}

// rotate moves to the peer's next URL after a failure.
func (p *peer) rotate() {
	p.mu.Lock()
	p.next++
	p.mu.Unlock()
}

func (p *peer) stop() { p.stopOnce.Do(func() { close(p.stopc) }) }

// stopContext returns a context that is canceled when the peer is stopped
// or cancel is called.
func (p *peer) stopContext() (context.Context, context.CancelCauseFunc) {
	ctx, cancel := context.WithCancelCause(context.Background())
	go func() {
		select {
		case <-p.stopc:
			cancel(nil)
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func (p *peer) newRequest(ctx context.Context, path string, body io.Reader) (*http.Request, error) {
	u := p.url()
	if u == "" {
		return nil, fmt.Errorf("member %x has no peer URL", p.id)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+path, body)
	if err != nil {
		return nil, err
	}
	p.t.SetHeaders(req.Header, p.id)
	req.Header.Set("Content-Type", "application/octet-stream")
	return req, nil
}

// streamLoop keeps a stream open to the peer and writes queued messages
// into it.
func (p *peer) streamLoop() {
	defer p.t.wg.Done()
	backoff := minBackoff
	for {
		accepted, err := p.stream()
		select {
		case <-p.stopc:
			return
		default:
		}
		if accepted {
			backoff = minBackoff
		}
		p.t.lg.Debug("peer stream ended", "peer", fmt.Sprintf("%x", p.id), "url", p.url(), "accepted", accepted, "err", err)
		p.rotate()
		// While disconnected, queued messages are stale: drop them and
		// let raft know.
		timer := time.NewTimer(backoff)
	drain:
		for {
			select {
			case <-p.stopc:
				timer.Stop()
				return
			case <-p.msgc:
				metricDropped.Inc()
				p.sentFailures.Inc()
				p.t.cfg.Raft.ReportUnreachable(p.id)
			case <-timer.C:
				break drain
			}
		}
		backoff = min(backoff*2, maxBackoff)
	}
}

// stream runs one connection until it fails or the peer is stopped, and
// reports whether the peer accepted it. The peer must accept it within the
// connection timeout and then send keepalives; a stream on which nothing
// arrived for the connection timeout is given up.
func (p *peer) stream() (accepted bool, err error) {
	ctx, cancel := p.stopContext()
	defer cancel(nil)
	pr, pw := io.Pipe()
	req, err := p.newRequest(ctx, StreamPath, pr)
	if err != nil {
		return false, err
	}
	timeout := p.t.cfg.ConnTimeout
	// silence cancels the request when nothing arrived for the timeout,
	// starting with the peer's answer.
	silence := time.AfterFunc(timeout, func() { cancel(ErrPeerSilent) })
	defer silence.Stop()
	acceptc := make(chan struct{})
	respc := make(chan error, 1)
	go func() {
		resp, err := p.t.client.Do(req)
		if err == nil {
			if resp.StatusCode == http.StatusOK {
				close(acceptc)
				err = readKeepalives(resp.Body, silence, timeout)
			} else {
				body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
				err = p.refusal(resp, body)
			}
			resp.Body.Close()
		}
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		pr.CloseWithError(err)
		respc <- err
	}()
	defer pw.Close()
	bw := bufio.NewWriterSize(pw, 64<<10)
	keepalive := time.NewTicker(p.t.keepaliveInterval())
	defer keepalive.Stop()
	wrote := false
	for {
		select {
		case <-p.stopc:
			return accepted, nil
		case <-acceptc:
			accepted, acceptc = true, nil
		case err := <-respc:
			if errors.Is(err, ErrMemberRemoved) {
				p.t.cfg.OnRemoved()
			}
			if errors.Is(err, ErrMemberRemoved) || errors.Is(err, ErrClusterMismatch) {
				p.t.lg.Warn("peer refused the stream", "peer", fmt.Sprintf("%x", p.id), "err", err)
			}
			return accepted, err
		case <-keepalive.C:
			if !wrote {
				if _, err := bw.Write(keepaliveFrame); err != nil {
					return accepted, err
				}
				if err := bw.Flush(); err != nil {
					return accepted, err
				}
			}
			wrote = false
		case m := <-p.msgc:
			if err := WriteFrame(bw, &m); err != nil {
				return accepted, err
			}
			n := 1
			// Batch whatever else is queued into the same flush.
		more:
			for n < 1024 {
				select {
				case m := <-p.msgc:
					if err := WriteFrame(bw, &m); err != nil {
						return accepted, err
					}
					n++
				default:
					break more
				}
			}
			if err := bw.Flush(); err != nil {
				return accepted, err
			}
			wrote = true
			metricSent.Add(float64(n))
		}
	}
}

// readKeepalives reads a stream's answer, the peer's keepalives, putting
// off silence by timeout whenever something arrives, until the stream ends
// or the peer says this member was removed.
func readKeepalives(body io.Reader, silence *time.Timer, timeout time.Duration) error {
	buf := make([]byte, 64)
	for {
		n, err := body.Read(buf)
		if bytes.IndexByte(buf[:n], removedByte) >= 0 {
			return ErrMemberRemoved
		}
		if err != nil {
			return err
		}
		silence.Reset(timeout)
	}
}

// refusal is the error a peer's answer to a stream means: the stream ended
// or was refused.
func (p *peer) refusal(resp *http.Response, body []byte) error {
	msg := strings.TrimSpace(string(body))
	switch {
	case resp.StatusCode == http.StatusGone:
		return ErrMemberRemoved
	case resp.StatusCode == http.StatusPreconditionFailed && resp.Header.Get(HeaderCluster) != "" &&
		resp.Header.Get(HeaderCluster) != strconv.FormatUint(p.t.cfg.ClusterID, 16):
		return fmt.Errorf("%w: member %x at %s is in cluster %s, this member in cluster %x",
			ErrClusterMismatch, p.id, p.url(), resp.Header.Get(HeaderCluster), p.t.cfg.ClusterID)
	default:
		return fmt.Errorf("stream closed by peer: %s: %s", resp.Status, msg)
	}
}

// snapshotLoop sends snapshots, one at a time.
func (p *peer) snapshotLoop() {
	defer p.t.wg.Done()
	for {
		select {
		case <-p.stopc:
			return
		case m := <-p.snapc:
			status := raft.SnapshotFinish
			if err := p.sendSnapshot(m); err != nil {
				p.t.lg.Warn("sending a snapshot failed", "peer", fmt.Sprintf("%x", p.id), "err", err)
				status = raft.SnapshotFailure
				p.t.cfg.Raft.ReportUnreachable(p.id)
			} else {
				metricSnapshotsSent.WithLabelValues(fmt.Sprintf("%x", p.id)).Inc()
			}
			p.t.cfg.Raft.ReportSnapshot(p.id, status)
		}
	}
}

// snapshotAnswerRate is the slowest rate, in bytes per second, at which a
// peer is assumed to finish storing a snapshot it has read (writing and
// syncing its file) before it answers.
const snapshotAnswerRate = 10 << 20

// sendSnapshot streams a snapshot to the peer. Every write to the
// connection must complete within the connection timeout; once the whole
// snapshot is written, the peer must answer within the connection timeout
// plus the time to store what was sent at snapshotAnswerRate.
func (p *peer) sendSnapshot(m raftpb.Message) error {
	msg, data, err := p.t.cfg.Snapshots.OpenSnapshot(m)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer data.Close()
	ctx, cancel := p.stopContext()
	defer cancel(nil)
	pr, pw := io.Pipe()
	var answer *time.Timer
	var answerMu sync.Mutex
	defer func() {
		answerMu.Lock()
		if answer != nil {
			answer.Stop()
		}
		answerMu.Unlock()
	}()
	go func() {
		cw := &countingWriter{w: pw}
		bw := bufio.NewWriterSize(cw, 256<<10)
		err := WriteFrame(bw, &msg)
		if err == nil {
			_, err = io.Copy(bw, data)
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
		if err == nil {
			wait := p.t.cfg.ConnTimeout + time.Duration(cw.n)*time.Second/snapshotAnswerRate
			answerMu.Lock()
			answer = time.AfterFunc(wait, func() {
				cancel(fmt.Errorf("peer did not answer within %v of the last of %d snapshot bytes", wait, cw.n))
			})
			answerMu.Unlock()
		}
	}()
	req, err := p.newRequest(ctx, SnapshotPath, pr)
	if err != nil {
		pr.Close()
		return err
	}
	p.t.lg.Info("sending a snapshot", "peer", fmt.Sprintf("%x", p.id), "index", msg.Snapshot.Metadata.Index)
	resp, err := p.t.client.Do(req)
	if err != nil {
		if cause := context.Cause(ctx); cause != nil {
			err = cause
		}
		pr.CloseWithError(err)
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// countingWriter counts the bytes written through it.
type countingWriter struct {
	w io.Writer
	n int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
