// Package auth is the member's user and role store, with etcd's semantics:
// users with bcrypt-hashed passwords, roles with read/write permissions on
// keys, ranges and prefixes, the root user and role, the auth switch, and
// the auth revision that every change bumps. Its state lives in the 'u'
// keyspace and changes only by applying committed raft entries, so every
// member holds the same state; it travels in snapshots with the rest of
// the replicated keyspaces.
//
// The store also issues and checks tokens (simple tokens made known to
// every member through raft, or JWTs), and bounds, shares fairly and
// remembers the bcrypt work that password checks cost (password.go).
package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"runtime"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"go.etcd.io/etcd/api/v3/authpb"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"golang.org/x/crypto/bcrypt"

	"github.com/cairn-io/cairn/internal/storage"
)

// Errors, with etcd's texts. The API edge translates them to etcd's gRPC
// errors.
var (
	ErrRootUserNotExist     = errors.New("auth: root user does not exist")
	ErrRootRoleNotExist     = errors.New("auth: root user does not have root role")
	ErrUserAlreadyExist     = errors.New("auth: user already exists")
	ErrUserEmpty            = errors.New("auth: user name is empty")
	ErrUserNotFound         = errors.New("auth: user not found")
	ErrRoleAlreadyExist     = errors.New("auth: role already exists")
	ErrRoleNotFound         = errors.New("auth: role not found")
	ErrRoleEmpty            = errors.New("auth: role name is empty")
	ErrPermissionNotGiven   = errors.New("auth: permission not given")
	ErrAuthFailed           = errors.New("auth: authentication failed, invalid user ID or password")
	ErrNoPasswordUser       = errors.New("auth: authentication failed, password was given for no password user")
	ErrPermissionDenied     = errors.New("auth: permission denied")
	ErrRoleNotGranted       = errors.New("auth: role is not granted to the user")
	ErrPermissionNotGranted = errors.New("auth: permission is not granted to the role")
	ErrAuthNotEnabled       = errors.New("auth: authentication is not enabled")
	ErrAuthOldRevision      = errors.New("auth: revision in header is old")
	ErrInvalidAuthToken     = errors.New("auth: invalid auth token")
	ErrInvalidAuthOpts      = errors.New("auth: invalid auth options")
	ErrInvalidAuthMgmt      = errors.New("auth: invalid auth management")
	ErrInvalidAuthMethod    = errors.New("auth: invalid auth signature method")
	ErrMissingKey           = errors.New("auth: missing key data")
	ErrKeyMismatch          = errors.New("auth: public and private keys don't match")
	ErrVerifyOnly           = errors.New("auth: token signing attempted with verify-only key")
	// ErrTooManyRequests: more password checks are running and waiting,
	// in all or for the client's address, than the member allows; the
	// client should retry later. The text is etcd's "too many requests".
	ErrTooManyRequests = errors.New("etcdserver: too many requests")
)

const (
	// RootUser and RootRole are the administrator's names.
	RootUser = "root"
	RootRole = "root"
)

// rootPerm is what RoleGet reports for the root role: everything.
var rootPerm = authpb.Permission{PermType: authpb.READWRITE, Key: []byte{}, RangeEnd: []byte{0}}

// Info identifies the user a request acts for, and the auth revision its
// credentials were checked at.
type Info struct {
	Username string
	Revision uint64
}

// Storage keys, all in the 'u' keyspace.
var (
	keyEnabled  = []byte{storage.PrefixAuth, 'e', 'n', 'a', 'b', 'l', 'e', 'd'}
	keyRevision = []byte{storage.PrefixAuth, 'r', 'e', 'v', 'i', 's', 'i', 'o', 'n'}
	userPrefix  = []byte{storage.PrefixAuth, 'u', 's', 'e', 'r', '/'}
	rolePrefix  = []byte{storage.PrefixAuth, 'r', 'o', 'l', 'e', '/'}
)

func userKey(name string) []byte { return append(append([]byte(nil), userPrefix...), name...) }
func roleKey(name string) []byte { return append(append([]byte(nil), rolePrefix...), name...) }

// Config configures a Store.
type Config struct {
	// Tokens issues and checks tokens. Default: simple tokens with
	// etcd's 300 s TTL.
	Tokens TokenProvider
	// BcryptCost hashes new passwords. Default bcrypt.DefaultCost (10).
	BcryptCost int
	// MaxConcurrentChecks bounds the password checks (bcrypt comparisons)
	// that run at once. Default: half the CPUs, at least one.
	MaxConcurrentChecks int
	// MaxWaitingChecks bounds the password checks waiting for a turn;
	// more are refused at once with ErrTooManyRequests. Default: four per
	// concurrent check.
	MaxWaitingChecks int
	// MaxChecksPerSource bounds the password checks one client address
	// has running or waiting. Default: half the waiting ones, at least
	// one.
	MaxChecksPerSource int
	Logger             *slog.Logger
}

// Store is the member's auth state.
type Store struct {
	lg     *slog.Logger
	tokens TokenProvider
	cost   int

	mu       sync.RWMutex
	enabled  bool
	revision uint64
	users    map[string]*authpb.User
	roles    map[string]*authpb.Role
	perms    map[string]*userPerms

	// Bounded, shared and remembered bcrypt (password.go).
	pw *passwordChecker
}

// New returns an empty, disabled store. Load fills it from storage.
func New(cfg Config) *Store {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.BcryptCost < bcrypt.MinCost || cfg.BcryptCost > bcrypt.MaxCost {
		cfg.BcryptCost = bcrypt.DefaultCost
	}
	if cfg.MaxConcurrentChecks <= 0 {
		cfg.MaxConcurrentChecks = max(1, runtime.GOMAXPROCS(0)/2)
	}
	if cfg.MaxWaitingChecks <= 0 {
		cfg.MaxWaitingChecks = 4 * cfg.MaxConcurrentChecks
	}
	if cfg.MaxChecksPerSource <= 0 {
		cfg.MaxChecksPerSource = max(1, cfg.MaxWaitingChecks/2)
	}
	if cfg.Tokens == nil {
		cfg.Tokens = NewSimpleTokens(SimpleTokenConfig{})
	}
	return &Store{
		lg:       cfg.Logger.With("component", "auth"),
		tokens:   cfg.Tokens,
		cost:     cfg.BcryptCost,
		revision: 1,
		users:    map[string]*authpb.User{},
		roles:    map[string]*authpb.Role{},
		perms:    map[string]*userPerms{},
		pw:       newPasswordChecker(cfg.MaxConcurrentChecks, cfg.MaxWaitingChecks, cfg.MaxChecksPerSource),
	}
}

// Load replaces the state with the one persisted in db: at start, and after
// the member installed a snapshot. A store that never saw a change has auth
// revision 1, as etcd's.
func (s *Store) Load(db *pebble.DB) error {
	lo, hi := storage.PrefixBounds(storage.PrefixAuth)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return fmt.Errorf("auth: load: %w", err)
	}
	defer it.Close()
	enabled, revision := false, uint64(1)
	users := map[string]*authpb.User{}
	roles := map[string]*authpb.Role{}
	for it.First(); it.Valid(); it.Next() {
		k, v := it.Key(), it.Value()
		switch {
		case bytes.Equal(k, keyEnabled):
			enabled = len(v) == 1 && v[0] == 1
		case bytes.Equal(k, keyRevision):
			if len(v) != 8 {
				return fmt.Errorf("auth: revision record of %d bytes: %w", len(v), storage.ErrCorrupt)
			}
			revision = binary.BigEndian.Uint64(v)
		case bytes.HasPrefix(k, userPrefix):
			u := &authpb.User{}
			if err := u.Unmarshal(v); err != nil {
				return fmt.Errorf("auth: user %q: %v: %w", k[len(userPrefix):], err, storage.ErrCorrupt)
			}
			users[string(u.Name)] = u
		case bytes.HasPrefix(k, rolePrefix):
			r := &authpb.Role{}
			if err := r.Unmarshal(v); err != nil {
				return fmt.Errorf("auth: role %q: %v: %w", k[len(rolePrefix):], err, storage.ErrCorrupt)
			}
			roles[string(r.Name)] = r
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("auth: load: %w", err)
	}
	s.mu.Lock()
	wasEnabled := s.enabled
	s.enabled, s.revision, s.users, s.roles = enabled, revision, users, roles
	s.refreshPermsLocked()
	s.mu.Unlock()
	switch {
	case enabled && !wasEnabled:
		s.tokens.enable()
	case !enabled && wasEnabled:
		s.tokens.disable()
	}
	return nil
}

// Close stops the token provider's timers.
func (s *Store) Close() { s.tokens.disable() }

// Tokens returns the token provider.
func (s *Store) Tokens() TokenProvider { return s.tokens }

// BcryptCost is the cost new password hashes are made with.
func (s *Store) BcryptCost() int { return s.cost }

// IsEnabled reports whether authentication is on.
func (s *Store) IsEnabled() bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.enabled
}

// Revision returns the auth revision, bumped by every change of users,
// roles or permissions and by disabling auth.
func (s *Store) Revision() uint64 {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.revision
}

// refreshPermsLocked rebuilds every user's merged permissions.
func (s *Store) refreshPermsLocked() {
	s.perms = make(map[string]*userPerms, len(s.users))
	for name, u := range s.users {
		s.perms[name] = mergePerms(u, s.roles)
	}
}

// commitLocked bumps the revision and records it in b.
func (s *Store) commitLocked(b *pebble.Batch) error {
	s.revision++
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], s.revision)
	return b.Set(keyRevision, v[:], nil)
}

func (s *Store) putUserLocked(b *pebble.Batch, u *authpb.User) error {
	data, err := u.Marshal()
	if err != nil {
		return err
	}
	s.users[string(u.Name)] = u
	return b.Set(userKey(string(u.Name)), data, nil)
}

func (s *Store) putRoleLocked(b *pebble.Batch, r *authpb.Role) error {
	data, err := r.Marshal()
	if err != nil {
		return err
	}
	s.roles[string(r.Name)] = r
	return b.Set(roleKey(string(r.Name)), data, nil)
}

func hasRootRole(u *authpb.User) bool {
	i := sort.SearchStrings(u.Roles, RootRole)
	return i < len(u.Roles) && u.Roles[i] == RootRole
}

// The Apply* methods apply committed requests. Each changes the in-memory
// state and writes it to b, which the apply loop commits; the errors are
// answers to the client (the state is then unchanged) and are the same on
// every member. Nothing here runs bcrypt: passwords arrive hashed.

// ApplyEnable turns auth on. The root user must exist and have the root
// role. Enabling does not change the revision.
func (s *Store) ApplyEnable(b *pebble.Batch) error {
	s.mu.Lock()
	if s.enabled {
		s.mu.Unlock()
		return nil
	}
	u := s.users[RootUser]
	if u == nil {
		s.mu.Unlock()
		return ErrRootUserNotExist
	}
	if !hasRootRole(u) {
		s.mu.Unlock()
		return ErrRootRoleNotExist
	}
	if err := b.Set(keyEnabled, []byte{1}, nil); err != nil {
		s.mu.Unlock()
		return err
	}
	s.enabled = true
	s.mu.Unlock()
	s.tokens.enable()
	s.lg.Info("enabled authentication")
	return nil
}

// ApplyDisable turns auth off and invalidates every token.
func (s *Store) ApplyDisable(b *pebble.Batch) error {
	s.mu.Lock()
	if !s.enabled {
		s.mu.Unlock()
		return nil
	}
	if err := b.Set(keyEnabled, []byte{0}, nil); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.commitLocked(b); err != nil {
		s.mu.Unlock()
		return err
	}
	s.enabled = false
	s.mu.Unlock()
	s.tokens.disable()
	s.lg.Info("disabled authentication")
	return nil
}

// Status returns whether auth is on and the auth revision.
func (s *Store) Status() (bool, uint64) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.enabled, s.revision
}

// ApplyAuthenticate records a login. With simple tokens the token is
// prefix.index, made known on every member that applies the entry.
func (s *Store) ApplyAuthenticate(name, prefix string, index uint64) (*pb.AuthenticateResponse, error) {
	s.mu.RLock()
	enabled, u, rev := s.enabled, s.users[name], s.revision
	s.mu.RUnlock()
	if !enabled {
		return nil, ErrAuthNotEnabled
	}
	if u == nil || (u.Options != nil && u.Options.NoPassword) {
		return nil, ErrAuthFailed
	}
	token, err := s.tokens.assignAtApply(name, rev, prefix, index)
	if err != nil {
		return nil, err
	}
	return &pb.AuthenticateResponse{Token: token}, nil
}

// HashPassword hashes a password for a UserAdd or UserChangePassword
// request, on the member that receives it, so that applying never runs
// bcrypt. The result goes in the request's hashed_password.
// It takes a bcrypt slot like a password check.
func (s *Store) HashPassword(ctx context.Context, password string) (string, error) {
	h, err := s.pw.hash(ctx, password, s.cost)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h), nil
}

// passwordOf is what a user record stores for a request's password: the
// hash the receiving member made, or (for an entry from a member that sent
// the password itself) nothing, which refuses every login rather than run
// bcrypt while applying.
func passwordOf(password, hashed string) ([]byte, error) {
	if hashed == "" {
		if password != "" {
			return nil, ErrNoPasswordUser
		}
		return nil, nil
	}
	h, err := base64.StdEncoding.DecodeString(hashed)
	if err != nil {
		return nil, ErrNoPasswordUser
	}
	return h, nil
}

// ApplyUserAdd adds a user.
func (s *Store) ApplyUserAdd(b *pebble.Batch, r *pb.AuthUserAddRequest) error {
	if r.Name == "" {
		return ErrUserEmpty
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.users[r.Name] != nil {
		return ErrUserAlreadyExist
	}
	opts := r.Options
	if opts == nil {
		opts = &authpb.UserAddOptions{}
	}
	var pw []byte
	if !opts.NoPassword {
		var err error
		if pw, err = passwordOf(r.Password, r.HashedPassword); err != nil {
			return err
		}
	}
	if err := s.putUserLocked(b, &authpb.User{Name: []byte(r.Name), Password: pw, Options: opts}); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("added a user", "user-name", r.Name)
	return nil
}

// ApplyUserDelete deletes a user; root cannot be deleted while auth is on.
func (s *Store) ApplyUserDelete(b *pebble.Batch, r *pb.AuthUserDeleteRequest) error {
	s.mu.Lock()
	if s.enabled && r.Name == RootUser {
		s.mu.Unlock()
		return ErrInvalidAuthMgmt
	}
	if s.users[r.Name] == nil {
		s.mu.Unlock()
		return ErrUserNotFound
	}
	delete(s.users, r.Name)
	if err := b.Delete(userKey(r.Name), nil); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.commitLocked(b); err != nil {
		s.mu.Unlock()
		return err
	}
	s.refreshPermsLocked()
	s.mu.Unlock()
	s.tokens.invalidateUser(r.Name)
	s.lg.Info("deleted a user", "user-name", r.Name)
	return nil
}

// ApplyUserChangePassword changes a user's password and invalidates the
// user's simple tokens.
func (s *Store) ApplyUserChangePassword(b *pebble.Batch, r *pb.AuthUserChangePasswordRequest) error {
	s.mu.Lock()
	u := s.users[r.Name]
	if u == nil {
		s.mu.Unlock()
		return ErrUserNotFound
	}
	var pw []byte
	if u.Options == nil || !u.Options.NoPassword {
		var err error
		if pw, err = passwordOf(r.Password, r.HashedPassword); err != nil {
			s.mu.Unlock()
			return err
		}
	}
	nu := &authpb.User{Name: u.Name, Roles: u.Roles, Password: pw, Options: u.Options}
	if err := s.putUserLocked(b, nu); err != nil {
		s.mu.Unlock()
		return err
	}
	if err := s.commitLocked(b); err != nil {
		s.mu.Unlock()
		return err
	}
	s.refreshPermsLocked()
	s.mu.Unlock()
	s.tokens.invalidateUser(r.Name)
	s.lg.Info("changed a password of a user", "user-name", r.Name)
	return nil
}

// ApplyUserGrantRole grants a role; granting one the user has is a no-op.
func (s *Store) ApplyUserGrantRole(b *pebble.Batch, r *pb.AuthUserGrantRoleRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	u := s.users[r.User]
	if u == nil {
		return ErrUserNotFound
	}
	if r.Role != RootRole && s.roles[r.Role] == nil {
		return ErrRoleNotFound
	}
	i := sort.SearchStrings(u.Roles, r.Role)
	if i < len(u.Roles) && u.Roles[i] == r.Role {
		return nil
	}
	roles := append(append([]string(nil), u.Roles...), r.Role)
	sort.Strings(roles)
	nu := &authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}
	if err := s.putUserLocked(b, nu); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("granted a role to a user", "user-name", r.User, "role-name", r.Role)
	return nil
}

// ApplyUserRevokeRole revokes a role; root keeps the root role while auth
// is on.
func (s *Store) ApplyUserRevokeRole(b *pebble.Batch, r *pb.AuthUserRevokeRoleRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled && r.Name == RootUser && r.Role == RootRole {
		return ErrInvalidAuthMgmt
	}
	u := s.users[r.Name]
	if u == nil {
		return ErrUserNotFound
	}
	var roles []string
	for _, role := range u.Roles {
		if role != r.Role {
			roles = append(roles, role)
		}
	}
	if len(roles) == len(u.Roles) {
		return ErrRoleNotGranted
	}
	nu := &authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}
	if err := s.putUserLocked(b, nu); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("revoked a role from a user", "user-name", r.Name, "role-name", r.Role)
	return nil
}

// UserGet returns a user's roles.
func (s *Store) UserGet(name string) ([]string, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[name]
	if u == nil {
		return nil, ErrUserNotFound
	}
	return append([]string(nil), u.Roles...), nil
}

// UserList returns every user name, sorted.
func (s *Store) UserList() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.users))
	for name := range s.users {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// ApplyRoleAdd adds a role.
func (s *Store) ApplyRoleAdd(b *pebble.Batch, r *pb.AuthRoleAddRequest) error {
	if r.Name == "" {
		return ErrRoleEmpty
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.roles[r.Name] != nil {
		return ErrRoleAlreadyExist
	}
	if err := s.putRoleLocked(b, &authpb.Role{Name: []byte(r.Name)}); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	// A user may hold the name already (root is granted before the role
	// exists); its permissions change now.
	s.refreshPermsLocked()
	s.lg.Info("created a role", "role-name", r.Name)
	return nil
}

// RoleGet returns a role's permissions; the root role has all of them.
func (s *Store) RoleGet(name string) ([]*authpb.Permission, error) {
	s.mu.RLock()
	defer s.mu.RUnlock()
	r := s.roles[name]
	if r == nil {
		return nil, ErrRoleNotFound
	}
	if name == RootRole {
		p := rootPerm
		return []*authpb.Permission{&p}, nil
	}
	out := make([]*authpb.Permission, len(r.KeyPermission))
	for i, p := range r.KeyPermission {
		c := *p
		out[i] = &c
	}
	return out, nil
}

// RoleList returns every role name, sorted.
func (s *Store) RoleList() []string {
	s.mu.RLock()
	defer s.mu.RUnlock()
	out := make([]string, 0, len(s.roles))
	for name := range s.roles {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// ApplyRoleGrantPermission grants a permission, or changes the type of the
// one on the same key and range end.
func (s *Store) ApplyRoleGrantPermission(b *pebble.Batch, r *pb.AuthRoleGrantPermissionRequest) error {
	if r.Perm == nil {
		return ErrPermissionNotGiven
	}
	if !ValidPermissionRange(r.Perm.Key, r.Perm.RangeEnd) {
		return ErrInvalidAuthMgmt
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	role := s.roles[r.Name]
	if role == nil {
		return ErrRoleNotFound
	}
	perms := make([]*authpb.Permission, 0, len(role.KeyPermission)+1)
	updated := false
	for _, p := range role.KeyPermission {
		c := *p
		if bytes.Equal(c.Key, r.Perm.Key) && bytes.Equal(c.RangeEnd, r.Perm.RangeEnd) {
			c.PermType = r.Perm.PermType
			updated = true
		}
		perms = append(perms, &c)
	}
	if !updated {
		perms = append(perms, &authpb.Permission{
			Key:      append([]byte(nil), r.Perm.Key...),
			RangeEnd: append([]byte(nil), r.Perm.RangeEnd...),
			PermType: r.Perm.PermType,
		})
		sort.SliceStable(perms, func(i, j int) bool { return bytes.Compare(perms[i].Key, perms[j].Key) < 0 })
	}
	if err := s.putRoleLocked(b, &authpb.Role{Name: role.Name, KeyPermission: perms}); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("granted/updated a permission to a role", "role-name", r.Name,
		"permission", r.Perm.PermType.String(), "key", string(r.Perm.Key), "range-end", string(r.Perm.RangeEnd))
	return nil
}

// ApplyRoleRevokePermission removes the permission on exactly key and
// range end.
func (s *Store) ApplyRoleRevokePermission(b *pebble.Batch, r *pb.AuthRoleRevokePermissionRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	role := s.roles[r.Role]
	if role == nil {
		return ErrRoleNotFound
	}
	var perms []*authpb.Permission
	for _, p := range role.KeyPermission {
		if !bytes.Equal(p.Key, r.Key) || !bytes.Equal(p.RangeEnd, r.RangeEnd) {
			perms = append(perms, p)
		}
	}
	if len(perms) == len(role.KeyPermission) {
		return ErrPermissionNotGranted
	}
	if err := s.putRoleLocked(b, &authpb.Role{Name: role.Name, KeyPermission: perms}); err != nil {
		return err
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("revoked a permission on range", "role-name", r.Role, "key", string(r.Key), "range-end", string(r.RangeEnd))
	return nil
}

// ApplyRoleDelete deletes a role and revokes it from every user; the root
// role cannot be deleted while auth is on.
func (s *Store) ApplyRoleDelete(b *pebble.Batch, r *pb.AuthRoleDeleteRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.enabled && r.Role == RootRole {
		return ErrInvalidAuthMgmt
	}
	if s.roles[r.Role] == nil {
		return ErrRoleNotFound
	}
	delete(s.roles, r.Role)
	if err := b.Delete(roleKey(r.Role), nil); err != nil {
		return err
	}
	names := make([]string, 0, len(s.users))
	for name := range s.users {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		u := s.users[name]
		var roles []string
		for _, role := range u.Roles {
			if role != r.Role {
				roles = append(roles, role)
			}
		}
		if len(roles) == len(u.Roles) {
			continue
		}
		if err := s.putUserLocked(b, &authpb.User{Name: u.Name, Roles: roles, Password: u.Password, Options: u.Options}); err != nil {
			return err
		}
	}
	if err := s.commitLocked(b); err != nil {
		return err
	}
	s.refreshPermsLocked()
	s.lg.Info("deleted a role", "role-name", r.Role)
	return nil
}

// Permission checks, as etcd makes them. Each passes when auth is off.

// permitted checks a key operation for ai: no user (revision 0) is
// ErrUserEmpty, credentials checked at an older auth revision are
// ErrAuthOldRevision (the client re-authenticates and retries), and root
// may do anything.
func (s *Store) permitted(ai *Info, key, rangeEnd []byte, write bool) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.enabled {
		return nil
	}
	if ai == nil || ai.Revision == 0 {
		return ErrUserEmpty
	}
	if ai.Revision < s.revision {
		return ErrAuthOldRevision
	}
	u := s.users[ai.Username]
	if u == nil {
		return ErrPermissionDenied
	}
	if hasRootRole(u) {
		return nil
	}
	p := s.perms[ai.Username]
	if p == nil {
		return ErrPermissionDenied
	}
	set := p.read
	if write {
		set = p.write
	}
	if set.allows(key, rangeEnd) {
		return nil
	}
	return ErrPermissionDenied
}

// IsPutPermitted checks write permission on key.
func (s *Store) IsPutPermitted(ai *Info, key []byte) error { return s.permitted(ai, key, nil, true) }

// IsRangePermitted checks read permission on key or [key, rangeEnd).
func (s *Store) IsRangePermitted(ai *Info, key, rangeEnd []byte) error {
	return s.permitted(ai, key, rangeEnd, false)
}

// IsDeleteRangePermitted checks write permission on key or [key, rangeEnd).
func (s *Store) IsDeleteRangePermitted(ai *Info, key, rangeEnd []byte) error {
	return s.permitted(ai, key, rangeEnd, true)
}

// IsAdminPermitted checks that ai is a user with the root role.
func (s *Store) IsAdminPermitted(ai *Info) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	if !s.enabled {
		return nil
	}
	if ai == nil || ai.Username == "" {
		return ErrUserEmpty
	}
	u := s.users[ai.Username]
	if u == nil {
		return ErrUserNotFound
	}
	if !hasRootRole(u) {
		return ErrPermissionDenied
	}
	return nil
}

// HasRole reports whether user has role.
func (s *Store) HasRole(user, role string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	u := s.users[user]
	if u == nil {
		return false
	}
	for _, r := range u.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Token checks.

// AuthInfoFromToken resolves a token to its user.
func (s *Store) AuthInfoFromToken(ctx context.Context, token string) (*Info, error) {
	if !s.IsEnabled() {
		return nil, nil
	}
	ai, ok := s.tokens.info(ctx, token, s.Revision())
	if !ok {
		s.lg.Warn("invalid auth token", "token-fingerprint", redact(token))
		return nil, ErrInvalidAuthToken
	}
	return ai, nil
}

// SignToken issues a token for name at revision, for token providers that
// make tokens outside the apply loop (JWT). For simple tokens it returns
// "" and ok false: their token comes from ApplyAuthenticate.
func (s *Store) SignToken(name string, revision uint64) (string, bool, error) {
	return s.tokens.assignAtEdge(name, revision)
}

// GenTokenPrefix returns the random part of a simple token ("" for JWT).
func (s *Store) GenTokenPrefix() (string, error) { return s.tokens.genTokenPrefix() }
