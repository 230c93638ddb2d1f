package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc/grpclog"
)

// Defaults of the client flags; they are etcdctl's.
const (
	ctlDefaultEndpoint         = "127.0.0.1:2379"
	ctlDefaultDialTimeout      = 2 * time.Second
	ctlDefaultCommandTimeout   = 5 * time.Second
	ctlDefaultKeepAliveTime    = 2 * time.Second
	ctlDefaultKeepAliveTimeout = 6 * time.Second
)

// Environment variable prefixes for the client flags. CAIRN_<FLAG> wins;
// ETCDCTL_<FLAG> is read when it is unset so that existing etcdctl setups
// keep working. <FLAG> is the flag name upper-cased with '-' turned to '_'.
var ctlEnvPrefixes = []string{"CAIRN", "ETCDCTL"}

// ctlFlags are the connection and output flags every client command takes.
type ctlFlags struct {
	endpoints        []string
	dialTimeout      time.Duration
	commandTimeout   time.Duration
	keepAliveTime    time.Duration
	keepAliveTimeout time.Duration
	maxRequestBytes  int
	maxRecvBytes     int

	writeOut string
	hex      bool

	user     string
	password string

	insecureTransport  bool
	insecureSkipVerify bool
	cacert             string
	cert               string
	key                string

	debug bool
}

// ctlFlagNames lists the flags that register adds, in the order --debug
// prints them. Only these are read from the environment.
var ctlFlagNames = []string{
	"endpoints", "dial-timeout", "command-timeout", "keepalive-time", "keepalive-timeout",
	"max-request-bytes", "max-recv-bytes", "write-out", "hex", "user", "password",
	"insecure-transport", "insecure-skip-tls-verify", "cacert", "cert", "key", "debug",
}

// newCtlFlags registers the client flags on fs and returns the values they
// fill in.
func newCtlFlags(fs *pflag.FlagSet) *ctlFlags {
	g := &ctlFlags{}
	fs.StringSliceVar(&g.endpoints, "endpoints", []string{ctlDefaultEndpoint}, "comma-separated gRPC endpoints of the store")
	fs.DurationVar(&g.dialTimeout, "dial-timeout", ctlDefaultDialTimeout, "how long to wait for a connection")
	fs.DurationVar(&g.commandTimeout, "command-timeout", ctlDefaultCommandTimeout, "how long a request may take, not counting the dial")
	fs.DurationVar(&g.keepAliveTime, "keepalive-time", ctlDefaultKeepAliveTime, "interval of the client's keepalive pings")
	fs.DurationVar(&g.keepAliveTimeout, "keepalive-timeout", ctlDefaultKeepAliveTimeout, "how long a keepalive ping may go unanswered before the connection is closed")
	fs.IntVar(&g.maxRequestBytes, "max-request-bytes", 0, "largest request the client sends, in bytes (0: 2 MiB)")
	fs.IntVar(&g.maxRecvBytes, "max-recv-bytes", 0, "largest response the client accepts, in bytes (0: no limit below 2 GiB)")
	fs.StringVarP(&g.writeOut, "write-out", "w", "simple", "output format: simple, json, fields, table or protobuf")
	fs.BoolVar(&g.hex, "hex", false, "print keys and values as hex-escaped bytes")
	fs.StringVar(&g.user, "user", "", "user name, or name:password, to authenticate as (the password is asked for when not given)")
	fs.StringVar(&g.password, "password", "", "password of --user (then --user must not contain one)")
	fs.BoolVar(&g.insecureTransport, "insecure-transport", true, "talk plain gRPC unless TLS files are given")
	fs.BoolVar(&g.insecureSkipVerify, "insecure-skip-tls-verify", false, "accept any server certificate (for testing only)")
	fs.StringVar(&g.cacert, "cacert", "", "CA bundle to verify the servers' TLS certificates with")
	fs.StringVar(&g.cert, "cert", "", "client TLS certificate file")
	fs.StringVar(&g.key, "key", "", "client TLS key file")
	fs.BoolVar(&g.debug, "debug", false, "log the client's connection handling to stderr")
	return g
}

// ctlEnvKey is the environment variable for flag name under prefix.
func ctlEnvKey(prefix, name string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
}

// applyCtlEnv sets every client flag that was not given on the command line
// from the environment. A flag given on the command line wins.
func applyCtlEnv(fs *pflag.FlagSet, getenv func(string) string) error {
	for _, name := range ctlFlagNames {
		f := fs.Lookup(name)
		if f == nil || f.Changed {
			continue
		}
		for _, prefix := range ctlEnvPrefixes {
			key := ctlEnvKey(prefix, name)
			val := getenv(key)
			if val == "" {
				continue
			}
			if err := fs.Set(name, val); err != nil {
				return fmt.Errorf("%s: %w", key, err)
			}
			break
		}
	}
	return nil
}

// ctlSession is what a client command needs once its flags are final: the
// printer for --write-out and the client configuration.
type ctlSession struct {
	s       streams
	g       *ctlFlags
	printer printer
	logger  *zap.Logger
	spec    *clientv3.ConfigSpec
}

// newCtlSession applies the environment to cmd's client flags, checks them and
// prepares the printer for an output of the given kind. It does not dial.
func newCtlSession(cmd *cobra.Command, s streams, g *ctlFlags, kind outputKind) (*ctlSession, error) {
	fs := cmd.Flags()
	if err := applyCtlEnv(fs, os.Getenv); err != nil {
		return nil, ctlError(exitError, err)
	}
	p, err := newPrinter(g.writeOut, g.hex, s.out, s.err)
	if err != nil {
		return nil, err
	}
	sess := &ctlSession{s: s, g: g, printer: p, logger: zap.NewNop()}
	if err := sess.supports(kind); err != nil {
		return nil, err
	}
	if g.debug {
		sess.startDebug(fs)
	}
	if sess.spec, err = sess.configSpec(fs); err != nil {
		return nil, err
	}
	return sess, nil
}

// supports refuses a --write-out format that cannot print kind.
func (c *ctlSession) supports(kind outputKind) error {
	if !c.printer.supports(kind) {
		return ctlErrorf(exitBadFeature, "%s not supported as output format", c.g.writeOut)
	}
	return nil
}

// startDebug prints the effective client flags and turns on the client and
// gRPC logs, all on stderr.
func (c *ctlSession) startDebug(fs *pflag.FlagSet) {
	for _, name := range ctlFlagNames {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		val := f.Value.String()
		if name == "password" && val != "" {
			val = "<hidden>"
		}
		fmt.Fprintf(c.s.err, "%s=%s\n", ctlEnvKey(ctlEnvPrefixes[0], name), val)
	}
	w := zapcore.AddSync(c.s.err)
	grpclog.SetLoggerV2(grpclog.NewLoggerV2WithVerbosity(w, w, w, 4))
	enc := zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig())
	c.logger = zap.New(zapcore.NewCore(enc, w, zapcore.DebugLevel)).Named("client")
}

// configSpec builds the client configuration from the flags.
func (c *ctlSession) configSpec(fs *pflag.FlagSet) (*clientv3.ConfigSpec, error) {
	g := c.g
	for _, name := range []string{"cert", "key", "cacert"} {
		if f := fs.Lookup(name); f != nil && f.Changed && f.Value.String() == "" {
			return nil, ctlErrorf(exitBadArgs, "empty string is passed to --%s option", name)
		}
	}
	eps := make([]string, len(g.endpoints))
	for i, ep := range g.endpoints {
		eps[i] = strings.TrimSpace(ep)
	}
	auth, err := c.authConfig()
	if err != nil {
		return nil, err
	}
	return &clientv3.ConfigSpec{
		Endpoints:          eps,
		DialTimeout:        g.dialTimeout,
		KeepAliveTime:      g.keepAliveTime,
		KeepAliveTimeout:   g.keepAliveTimeout,
		MaxCallSendMsgSize: g.maxRequestBytes,
		MaxCallRecvMsgSize: g.maxRecvBytes,
		Secure: &clientv3.SecureConfig{
			Cert:               g.cert,
			Key:                g.key,
			Cacert:             g.cacert,
			InsecureTransport:  g.insecureTransport,
			InsecureSkipVerify: g.insecureSkipVerify,
		},
		Auth: auth,
	}, nil
}

// authConfig returns the credentials of --user and --password, asking for the
// password when --user names no password and --password is empty.
func (c *ctlSession) authConfig() (*clientv3.AuthConfig, error) {
	g := c.g
	if g.user == "" {
		return nil, nil
	}
	if g.password != "" {
		return &clientv3.AuthConfig{Username: g.user, Password: g.password}, nil
	}
	if name, pass, ok := strings.Cut(g.user, ":"); ok {
		return &clientv3.AuthConfig{Username: name, Password: pass}, nil
	}
	pass, err := ctlReadPassword(c.s, "Password: ")
	if err != nil {
		return nil, ctlError(exitError, fmt.Errorf("read password: %w", err))
	}
	return &clientv3.AuthConfig{Username: g.user, Password: pass}, nil
}

// ctlReadPassword prompts on stderr and reads one line from stdin, without echo
// when stdin is a terminal.
func ctlReadPassword(s streams, prompt string) (string, error) {
	fmt.Fprint(s.err, prompt)
	defer fmt.Fprintln(s.err)
	if f, ok := s.in.(*os.File); ok {
		if restore, err := ctlDisableEcho(f); err == nil {
			defer restore()
		}
	}
	if s.in == nil {
		return "", io.EOF
	}
	// Read byte by byte: whatever follows the password on stdin (a value
	// for put, a txn) is the command's and must stay unread.
	var line []byte
	b := make([]byte, 1)
	for {
		n, err := s.in.Read(b)
		if n == 1 {
			if b[0] == '\n' {
				break
			}
			line = append(line, b[0])
			continue
		}
		if errors.Is(err, io.EOF) && len(line) > 0 {
			break
		}
		if err != nil {
			return "", err
		}
	}
	return strings.TrimRight(string(line), "\r"), nil
}

// client dials the configured endpoints, or the given ones instead.
func (c *ctlSession) client(endpoints ...string) (*clientv3.Client, error) {
	cfg, err := c.clientConfig(endpoints...)
	if err != nil {
		return nil, err
	}
	cli, err := clientv3.New(*cfg)
	if err != nil {
		return nil, ctlError(exitBadConnection, err)
	}
	return cli, nil
}

// clientConfig builds the client configuration for the configured
// endpoints, or the given ones instead. Unreadable TLS files fail here.
func (c *ctlSession) clientConfig(endpoints ...string) (*clientv3.Config, error) {
	spec := c.spec
	if len(endpoints) > 0 {
		spec = spec.Clone()
		spec.Endpoints = endpoints
	}
	cfg, err := clientv3.NewClientConfig(spec, c.logger)
	if err != nil {
		return nil, ctlError(exitBadArgs, err)
	}
	cfg.Logger = c.logger
	return cfg, nil
}

// commandContext bounds one request by --command-timeout.
func (c *ctlSession) commandContext(parent context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(parent, c.g.commandTimeout)
}
