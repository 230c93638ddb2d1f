// Package v3rpc serves etcd's v3 gRPC API (the etcdserverpb services) over
// a cairn member: request validation as etcd does it, response headers, and
// the translation of the store's errors to the gRPC errors etcd clients
// understand (errors.go).
package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
)

// KV is what the KV service needs from a member.
type KV interface {
	Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error)
	Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error)
	DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error)
	Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error)
	Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error)
}

// Member identifies the member for response headers.
type Member interface {
	ID() uint64
	ClusterID() uint64
	Term() uint64
	Rev() int64
}

type header struct{ m Member }

// fill completes a response header: cluster, member and term always, and
// the store revision if the operation did not set one.
func (h header) fill(rh *pb.ResponseHeader) {
	rh.ClusterId = h.m.ClusterID()
	rh.MemberId = h.m.ID()
	rh.RaftTerm = h.m.Term()
	if rh.Revision == 0 {
		rh.Revision = h.m.Rev()
	}
}

type kvServer struct {
	pb.UnimplementedKVServer
	kv        KV
	hdr       header
	maxTxnOps int
}

// NewKVServer returns the KV service. maxTxnOps is --max-txn-ops.
func NewKVServer(kv KV, m Member, maxTxnOps int) pb.KVServer {
	return &kvServer{kv: kv, hdr: header{m}, maxTxnOps: maxTxnOps}
}

func (s *kvServer) Range(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	if err := checkRange(r); err != nil {
		return nil, err
	}
	resp, err := s.kv.Range(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Put(ctx context.Context, r *pb.PutRequest) (*pb.PutResponse, error) {
	if err := checkPut(r); err != nil {
		return nil, err
	}
	resp, err := s.kv.Put(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) DeleteRange(ctx context.Context, r *pb.DeleteRangeRequest) (*pb.DeleteRangeResponse, error) {
	if len(r.Key) == 0 {
		return nil, rpctypes.ErrGRPCEmptyKey
	}
	resp, err := s.kv.DeleteRange(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Txn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	if err := checkTxn(r, s.maxTxnOps); err != nil {
		return nil, err
	}
	// The overlap check comes after the size check so that it never runs on
	// an oversized request (it is quadratic in the worst case).
	if _, _, err := checkOverlaps(r.Success); err != nil {
		return nil, err
	}
	if _, _, err := checkOverlaps(r.Failure); err != nil {
		return nil, err
	}
	resp, err := s.kv.Txn(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *kvServer) Compact(ctx context.Context, r *pb.CompactionRequest) (*pb.CompactionResponse, error) {
	resp, err := s.kv.Compact(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}
