package v3rpc

import (
	"context"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/membership"
)

// Cluster is what the Cluster service needs from a member.
type Cluster interface {
	Member
	Members() []membership.Member
}

type clusterServer struct {
	pb.UnimplementedClusterServer
	c   Cluster
	hdr header
}

// NewClusterServer returns the Cluster service.
func NewClusterServer(c Cluster) pb.ClusterServer {
	return &clusterServer{c: c, hdr: header{c}}
}

func (s *clusterServer) MemberList(ctx context.Context, r *pb.MemberListRequest) (*pb.MemberListResponse, error) {
	resp := &pb.MemberListResponse{Header: &pb.ResponseHeader{}, Members: membersToPB(s.c.Members())}
	s.hdr.fill(resp.Header)
	return resp, nil
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
