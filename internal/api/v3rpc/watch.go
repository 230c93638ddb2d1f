package v3rpc

import (
	"context"
	"errors"
	"io"
	"sync"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/watch"
)

// Watches is what the Watch service needs from a member.
type Watches interface {
	Member
	Hub() *watch.Hub
	// Range reads at a revision; the service uses it to find the previous
	// value of a key for watchers that ask for prev_kv.
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
}

// WatchConfig configures the Watch service.
type WatchConfig struct {
	// MaxRequestBytes bounds a response before it is fragmented for
	// watchers that allow fragments.
	MaxRequestBytes int
	// ProgressInterval is how often watchers with progress_notify that got
	// no events are sent a progress notification. Default 10 minutes.
	ProgressInterval time.Duration
}

type watchServer struct {
	pb.UnimplementedWatchServer
	w   Watches
	hdr header
	cfg WatchConfig
}

// NewWatchServer returns the Watch service.
func NewWatchServer(w Watches, cfg WatchConfig) pb.WatchServer {
	if cfg.ProgressInterval <= 0 {
		cfg.ProgressInterval = 10 * time.Minute
	}
	if cfg.MaxRequestBytes <= 0 {
		cfg.MaxRequestBytes = 1536 * 1024
	}
	return &watchServer{w: w, hdr: header{w}, cfg: cfg}
}

// watchStream is one client stream: a receive loop that creates and cancels
// watchers, and a send loop that forwards the hub's responses and the
// control responses, in order.
type watchStream struct {
	srv    *watchServer
	grpc   pb.Watch_WatchServer
	hs     *watch.Stream
	ctrl   chan *pb.WatchResponse
	closec chan struct{}

	mu sync.Mutex
	// Per-watcher options the send loop needs.
	prevKV   map[int64]bool
	fragment map[int64]bool
	// progress[id] is true when the watcher asked for progress
	// notifications and got no events since the last tick.
	progress map[int64]bool
}

func (s *watchServer) Watch(stream pb.Watch_WatchServer) error {
	ws := &watchStream{
		srv:      s,
		grpc:     stream,
		hs:       s.w.Hub().NewStream(),
		ctrl:     make(chan *pb.WatchResponse, 16),
		closec:   make(chan struct{}),
		prevKV:   map[int64]bool{},
		fragment: map[int64]bool{},
		progress: map[int64]bool{},
	}
	defer ws.hs.Close()
	sendErr := make(chan error, 1)
	go func() { sendErr <- ws.sendLoop() }()
	recvErr := make(chan error, 1)
	go func() { recvErr <- ws.recvLoop() }()
	// closec stops the send loop and any control response still being
	// queued; it is closed once, on the way out.
	defer close(ws.closec)
	for {
		select {
		case err := <-recvErr:
			if err != nil {
				return err
			}
			// The client closed its sending side (the JSON gateway does so
			// once it has read the request body). As in etcd, that ends
			// nothing: the watchers keep sending until the stream ends.
			recvErr = nil
		case err := <-sendErr:
			return err
		case <-stream.Context().Done():
			return stream.Context().Err()
		case <-ws.hs.Done():
			return rpctypes.ErrGRPCStopped
		}
	}
}

// header returns a response header with exactly revision rev: unlike the
// unary services, a watch response never has its revision filled in (etcd
// sends 0 with a compaction cancel).
func (ws *watchStream) header(rev int64) *pb.ResponseHeader {
	m := ws.srv.hdr.m
	return &pb.ResponseHeader{ClusterId: m.ClusterID(), MemberId: m.ID(), RaftTerm: m.Term(), Revision: rev}
}

func (ws *watchStream) sendCtrl(r *pb.WatchResponse) bool {
	select {
	case ws.ctrl <- r:
		return true
	case <-ws.closec:
		return false
	}
}

func (ws *watchStream) recvLoop() error {
	for {
		req, err := ws.grpc.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
		switch u := req.RequestUnion.(type) {
		case *pb.WatchRequest_CreateRequest:
			if u.CreateRequest == nil {
				continue
			}
			if !ws.create(u.CreateRequest) {
				return nil
			}
		case *pb.WatchRequest_CancelRequest:
			if u.CancelRequest == nil {
				continue
			}
			id := u.CancelRequest.WatchId
			if err := ws.hs.Cancel(id); err == nil {
				if !ws.sendCtrl(&pb.WatchResponse{Header: ws.header(ws.srv.w.Hub().Rev()), WatchId: id, Canceled: true}) {
					return nil
				}
				ws.mu.Lock()
				delete(ws.prevKV, id)
				delete(ws.fragment, id)
				delete(ws.progress, id)
				ws.mu.Unlock()
			}
		case *pb.WatchRequest_ProgressRequest:
			if u.ProgressRequest != nil {
				ws.hs.RequestProgress()
			}
		}
	}
}

// create adds a watcher and queues its created response. It reports false
// when the stream is closing.
func (ws *watchStream) create(cr *pb.WatchCreateRequest) bool {
	key := cr.Key
	if len(key) == 0 {
		key = []byte{0}
	}
	if cr.StartRevision < 0 {
		return ws.sendCtrl(&pb.WatchResponse{
			Header: ws.header(ws.srv.w.Hub().Rev()), WatchId: watch.InvalidWatchID,
			Created: true, Canceled: true, CancelReason: rpctypes.ErrCompacted.Error(),
		})
	}
	var end []byte
	switch {
	case len(cr.RangeEnd) == 0:
	case len(cr.RangeEnd) == 1 && cr.RangeEnd[0] == 0:
		end = []byte{}
	default:
		end = cr.RangeEnd
	}
	if err := checkWatch(ws.srv.w, ws.grpc.Context(), key, cr.RangeEnd); err != nil {
		return ws.sendCtrl(&pb.WatchResponse{
			Header: ws.header(ws.srv.w.Hub().Rev()), WatchId: watch.InvalidWatchID,
			Created: true, Canceled: true, CancelReason: watchCancelReason(err),
		})
	}
	o := watch.WatchOptions{ID: cr.WatchId, Key: key, End: end, StartRev: cr.StartRevision}
	for _, f := range cr.Filters {
		switch f {
		case pb.WatchCreateRequest_NOPUT:
			o.NoPut = true
		case pb.WatchCreateRequest_NODELETE:
			o.NoDelete = true
		}
	}
	id, rev, err := ws.hs.Watch(o)
	if err != nil {
		rev = ws.srv.w.Hub().Rev()
	}
	if err == nil {
		// Recorded before the created response is queued; the send loop
		// holds the watcher's events back until that response is out.
		ws.mu.Lock()
		ws.prevKV[id] = cr.PrevKv
		ws.fragment[id] = cr.Fragment
		if cr.ProgressNotify {
			ws.progress[id] = true
		}
		ws.mu.Unlock()
	}
	resp := &pb.WatchResponse{Header: ws.header(rev), WatchId: id, Created: true, Canceled: err != nil}
	if err != nil {
		resp.CancelReason = err.Error()
	}
	return ws.sendCtrl(resp)
}

func (ws *watchStream) sendLoop() error {
	// created holds the watchers whose created response went out; events
	// for a watcher are held back until then.
	created := map[int64]bool{}
	pending := map[int64][]watch.Response{}
	ticker := time.NewTicker(ws.srv.cfg.ProgressInterval)
	defer ticker.Stop()
	for {
		select {
		case r := <-ws.hs.Chan():
			if r.WatchID != watch.InvalidWatchID && !created[r.WatchID] {
				pending[r.WatchID] = append(pending[r.WatchID], r)
				continue
			}
			if err := ws.send(ws.toPB(r)); err != nil {
				return err
			}
		case c := <-ws.ctrl:
			if err := ws.grpc.Send(c); err != nil {
				return err
			}
			switch {
			case c.Canceled && c.WatchId != watch.InvalidWatchID:
				delete(created, c.WatchId)
				delete(pending, c.WatchId)
			case c.Created && !c.Canceled:
				created[c.WatchId] = true
				for _, r := range pending[c.WatchId] {
					if err := ws.send(ws.toPB(r)); err != nil {
						return err
					}
				}
				delete(pending, c.WatchId)
			}
		case <-ticker.C:
			ws.mu.Lock()
			for id, quiet := range ws.progress {
				if quiet {
					ws.hs.RequestWatcherProgress(id)
				}
				ws.progress[id] = true
			}
			ws.mu.Unlock()
		case <-ws.closec:
			return nil
		}
	}
}

// toPB turns a hub response into the wire response, fetching previous
// values for watchers that asked for them.
func (ws *watchStream) toPB(r watch.Response) *pb.WatchResponse {
	ws.mu.Lock()
	wantPrev := ws.prevKV[r.WatchID]
	if len(r.Events) > 0 {
		if _, ok := ws.progress[r.WatchID]; ok {
			ws.progress[r.WatchID] = false
		}
	}
	ws.mu.Unlock()
	wr := &pb.WatchResponse{
		Header:          ws.header(r.Revision),
		WatchId:         r.WatchID,
		CompactRevision: r.CompactRevision,
		Canceled:        r.CompactRevision != 0,
	}
	if len(r.Events) > 0 {
		wr.Events = make([]*mvccpb.Event, len(r.Events))
	}
	for i := range r.Events {
		// The hub shares one event slice between the watchers of a key:
		// read it, never write it.
		ev := &r.Events[i]
		if wantPrev && !(ev.Type == mvccpb.PUT && ev.Kv.CreateRevision == ev.Kv.ModRevision) {
			prev, err := ws.srv.w.Range(auth.AsInternal(context.Background()), &pb.RangeRequest{
				Key: ev.Kv.Key, Revision: ev.Kv.ModRevision - 1, Serializable: true,
			})
			if err == nil && len(prev.Kvs) > 0 {
				withPrev := *ev
				withPrev.PrevKv = prev.Kvs[0]
				ev = &withPrev
			}
		}
		wr.Events[i] = ev
	}
	return wr
}

// send sends wr, in fragments if its watcher allows them and it is too big.
func (ws *watchStream) send(wr *pb.WatchResponse) error {
	ws.mu.Lock()
	frag := ws.fragment[wr.WatchId]
	ws.mu.Unlock()
	// etcd fragments at the largest message gRPC accepts, the request
	// limit plus its overhead allowance.
	limit := ws.srv.cfg.MaxRequestBytes + grpcOverheadBytes
	if !frag || wr.Size() < limit || len(wr.Events) < 2 {
		return ws.grpc.Send(wr)
	}
	// Split the events over responses of at most limit bytes (a single
	// larger event goes alone); all but the last are marked Fragment.
	events := wr.Events
	for len(events) > 0 {
		part := *wr
		part.Events = nil
		part.Fragment = true
		n := 0
		for n < len(events) {
			part.Events = events[:n+1]
			if n > 0 && part.Size() >= limit {
				part.Events = events[:n]
				break
			}
			n++
		}
		events = events[len(part.Events):]
		if len(events) == 0 {
			part.Fragment = false
		}
		if err := ws.grpc.Send(&part); err != nil {
			return err
		}
	}
	return nil
}
