package transport

import (
	"bufio"
	"context"
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

func dialer(timeout time.Duration) func(ctx context.Context, network, addr string) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	return d.DialContext
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
		err := p.stream()
		select {
		case <-p.stopc:
			return
		default:
		}
		if err != nil {
			p.t.lg.Debug("peer stream failed", "peer", fmt.Sprintf("%x", p.id), "url", p.url(), "err", err)
			p.rotate()
		}
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
		if err == nil {
			backoff = minBackoff
		}
	}
}

// stream runs one connection until it fails or the peer is stopped.
func (p *peer) stream() error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	req, err := p.newRequest(ctx, StreamPath, pr)
	if err != nil {
		return err
	}
	respc := make(chan error, 1)
	go func() {
		resp, err := p.t.cfg.Client.Do(req)
		if err == nil {
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			err = p.refusal(resp, body)
		}
		pr.CloseWithError(err)
		respc <- err
	}()
	defer pw.Close()
	bw := bufio.NewWriterSize(pw, 64<<10)
	for {
		select {
		case <-p.stopc:
			return nil
		case err := <-respc:
			if errors.Is(err, ErrMemberRemoved) {
				p.t.cfg.OnRemoved()
			}
			if errors.Is(err, ErrMemberRemoved) || errors.Is(err, ErrClusterMismatch) {
				p.t.lg.Warn("peer refused the stream", "peer", fmt.Sprintf("%x", p.id), "err", err)
			}
			return err
		case m := <-p.msgc:
			if err := WriteFrame(bw, &m); err != nil {
				return err
			}
			n := 1
			// Batch whatever else is queued into the same flush.
		more:
			for n < 1024 {
				select {
				case m := <-p.msgc:
					if err := WriteFrame(bw, &m); err != nil {
						return err
					}
					n++
				default:
					break more
				}
			}
			if err := bw.Flush(); err != nil {
				return err
			}
			metricSent.Add(float64(n))
		}
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

func (p *peer) sendSnapshot(m raftpb.Message) error {
	msg, data, err := p.t.cfg.Snapshots.OpenSnapshot(m)
	if err != nil {
		return fmt.Errorf("open snapshot: %w", err)
	}
	defer data.Close()
	pr, pw := io.Pipe()
	go func() {
		bw := bufio.NewWriterSize(pw, 256<<10)
		err := WriteFrame(bw, &msg)
		if err == nil {
			_, err = io.Copy(bw, data)
		}
		if err == nil {
			err = bw.Flush()
		}
		pw.CloseWithError(err)
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-p.stopc:
			cancel()
		case <-ctx.Done():
		}
	}()
	req, err := p.newRequest(ctx, SnapshotPath, pr)
	if err != nil {
		pr.Close()
		return err
	}
	p.t.lg.Info("sending a snapshot", "peer", fmt.Sprintf("%x", p.id), "index", msg.Snapshot.Metadata.Index)
	resp, err := p.t.cfg.Client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
		return fmt.Errorf("peer answered %s: %s", resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}
