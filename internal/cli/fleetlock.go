package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/cairn-io/cairn/internal/fleetlock"
)

func newFleetlockCommand(s streams) *cobra.Command {
	var (
		listenAddr, tlsCert, tlsKey string
		lockTTL                     time.Duration
		logLevel, logFormat         string
		g                           *ctlFlags
	)
	cmd := &cobra.Command{
		Use:   "fleetlock",
		Short: "Serve the FleetLock protocol, so Zincati can use cairn as its reboot manager",
		Long: `Serve the FleetLock protocol (POST /v1/pre-reboot, POST /v1/steady-state)
for Fedora CoreOS nodes whose Zincati runs the fleet_lock strategy:

  [updates]
  strategy = "fleet_lock"
  [updates.fleet_lock]
  base_url = "http://<this server>:<port>/"

Each FleetLock group is the locksmith semaphore group of the same name (the
group "default" is locksmith's default group), so FleetLock clients and
locksmithd share its slots; set them with "cairn locksmith --group G set-max N".
Prometheus metrics are served at /metrics.

The connection flags are also read from CAIRN_<FLAG> and ETCDCTL_<FLAG>.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := applyCtlEnv(cmd.Flags(), os.Getenv); err != nil {
				return ExitError{Code: 2, Err: err}
			}
			if (tlsCert == "") != (tlsKey == "") {
				return ExitError{Code: 2, Err: errors.New("--tls-cert-file and --tls-key-file go together")}
			}
			if lockTTL < 0 {
				return ExitError{Code: 2, Err: errors.New("--lock-ttl must not be negative")}
			}
			log, err := serviceLogger(s, logLevel, logFormat)
			if err != nil {
				return ExitError{Code: 2, Err: err}
			}
			cli, err := storeClient(cmd, s, g)
			if err != nil {
				return err
			}
			defer cli.Close()
			srv, err := fleetlock.New(fleetlock.Config{
				KV:      cli,
				Leases:  cli,
				LockTTL: lockTTL,
				Timeout: g.commandTimeout,
				Logger:  log,
			})
			if err != nil {
				return ExitError{Code: 1, Err: err}
			}
			ln, err := net.Listen("tcp", listenAddr)
			if err != nil {
				return ExitError{Code: 1, Err: fmt.Errorf("listen: %w", err)}
			}
			hs := &http.Server{Handler: srv, ReadHeaderTimeout: 10 * time.Second}
			done := make(chan error, 1)
			go func() {
				if tlsCert != "" {
					done <- hs.ServeTLS(ln, tlsCert, tlsKey)
				} else {
					done <- hs.Serve(ln)
				}
			}()
			log.Info("serving FleetLock", "addr", ln.Addr().String(), "tls", tlsCert != "", "lock_ttl", lockTTL)
			ctx := cmd.Context()
			select {
			case err := <-done:
				return ExitError{Code: 1, Err: err}
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			defer cancel()
			if err := hs.Shutdown(sctx); err != nil {
				log.Warn("shutdown", "err", err)
			}
			return nil
		},
	}
	fs := cmd.Flags()
	g = newStoreFlags(fs)
	fs.StringVar(&listenAddr, "listen-addr", "0.0.0.0:3333", "HOST:PORT to serve FleetLock and /metrics on")
	fs.StringVar(&tlsCert, "tls-cert-file", "", "serve HTTPS with this certificate (and --tls-key-file)")
	fs.StringVar(&tlsKey, "tls-key-file", "", "the key of --tls-cert-file")
	fs.DurationVar(&lockTTL, "lock-ttl", 0, "bind each new slot to a lease of this TTL, never renewed, so a node that never reports steady-state frees its slot after it (0: held until steady-state)")
	fs.StringVar(&logLevel, "log-level", "info", "log level: debug, info, warn or error")
	fs.StringVar(&logFormat, "log-format", "text", "log format: text or json")
	return cmd
}
