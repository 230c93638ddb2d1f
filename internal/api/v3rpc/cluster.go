package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

	"github.com/cairn-io/cairn/internal/membership"
)

// Cluster is what the Cluster service needs from a member.
type Cluster interface {
	Member
	Members() []membership.Member
	// LinearizableMembers returns the members once this member has applied
	// everything committed when it was called (a ReadIndex round).
	LinearizableMembers(ctx context.Context) ([]membership.Member, error)
	MemberAdd(ctx context.Context, peerURLs []string, isLearner bool) (membership.Member, []membership.Member, error)
	MemberRemove(ctx context.Context, id uint64) ([]membership.Member, error)
	MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]membership.Member, error)
	MemberPromote(ctx context.Context, id uint64) ([]membership.Member, error)
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	c Cluster
}

// NewClusterServer returns the Cluster service.
func NewClusterServer(c Cluster) pb.ClusterServer {
	return &clusterServer{c: c}
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	ms := s.c.Members()
	if r.Linearizable {
		var err error
		if ms, err = s.c.LinearizableMembers(ctx); err != nil {
			return nil, toGRPCError(err)
		}
	}
	resp := &pb.MemberListResponse{Header: s.header(), Members: membersToPB(ms)}
	return resp, nil
}

// header is the Cluster service's response header: as etcd's, it carries
// no store revision.
func (s *clusterServer) header() *pb.ResponseHeader {
	return &pb.ResponseHeader{ClusterId: s.c.ClusterID(), MemberId: s.c.ID(), RaftTerm: s.c.Term()}
}

func membersToPB(ms []membership.Member) []*pb.Member {
	out := make([]*pb.Member, len(ms))
	for i, m := range ms {
		out[i] = &pb.Member{
			ID:         m.ID,
			Name:       m.Name,
			PeerURLs:   m.PeerURLs,
			ClientURLs: m.ClientURLs,
			IsLearner:  m.IsLearner,
		}
	}
	return out
}

func checkPeerURLs(urls []string) error {
	if len(urls) == 0 {
		return rpctypes.ErrGRPCMemberBadURLs
	}
	for _, u := range urls {
		if membership.ValidateURL(u) != nil {
			return rpctypes.ErrGRPCMemberBadURLs
		}
	}
	return nil
}

func (s *clusterServer) MemberAdd(ctx context.Context, r *pb.MemberAddRequest) (*pb.MemberAddResponse, error) {
	if err := checkPeerURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	m, members, err := s.c.MemberAdd(ctx, r.PeerURLs, r.IsLearner)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.MemberAddResponse{
		Header:  s.header(),
		Member:  &pb.Member{ID: m.ID, PeerURLs: m.PeerURLs, IsLearner: m.IsLearner},
		Members: membersToPB(members),
	}
	return resp, nil
}

func (s *clusterServer) MemberRemove(ctx context.Context, r *pb.MemberRemoveRequest) (*pb.MemberRemoveResponse, error) {
	members, err := s.c.MemberRemove(ctx, r.ID)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.MemberRemoveResponse{Header: s.header(), Members: membersToPB(members)}
	return resp, nil
}

func (s *clusterServer) MemberUpdate(ctx context.Context, r *pb.MemberUpdateRequest) (*pb.MemberUpdateResponse, error) {
	if err := checkPeerURLs(r.PeerURLs); err != nil {
		return nil, err
	}
	members, err := s.c.MemberUpdate(ctx, r.ID, r.PeerURLs)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.MemberUpdateResponse{Header: s.header(), Members: membersToPB(members)}
	return resp, nil
}

func (s *clusterServer) MemberPromote(ctx context.Context, r *pb.MemberPromoteRequest) (*pb.MemberPromoteResponse, error) {
	members, err := s.c.MemberPromote(ctx, r.ID)
	if err != nil {
		return nil, toGRPCError(err)
	}
	resp := &pb.MemberPromoteResponse{Header: s.header(), Members: membersToPB(members)}
	return resp, nil
}
