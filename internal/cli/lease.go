package cli

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The lease commands. Lease IDs are written and read in hex, as etcdctl
// does: "cairn put k v --lease=694d77aa9e38260f".

func newLeaseCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lease <subcommand>",
		Short: "Grant, revoke, inspect and keep alive leases",
	}
	g := newCtlFlags(cmd.PersistentFlags())

	grant := &cobra.Command{
		Use:   "grant <ttl>",
		Short: "Grant a lease of <ttl> seconds and print its ID",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "lease grant command needs TTL argument")
			}
			ttl, err := strconv.ParseInt(args[0], 10, 64)
			if err != nil {
				return ctlErrorf(exitBadArgs, "bad TTL (%w)", err)
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.Grant(ctx, ttl)
				if err != nil {
					return ctlErrorf(exitError, "failed to grant lease (%w)", err)
				}
				sess.printer.leaseGrant(resp)
				return nil
			})
		},
	}

	revoke := &cobra.Command{
		Use:   "revoke <leaseID>",
		Short: "Revoke a lease, deleting the keys attached to it",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "lease revoke command needs 1 argument")
			}
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.Revoke(ctx, id)
				if err != nil {
					return ctlErrorf(exitError, "failed to revoke lease (%w)", err)
				}
				if err := sess.marshalError(*resp); err != nil {
					return err
				}
				sess.printer.leaseRevoke(id, resp)
				return nil
			})
		},
	}

	var withKeys bool
	timeToLive := &cobra.Command{
		Use:   "timetolive <leaseID> [options]",
		Short: "Print a lease's granted and remaining TTL, and with --keys its keys",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "lease timetolive command needs lease ID as argument")
			}
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			var opts []clientv3.LeaseOption
			if withKeys {
				opts = append(opts, clientv3.WithAttachedKeys())
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.TimeToLive(ctx, id, opts...)
				if err != nil {
					// etcdctl's code for this failure, whatever it is.
					return ctlError(exitBadConnection, err)
				}
				sess.printer.leaseTimeToLive(resp, withKeys)
				return nil
			})
		},
	}
	timeToLive.Flags().BoolVar(&withKeys, "keys", false, "also list the keys attached to the lease")

	list := &cobra.Command{
		Use:   "list",
		Short: "List the IDs of all active leases",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "lease list command accepts no arguments")
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.Leases(ctx)
				if err != nil {
					return ctlError(exitBadConnection, err)
				}
				sess.printer.leaseList(resp)
				return nil
			})
		},
	}

	var once bool
	keepAlive := &cobra.Command{
		Use:   "keep-alive [options] <leaseID>",
		Short: "Renew a lease until it is revoked or the command is interrupted",
		Long: `Renew a lease every third of its TTL, printing each renewal, until the lease
is revoked or expires (then say so and exit 0) or the command is interrupted.
With --once, renew it once and exit.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "lease keep-alive command needs lease ID as argument")
			}
			id, err := parseLeaseID(args[0])
			if err != nil {
				return err
			}
			sess, err := newCtlSession(cmd, s, g, kvOutput)
			if err != nil {
				return err
			}
			cli, err := sess.client()
			if err != nil {
				return err
			}
			defer cli.Close()
			if once {
				ctx, cancel := sess.commandContext(cmd.Context())
				defer cancel()
				resp, err := cli.KeepAliveOnce(ctx, id)
				if err != nil {
					return ctlError(exitBadConnection, err)
				}
				sess.printer.leaseKeepAlive(resp)
				return nil
			}
			return sess.keepAlive(cmd.Context(), cli, id)
		},
	}
	keepAlive.Flags().BoolVar(&once, "once", false, "renew the lease once and exit")

	cmd.AddCommand(grant, revoke, timeToLive, list, keepAlive)
	return cmd
}

// withClient sets up the session and client of a command that makes one
// request and prints its response (a kvOutput), and runs fn with a context
// bounded by --command-timeout.
func withClient(cmd *cobra.Command, s streams, g *ctlFlags, fn func(context.Context, *ctlSession, *clientv3.Client) error) error {
	return withClientFor(cmd, s, g, kvOutput, fn)
}

// withClientFor is withClient for a command that prints responses of kind.
func withClientFor(cmd *cobra.Command, s streams, g *ctlFlags, kind outputKind, fn func(context.Context, *ctlSession, *clientv3.Client) error) error {
	sess, err := newCtlSession(cmd, s, g, kind)
	if err != nil {
		return err
	}
	cli, err := sess.client()
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := sess.commandContext(cmd.Context())
	defer cancel()
	return fn(ctx, sess, cli)
}

// keepAlive renews the lease until the server stops renewing it (revoked or
// expired) or ctx ends.
func (c *ctlSession) keepAlive(ctx context.Context, cli *clientv3.Client, id clientv3.LeaseID) error {
	kctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ch, err := cli.KeepAlive(kctx, id)
	if err != nil {
		return ctlError(exitBadConnection, err)
	}
	for resp := range ch {
		c.printer.leaseKeepAlive(resp)
	}
	if ctx.Err() != nil {
		return interrupted(ctx)
	}
	if _, ok := c.printer.(*simplePrinter); ok {
		fmt.Fprintf(c.s.out, "lease %016x expired or revoked.\n", id)
	}
	return nil
}

// parseLeaseID reads a lease ID argument, in hex.
func parseLeaseID(arg string) (clientv3.LeaseID, error) {
	id, err := strconv.ParseInt(arg, 16, 64)
	if err != nil {
		return 0, ctlErrorf(exitBadArgs, "bad lease ID arg (%w), expecting ID in Hex", err)
	}
	return clientv3.LeaseID(id), nil
}

// interrupted ends a streaming command whose context ended: quietly on an
// interrupt, with the reason on a deadline.
func interrupted(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return ctlError(exitError, ctx.Err())
	}
	return ExitError{Code: exitSignal}
}
