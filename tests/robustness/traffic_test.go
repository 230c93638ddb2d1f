package robustness

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
)

// The traffic: several clients, each running one request at a time at a
// bounded rate over a small key space, through cairn's gRPC API directly
// (not clientv3, whose retries could send a request twice and blur what
// the server did). Every value written is unique in the run, which lets
// the watch history tell which ambiguous writes took effect.

const (
	keyPrefix = "key/"
	// rangeEnd ends the range of every key under keyPrefix.
	rangeEnd = "key0"
	// leaseTTL outlives any run, so that no lease expires on its own.
	leaseTTL = 3600
	// maxLeases bounds the leases the traffic keeps granted.
	maxLeases = 3
)

func keyName(i int) string { return fmt.Sprintf("%s%d", keyPrefix, i) }

// endpoints holds a gRPC connection to the member in each slot of the
// cluster. A replaced member takes its predecessor's slot.
type endpoints struct {
	mu    sync.Mutex
	addrs []string
	conns []*grpc.ClientConn
}

func newEndpoints(addrs []string) (*endpoints, error) {
	e := &endpoints{}
	for _, a := range addrs {
		c, err := dial(a)
		if err != nil {
			e.close()
			return nil, err
		}
		e.addrs = append(e.addrs, a)
		e.conns = append(e.conns, c)
	}
	return e, nil
}

func dial(addr string) (*grpc.ClientConn, error) {
	return grpc.NewClient("passthrough:///"+addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
}

func (e *endpoints) len() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return len(e.conns)
}

func (e *endpoints) conn(slot int) *grpc.ClientConn {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.conns[slot]
}

func (e *endpoints) addr(slot int) string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.addrs[slot]
}

// replace points a slot at a new member.
func (e *endpoints) replace(slot int, addr string) error {
	c, err := dial(addr)
	if err != nil {
		return err
	}
	e.mu.Lock()
	old := e.conns[slot]
	e.conns[slot], e.addrs[slot] = c, addr
	e.mu.Unlock()
	old.Close()
	return nil
}

func (e *endpoints) close() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, c := range e.conns {
		c.Close()
	}
}

// history records every operation of a run.
type history struct {
	base time.Time

	mu  sync.Mutex
	ops []porcupine.Operation

	// writes counts writes with a definite response: the progress the
	// fault schedule waits for.
	writes atomic.Int64
	// reads counts reads with a definite response.
	reads atomic.Int64
}

func newHistory() *history { return &history{base: time.Now()} }

// now is the time since the run started, from the monotonic clock.
func (h *history) now() int64 { return int64(time.Since(h.base)) }

func (h *history) record(client int, req *request, resp *response, call, ret int64) {
	if !resp.Unknown && resp.Error == "" {
		switch req.Kind {
		case opGet, opRange:
			h.reads.Add(1)
		default:
			h.writes.Add(1)
		}
	}
	h.mu.Lock()
	h.ops = append(h.ops, porcupine.Operation{ClientId: client, Input: req, Output: resp, Call: call, Return: ret})
	h.mu.Unlock()
}

func (h *history) operations() []porcupine.Operation {
	h.mu.Lock()
	defer h.mu.Unlock()
	ops := append([]porcupine.Operation(nil), h.ops...)
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Call < ops[j].Call })
	return ops
}

// leasePool is the leases the clients share: granted and not yet handed
// to a revoke.
type leasePool struct {
	mu  sync.Mutex
	ids []int64
}

func (p *leasePool) pick(rng *rand.Rand) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return 0
	}
	return p.ids[rng.Intn(len(p.ids))]
}

func (p *leasePool) take(rng *rand.Rand) int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.ids) == 0 {
		return 0
	}
	i := rng.Intn(len(p.ids))
	id := p.ids[i]
	p.ids = append(p.ids[:i], p.ids[i+1:]...)
	return id
}

func (p *leasePool) add(id int64) {
	p.mu.Lock()
	p.ids = append(p.ids, id)
	p.mu.Unlock()
}

func (p *leasePool) len() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.ids)
}

// trafficConfig shapes a run's traffic.
type trafficConfig struct {
	clients int
	rate    float64 // requests per second, all clients together
	keys    int
	timeout time.Duration // per request
}

// traffic runs the clients until stopped.
type traffic struct {
	cfg    trafficConfig
	eps    *endpoints
	hist   *history
	leases leasePool
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// startTraffic starts cfg.clients clients. Even-numbered clients stay on
// one member (slot id/2 mod members), odd-numbered ones move to the next
// member after a failure, as a client with several endpoints would.
func startTraffic(cfg trafficConfig, eps *endpoints, hist *history, seed int64) *traffic {
	ctx, cancel := context.WithCancel(context.Background())
	tr := &traffic{cfg: cfg, eps: eps, hist: hist, cancel: cancel}
	for i := range cfg.clients {
		c := &trafficClient{
			tr:      tr,
			id:      i,
			slot:    (i / 2) % eps.len(),
			pinned:  i%2 == 0,
			rng:     rand.New(rand.NewSource(seed*1000 + int64(i))),
			lastMod: map[string]int64{},
		}
		if !c.pinned {
			c.slot = (i/2 + 1) % eps.len()
		}
		tr.wg.Add(1)
		go func() {
			defer tr.wg.Done()
			c.run(ctx)
		}()
	}
	return tr
}

// stop stops the clients and waits for their last requests, which end
// with an unknown outcome if they were cut short.
func (tr *traffic) stop() {
	tr.cancel()
	tr.wg.Wait()
}

type trafficClient struct {
	tr      *traffic
	id      int
	slot    int
	pinned  bool
	rng     *rand.Rand
	lastMod map[string]int64 // the mod revision this client last saw per key
	seq     int
}

func (c *trafficClient) run(ctx context.Context) {
	interval := time.Duration(float64(time.Second) * float64(c.tr.cfg.clients) / c.tr.cfg.rate)
	// Spread the clients' first requests over one interval.
	first := time.NewTimer(time.Duration(c.rng.Int63n(int64(interval))))
	select {
	case <-ctx.Done():
		first.Stop()
		return
	case <-first.C:
	}
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		req := c.next()
		call := c.tr.hist.now()
		resp := c.do(ctx, req)
		ret := c.tr.hist.now()
		c.tr.hist.record(c.id, req, resp, call, ret)
		c.observe(req, resp)
		if resp.Unknown && !c.pinned {
			c.slot = (c.slot + 1) % c.tr.eps.len()
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// next picks the next request: mostly reads, puts and compare-and-swaps,
// some deletes and lease operations.
func (c *trafficClient) next() *request {
	key := keyName(c.rng.Intn(c.tr.cfg.keys))
	value := func() string {
		c.seq++
		return fmt.Sprintf("c%d-%d", c.id, c.seq)
	}
	switch r := c.rng.Intn(100); {
	case r < 22:
		return &request{Kind: opGet, Key: key}
	case r < 32:
		return &request{Kind: opRange}
	case r < 54:
		return &request{Kind: opPut, Key: key, Value: value()}
	case r < 62:
		return &request{Kind: opPut, Key: key, Value: value(), Lease: c.tr.leases.pick(c.rng)}
	case r < 70:
		return &request{Kind: opDelete, Key: key}
	case r < 90:
		return &request{Kind: opTxn, Key: key, Value: value(), ExpectMod: c.lastMod[key]}
	case r < 95:
		if c.tr.leases.len() >= maxLeases {
			return &request{Kind: opGet, Key: key}
		}
		return &request{Kind: opLeaseGrant}
	default:
		id := c.tr.leases.take(c.rng)
		if id == 0 {
			return &request{Kind: opGet, Key: key}
		}
		return &request{Kind: opLeaseRevoke, Lease: id}
	}
}

// do sends one request to the client's member.
func (c *trafficClient) do(ctx context.Context, req *request) *response {
	ctx, cancel := context.WithTimeout(ctx, c.tr.cfg.timeout)
	defer cancel()
	conn := c.tr.eps.conn(c.slot)
	kv := pb.NewKVClient(conn)
	var (
		resp = &response{}
		err  error
	)
	switch req.Kind {
	case opGet, opRange:
		r := &pb.RangeRequest{Key: []byte(req.Key)}
		if req.Kind == opRange {
			r = &pb.RangeRequest{Key: []byte(keyPrefix), RangeEnd: []byte(rangeEnd)}
		}
		var out *pb.RangeResponse
		if out, err = kv.Range(ctx, r); err == nil {
			resp.Rev = out.Header.Revision
			resp.KVs = fromPB(out.Kvs)
		}
	case opPut:
		var out *pb.PutResponse
		if out, err = kv.Put(ctx, &pb.PutRequest{Key: []byte(req.Key), Value: []byte(req.Value), Lease: req.Lease}); err == nil {
			resp.Rev = out.Header.Revision
		}
	case opDelete:
		var out *pb.DeleteRangeResponse
		if out, err = kv.DeleteRange(ctx, &pb.DeleteRangeRequest{Key: []byte(req.Key)}); err == nil {
			resp.Rev, resp.Deleted = out.Header.Revision, out.Deleted
		}
	case opTxn:
		var out *pb.TxnResponse
		out, err = kv.Txn(ctx, &pb.TxnRequest{
			Compare: []*pb.Compare{{
				Key: []byte(req.Key), Target: pb.Compare_MOD, Result: pb.Compare_EQUAL,
				TargetUnion: &pb.Compare_ModRevision{ModRevision: req.ExpectMod},
			}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte(req.Key), Value: []byte(req.Value)}}}},
			Failure: []*pb.RequestOp{{Request: &pb.RequestOp_RequestRange{RequestRange: &pb.RangeRequest{Key: []byte(req.Key)}}}},
		})
		if err == nil {
			resp.Rev, resp.Succeeded = out.Header.Revision, out.Succeeded
			if !out.Succeeded && len(out.Responses) == 1 {
				resp.KVs = fromPB(out.Responses[0].GetResponseRange().GetKvs())
			}
		}
	case opLeaseGrant:
		var out *pb.LeaseGrantResponse
		if out, err = pb.NewLeaseClient(conn).LeaseGrant(ctx, &pb.LeaseGrantRequest{TTL: leaseTTL}); err == nil {
			resp.Rev, resp.LeaseID = out.Header.Revision, out.ID
			if out.Error != "" {
				err = errors.New(out.Error)
			}
		}
	case opLeaseRevoke:
		var out *pb.LeaseRevokeResponse
		if out, err = pb.NewLeaseClient(conn).LeaseRevoke(ctx, &pb.LeaseRevokeRequest{ID: req.Lease}); err == nil {
			resp.Rev = out.Header.Revision
		}
	}
	if err == nil {
		return resp
	}
	if errors.Is(rpctypes.Error(err), rpctypes.ErrLeaseNotFound) && (req.Kind == opLeaseRevoke || (req.Kind == opPut && req.Lease != 0)) {
		return &response{Error: errLeaseNotFound}
	}
	return &response{Unknown: true, Error: shortError(err)}
}

// observe keeps what the client learnt: mod revisions for its next
// compare-and-swap, leases it was granted.
func (c *trafficClient) observe(req *request, resp *response) {
	if resp.Unknown || resp.Error != "" {
		return
	}
	switch req.Kind {
	case opGet:
		c.lastMod[req.Key] = 0
		for _, kv := range resp.KVs {
			c.lastMod[kv.Key] = kv.Mod
		}
	case opRange:
		for k := range c.lastMod {
			c.lastMod[k] = 0
		}
		for _, kv := range resp.KVs {
			c.lastMod[kv.Key] = kv.Mod
		}
	case opPut:
		c.lastMod[req.Key] = resp.Rev
	case opDelete:
		c.lastMod[req.Key] = 0
	case opTxn:
		if resp.Succeeded {
			c.lastMod[req.Key] = resp.Rev
		} else {
			c.lastMod[req.Key] = 0
			for _, kv := range resp.KVs {
				c.lastMod[kv.Key] = kv.Mod
			}
		}
	case opLeaseGrant:
		c.tr.leases.add(resp.LeaseID)
	}
}

func fromPB(kvs []*mvccKV) []keyValue {
	var out []keyValue
	for _, kv := range kvs {
		out = append(out, keyValue{
			Key: string(kv.Key), Value: string(kv.Value),
			Mod: kv.ModRevision, Create: kv.CreateRevision, Version: kv.Version, Lease: kv.Lease,
		})
	}
	return out
}

// shortError is an error's gRPC code and message, for the history.
func shortError(err error) string {
	if s, ok := status.FromError(err); ok {
		return s.Code().String() + ": " + strings.TrimSpace(s.Message())
	}
	return err.Error()
}
