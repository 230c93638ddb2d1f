package server

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/v2store"
)

// Authentication and authorization, as etcd does them. Credentials (a
// token, or the CN of a verified client certificate with --client-cert-auth)
// come in the request context from the API edge; they are resolved to a
// user and the auth revision they were checked at. Every request is checked
// at the edge, and every proposed request again when it is applied, with the
// user and auth revision recorded in its header: a permission revoked
// between the two is enforced (ErrAuthOldRevision makes the client
// re-authenticate and retry, and then be refused).

// maxAuthenticateRetries bounds how often a login is retried because the
// auth revision moved between the password check and the login entry.
const maxAuthenticateRetries = 3

// openAuth creates the auth store and loads it from storage.
func (s *Server) openAuth() error {
	opts, err := auth.ParseTokenOptions(s.cfg.AuthToken)
	if err != nil {
		return fmt.Errorf("%w: --auth-token: %v", ErrBadConfig, err)
	}
	tokens, err := auth.NewTokenProvider(opts, auth.SimpleTokenConfig{
		TTL:       s.cfg.AuthTokenTTL,
		WaitIndex: s.waitIndex,
		Logger:    s.lg,
	})
	if err != nil {
		return fmt.Errorf("%w: --auth-token: %v", ErrBadConfig, err)
	}
	if len(opts.Unknown) > 0 {
		s.lg.Warn("unknown JWT options", "keys", opts.Unknown)
	}
	s.authStore = auth.New(auth.Config{Tokens: tokens, BcryptCost: s.cfg.BcryptCost, Logger: s.lg})
	return s.authStore.Load(s.db.Pebble())
}

// waitIndex waits until the entry at index is applied (a simple token
// names the index of its login), for at most a request timeout: a token
// naming an index far ahead (forged, or from another cluster) must not
// hold a watch stream's requests forever.
func (s *Server) waitIndex(ctx context.Context, index uint64) bool {
	if s.AppliedIndex() >= index {
		return true
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.ReqTimeout())
	defer cancel()
	for {
		ch := *s.applyNotify.Load()
		if s.AppliedIndex() >= index {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return false
		case <-s.stopping:
			return false
		}
	}
}

// AuthStore returns the member's auth store.
func (s *Server) AuthStore() *auth.Store { return s.authStore }

// rootInfo is who the member's own work acts as.
func (s *Server) rootInfo() *auth.Info {
	return &auth.Info{Username: auth.RootUser, Revision: s.authStore.Revision()}
}

// AuthInfo resolves the credentials in ctx: nil when auth is off or the
// request brought none; ErrInvalidAuthToken for a token the member does
// not know (expired, or from before auth was disabled).
func (s *Server) AuthInfo(ctx context.Context) (*auth.Info, error) {
	if !s.authStore.IsEnabled() {
		return nil, nil
	}
	if auth.IsInternal(ctx) {
		return s.rootInfo(), nil
	}
	c, ok := auth.CredentialsFromContext(ctx)
	if !ok {
		return nil, nil
	}
	return c.Resolve(func() (*auth.Info, error) {
		if c.Token != "" {
			return s.authStore.AuthInfoFromToken(ctx, c.Token)
		}
		if c.BasicAuth {
			check, err := s.authStore.CheckPassword(ctx, c.Username, c.Password)
			if err != nil {
				return nil, err
			}
			return &auth.Info{Username: c.Username, Revision: check.Revision}, nil
		}
		if s.cfg.ClientCertAuth && c.CommonName != "" {
			return &auth.Info{Username: c.CommonName, Revision: s.authStore.Revision()}, nil
		}
		return nil, nil
	})
}

// RequireAuthInfo fails unless the request names a user (when auth is on).
func (s *Server) RequireAuthInfo(ctx context.Context) error {
	if !s.authStore.IsEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		return auth.ErrUserEmpty
	}
	return nil
}

// CheckAdmin fails unless the request's user has the root role (when auth
// is on).
func (s *Server) CheckAdmin(ctx context.Context) error {
	if !s.authStore.IsEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	return s.authStore.IsAdminPermitted(ai)
}

// CheckWatch checks read permission on a watch's range (key already
// defaulted to "\x00").
func (s *Server) CheckWatch(ctx context.Context, key, rangeEnd []byte) error {
	if !s.authStore.IsEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		ai = &auth.Info{}
	}
	return s.authStore.IsRangePermitted(ai, key, rangeEnd)
}

// serializedCheck runs a local read under an auth check: check before,
// and after the read fail with ErrAuthOldRevision if the auth state moved
// while it ran, so that a read never returns what a permission revoked
// meanwhile would have hidden.
func (s *Server) serializedCheck(ctx context.Context, check func(*auth.Info) error, read func() error) error {
	if !s.authStore.IsEnabled() {
		return read()
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		ai = &auth.Info{}
	}
	if err := check(ai); err != nil {
		return err
	}
	if err := read(); err != nil {
		return err
	}
	if ai.Revision != 0 && ai.Revision != s.authStore.Revision() {
		return auth.ErrAuthOldRevision
	}
	return nil
}

// authRange serves a Range under the auth check (the linearizable wait has
// happened).
func (s *Server) authRange(ctx context.Context, r *pb.RangeRequest) (*pb.RangeResponse, error) {
	var resp *pb.RangeResponse
	err := s.serializedCheck(ctx,
		func(ai *auth.Info) error { return s.authStore.IsRangePermitted(ai, r.Key, r.RangeEnd) },
		func() (err error) { resp, err = s.kv.Range(r); return err })
	return resp, err
}

// authReadTxn serves a read-only txn under the auth check.
func (s *Server) authReadTxn(ctx context.Context, r *pb.TxnRequest) (*pb.TxnResponse, error) {
	var resp *pb.TxnResponse
	err := s.serializedCheck(ctx,
		func(ai *auth.Info) error { return s.checkTxn(ai, r) },
		func() (err error) { resp, err = s.kv.ReadTxn(r); return err })
	return resp, err
}

// stampAuth records the request's user and auth revision in its header and
// checks at the edge what applying will check again.
func (s *Server) stampAuth(ctx context.Context, r *pb.InternalRaftRequest) error {
	if r.Authenticate != nil || !s.authStore.IsEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai != nil {
		r.Header.Username = ai.Username
		r.Header.AuthRevision = ai.Revision
	}
	return s.checkRequest(ai, r)
}

// checkRequest is the permission check of a proposed request, the same at
// the edge and when applying (etcd's auth applier).
func (s *Server) checkRequest(ai *auth.Info, r *pb.InternalRaftRequest) error {
	as := s.authStore
	if ai == nil {
		ai = &auth.Info{}
	}
	switch {
	case needsAdmin(r):
		return as.IsAdminPermitted(ai)
	case r.Put != nil:
		return s.checkPut(ai, r.Put)
	case r.DeleteRange != nil:
		return s.checkDelete(ai, r.DeleteRange)
	case r.Txn != nil:
		return s.checkTxn(ai, r.Txn)
	case r.LeaseRevoke != nil:
		return s.checkLeasePuts(ai, r.LeaseRevoke.ID)
	case r.V2 != nil:
		return s.checkV2(ai, r.V2)
	case r.AuthUserGet != nil:
		if err := as.IsAdminPermitted(ai); err != nil && r.AuthUserGet.Name != ai.Username {
			return err
		}
	case r.AuthRoleGet != nil:
		if err := as.IsAdminPermitted(ai); err != nil && !as.HasRole(ai.Username, r.AuthRoleGet.Role) {
			return err
		}
	}
	return nil
}

// needsAdmin lists the requests only root may make (etcd's list).
func needsAdmin(r *pb.InternalRaftRequest) bool {
	return r.AuthEnable != nil || r.AuthDisable != nil || r.AuthStatus != nil ||
		r.AuthUserAdd != nil || r.AuthUserDelete != nil || r.AuthUserChangePassword != nil ||
		r.AuthUserGrantRole != nil || r.AuthUserRevokeRole != nil || r.AuthRoleAdd != nil ||
		r.AuthRoleGrantPermission != nil || r.AuthRoleRevokePermission != nil || r.AuthRoleDelete != nil ||
		r.AuthUserList != nil || r.AuthRoleList != nil
}

func (s *Server) checkPut(ai *auth.Info, r *pb.PutRequest) error {
	if err := s.authStore.IsPutPermitted(ai, r.Key); err != nil {
		return err
	}
	// A lease attached to keys the user may not write cannot be revoked
	// by the user, so the user may not attach it to more keys either.
	if err := s.checkLeasePuts(ai, r.Lease); err != nil {
		return err
	}
	if r.PrevKv {
		return s.authStore.IsRangePermitted(ai, r.Key, nil)
	}
	return nil
}

func (s *Server) checkDelete(ai *auth.Info, r *pb.DeleteRangeRequest) error {
	if err := s.authStore.IsDeleteRangePermitted(ai, r.Key, r.RangeEnd); err != nil {
		return err
	}
	if r.PrevKv {
		return s.authStore.IsRangePermitted(ai, r.Key, r.RangeEnd)
	}
	return nil
}

// checkTxn checks every compare and the operations of both branches, as
// etcd does: a txn is refused if any of them would be, whichever branch
// runs.
func (s *Server) checkTxn(ai *auth.Info, r *pb.TxnRequest) error {
	for _, c := range r.Compare {
		if err := s.authStore.IsRangePermitted(ai, c.Key, c.RangeEnd); err != nil {
			return err
		}
	}
	if err := s.checkOps(ai, r.Success); err != nil {
		return err
	}
	return s.checkOps(ai, r.Failure)
}

func (s *Server) checkOps(ai *auth.Info, ops []*pb.RequestOp) error {
	for _, op := range ops {
		switch v := op.Request.(type) {
		case *pb.RequestOp_RequestRange:
			if v.RequestRange == nil {
				continue
			}
			if err := s.authStore.IsRangePermitted(ai, v.RequestRange.Key, v.RequestRange.RangeEnd); err != nil {
				return err
			}
		case *pb.RequestOp_RequestPut:
			if v.RequestPut == nil {
				continue
			}
			if err := s.checkPut(ai, v.RequestPut); err != nil {
				return err
			}
		case *pb.RequestOp_RequestDeleteRange:
			if v.RequestDeleteRange == nil {
				continue
			}
			if err := s.checkDelete(ai, v.RequestDeleteRange); err != nil {
				return err
			}
		case *pb.RequestOp_RequestTxn:
			if v.RequestTxn == nil {
				continue
			}
			if err := s.checkTxn(ai, v.RequestTxn); err != nil {
				return err
			}
		}
	}
	return nil
}

// leaseKeys returns the keys attached to a lease (none if there is no such
// lease).
func (s *Server) leaseKeys(id int64) []string {
	if id == 0 {
		return nil
	}
	info, err := s.lessor.Get(id, true)
	if err != nil {
		return nil
	}
	return info.Keys
}

// checkLeasePuts requires write permission on every key attached to the
// lease, unless the user is root.
func (s *Server) checkLeasePuts(ai *auth.Info, id int64) error {
	keys := s.leaseKeys(id)
	if len(keys) == 0 || s.authStore.IsAdminPermitted(ai) == nil {
		return nil
	}
	for _, k := range keys {
		if err := s.authStore.IsPutPermitted(ai, []byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// checkLeaseReads requires read permission on every key attached to the
// given leases, unless the user is root, and names the auth revision the
// check was made at.
func (s *Server) checkLeaseReads(ctx context.Context, ids ...int64) (uint64, error) {
	rev := s.authStore.Revision()
	if !s.authStore.IsEnabled() {
		return rev, nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return rev, err
	}
	if ai == nil {
		return rev, auth.ErrUserEmpty
	}
	if s.authStore.IsAdminPermitted(ai) == nil {
		return rev, nil
	}
	for _, id := range ids {
		for _, k := range s.leaseKeys(id) {
			if err := s.authStore.IsRangePermitted(ai, []byte(k), nil); err != nil {
				return rev, err
			}
		}
	}
	return rev, nil
}

// checkLeaseRenew is the check of a keep-alive: write permission on the
// lease's keys, unless root.
func (s *Server) checkLeaseRenew(ctx context.Context, id int64) error {
	rev := s.authStore.Revision()
	if !s.authStore.IsEnabled() {
		return nil
	}
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return err
	}
	if ai == nil {
		return auth.ErrUserEmpty
	}
	if err := s.checkLeasePuts(ai, id); err != nil {
		return err
	}
	if rev != s.authStore.Revision() {
		return auth.ErrAuthOldRevision
	}
	return nil
}

// checkLeaseTimeToLive checks a time-to-live request: a user, and read
// permission on the keys when they are asked for. done re-checks the auth
// revision after the answer was made.
func (s *Server) checkLeaseTimeToLive(ctx context.Context, r *pb.LeaseTimeToLiveRequest) (done func() error, err error) {
	done = func() error { return nil }
	if err := s.RequireAuthInfo(ctx); err != nil {
		return done, err
	}
	if !r.Keys {
		return done, nil
	}
	rev, err := s.checkLeaseReads(ctx, r.ID)
	if err != nil {
		return done, err
	}
	return func() error {
		if s.authStore.IsEnabled() && rev != s.authStore.Revision() {
			return auth.ErrAuthOldRevision
		}
		return nil
	}, nil
}

// checkLeaseLeases checks a lease list: read permission on every key
// attached to any lease, unless root.
func (s *Server) checkLeaseLeases(ctx context.Context, ids []int64) error {
	rev, err := s.checkLeaseReads(ctx, ids...)
	if err != nil {
		return err
	}
	if s.authStore.IsEnabled() && rev != s.authStore.Revision() {
		return auth.ErrAuthOldRevision
	}
	return nil
}

// applyAuth applies what auth adds to the apply loop: the permission check
// of every proposed request with the user and auth revision in its header,
// and the auth requests themselves. It reports false for a request it
// leaves to applyRequest.
func (s *Server) applyAuth(b *pebble.Batch, req *pb.InternalRaftRequest, index uint64) (result, bool) {
	if s.alarms.active(pb.AlarmType_CORRUPT) {
		return result{}, false
	}
	if s.authStore.IsEnabled() && req.Authenticate == nil {
		var ai auth.Info
		if req.Header != nil {
			ai = auth.Info{Username: req.Header.Username, Revision: req.Header.AuthRevision}
		}
		if err := s.checkRequest(&ai, req); err != nil {
			return result{err: err}, true
		}
	}
	as := s.authStore
	hdr := func() *pb.ResponseHeader { return &pb.ResponseHeader{Revision: s.kv.Rev()} }
	switch {
	case req.Authenticate != nil:
		resp, err := as.ApplyAuthenticate(req.Authenticate.Name, req.Authenticate.SimpleToken, index)
		if resp != nil {
			resp.Header = hdr()
		}
		return result{resp: resp, err: err}, true
	case req.AuthEnable != nil:
		return authResult(as.ApplyEnable(b), &pb.AuthEnableResponse{Header: hdr()}), true
	case req.AuthDisable != nil:
		return authResult(as.ApplyDisable(b), &pb.AuthDisableResponse{Header: hdr()}), true
	case req.AuthStatus != nil:
		enabled, rev := as.Status()
		return result{resp: &pb.AuthStatusResponse{Header: hdr(), Enabled: enabled, AuthRevision: rev}}, true
	case req.AuthUserAdd != nil:
		return authResult(as.ApplyUserAdd(b, req.AuthUserAdd), &pb.AuthUserAddResponse{Header: hdr()}), true
	case req.AuthUserDelete != nil:
		return authResult(as.ApplyUserDelete(b, req.AuthUserDelete), &pb.AuthUserDeleteResponse{Header: hdr()}), true
	case req.AuthUserChangePassword != nil:
		return authResult(as.ApplyUserChangePassword(b, req.AuthUserChangePassword), &pb.AuthUserChangePasswordResponse{Header: hdr()}), true
	case req.AuthUserGrantRole != nil:
		return authResult(as.ApplyUserGrantRole(b, req.AuthUserGrantRole), &pb.AuthUserGrantRoleResponse{Header: hdr()}), true
	case req.AuthUserRevokeRole != nil:
		return authResult(as.ApplyUserRevokeRole(b, req.AuthUserRevokeRole), &pb.AuthUserRevokeRoleResponse{Header: hdr()}), true
	case req.AuthUserGet != nil:
		roles, err := as.UserGet(req.AuthUserGet.Name)
		return authResult(err, &pb.AuthUserGetResponse{Header: hdr(), Roles: roles}), true
	case req.AuthUserList != nil:
		return result{resp: &pb.AuthUserListResponse{Header: hdr(), Users: as.UserList()}}, true
	case req.AuthRoleAdd != nil:
		return authResult(as.ApplyRoleAdd(b, req.AuthRoleAdd), &pb.AuthRoleAddResponse{Header: hdr()}), true
	case req.AuthRoleDelete != nil:
		return authResult(as.ApplyRoleDelete(b, req.AuthRoleDelete), &pb.AuthRoleDeleteResponse{Header: hdr()}), true
	case req.AuthRoleGet != nil:
		perms, err := as.RoleGet(req.AuthRoleGet.Role)
		return authResult(err, &pb.AuthRoleGetResponse{Header: hdr(), Perm: perms}), true
	case req.AuthRoleList != nil:
		return result{resp: &pb.AuthRoleListResponse{Header: hdr(), Roles: as.RoleList()}}, true
	case req.AuthRoleGrantPermission != nil:
		return authResult(as.ApplyRoleGrantPermission(b, req.AuthRoleGrantPermission), &pb.AuthRoleGrantPermissionResponse{Header: hdr()}), true
	case req.AuthRoleRevokePermission != nil:
		return authResult(as.ApplyRoleRevokePermission(b, req.AuthRoleRevokePermission), &pb.AuthRoleRevokePermissionResponse{Header: hdr()}), true
	}
	return result{}, false
}

func authResult(err error, resp any) result {
	if err != nil {
		return result{err: err}
	}
	return result{resp: resp}
}

// Authenticate checks a user's password and returns a token. The password
// check (bcrypt) runs here, bounded by the store; the login entry carries
// no password. If the auth state changed between the check and the login,
// the check is confirmed again (without bcrypt when the user's password is
// unchanged) and the login retried, a bounded number of times.
func (s *Server) Authenticate(ctx context.Context, r *pb.AuthenticateRequest) (*pb.AuthenticateResponse, error) {
	if err := s.authStore.Precheck(ctx, r.Name, r.Password); err != nil {
		// Refused before the read index a check would wait for: a flood
		// of logins costs little more than its connections.
		return nil, err
	}
	if err := s.linearizableReadNotify(ctx); err != nil {
		return nil, err
	}
	defer func() { r.Password = "" }()
	check, err := s.authStore.CheckPassword(ctx, r.Name, r.Password)
	if err != nil {
		if !errors.Is(err, auth.ErrAuthNotEnabled) {
			s.lg.Warn("invalid authentication was requested", "user", r.Name, "err", err)
		}
		return nil, err
	}
	for attempt := 1; ; attempt++ {
		prefix, err := s.authStore.GenTokenPrefix()
		if err != nil {
			return nil, err
		}
		res, err := s.proposeResult(ctx, &pb.InternalRaftRequest{
			Authenticate: &pb.InternalAuthenticateRequest{Name: r.Name, SimpleToken: prefix},
		})
		if err != nil {
			return nil, err
		}
		resp := res.resp.(*pb.AuthenticateResponse)
		if check.Revision == s.authStore.Revision() {
			token, ok, err := s.authStore.SignToken(r.Name, check.Revision)
			if err != nil {
				return nil, err
			}
			if ok {
				resp.Token = token
			}
			return resp, nil
		}
		if attempt == maxAuthenticateRetries {
			return nil, ErrTimeout
		}
		s.lg.Info("revision when password checked became stale; retrying")
		if check, err = s.authStore.Recheck(r.Name, check); err != nil {
			return nil, err
		}
	}
}

// authPropose proposes an auth request and returns its response.
func authPropose[T any](s *Server, ctx context.Context, r *pb.InternalRaftRequest) (T, error) {
	var zero T
	res, err := s.proposeResult(ctx, r)
	if err != nil {
		return zero, err
	}
	return res.resp.(T), nil
}

// AuthEnable turns auth on.
func (s *Server) AuthEnable(ctx context.Context, r *pb.AuthEnableRequest) (*pb.AuthEnableResponse, error) {
	return authPropose[*pb.AuthEnableResponse](s, ctx, &pb.InternalRaftRequest{AuthEnable: r})
}

// AuthDisable turns auth off.
func (s *Server) AuthDisable(ctx context.Context, r *pb.AuthDisableRequest) (*pb.AuthDisableResponse, error) {
	return authPropose[*pb.AuthDisableResponse](s, ctx, &pb.InternalRaftRequest{AuthDisable: r})
}

// AuthStatus reports whether auth is on and the auth revision.
func (s *Server) AuthStatus(ctx context.Context, r *pb.AuthStatusRequest) (*pb.AuthStatusResponse, error) {
	return authPropose[*pb.AuthStatusResponse](s, ctx, &pb.InternalRaftRequest{AuthStatus: r})
}

// UserAdd adds a user; the password is hashed here, before proposing.
func (s *Server) UserAdd(ctx context.Context, r *pb.AuthUserAddRequest) (*pb.AuthUserAddResponse, error) {
	if r.Options == nil || !r.Options.NoPassword {
		if err := s.CheckAdmin(ctx); err != nil {
			// Refuse before spending bcrypt on a request that will fail.
			return nil, err
		}
		h, err := s.authStore.HashPassword(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return authPropose[*pb.AuthUserAddResponse](s, ctx, &pb.InternalRaftRequest{AuthUserAdd: r})
}

// UserDelete deletes a user.
func (s *Server) UserDelete(ctx context.Context, r *pb.AuthUserDeleteRequest) (*pb.AuthUserDeleteResponse, error) {
	return authPropose[*pb.AuthUserDeleteResponse](s, ctx, &pb.InternalRaftRequest{AuthUserDelete: r})
}

// UserChangePassword changes a password, hashed here before proposing.
func (s *Server) UserChangePassword(ctx context.Context, r *pb.AuthUserChangePasswordRequest) (*pb.AuthUserChangePasswordResponse, error) {
	if r.Password != "" {
		if err := s.CheckAdmin(ctx); err != nil {
			return nil, err
		}
		h, err := s.authStore.HashPassword(ctx, r.Password)
		if err != nil {
			return nil, err
		}
		r.HashedPassword, r.Password = h, ""
	}
	return authPropose[*pb.AuthUserChangePasswordResponse](s, ctx, &pb.InternalRaftRequest{AuthUserChangePassword: r})
}

// UserGrantRole grants a role to a user.
func (s *Server) UserGrantRole(ctx context.Context, r *pb.AuthUserGrantRoleRequest) (*pb.AuthUserGrantRoleResponse, error) {
	return authPropose[*pb.AuthUserGrantRoleResponse](s, ctx, &pb.InternalRaftRequest{AuthUserGrantRole: r})
}

// UserGet returns a user's roles.
func (s *Server) UserGet(ctx context.Context, r *pb.AuthUserGetRequest) (*pb.AuthUserGetResponse, error) {
	return authPropose[*pb.AuthUserGetResponse](s, ctx, &pb.InternalRaftRequest{AuthUserGet: r})
}

// UserList lists the users.
func (s *Server) UserList(ctx context.Context, r *pb.AuthUserListRequest) (*pb.AuthUserListResponse, error) {
	return authPropose[*pb.AuthUserListResponse](s, ctx, &pb.InternalRaftRequest{AuthUserList: r})
}

// UserRevokeRole revokes a role from a user.
func (s *Server) UserRevokeRole(ctx context.Context, r *pb.AuthUserRevokeRoleRequest) (*pb.AuthUserRevokeRoleResponse, error) {
	return authPropose[*pb.AuthUserRevokeRoleResponse](s, ctx, &pb.InternalRaftRequest{AuthUserRevokeRole: r})
}

// RoleAdd adds a role.
func (s *Server) RoleAdd(ctx context.Context, r *pb.AuthRoleAddRequest) (*pb.AuthRoleAddResponse, error) {
	return authPropose[*pb.AuthRoleAddResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleAdd: r})
}

// RoleGrantPermission grants a permission to a role.
func (s *Server) RoleGrantPermission(ctx context.Context, r *pb.AuthRoleGrantPermissionRequest) (*pb.AuthRoleGrantPermissionResponse, error) {
	return authPropose[*pb.AuthRoleGrantPermissionResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleGrantPermission: r})
}

// RoleGet returns a role's permissions.
func (s *Server) RoleGet(ctx context.Context, r *pb.AuthRoleGetRequest) (*pb.AuthRoleGetResponse, error) {
	return authPropose[*pb.AuthRoleGetResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleGet: r})
}

// RoleList lists the roles.
func (s *Server) RoleList(ctx context.Context, r *pb.AuthRoleListRequest) (*pb.AuthRoleListResponse, error) {
	return authPropose[*pb.AuthRoleListResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleList: r})
}

// RoleRevokePermission revokes a permission from a role.
func (s *Server) RoleRevokePermission(ctx context.Context, r *pb.AuthRoleRevokePermissionRequest) (*pb.AuthRoleRevokePermissionResponse, error) {
	return authPropose[*pb.AuthRoleRevokePermissionResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleRevokePermission: r})
}

// RoleDelete deletes a role.
func (s *Server) RoleDelete(ctx context.Context, r *pb.AuthRoleDeleteRequest) (*pb.AuthRoleDeleteResponse, error) {
	return authPropose[*pb.AuthRoleDeleteResponse](s, ctx, &pb.InternalRaftRequest{AuthRoleDelete: r})
}

// V2 API access. The v2 API authenticates with HTTP basic auth (or, with
// --client-cert-auth and no Authorization header, the client certificate's
// CN) against the same users and roles as the v3 API; the v2 handlers put
// those credentials in the request's context like the gRPC edge puts a
// token, and AuthInfo resolves them (one bounded, cached password check
// per request). A v2 path is the v3 key of the same bytes: reading or
// writing /a/b needs read or write permission on the key "/a/b"; an
// operation that reaches the keys below a directory also needs it on the
// prefix "/a/b/". Root may do anything.
//
// Writes are checked at the edge and again when applied, with the user in
// the request's header, like v3 writes; since a v2 client has no retry
// for a stale auth revision, the apply check is made against the auth
// state the request is applied at.

// checkV2 is the permission check of a v2 keys request, against the
// current auth state: a v2 client has no retry for a stale auth revision.
func (s *Server) checkV2(ai *auth.Info, r *pb.Request) error {
	as := s.authStore
	if ai != nil && ai.Revision != 0 {
		ai = &auth.Info{Username: ai.Username, Revision: as.Revision()}
	}
	path := []byte(r.Path)
	switch r.Method {
	case "GET", "QGET", "HEAD":
		// Reads and watches are checked by v2Read and v2Watch, which
		// know whether the path is a directory; this is the check of a
		// value.
		if err := as.IsRangePermitted(ai, path, nil); err != nil {
			return err
		}
		if r.Recursive {
			return as.IsRangePermitted(ai, v2Prefix(r.Path), prefixEnd(v2Prefix(r.Path)))
		}
		return nil
	case "POST":
		// An in-order create makes path/<index>, a key not known before
		// it is applied.
		dir := v2Prefix(r.Path)
		return as.IsDeleteRangePermitted(ai, dir, prefixEnd(dir))
	case "PUT", "DELETE":
		if err := as.IsPutPermitted(ai, path); err != nil {
			return err
		}
		// A recursive delete removes the keys below; a TTL on a
		// directory removes them when it runs out.
		if r.Recursive || (r.Dir && r.Method == "PUT" && (r.Expiration != 0 || r.Refresh != nil && *r.Refresh)) {
			if err := as.IsDeleteRangePermitted(ai, v2Prefix(r.Path), prefixEnd(v2Prefix(r.Path))); err != nil {
				return err
			}
		}
		// A compare reveals the current value (a failed one names it in
		// its cause), and so does a refresh's answer.
		if r.PrevValue != "" || r.PrevIndex != 0 || (r.Refresh != nil && *r.Refresh) {
			return as.IsRangePermitted(ai, path, nil)
		}
		return nil
	case "SYNC":
		// The leader's expiry of TTLs, proposed by the member itself.
		return nil
	}
	return auth.ErrPermissionDenied
}

// v2Prefix is the prefix of the keys below the v2 directory path.
func v2Prefix(path string) []byte {
	if strings.HasSuffix(path, "/") {
		return []byte(path)
	}
	return []byte(path + "/")
}

// v2Read serves a v2 read under the auth check. A value needs read
// permission on its key; a directory, whose listing shows its children's
// values, needs it on its prefix "<dir>/", and not on its own key, which
// holds no value. An answer that is an error (no such key) needs the key.
// A read the auth state changed under is made again.
func (s *Server) v2Read(ctx context.Context, r *pb.Request) (*v2store.Event, error) {
	if !s.authStore.IsEnabled() {
		return s.v2.store.Get(r.Path, r.Recursive, r.Sorted, time.Now())
	}
	ai, err := s.v2AuthInfo(ctx)
	if err != nil {
		return nil, err
	}
	prefix := v2Prefix(r.Path)
	for range maxV2ReadAttempts {
		rev := s.authStore.Revision()
		cur := &auth.Info{Username: ai.Username, Revision: rev}
		keyErr := s.authStore.IsRangePermitted(cur, []byte(r.Path), nil)
		dirErr := s.authStore.IsRangePermitted(cur, prefix, prefixEnd(prefix))
		if keyErr != nil && dirErr != nil {
			// Neither a value nor a directory this user may read.
			return nil, keyErr
		}
		ev, err := s.v2.store.Get(r.Path, r.Recursive, r.Sorted, time.Now())
		switch {
		case err != nil && keyErr != nil:
			return nil, keyErr
		case err != nil:
			return nil, err
		case ev.Node != nil && ev.Node.Dir:
			if dirErr != nil {
				return nil, dirErr
			}
		case keyErr != nil:
			return nil, keyErr
		}
		if s.authStore.Revision() == rev {
			return ev, nil
		}
	}
	return nil, auth.ErrAuthOldRevision
}

// maxV2ReadAttempts bounds how often a v2 read is made again because the
// auth state changed while it ran.
const maxV2ReadAttempts = 3

// v2Watch starts a v2 watch under the auth check. A recursive watch needs
// read permission on the prefix "<path>/", a plain one on the key or, for
// a directory, which holds no value, on the prefix. Every event is checked
// again as it is delivered, against the auth state then: a value event
// needs its key (the watched path itself may turn from a directory into a
// value, and a permission may be revoked while a stream runs); an event
// the user may not see ends the watch, and the client's next watch is
// refused.
func (s *Server) v2Watch(ctx context.Context, r *pb.Request) (*v2store.Watcher, error) {
	if !s.authStore.IsEnabled() {
		return s.v2.store.Watch(r.Path, r.Recursive, r.Stream, r.Since)
	}
	ai, err := s.v2AuthInfo(ctx)
	if err != nil {
		return nil, err
	}
	as := s.authStore
	cur := &auth.Info{Username: ai.Username, Revision: as.Revision()}
	prefix := v2Prefix(r.Path)
	dirErr := as.IsRangePermitted(cur, prefix, prefixEnd(prefix))
	if r.Recursive && dirErr != nil {
		return nil, dirErr
	}
	if err := as.IsRangePermitted(cur, []byte(r.Path), nil); err != nil && dirErr != nil {
		return nil, err
	}
	user := ai.Username
	return s.v2.store.WatchAllowed(r.Path, r.Recursive, r.Stream, r.Since, func(e *v2store.Event) bool {
		if e.Node == nil || e.Node.Dir {
			// A directory's event carries no value; its key is the
			// watched path or a directory above it.
			return true
		}
		return as.IsRangePermitted(&auth.Info{Username: user, Revision: as.Revision()}, []byte(e.Node.Key), nil) == nil
	})
}

// v2AuthInfo resolves a v2 request's credentials; no user is
// ErrUserEmpty.
func (s *Server) v2AuthInfo(ctx context.Context) (*auth.Info, error) {
	ai, err := s.AuthInfo(ctx)
	if err != nil {
		return nil, err
	}
	if ai == nil {
		return nil, auth.ErrUserEmpty
	}
	return ai, nil
}

// v2Visible is the answer to a v2 write as the writer may see it: the
// previous node without its value when the writer may not read the key
// (etcd's v3 API returns a previous value only to a reader, too). The
// node stays, so that the answer's status (201 for a set that created its
// key) is etcd's.
func (s *Server) v2Visible(ctx context.Context, r *pb.Request, ev *v2store.Event) *v2store.Event {
	if ev == nil || ev.PrevNode == nil || !s.authStore.IsEnabled() {
		return ev
	}
	ai, err := s.AuthInfo(ctx)
	if err == nil && ai != nil && s.checkV2(ai, &pb.Request{Method: "GET", Path: r.Path}) == nil {
		return ev
	}
	out := ev.Clone()
	out.PrevNode.Value, out.PrevNode.Nodes = nil, nil
	return out
}

// prefixEnd is the end of the range of keys that start with p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	for i := len(end) - 1; i >= 0; i-- {
		if end[i] < 0xff {
			end[i]++
			return end[:i+1]
		}
	}
	return []byte{0}
}

// validateAuth checks --auth-token, JWT key files included, before the
// member touches its data directory.
func (c *Config) validateAuth() error {
	opts, err := auth.ParseTokenOptions(c.AuthToken)
	if err != nil {
		return fmt.Errorf("%w: --auth-token: %v", ErrBadConfig, err)
	}
	if opts.Type == auth.TokenJWT {
		if _, err := auth.NewTokenProvider(opts, auth.SimpleTokenConfig{}); err != nil {
			return fmt.Errorf("%w: --auth-token: %v", ErrBadConfig, err)
		}
	}
	if c.AuthTokenTTL < 0 {
		return fmt.Errorf("%w: --auth-token-ttl must not be negative", ErrBadConfig)
	}
	return nil
}
