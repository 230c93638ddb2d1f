package auth

import (
	"context"
	"sync"
)

// Credentials are what a request presented to say who sends it: a token,
// and the common name of the client certificate its TLS connection
// verified. The API edge puts them in the request's context; the member
// resolves them to an Info when a check needs one.
type Credentials struct {
	// Token is the request's token ("" if none).
	Token string
	// CommonName is the CN of the verified client certificate ("" if
	// none, or if the request came through the JSON gateway, whose
	// connection carries the member's own certificate).
	CommonName string
	// BasicAuth is set when an HTTP request (the v2 API) had an
	// Authorization header; Username and Password are its credentials.
	// They take precedence over the certificate's CN, as in etcd.
	BasicAuth          bool
	Username, Password string
	// Source is the client's IP address. Password checks are shared
	// fairly between sources (see Store.CheckPassword).
	Source string

	// cache, when set, keeps the resolution for the rest of the request.
	cache *resolved
}

type resolved struct {
	once sync.Once
	info *Info
	err  error
}

// GatewayMetadataKey marks the JSON gateway's calls: the edge takes no
// user from the client certificate of a call that carries it (forging it
// can only take a user away).
const GatewayMetadataKey = "cairn-gateway"

type credentialsKey struct{}

// WithCredentials returns ctx carrying c. With cache, the first resolution
// of c is reused for the rest of the request (unary requests); a stream
// resolves its credentials afresh each time (a watch stream lives longer
// than its token).
func WithCredentials(ctx context.Context, c Credentials, cache bool) context.Context {
	if cache {
		c.cache = &resolved{}
	}
	return context.WithValue(ctx, credentialsKey{}, c)
}

// CredentialsFromContext returns the credentials in ctx.
func CredentialsFromContext(ctx context.Context) (Credentials, bool) {
	c, ok := ctx.Value(credentialsKey{}).(Credentials)
	return c, ok
}

// Resolve returns resolve's answer for c, computed once per request when
// c caches.
func (c Credentials) Resolve(resolve func() (*Info, error)) (*Info, error) {
	if c.cache == nil {
		return resolve()
	}
	c.cache.once.Do(func() { c.cache.info, c.cache.err = resolve() })
	return c.cache.info, c.cache.err
}

type internalKey struct{}

// AsInternal marks ctx as the member's own work (expiring a lease), which
// acts as root, as etcd's member does.
func AsInternal(ctx context.Context) context.Context {
	return context.WithValue(ctx, internalKey{}, true)
}

// IsInternal reports whether ctx was marked by AsInternal.
func IsInternal(ctx context.Context) bool {
	v, _ := ctx.Value(internalKey{}).(bool)
	return v
}
