// Package tlsutil builds the TLS configurations of the client and peer
// ports from etcd's certificate flags (--cert-file, --key-file,
// --trusted-ca-file, --client-cert-auth and their --peer-* twins), and the
// self-signed certificates of --auto-tls and --peer-auto-tls.
package tlsutil

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Info is one port's certificate configuration.
type Info struct {
	// CertFile and KeyFile are the port's certificate and key (PEM). The
	// same pair is the member's client certificate when it connects to
	// that kind of port itself (peers; the JSON gateway).
	CertFile, KeyFile string
	// TrustedCAFile is the CA bundle that client certificates are
	// verified against, and that the member verifies the servers it
	// connects to against. Empty: the system roots.
	TrustedCAFile string
	// ClientCertAuth requires every client to present a certificate
	// signed by TrustedCAFile.
	ClientCertAuth bool
	// SelfSigned marks a certificate made by SelfCert: clients of the
	// port do not verify it (there is no CA to verify it with).
	SelfSigned bool
}

// Empty reports whether no certificate is configured.
func (i Info) Empty() bool { return i.CertFile == "" && i.KeyFile == "" }

// Validate checks that the files go together.
func (i Info) Validate(prefix string) error {
	switch {
	case i.CertFile == "" && i.KeyFile != "":
		return fmt.Errorf("--%skey-file needs --%scert-file", prefix, prefix)
	case i.CertFile != "" && i.KeyFile == "":
		return fmt.Errorf("--%scert-file needs --%skey-file", prefix, prefix)
	case i.ClientCertAuth && i.TrustedCAFile == "":
		return fmt.Errorf("--%sclient-cert-auth needs --%strusted-ca-file to verify client certificates with", prefix, prefix)
	case i.ClientCertAuth && i.Empty():
		return fmt.Errorf("--%sclient-cert-auth needs --%scert-file and --%skey-file", prefix, prefix, prefix)
	}
	return nil
}

func (i Info) certPool() (*x509.CertPool, error) {
	if i.TrustedCAFile == "" {
		return nil, nil
	}
	pem, err := os.ReadFile(i.TrustedCAFile)
	if err != nil {
		return nil, fmt.Errorf("read trusted CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("trusted CA file %s holds no PEM certificate", i.TrustedCAFile)
	}
	return pool, nil
}

func (i Info) keyPair() (tls.Certificate, error) {
	c, err := tls.LoadX509KeyPair(i.CertFile, i.KeyFile)
	if err != nil {
		return c, fmt.Errorf("load certificate %s and key %s: %w", i.CertFile, i.KeyFile, err)
	}
	return c, nil
}

// ServerConfig is the configuration of a TLS port. nextProtos are its ALPN
// protocols (the client port offers "h2" for gRPC and "http/1.1").
func (i Info) ServerConfig(nextProtos ...string) (*tls.Config, error) {
	if i.Empty() {
		return nil, errors.New("no certificate and key")
	}
	cert, err := i.keyPair()
	if err != nil {
		return nil, err
	}
	pool, err := i.certPool()
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		NextProtos:   nextProtos,
	}
	if i.ClientCertAuth {
		cfg.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return cfg, nil
}

// ClientConfig is the configuration the member connects to ports of this
// kind with: its certificate as the client certificate, and the trusted CA
// (or no verification, for a self-signed certificate) for the server's.
func (i Info) ClientConfig() (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if !i.Empty() {
		cert, err := i.keyPair()
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{cert}
	}
	pool, err := i.certPool()
	if err != nil {
		return nil, err
	}
	cfg.RootCAs = pool
	if i.SelfSigned {
		cfg.InsecureSkipVerify = true
	}
	return cfg, nil
}

// SelfCert returns a self-signed certificate for hosts ("host:port" or
// "host"), made in dir (cert.pem and key.pem) the first time and reused
// afterwards, as etcd's --auto-tls does. validity is how long a new
// certificate is valid.
func SelfCert(dir string, hosts []string, validity time.Duration) (Info, error) {
	info := Info{
		CertFile:   filepath.Join(dir, "cert.pem"),
		KeyFile:    filepath.Join(dir, "key.pem"),
		SelfSigned: true,
	}
	_, errc := os.Stat(info.CertFile)
	_, errk := os.Stat(info.KeyFile)
	if errc == nil && errk == nil {
		return info, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Info{}, fmt.Errorf("create certificate directory: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return Info{}, err
	}
	now := time.Now()
	tmpl := x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"cairn"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageKeyEncipherment | x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	for _, h := range hosts {
		host, _, err := net.SplitHostPort(h)
		if err != nil {
			host = h
		}
		if ip := net.ParseIP(host); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else if host != "" {
			tmpl.DNSNames = append(tmpl.DNSNames, host)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return Info{}, err
	}
	der, err := x509.CreateCertificate(rand.Reader, &tmpl, &tmpl, &key.PublicKey, key)
	if err != nil {
		return Info{}, fmt.Errorf("create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return Info{}, err
	}
	if err := writePEM(info.KeyFile, "PRIVATE KEY", keyDER, 0o600); err != nil {
		return Info{}, err
	}
	if err := writePEM(info.CertFile, "CERTIFICATE", der, 0o644); err != nil {
		return Info{}, err
	}
	return info, nil
}

func writePEM(path, typ string, der []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, mode)
	if err != nil {
		return err
	}
	if err := pem.Encode(f, &pem.Block{Type: typ, Bytes: der}); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
