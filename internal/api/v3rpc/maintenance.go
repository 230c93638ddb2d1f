package v3rpc

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cairn-io/cairn/internal/server"
	"github.com/cairn-io/cairn/internal/version"
)

// Maintenance is what the Maintenance service needs from a member.
type Maintenance interface {
	Member
	Leader() uint64
	CommittedIndex() uint64
	AppliedIndex() uint64
	StorageSize() (total, inUse int64)
	Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error)
	Alarms() []*pb.AlarmMember
	QuotaBackendBytes() int64
	IsLearner() bool
	Hash(ctx context.Context) (uint32, error)
	HashKV(ctx context.Context, rev int64) (hash uint32, hashRev, compactRev int64, err error)
	Defragment(ctx context.Context) error
	OpenSnapshot(ctx context.Context) (int64, io.ReadCloser, error)
	MoveLeader(ctx context.Context, target uint64) error
}

type maintenanceServer struct {
	pb.UnimplementedMaintenanceServer
	m   Maintenance
	hdr header
}

// NewMaintenanceServer returns the Maintenance service.
func NewMaintenanceServer(m Maintenance) pb.MaintenanceServer {
	return &maintenanceServer{m: m, hdr: header{m}}
}

func (s *maintenanceServer) Status(ctx context.Context, r *pb.StatusRequest) (*pb.StatusResponse, error) {
	hdr := &pb.ResponseHeader{}
	s.hdr.fill(hdr)
	total, inUse := s.m.StorageSize()
	resp := &pb.StatusResponse{
		Header:           hdr,
		Version:          version.EtcdServerVersion,
		DbSize:           total,
		Leader:           s.m.Leader(),
		RaftIndex:        s.m.CommittedIndex(),
		RaftTerm:         s.m.Term(),
		RaftAppliedIndex: s.m.AppliedIndex(),
		DbSizeInUse:      inUse,
		IsLearner:        s.m.IsLearner(),
		StorageVersion:   version.StorageVersion,
		DbSizeQuota:      s.m.QuotaBackendBytes(),
		DowngradeInfo:    &pb.DowngradeInfo{},
	}
	if resp.Leader == 0 {
		resp.Errors = append(resp.Errors, server.ErrNoLeader.Error())
	}
	for _, a := range s.m.Alarms() {
		resp.Errors = append(resp.Errors, a.String())
	}
	return resp, nil
}

func (s *maintenanceServer) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp, err := s.m.Alarm(ctx, r)
	if err != nil {
		return nil, toGRPCError(err)
	}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *maintenanceServer) Hash(ctx context.Context, r *pb.HashRequest) (*pb.HashResponse, error) {
	h, err := s.m.Hash(ctx)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.HashResponse{Header: &pb.ResponseHeader{}, Hash: h}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *maintenanceServer) HashKV(ctx context.Context, r *pb.HashKVRequest) (*pb.HashKVResponse, error) {
	h, hashRev, compactRev, err := s.m.HashKV(ctx, r.Revision)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.HashKVResponse{Header: &pb.ResponseHeader{}, Hash: h, CompactRevision: compactRev, HashRevision: hashRev}
	s.hdr.fill(resp.Header)
	return resp, nil
}

func (s *maintenanceServer) Defragment(ctx context.Context, r *pb.DefragmentRequest) (*pb.DefragmentResponse, error) {
	if err := s.m.Defragment(ctx); err != nil {
		return nil, toGRPCError(err)
	}
	// etcd's Defragment response carries no header.
	return &pb.DefragmentResponse{}, nil
}

// snapshotChunk is the blob size of one Snapshot response.
const snapshotChunk = 32 * 1024

func (s *maintenanceServer) Snapshot(r *pb.SnapshotRequest, stream pb.Maintenance_SnapshotServer) error {
	ctx := stream.Context()
	total, rd, err := s.m.OpenSnapshot(ctx)
	if err != nil {
		return toGRPCError(err)
	}
	defer rd.Close()
	buf := make([]byte, snapshotChunk)
	var sent int64
	for {
		n, err := io.ReadFull(rd, buf)
		if n > 0 {
			sent += int64(n)
			// Like etcd's, snapshot responses carry no header.
			resp := &pb.SnapshotResponse{
				RemainingBytes: uint64(total - sent),
				Blob:           buf[:n],
				Version:        version.StorageVersion,
			}
			if serr := stream.Send(resp); serr != nil {
				return serr
			}
		}
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			if sent != total {
				return toGRPCError(fmt.Errorf("snapshot: sent %d bytes, expected %d", sent, total))
			}
			return nil
		}
		if err != nil {
			return toGRPCError(err)
		}
	}
}

func (s *maintenanceServer) MoveLeader(ctx context.Context, r *pb.MoveLeaderRequest) (*pb.MoveLeaderResponse, error) {
	if err := s.m.MoveLeader(ctx, r.TargetID); err != nil {
		return nil, toGRPCError(err)
	}
	// etcd answers a leadership transfer with an empty response, no header.
	return &pb.MoveLeaderResponse{}, nil
}

// downgradeVersion is a downgrade target: MAJOR.MINOR, or a semantic
// version whose patch level and suffixes are ignored, as etcd reads it.
var downgradeVersion = regexp.MustCompile(`^(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)(\.(0|[1-9][0-9]*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?)?$`)

// Downgrade answers etcd's downgrade protocol. A cairn cluster cannot be
// downgraded: its storage is its own, and no older release exists to run
// on it. Every target is refused as etcd refuses a target that is not one
// minor version below the cluster's; cancelling, with nothing in
// progress, succeeds as in etcd.
func (s *maintenanceServer) Downgrade(ctx context.Context, r *pb.DowngradeRequest) (*pb.DowngradeResponse, error) {
	switch r.Action {
	case pb.DowngradeRequest_VALIDATE, pb.DowngradeRequest_ENABLE:
		if !downgradeVersion.MatchString(r.Version) {
			return nil, rpctypes.ErrGRPCWrongDowngradeVersionFormat
		}
		return nil, rpctypes.ErrGRPCInvalidDowngradeTargetVersion
	case pb.DowngradeRequest_CANCEL:
		resp := &pb.DowngradeResponse{Header: &pb.ResponseHeader{}, Version: clusterMinor()}
		s.hdr.fill(resp.Header)
		return resp, nil
	default:
		return nil, status.Error(codes.Unknown, "etcdserver: unknown method")
	}
}

// clusterMinor is the cluster version as MAJOR.MINOR, as downgrade
// responses give it.
func clusterMinor() string {
	parts := strings.SplitN(version.EtcdClusterVersion, ".", 3)
	return parts[0] + "." + parts[1]
}
