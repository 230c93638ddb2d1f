package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

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
