package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The membership commands and move-leader, shaped like etcdctl 3.6's: the
// same arguments, messages, exit codes and output in every format. Member
// IDs are written and read in hex.

// addMemberCommands registers member and move-leader.
func addMemberCommands(root *cobra.Command, s streams) {
	for _, cmd := range []*cobra.Command{newMemberCommand(s), newMoveLeaderCommand(s)} {
		cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error {
			return ctlError(exitError, err)
		})
		root.AddCommand(cmd)
	}
}

func newMemberCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "member <subcommand>",
		Short: "List the cluster's members, add, remove, update or promote one",
	}
	g := newCtlFlags(cmd.PersistentFlags())

	var addPeerURLs string
	var learner bool
	add := &cobra.Command{
		Use:   "add <memberName> [options]",
		Short: "Add a member to the cluster and print the settings it must start with",
		Long: `Add a member with the peer URLs of --peer-urls (comma-separated), as a
non-voting learner with --learner. The simple format then prints the
ETCD_NAME, ETCD_INITIAL_CLUSTER, ETCD_INITIAL_ADVERTISE_PEER_URLS and
ETCD_INITIAL_CLUSTER_STATE settings the new member must be started with.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return ctlErrorf(exitBadArgs, "member name not provided")
			}
			if len(args) > 1 {
				msg := "too many arguments"
				for _, a := range args {
					if strings.HasPrefix(strings.ToLower(a), "http") {
						msg += ", did you mean --peer-urls=" + a
					}
				}
				return ctlErrorf(exitBadArgs, "%s", msg)
			}
			name := args[0]
			if addPeerURLs == "" {
				return ctlErrorf(exitBadArgs, "member peer urls not provided")
			}
			urls := strings.Split(addPeerURLs, ",")
			return memberRun(cmd, s, g, changeOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) (func(), error) {
				var (
					resp *clientv3.MemberAddResponse
					err  error
				)
				if learner {
					resp, err = cli.MemberAddAsLearner(ctx, urls)
				} else {
					resp, err = cli.MemberAdd(ctx, urls)
				}
				if err != nil {
					return nil, rpcError(err)
				}
				return func() {
					sess.printer.memberAdd(resp)
					if _, ok := sess.printer.(*simplePrinter); ok {
						sess.printJoinSettings(name, addPeerURLs, resp)
					}
				}, nil
			})
		},
	}
	add.Flags().StringVar(&addPeerURLs, "peer-urls", "", "comma-separated peer URLs of the new member")
	add.Flags().BoolVar(&learner, "learner", false, "add the member as a non-voting learner")

	remove := &cobra.Command{
		Use:   "remove <memberID>",
		Short: "Remove a member from the cluster",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberIDArg(args)
			if err != nil {
				return err
			}
			return memberRun(cmd, s, g, changeOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) (func(), error) {
				resp, err := cli.MemberRemove(ctx, id)
				if err != nil {
					return nil, rpcError(err)
				}
				return func() { sess.printer.memberRemove(id, resp) }, nil
			})
		},
	}

	var updatePeerURLs string
	update := &cobra.Command{
		Use:   "update <memberID> [options]",
		Short: "Change a member's peer URLs",
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberIDArg(args)
			if err != nil {
				return err
			}
			if updatePeerURLs == "" {
				return ctlErrorf(exitBadArgs, "member peer urls not provided")
			}
			urls := strings.Split(updatePeerURLs, ",")
			return memberRun(cmd, s, g, changeOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) (func(), error) {
				resp, err := cli.MemberUpdate(ctx, id, urls)
				if err != nil {
					return nil, rpcError(err)
				}
				return func() { sess.printer.memberUpdate(id, resp) }, nil
			})
		},
	}
	update.Flags().StringVar(&updatePeerURLs, "peer-urls", "", "comma-separated new peer URLs of the member")

	var consistency string
	list := &cobra.Command{
		Use:   "list",
		Short: "List the cluster's members",
		Long: `List the cluster's members. The simple format writes one comma-separated line
per member with the columns of the table format: ID, status, name, peer
URLs, client URLs and whether it is a learner.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			var opts []clientv3.OpOption
			switch consistency {
			case "s":
				opts = append(opts, clientv3.WithSerializable())
			case "l":
			default:
				return ctlErrorf(exitBadFeature, "unknown consistency flag %q", consistency)
			}
			return memberRun(cmd, s, g, membersOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) (func(), error) {
				resp, err := cli.MemberList(ctx, opts...)
				if err != nil {
					return nil, rpcError(err)
				}
				return func() { sess.printer.memberList(resp) }, nil
			})
		},
	}
	list.Flags().StringVar(&consistency, "consistency", "l", "l for a linearizable read of the member list, s for a serializable one")

	promote := &cobra.Command{
		Use:   "promote <memberID>",
		Short: "Promote a learner to a voting member",
		Long: `Promote a non-voting learner to a voting member. The leader refuses until the
learner has caught up with its log.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := memberIDArg(args)
			if err != nil {
				return err
			}
			return memberRun(cmd, s, g, changeOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) (func(), error) {
				resp, err := cli.MemberPromote(ctx, id)
				if err != nil {
					return nil, rpcError(err)
				}
				return func() { sess.printer.memberPromote(id, resp) }, nil
			})
		},
	}

	cmd.AddCommand(add, remove, update, list, promote)
	return cmd
}

func newMoveLeaderCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "move-leader <transferee-member-id>",
		Short: "Hand the cluster's leadership to another voting member",
		Long: `Hand leadership to the member with the given hex ID. The leader must be among
--endpoints: each is asked for its status in turn until one says it leads,
and that one is asked to transfer.`,
	}
	g := newCtlFlags(cmd.PersistentFlags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return ctlErrorf(exitBadArgs, "move-leader command needs 1 argument")
		}
		target, err := strconv.ParseUint(args[0], 16, 64)
		if err != nil {
			return ctlError(exitBadArgs, err)
		}
		sess, err := newCtlSession(cmd, s, g, noOutput)
		if err != nil {
			return err
		}
		cli, err := sess.client()
		if err != nil {
			return err
		}
		eps := cli.Endpoints()
		cli.Close()

		ctx, cancel := sess.commandContext(cmd.Context())
		defer cancel()
		leaderCli, leader, err := sess.findLeader(ctx, eps)
		if err != nil {
			return err
		}
		defer leaderCli.Close()
		resp, err := leaderCli.MoveLeader(ctx, target)
		if err != nil {
			return rpcError(err)
		}
		if err := sess.printableAfterRequest(changeOutput); err != nil {
			return err
		}
		sess.printer.moveLeader(leader, target, resp)
		return nil
	}
	return cmd
}

// findLeader asks each endpoint in turn for its status and returns a client
// of the first that leads, with its member ID. An endpoint that does not
// answer ends the search with its error.
func (c *ctlSession) findLeader(ctx context.Context, eps []string) (*clientv3.Client, uint64, error) {
	for _, ep := range eps {
		cli, err := c.client(ep)
		if err != nil {
			return nil, 0, err
		}
		resp, err := cli.Status(ctx, ep)
		if err != nil {
			cli.Close()
			return nil, 0, rpcError(err)
		}
		if resp.Header.GetMemberId() == resp.Leader {
			return cli, resp.Leader, nil
		}
		cli.Close()
	}
	return nil, 0, ctlErrorf(exitBadArgs, "no leader endpoint given at %v", eps)
}

// memberRun makes the client and runs the request in fn, which returns what
// prints the response. Like etcdctl, a member command makes its request
// whatever the format, and only then reports a format that cannot print
// the response (the session is set up with noOutput, which every printer
// takes): "member add -w table" adds the member and fails.
func memberRun(cmd *cobra.Command, s streams, g *ctlFlags, kind outputKind, fn func(context.Context, *ctlSession, *clientv3.Client) (func(), error)) error {
	return withClientFor(cmd, s, g, noOutput, func(ctx context.Context, sess *ctlSession, cli *clientv3.Client) error {
		show, err := fn(ctx, sess, cli)
		if err != nil {
			return err
		}
		if err := sess.printableAfterRequest(kind); err != nil {
			return err
		}
		show()
		return nil
	})
}

// printableAfterRequest is the error etcdctl ends with, after making the
// request, when the format cannot print responses of this kind; nil when it
// can.
func (c *ctlSession) printableAfterRequest(kind outputKind) error {
	if c.printer.supports(kind) {
		return nil
	}
	return ctlErrorf(exitBadFeature, "%s not supported as output format", c.g.writeOut)
}

// memberIDArg reads the one member ID argument of remove, update and
// promote, in hex.
func memberIDArg(args []string) (uint64, error) {
	if len(args) != 1 {
		return 0, ctlErrorf(exitBadArgs, "member ID is not provided")
	}
	id, err := strconv.ParseUint(args[0], 16, 64)
	if err != nil {
		return 0, ctlErrorf(exitBadArgs, "bad member ID arg (%w), expecting ID in Hex", err)
	}
	return id, nil
}

// printJoinSettings writes, after member add's simple output, the settings
// the new member must start with: its name, the whole cluster (the new
// member under the name given, since it has none yet), its peer URLs as
// given, and the state "existing".
func (c *ctlSession) printJoinSettings(name, peerURLs string, resp *clientv3.MemberAddResponse) {
	var newID uint64
	if resp.Member != nil {
		newID = resp.Member.ID
	}
	var cluster []string
	for _, m := range resp.Members {
		n := m.Name
		if m.ID == newID {
			n = name
		}
		for _, u := range m.PeerURLs {
			cluster = append(cluster, n+"="+u)
		}
	}
	fmt.Fprintf(c.s.out, "\nETCD_NAME=%q\n", name)
	fmt.Fprintf(c.s.out, "ETCD_INITIAL_CLUSTER=%q\n", strings.Join(cluster, ","))
	fmt.Fprintf(c.s.out, "ETCD_INITIAL_ADVERTISE_PEER_URLS=%q\n", peerURLs)
	fmt.Fprintf(c.s.out, "ETCD_INITIAL_CLUSTER_STATE=%q\n", "existing")
}
