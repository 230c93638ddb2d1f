package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/golang-jwt/jwt/v5"
)

// TokenProvider issues and resolves the tokens clients authenticate
// requests with. The implementations are SimpleTokens and JWTTokens.
type TokenProvider interface {
	enable()
	disable()
	invalidateUser(name string)
	genTokenPrefix() (string, error)
	info(ctx context.Context, token string, revision uint64) (*Info, bool)
	// assignAtApply makes the token of a login applied at index.
	assignAtApply(name string, revision uint64, prefix string, index uint64) (string, error)
	// assignAtEdge makes the token on the member that took the login,
	// after it was applied; ok false means the token came from
	// assignAtApply.
	assignAtEdge(name string, revision uint64) (token string, ok bool, err error)
}

// DefaultSimpleTokenTTL is how long an unused simple token lives (etcd's
// --auth-token-ttl default).
const DefaultSimpleTokenTTL = 300 * time.Second

// SimpleTokenConfig configures simple tokens.
type SimpleTokenConfig struct {
	// TTL is how long a token lives after its last use. Default 300 s.
	TTL time.Duration
	// WaitIndex returns true once the member has applied the raft entry
	// at index, or false if ctx ends first. A token names the index of
	// the login that made it, so a member that has not applied that login
	// yet waits for it instead of refusing the token. Required.
	WaitIndex func(ctx context.Context, index uint64) bool
	Logger    *slog.Logger
}

// SimpleTokens are etcd's simple tokens: a random prefix chosen by the
// member that takes the login, a dot, and the raft index of the login
// entry. Every member learns the token when it applies the entry; a token
// unused for its TTL is forgotten, and changing a user's password or
// deleting the user forgets the user's tokens. They are not signed: a
// token is only as secret as the connection it travels on.
type SimpleTokens struct {
	cfg SimpleTokenConfig

	mu     sync.Mutex
	tokens map[string]simpleToken // token -> user and expiry
	stop   chan struct{}          // nil while disabled
	done   chan struct{}
}

type simpleToken struct {
	user    string
	expires time.Time
}

const simpleTokenLetters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"

// NewSimpleTokens returns a simple token provider.
func NewSimpleTokens(cfg SimpleTokenConfig) *SimpleTokens {
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultSimpleTokenTTL
	}
	if cfg.WaitIndex == nil {
		cfg.WaitIndex = func(context.Context, uint64) bool { return true }
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &SimpleTokens{cfg: cfg, tokens: map[string]simpleToken{}}
}

func (t *SimpleTokens) enable() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop != nil {
		return
	}
	t.stop, t.done = make(chan struct{}), make(chan struct{})
	go t.expire(t.stop, t.done)
}

func (t *SimpleTokens) disable() {
	t.mu.Lock()
	stop, done := t.stop, t.done
	t.stop, t.done = nil, nil
	t.tokens = map[string]simpleToken{}
	t.mu.Unlock()
	if stop != nil {
		close(stop)
		<-done
	}
}

// expire forgets expired tokens once a second.
func (t *SimpleTokens) expire(stop, done chan struct{}) {
	defer close(done)
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			t.mu.Lock()
			for tk, st := range t.tokens {
				if now.After(st.expires) {
					delete(t.tokens, tk)
				}
			}
			t.mu.Unlock()
		}
	}
}

func (t *SimpleTokens) invalidateUser(name string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for tk, st := range t.tokens {
		if st.user == name {
			delete(t.tokens, tk)
		}
	}
}

func (t *SimpleTokens) genTokenPrefix() (string, error) {
	b := make([]byte, 16)
	n := big.NewInt(int64(len(simpleTokenLetters)))
	for i := range b {
		x, err := rand.Int(rand.Reader, n)
		if err != nil {
			return "", err
		}
		b[i] = simpleTokenLetters[x.Int64()]
	}
	return string(b), nil
}

func (t *SimpleTokens) assignAtApply(name string, _ uint64, prefix string, index uint64) (string, error) {
	token := prefix + "." + strconv.FormatUint(index, 10)
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stop == nil {
		// Disabled: the token would be forgotten at once anyway.
		return token, nil
	}
	t.tokens[token] = simpleToken{user: name, expires: time.Now().Add(t.cfg.TTL)}
	return token, nil
}

func (t *SimpleTokens) assignAtEdge(string, uint64) (string, bool, error) { return "", false, nil }

func (t *SimpleTokens) info(ctx context.Context, token string, revision uint64) (*Info, bool) {
	prefix, idx, ok := strings.Cut(token, ".")
	if !ok || prefix == "" || strings.Contains(idx, ".") {
		return nil, false
	}
	index, err := strconv.ParseUint(idx, 10, 64)
	if err != nil {
		return nil, false
	}
	if !t.cfg.WaitIndex(ctx, index) {
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st, ok := t.tokens[token]
	if !ok {
		return nil, false
	}
	st.expires = time.Now().Add(t.cfg.TTL)
	t.tokens[token] = st
	return &Info{Username: st.user, Revision: revision}, true
}

// JWTTokens are signed JSON web tokens carrying the user name, the auth
// revision at login and an expiry, as etcd's. Any member with the same
// keys accepts a token any of them signed; nothing is replicated. A member
// given only the public key verifies tokens but cannot sign them.
type JWTTokens struct {
	method     jwt.SigningMethod
	key        any
	ttl        time.Duration
	verifyOnly bool
	lg         *slog.Logger
}

func (t *JWTTokens) enable()                         {}
func (t *JWTTokens) disable()                        {}
func (t *JWTTokens) invalidateUser(string)           {}
func (t *JWTTokens) genTokenPrefix() (string, error) { return "", nil }

func (t *JWTTokens) assignAtApply(string, uint64, string, uint64) (string, error) { return "", nil }

func (t *JWTTokens) assignAtEdge(name string, revision uint64) (string, bool, error) {
	if t.verifyOnly {
		return "", true, ErrVerifyOnly
	}
	if !utf8.ValidString(name) {
		// JSON would carry the name with U+FFFD in place of its bad bytes:
		// the token would name another user.
		return "", true, fmt.Errorf("%w: user name is not valid UTF-8", ErrAuthFailed)
	}
	tk := jwt.NewWithClaims(t.method, jwt.MapClaims{
		"username": name,
		"revision": revision,
		"exp":      time.Now().Add(t.ttl).Unix(),
	})
	s, err := tk.SignedString(t.key)
	return s, true, err
}

func (t *JWTTokens) info(_ context.Context, token string, _ uint64) (*Info, bool) {
	parsed, err := jwt.Parse(token, func(tk *jwt.Token) (any, error) {
		if tk.Method.Alg() != t.method.Alg() {
			return nil, errors.New("invalid signing method")
		}
		switch k := t.key.(type) {
		case *rsa.PrivateKey:
			return &k.PublicKey, nil
		case *ecdsa.PrivateKey:
			return &k.PublicKey, nil
		case ed25519.PrivateKey:
			return k.Public(), nil
		default:
			return t.key, nil
		}
	})
	if err != nil {
		t.lg.Warn("failed to parse a JWT token", "err", err)
		return nil, false
	}
	claims, ok := parsed.Claims.(jwt.MapClaims)
	if !parsed.Valid || !ok {
		return nil, false
	}
	name, ok := claims["username"].(string)
	if !ok {
		return nil, false
	}
	rev, ok := claims["revision"].(float64)
	if !ok {
		return nil, false
	}
	return &Info{Username: name, Revision: uint64(rev)}, true
}

// redact is a token's fingerprint for logs.
func redact(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])[:12]
}

// NewTokenProvider builds the provider of a parsed --auth-token.
func NewTokenProvider(o TokenOptions, simple SimpleTokenConfig) (TokenProvider, error) {
	switch o.Type {
	case TokenSimple:
		return NewSimpleTokens(simple), nil
	case TokenJWT:
		key, err := o.key()
		if err != nil {
			return nil, err
		}
		lg := simple.Logger
		if lg == nil {
			lg = slog.Default()
		}
		t := &JWTTokens{method: o.SignMethod, key: key, ttl: o.TTL, lg: lg}
		switch key.(type) {
		case *rsa.PublicKey, *ecdsa.PublicKey, ed25519.PublicKey:
			t.verifyOnly = true
		}
		return t, nil
	}
	return nil, fmt.Errorf("%w: unknown token type %q", ErrInvalidAuthOpts, o.Type)
}
