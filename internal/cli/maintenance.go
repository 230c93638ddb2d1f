package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The alarm and defrag commands.

func newAlarmCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "alarm <subcommand>",
		Short: "List and disarm the cluster's alarms (NOSPACE, CORRUPT)",
	}
	g := newCtlFlags(cmd.PersistentFlags())
	list := &cobra.Command{
		Use:   "list",
		Short: "List the raised alarms",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "alarm list command accepts no arguments")
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.AlarmList(ctx)
				if err != nil {
					return rpcError(err)
				}
				sess.printer.alarms(resp)
				return nil
			})
		},
	}
	disarm := &cobra.Command{
		Use:   "disarm",
		Short: "Disarm every raised alarm and list the ones disarmed",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "alarm disarm command accepts no arguments")
			}
			return withClient(cmd, s, g, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
				resp, err := cli.AlarmDisarm(ctx, &clientv3.AlarmMember{})
				if err != nil {
					return rpcError(err)
				}
				sess.printer.alarms(resp)
				return nil
			})
		},
	}
	cmd.AddCommand(list, disarm)
	return cmd
}

func newDefragCommand(s streams) *cobra.Command {
	var cluster bool
	cmd := &cobra.Command{
		Use:   "defrag [options]",
		Short: "Defragment the storage of each endpoint, reclaiming the space of deleted and compacted data",
		Long: `Defragment the storage of each endpoint in turn (with --cluster, of every
member). A member serves no requests while it defragments. The line printed is
the same in every --write-out format.`,
	}
	cmd.Flags().BoolVar(&cluster, "cluster", false, "defragment every member of the cluster instead of --endpoints")
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 0 {
			return ctlErrorf(exitBadArgs, "defrag command accepts no arguments")
		}
		sess, err := newCtlSession(cmd, s, g, noOutput)
		if err != nil {
			return err
		}
		eps, err := sess.endpointList(cmd.Context(), cluster)
		if err != nil {
			return err
		}
		failed := false
		for _, ep := range eps {
			cli, err := sess.client(ep)
			if err != nil {
				return err
			}
			ctx, cancel := sess.commandContext(cmd.Context())
			start := time.Now()
			_, err = cli.Defragment(ctx, ep)
			took := time.Since(start)
			cancel()
			cli.Close()
			if err != nil {
				failed = true
				fmt.Fprintf(s.err, "Failed to defragment etcd member[%s]. took %s. (%v)\n", ep, took, err)
				continue
			}
			fmt.Fprintf(s.out, "Finished defragmenting etcd member[%s]. took %s\n", ep, took)
		}
		if failed {
			return ExitError{Code: exitError}
		}
		return nil
	}
	return cmd
}
