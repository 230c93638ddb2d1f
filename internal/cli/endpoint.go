package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// epHealth is one endpoint's health; the JSON tags are etcdctl's.
type epHealth struct {
	Ep     string `json:"endpoint"`
	Health bool   `json:"health"`
	Took   string `json:"took"`
	Error  string `json:"error,omitempty"`
}

// epStatus is one endpoint's Status response; the JSON tags are etcdctl's.
type epStatus struct {
	Ep   string             `json:"Endpoint"`
	Resp *pb.StatusResponse `json:"Status"`
}

// epHashKV is one endpoint's HashKV response; the JSON tags are etcdctl's.
type epHashKV struct {
	Ep   string                   `json:"Endpoint"`
	Resp *clientv3.HashKVResponse `json:"HashKV"`
}

func newEndpointCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "endpoint <subcommand>",
		Short: "Check the health and status of store endpoints",
	}
	g := newCtlFlags(cmd.PersistentFlags())
	var cluster bool
	cmd.PersistentFlags().BoolVar(&cluster, "cluster", false, "check every client URL of the cluster's members instead of --endpoints")

	health := &cobra.Command{
		Use:   "health",
		Short: "Check that each endpoint can serve a linearizable read and has no alarm raised",
		RunE: func(cmd *cobra.Command, args []string) error {
			sess, err := newCtlSession(cmd, s, g, endpointOutput)
			if err != nil {
				return err
			}
			eps, err := sess.endpointList(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			return sess.endpointHealth(cmd.Context(), eps)
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Print each endpoint's member ID, version, database size, Raft term and index",
		Long: "Print the status of each endpoint. The simple format writes one comma-separated\n" +
			"line per endpoint with the same columns as the table format.",
		RunE: func(cmd *cobra.Command, args []string) error {
			// As etcdctl, the endpoints are asked (and those that do not
			// answer reported) before an unusable format is refused.
			sess, err := newCtlSession(cmd, s, g, noOutput)
			if err != nil {
				return err
			}
			eps, err := sess.endpointList(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			return sess.endpointStatus(cmd.Context(), eps)
		},
	}
	var hashRev int64
	hashKV := &cobra.Command{
		Use:   "hashkv",
		Short: "Print each endpoint's hash of the key-value history up to a revision",
		Long: "Print each endpoint's hash of the key-value history, from the compacted revision\n" +
			"up to --rev (default: the current revision), with the revision it was taken at.\n" +
			"Members that applied the same history give the same hash at the same revision.",
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 0 {
				return ctlErrorf(exitBadArgs, "endpoint hashkv command accepts no arguments")
			}
			sess, err := newCtlSession(cmd, s, g, noOutput) // as status
			if err != nil {
				return err
			}
			eps, err := sess.endpointList(cmd.Context(), cluster)
			if err != nil {
				return err
			}
			return sess.endpointHashKV(cmd.Context(), eps, hashRev)
		},
	}
	hashKV.Flags().Int64Var(&hashRev, "rev", 0, "hash the history up to this revision (default: the current revision)")
	cmd.AddCommand(health, status, hashKV)
	return cmd
}

// endpointList returns the endpoints to check: --endpoints, or with
// --cluster the client URLs of every member of the cluster.
func (c *ctlSession) endpointList(ctx context.Context, cluster bool) ([]string, error) {
	if !cluster {
		return c.g.endpoints, nil
	}
	cli, err := c.client()
	if err != nil {
		return nil, ctlError(exitError, errors.Unwrap(err))
	}
	defer cli.Close()
	cctx, cancel := c.commandContext(ctx)
	defer cancel()
	resp, err := cli.MemberList(cctx)
	if err != nil {
		return nil, ctlError(exitError, fmt.Errorf("failed to fetch endpoints from etcd cluster member list: %w", err))
	}
	var eps []string
	for _, m := range resp.Members {
		eps = append(eps, m.ClientURLs...)
	}
	return eps, nil
}

// endpointHealth checks all endpoints at once. An endpoint is healthy when a
// linearizable Get (which goes through consensus) succeeds or is refused for
// permissions, and no alarm is raised.
func (c *ctlSession) endpointHealth(ctx context.Context, eps []string) error {
	cfgs := make([]*clientv3.Config, len(eps))
	for i, ep := range eps {
		cfg, err := c.clientConfig(ep)
		if err != nil {
			return err
		}
		cfgs[i] = cfg
	}
	results := make([]epHealth, len(eps))
	var wg sync.WaitGroup
	for i, ep := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = checkHealth(ctx, ep, cfgs[i], c.g.commandTimeout)
		}()
	}
	wg.Wait()
	c.printer.endpointHealth(results)
	for _, h := range results {
		if h.Error != "" {
			return ctlErrorf(exitError, "unhealthy cluster")
		}
	}
	return nil
}

func checkHealth(ctx context.Context, ep string, cfg *clientv3.Config, timeout time.Duration) epHealth {
	cli, err := clientv3.New(*cfg)
	if err != nil {
		return epHealth{Ep: ep, Error: err.Error()}
	}
	defer cli.Close()

	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err = cli.Get(cctx, "health")
	h := epHealth{Ep: ep, Took: time.Since(start).String()}
	if err != nil && !errors.Is(err, rpctypes.ErrPermissionDenied) {
		h.Error = err.Error()
		return h
	}
	alarms, err := cli.AlarmList(cctx)
	switch {
	case err != nil:
		h.Error = "Unable to fetch the alarm list"
	case len(alarms.Alarms) > 0:
		var b strings.Builder
		b.WriteString("Active Alarm(s): ")
		for _, a := range alarms.Alarms {
			switch a.Alarm {
			case pb.AlarmType_NOSPACE:
				b.WriteString("NOSPACE ")
			case pb.AlarmType_CORRUPT:
				b.WriteString("CORRUPT ")
			default:
				b.WriteString("UNKNOWN ")
			}
		}
		h.Error = b.String()
	default:
		h.Health = true
	}
	return h
}

// endpointStatus asks each endpoint for its status in turn. An endpoint that
// does not answer is reported on stderr and makes the command exit 1 after
// the others are printed.
func (c *ctlSession) endpointStatus(ctx context.Context, eps []string) error {
	var (
		list   []epStatus
		failed bool
	)
	for _, ep := range eps {
		cli, err := c.client(ep)
		if err != nil {
			return err
		}
		cctx, cancel := c.commandContext(ctx)
		resp, err := cli.Status(cctx, ep)
		cancel()
		cli.Close()
		if err != nil {
			failed = true
			fmt.Fprintf(c.s.err, "Failed to get the status of endpoint %s (%v)\n", ep, err)
			continue
		}
		list = append(list, epStatus{Ep: ep, Resp: (*pb.StatusResponse)(resp)})
	}
	if err := c.supports(endpointOutput); err != nil {
		return err
	}
	c.printer.endpointStatus(list)
	if failed {
		return ExitError{Code: exitError}
	}
	return nil
}

// endpointHashKV asks each endpoint for its hash in turn. An endpoint that
// does not answer is reported on stderr; after the others are printed the
// command fails with the last such error.
func (c *ctlSession) endpointHashKV(ctx context.Context, eps []string, rev int64) error {
	var (
		list    []epHashKV
		lastErr error
	)
	for _, ep := range eps {
		cli, err := c.client(ep)
		if err != nil {
			return err
		}
		cctx, cancel := c.commandContext(ctx)
		resp, err := cli.HashKV(cctx, ep, rev)
		cancel()
		cli.Close()
		if err != nil {
			lastErr = err
			fmt.Fprintf(c.s.err, "Failed to get the hash of endpoint %s (%v)\n", ep, err)
			continue
		}
		list = append(list, epHashKV{Ep: ep, Resp: resp})
	}
	if err := c.supports(endpointOutput); err != nil {
		return err
	}
	c.printer.endpointHashKV(list)
	if lastErr != nil {
		return ctlError(exitError, lastErr)
	}
	return nil
}
