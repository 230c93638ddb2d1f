package auth

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParseTokenOptions(t *testing.T) {
	tests := []struct {
		in      string
		typ     string
		alg     string
		ttl     time.Duration
		wantErr error
	}{
		{in: "simple", typ: TokenSimple},
		{in: "simple,whatever=1", typ: TokenSimple},
		{in: "jwt,pub-key=a,priv-key=b,sign-method=RS256", typ: TokenJWT, alg: "RS256", ttl: DefaultJWTTTL},
		{in: "jwt,sign-method=ES256,ttl=1m", typ: TokenJWT, alg: "ES256", ttl: time.Minute},
		{in: "jwt,sign-method=HS256,priv-key=k,ttl=10s", typ: TokenJWT, alg: "HS256", ttl: 10 * time.Second},
		{in: "jwt", wantErr: ErrInvalidAuthMethod},
		{in: "jwt,sign-method=XX999", wantErr: ErrInvalidAuthMethod},
		{in: "jwt,sign-method=none", wantErr: ErrInvalidAuthMethod},
		{in: "jwt,sign-method=RS256,ttl=soon", wantErr: ErrInvalidAuthOpts},
		{in: "jwt,sign-method=RS256,sign-method=ES256", wantErr: ErrInvalidAuthOpts},
		{in: "jwt,sign-method", wantErr: ErrInvalidAuthOpts},
		{in: "jwt,a=b=c", wantErr: ErrInvalidAuthOpts},
		{in: "", wantErr: ErrInvalidAuthOpts},
		{in: "oauth", wantErr: ErrInvalidAuthOpts},
	}
	for _, tc := range tests {
		o, err := ParseTokenOptions(tc.in)
		if tc.wantErr != nil {
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("%q: error %v, want %v", tc.in, err, tc.wantErr)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if o.Type != tc.typ || o.TTL != tc.ttl || (tc.alg != "" && o.SignMethod.Alg() != tc.alg) {
			t.Errorf("%q: got %+v", tc.in, o)
		}
	}
}

// The parser never panics, and what it accepts is a known type with, for a
// JWT, a real signing method and a positive TTL.
func FuzzParseTokenOptions(f *testing.F) {
	for _, s := range []string{
		"simple", "jwt,pub-key=a,priv-key=b,sign-method=RS256,ttl=5m", "jwt,sign-method=ES512",
		"jwt,,", ",", "jwt,=", "jwt,ttl=-1s,sign-method=HS256", "simple,a=b,a=c", "jwt,sign-method=EdDSA,x=y",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseTokenOptions(s)
		if err != nil {
			if !errors.Is(err, ErrInvalidAuthOpts) && !errors.Is(err, ErrInvalidAuthMethod) {
				t.Fatalf("%q: untyped error %v", s, err)
			}
			return
		}
		switch o.Type {
		case TokenSimple:
		case TokenJWT:
			if o.SignMethod == nil || o.TTL <= 0 {
				t.Fatalf("%q: accepted %+v", s, o)
			}
			if !strings.Contains(s, "sign-method="+o.SignMethod.Alg()) {
				t.Fatalf("%q: method %s not from the input", s, o.SignMethod.Alg())
			}
		default:
			t.Fatalf("%q: accepted type %q", s, o.Type)
		}
	})
}
