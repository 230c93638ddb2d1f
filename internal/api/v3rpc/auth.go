package v3rpc

import (
	"context"
	"errors"
	"net"
	"strings"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"

	"github.com/cairn-io/cairn/internal/auth"
)

// Auth is what the Auth service and the auth checks at the edge need from
// a member.
type Auth interface {
	Member
	Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error)
	AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error)
	AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error)
	AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error)
	UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error)
	UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error)
	UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error)
	UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error)
	UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error)
	UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error)
	UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error)
	RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error)
	RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error)
	RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error)
	RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error)
	RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error)
	RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error)

	authChecks
}

// authChecks are the edge checks of requests that are not proposed (or,
// for membership changes, not checked again when applied).
type authChecks interface {
	// RequireAuthInfo fails unless the request names a user.
	RequireAuthInfo(ctx context.Context) error
	// CheckAdmin fails unless the request's user has the root role.
	CheckAdmin(ctx context.Context) error
}

// watchChecker checks a watch's range.
type watchChecker interface {
	CheckWatch(ctx context.Context, key, rangeEnd []byte) error
}

// edgeCheck is what a method needs before its handler runs.
type edgeCheck int

const (
	checkNone  edgeCheck = iota
	checkUser            // the request must name a user
	checkAdmin           // the user must have the root role
)

// edgeChecks lists the methods etcd checks at the edge without looking at
// keys: the admin-only ones, and those any authenticated user may call.
// Key checks happen in the member (ranges, txns, proposals, leases) and in
// the watch service.
var edgeChecks = map[string]edgeCheck{
	"/etcdserverpb.KV/Compact":             checkAdmin,
	"/etcdserverpb.Lease/LeaseGrant":       checkUser,
	"/etcdserverpb.Lease/LeaseRevoke":      checkUser,
	"/etcdserverpb.Maintenance/Status":     checkUser,
	"/etcdserverpb.Maintenance/Defragment": checkAdmin,
	"/etcdserverpb.Maintenance/Hash":       checkAdmin,
	"/etcdserverpb.Maintenance/HashKV":     checkAdmin,
	"/etcdserverpb.Maintenance/Snapshot":   checkAdmin,
	"/etcdserverpb.Maintenance/MoveLeader": checkAdmin,
	"/etcdserverpb.Maintenance/Downgrade":  checkAdmin,
	"/etcdserverpb.Cluster/MemberList":     checkUser,
	"/etcdserverpb.Cluster/MemberAdd":      checkAdmin,
	"/etcdserverpb.Cluster/MemberRemove":   checkAdmin,
	"/etcdserverpb.Cluster/MemberUpdate":   checkAdmin,
	"/etcdserverpb.Cluster/MemberPromote":  checkAdmin,
	"/etcdserverpb.Maintenance/Alarm":      checkAdmin, // GET: checkUser, below
}

func runEdgeCheck(ctx context.Context, a authChecks, method string, req any) error {
	c := edgeChecks[method]
	if ar, ok := req.(*pb.AlarmRequest); ok && ar.Action == pb.AlarmRequest_GET {
		c = checkUser
	}
	switch c {
	case checkUser:
		return a.RequireAuthInfo(ctx)
	case checkAdmin:
		return a.CheckAdmin(ctx)
	}
	return nil
}

// requestCredentials reads what a request presents: the token in its
// metadata ("token", or "authorization" with an optional "Bearer "
// prefix, as the JSON gateway forwards it), and the CN of the client
// certificate its connection verified, unless the request came through the
// JSON gateway, whose connection carries the member's own certificate;
// and the client's IP address, which password checks are shared by (the
// gateway's requests share the member's own).
func requestCredentials(ctx context.Context) auth.Credentials {
	var c auth.Credentials
	md, _ := metadata.FromIncomingContext(ctx)
	if ts := md.Get(rpctypes.TokenFieldNameGRPC); len(ts) > 0 {
		c.Token = ts[0]
	} else if ts := md.Get(rpctypes.TokenFieldNameSwagger); len(ts) > 0 {
		c.Token = strings.TrimPrefix(ts[0], "Bearer ")
	}
	p, _ := peer.FromContext(ctx)
	if p != nil && p.Addr != nil {
		c.Source = p.Addr.String()
		if host, _, err := net.SplitHostPort(c.Source); err == nil {
			c.Source = host
		}
	}
	if len(md.Get("grpcgateway-accept")) > 0 || len(md.Get(auth.GatewayMetadataKey)) > 0 {
		return c
	}
	if p != nil {
		if ti, ok := p.AuthInfo.(credentials.TLSInfo); ok {
			for _, chain := range ti.State.VerifiedChains {
				if len(chain) > 0 {
					c.CommonName = chain[0].Subject.CommonName
					break
				}
			}
		}
	}
	return c
}

// authUnary puts the request's credentials in its context (resolved at
// most once per request) and runs the method's edge check.
func authUnary(a authChecks) grpc.UnaryServerInterceptor {
	return func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		ctx = auth.WithCredentials(ctx, requestCredentials(ctx), true)
		if err := runEdgeCheck(ctx, a, info.FullMethod, req); err != nil {
			return nil, toGRPCError(err)
		}
		return handler(ctx, req)
	}
}

// authStream does the same for streams; a stream resolves its
// credentials each time it checks them (a watch stream outlives tokens).
func authStream(a authChecks) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		ctx := auth.WithCredentials(ss.Context(), requestCredentials(ss.Context()), false)
		if err := runEdgeCheck(ctx, a, info.FullMethod, nil); err != nil {
			return toGRPCError(err)
		}
		return handler(srv, &credStream{ServerStream: ss, ctx: ctx})
	}
}

type credStream struct {
	grpc.ServerStream
	ctx context.Context
}

func (s *credStream) Context() context.Context { return s.ctx }

// watchCancelReason is the cancel reason of a watch the auth check
// refused, as etcd words it.
func watchCancelReason(err error) string {
	switch {
	case errors.Is(err, auth.ErrInvalidAuthToken):
		return rpctypes.ErrGRPCInvalidAuthToken.Error()
	case errors.Is(err, auth.ErrAuthOldRevision):
		return rpctypes.ErrGRPCAuthOldRevision.Error()
	case errors.Is(err, auth.ErrUserEmpty):
		return rpctypes.ErrGRPCUserEmpty.Error()
	}
	return rpctypes.ErrGRPCPermissionDenied.Error()
}

// checkWatch runs the member's watch check, if it has one.
func checkWatch(w Watches, ctx context.Context, key, rangeEnd []byte) error {
	if c, ok := w.(watchChecker); ok {
		return c.CheckWatch(ctx, key, rangeEnd)
	}
	return nil
}

type authServer struct {
	pb.UnimplementedAuthServer
	a   Auth
	hdr header
}

// NewAuthServer returns the Auth service.
func NewAuthServer(a Auth) pb.AuthServer { return &authServer{a: a, hdr: header{a}} }

// authCall runs one Auth method: the member's answer with its header
// completed, or the translated error.
func authCall[Req any, Resp interface{ GetHeader() *pb.ResponseHeader }](
	s *authServer, ctx context.Context, r Req, fn func(context.Context, Req) (Resp, error),
) (Resp, error) {
	resp, err := fn(ctx, r)
	if err != nil {
		var zero Resp
		return zero, toGRPCError(err)
	}
	if h := resp.GetHeader(); h != nil {
		s.hdr.fill(h)
	}
	return resp, nil
}

func (s *authServer) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authCall(s, ctx, r, s.a.AuthEnable)
}

func (s *authServer) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authCall(s, ctx, r, s.a.AuthDisable)
}

func (s *authServer) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authCall(s, ctx, r, s.a.AuthStatus)
}

func (s *authServer) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	return authCall(s, ctx, r, s.a.Authenticate)
}

func (s *authServer) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	return authCall(s, ctx, r, s.a.UserAdd)
}

func (s *authServer) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authCall(s, ctx, r, s.a.UserDelete)
}

func (s *authServer) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	return authCall(s, ctx, r, s.a.UserChangePassword)
}

func (s *authServer) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authCall(s, ctx, r, s.a.UserGrantRole)
}

func (s *authServer) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authCall(s, ctx, r, s.a.UserGet)
}

func (s *authServer) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authCall(s, ctx, r, s.a.UserList)
}

func (s *authServer) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authCall(s, ctx, r, s.a.UserRevokeRole)
}

func (s *authServer) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authCall(s, ctx, r, s.a.RoleAdd)
}

func (s *authServer) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authCall(s, ctx, r, s.a.RoleGrantPermission)
}

func (s *authServer) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authCall(s, ctx, r, s.a.RoleGet)
}

func (s *authServer) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authCall(s, ctx, r, s.a.RoleList)
}

func (s *authServer) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authCall(s, ctx, r, s.a.RoleRevokePermission)
}

func (s *authServer) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authCall(s, ctx, r, s.a.RoleDelete)
}
