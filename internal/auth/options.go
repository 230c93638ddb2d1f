package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"fmt"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token types of --auth-token.
const (
	TokenSimple = "simple"
	TokenJWT    = "jwt"
)

// DefaultJWTTTL is a JWT's lifetime when the options name none.
const DefaultJWTTTL = 5 * time.Minute

// TokenOptions is a parsed --auth-token value: "simple", or
// "jwt,pub-key=<file>,priv-key=<file>,sign-method=<alg>[,ttl=<duration>]".
type TokenOptions struct {
	Type string
	// JWT only.
	SignMethod     jwt.SigningMethod
	PublicKeyFile  string
	PrivateKeyFile string
	TTL            time.Duration
	// Unknown are option names etcd does not know; like etcd, cairn
	// ignores them (and serve warns about them).
	Unknown []string
}

var knownJWTOptions = map[string]bool{"sign-method": true, "pub-key": true, "priv-key": true, "ttl": true}

// ParseTokenOptions parses an --auth-token value as etcd does: a type,
// then comma-separated key=value options, each at most once. Options of
// simple tokens are ignored, as etcd ignores them; a JWT needs a known
// sign-method. Key files are read later, by NewTokenProvider.
func ParseTokenOptions(s string) (TokenOptions, error) {
	parts := strings.Split(s, ",")
	o := TokenOptions{Type: parts[0]}
	opts := map[string]string{}
	for _, p := range parts[1:] {
		k, v, ok := strings.Cut(p, "=")
		if !ok || strings.Contains(v, "=") {
			return TokenOptions{}, fmt.Errorf("%w: %q is not key=value", ErrInvalidAuthOpts, p)
		}
		if _, dup := opts[k]; dup {
			return TokenOptions{}, fmt.Errorf("%w: %q given twice", ErrInvalidAuthOpts, k)
		}
		opts[k] = v
	}
	switch o.Type {
	case TokenSimple:
		return o, nil
	case TokenJWT:
	default:
		return TokenOptions{}, fmt.Errorf("%w: unknown token type %q (want simple or jwt)", ErrInvalidAuthOpts, o.Type)
	}
	for k := range opts {
		if !knownJWTOptions[k] {
			o.Unknown = append(o.Unknown, k)
		}
	}
	sort.Strings(o.Unknown)
	o.TTL = DefaultJWTTTL
	if v := opts["ttl"]; v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			return TokenOptions{}, fmt.Errorf("%w: ttl %q is not a positive duration", ErrInvalidAuthOpts, v)
		}
		o.TTL = d
	}
	o.SignMethod = jwt.GetSigningMethod(opts["sign-method"])
	if o.SignMethod == nil || o.SignMethod.Alg() == "none" {
		return TokenOptions{}, fmt.Errorf("%w: %q", ErrInvalidAuthMethod, opts["sign-method"])
	}
	o.PublicKeyFile, o.PrivateKeyFile = opts["pub-key"], opts["priv-key"]
	return o, nil
}

// key reads the key files and returns the key of the sign method: the
// private key (which also verifies) when given, else the public key alone.
func (o TokenOptions) key() (any, error) {
	var pubPEM, privPEM []byte
	var err error
	if o.PublicKeyFile != "" {
		if pubPEM, err = os.ReadFile(o.PublicKeyFile); err != nil {
			return nil, fmt.Errorf("auth: JWT public key: %w", err)
		}
	}
	if o.PrivateKeyFile != "" {
		if privPEM, err = os.ReadFile(o.PrivateKeyFile); err != nil {
			return nil, fmt.Errorf("auth: JWT private key: %w", err)
		}
	}
	type publicKey interface{ Equal(crypto.PublicKey) bool }
	pick := func(priv crypto.Signer, pub publicKey, privOK, pubOK bool) (any, error) {
		switch {
		case !privOK && !pubOK:
			return nil, ErrMissingKey
		case !privOK:
			return pub, nil
		case pubOK && !pub.Equal(priv.Public()):
			return nil, ErrKeyMismatch
		}
		return priv, nil
	}
	switch o.SignMethod.(type) {
	case *jwt.SigningMethodRSA, *jwt.SigningMethodRSAPSS:
		var priv *rsa.PrivateKey
		var pub *rsa.PublicKey
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseRSAPrivateKeyFromPEM(privPEM); err != nil {
				return nil, err
			}
		}
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseRSAPublicKeyFromPEM(pubPEM); err != nil {
				return nil, err
			}
		}
		return pick(priv, pub, priv != nil, pub != nil)
	case *jwt.SigningMethodECDSA:
		var priv *ecdsa.PrivateKey
		var pub *ecdsa.PublicKey
		if len(privPEM) > 0 {
			if priv, err = jwt.ParseECPrivateKeyFromPEM(privPEM); err != nil {
				return nil, err
			}
		}
		if len(pubPEM) > 0 {
			if pub, err = jwt.ParseECPublicKeyFromPEM(pubPEM); err != nil {
				return nil, err
			}
		}
		return pick(priv, pub, priv != nil, pub != nil)
	case *jwt.SigningMethodEd25519:
		var priv ed25519.PrivateKey
		var pub ed25519.PublicKey
		if len(privPEM) > 0 {
			k, err := jwt.ParseEdPrivateKeyFromPEM(privPEM)
			if err != nil {
				return nil, err
			}
			priv, _ = k.(ed25519.PrivateKey)
		}
		if len(pubPEM) > 0 {
			k, err := jwt.ParseEdPublicKeyFromPEM(pubPEM)
			if err != nil {
				return nil, err
			}
			pub, _ = k.(ed25519.PublicKey)
		}
		return pick(priv, pub, priv != nil, pub != nil)
	case *jwt.SigningMethodHMAC:
		if len(privPEM) == 0 {
			return nil, ErrMissingKey
		}
		return privPEM, nil
	}
	return nil, fmt.Errorf("%w: unsupported signing method %s", ErrInvalidAuthMethod, o.SignMethod.Alg())
}
