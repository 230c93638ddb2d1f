package cli

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"strings"

	"github.com/spf13/cobra"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"

	"github.com/cairn-io/cairn/internal/server"
	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/version"
)

// The snapshot commands: save is etcdctl's, status and restore etcdutl's
// (on cairn's snapshot files).

// snapshotStatus is a snapshot file's status; the JSON tags are etcdutl's.
type snapshotStatus struct {
	Hash      uint32 `json:"hash"`
	Revision  int64  `json:"revision"`
	TotalKey  int    `json:"totalKey"`
	TotalSize int64  `json:"totalSize"`
	Version   string `json:"version"`
}

func newSnapshotCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "snapshot <subcommand>",
		Short: "Save a member's snapshot to a file, inspect one, or restore one into a new data directory",
	}
	cmd.AddCommand(newSnapshotSaveCommand(s), newSnapshotStatusCommand(s), newSnapshotRestoreCommand(s))
	return cmd
}

func newSnapshotSaveCommand(s streams) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "save <filename>",
		Short: "Save a point-in-time snapshot of one member's data to a file",
		Long: `Save a point-in-time snapshot of the member at --endpoints (exactly one) to
<filename>. The data is written to <filename>.part, synced to disk and then
renamed, so <filename> is either complete or absent. Without --command-timeout
the transfer may take as long as it needs. On a terminal, a transfer that
takes more than a second shows its progress on stderr.`,
	}
	g := newCtlFlags(cmd.Flags())
	cmd.RunE = func(cmd *cobra.Command, args []string) error {
		if len(args) != 1 {
			return ctlErrorf(exitBadArgs, "snapshot save expects one argument <filename>")
		}
		sess, err := newCtlSession(cmd, s, g, noOutput)
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		if cmd.Flags().Changed("command-timeout") {
			var cancel context.CancelFunc
			ctx, cancel = sess.commandContext(ctx)
			defer cancel()
		}
		path := args[0]
		ver, err := sess.saveSnapshot(ctx, path)
		if err != nil {
			var exit ExitError
			if errors.As(err, &exit) {
				return err
			}
			return ctlError(exitInterrupted, err)
		}
		fmt.Fprintf(s.out, "Snapshot saved at %s\n", path)
		if ver != "" {
			fmt.Fprintf(s.out, "Server version %s\n", ver)
		}
		return nil
	}
	return cmd
}

// saveSnapshot streams the snapshot of the one configured endpoint into
// path and returns the server version it reported.
func (c *ctlSession) saveSnapshot(ctx context.Context, path string) (string, error) {
	if len(c.spec.Endpoints) != 1 {
		return "", fmt.Errorf("snapshot must be requested to one selected node, not multiple %v", c.spec.Endpoints)
	}
	cfg, err := c.clientConfig()
	if err != nil {
		return "", err
	}
	cli, err := clientv3.New(*cfg)
	if err != nil {
		return "", err
	}
	defer cli.Close()

	part := path + ".part"
	defer os.RemoveAll(part)
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return "", fmt.Errorf("could not open %s (%w)", part, err)
	}
	defer f.Close()

	// The raw stream, rather than clientv3's reader, for the remaining
	// byte count each message carries.
	recvMax := math.MaxInt32
	if c.g.maxRecvBytes > 0 {
		recvMax = c.g.maxRecvBytes
	}
	stream, err := pb.NewMaintenanceClient(cli.ActiveConnection()).Snapshot(ctx, &pb.SnapshotRequest{},
		grpc.WaitForReady(true), grpc.MaxCallRecvMsgSize(recvMax))
	if err != nil {
		return "", snapshotStreamError(ctx, err)
	}
	resp, err := stream.Recv()
	if err != nil {
		return "", snapshotStreamError(ctx, err)
	}
	ver := resp.Version
	meter := newProgressMeter(c.s.err, "received")
	var size int64
	for {
		if _, err := f.Write(resp.Blob); err != nil {
			return ver, fmt.Errorf("could not write snapshot: %w", err)
		}
		size += int64(len(resp.Blob))
		total := size + int64(resp.RemainingBytes)
		meter.update(size, total)
		if resp, err = stream.Recv(); errors.Is(err, io.EOF) {
			meter.finish(size, total)
			break
		} else if err != nil {
			meter.finish(size, total)
			return ver, fmt.Errorf("could not write snapshot: %w", snapshotStreamError(ctx, err))
		}
	}
	// A complete snapshot ends in a SHA-256 of the rest, which brings its
	// size to 32 past a multiple of 512.
	if size%512 != sha256.Size {
		return ver, fmt.Errorf("sha256 checksum not found [bytes: %d]", size)
	}
	if err := f.Sync(); err != nil {
		return ver, fmt.Errorf("could not fsync snapshot: %w", err)
	}
	if err := f.Close(); err != nil {
		return ver, fmt.Errorf("could not close file descriptor: %w", err)
	}
	if err := os.Rename(part, path); err != nil {
		return ver, fmt.Errorf("could not rename %s to %s (%w)", part, path, err)
	}
	return ver, nil
}

// snapshotStreamError reports a stream that ended early as the context's
// error when that is why.
func snapshotStreamError(ctx context.Context, err error) error {
	if ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

func newSnapshotStatusCommand(s streams) *cobra.Command {
	var writeOut string
	cmd := &cobra.Command{
		Use:   "status <filename>",
		Short: "Check a snapshot file and print its hash, revision, key count, size and storage version",
		Long: `Read and verify a snapshot file written by snapshot save, and print its
status. With --write-out=simple (the default) the line is comma-separated:
hash, revision, total keys, total size, version.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "snapshot status requires exactly one argument")
			}
			p, err := newPrinter(writeOut, false, s.out, s.err)
			if err != nil {
				return err
			}
			path := args[0]
			if fi, err := os.Stat(path); err != nil {
				return ctlError(exitError, err)
			} else if fi.IsDir() {
				return ctlErrorf(exitError, "snapshot status: %s is a directory", path)
			}
			st, err := snapshot.ReadStatus(path)
			if err != nil {
				return ctlError(exitError, err)
			}
			status := snapshotStatus{
				Hash:      st.Hash,
				Revision:  st.Revision,
				TotalKey:  st.TotalKey,
				TotalSize: st.TotalSize,
				Version:   version.StorageVersion,
			}
			if _, ok := p.(*protobufPrinter); ok {
				return ctlErrorf(exitBadFeature, "marshal unsupported for type snapshot.Status (%v)", status)
			}
			p.snapshotStatus(status)
			return nil
		},
	}
	cmd.Flags().StringVarP(&writeOut, "write-out", "w", "simple", "output format: simple, json, fields or table")
	return cmd
}

func newSnapshotRestoreCommand(s streams) *cobra.Command {
	var (
		dataDir        string
		name           string
		initialCluster string
		clusterToken   string
		peerURLs       string
	)
	cmd := &cobra.Command{
		Use:   "restore <filename> [--data-dir <dir>] [options]",
		Short: "Create a new member's data directory from a snapshot file",
		Long: `Create the data directory of a member of a new cluster from a snapshot file:
the same keys, history, leases and users, under a new cluster ID and the
membership given by the flags (one member by default). The directory must not
exist, or be empty. Start the member on it with the same name:

  cairn snapshot restore backup.db --data-dir /var/lib/cairn/restored
  cairn serve --data-dir /var/lib/cairn/restored

For a cluster, restore the same file once per member with its --name and
--initial-advertise-peer-urls and the same --initial-cluster and
--initial-cluster-token, then start every member with those flags.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ctlErrorf(exitBadArgs, "snapshot restore requires exactly one argument")
			}
			if name == "" {
				return ctlErrorf(exitBadArgs, "--name must not be empty")
			}
			peers, err := parseURLs("initial-advertise-peer-urls", peerURLs)
			if err != nil {
				return ctlError(exitError, err)
			}
			cluster := initialCluster
			if cluster == "" {
				parts := make([]string, len(peers))
				for i, u := range peers {
					parts[i] = name + "=" + u
				}
				cluster = strings.Join(parts, ",")
			}
			dir := dataDir
			if dir == "" {
				dir = name + ".cairn"
			}
			return restoreSnapshot(s, args[0], snapshot.RestoreConfig{
				DataDir:             dir,
				Name:                name,
				InitialCluster:      cluster,
				InitialClusterToken: clusterToken,
				PeerURLs:            peers,
			})
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&dataDir, "data-dir", "", "data directory to create (default ./<name>.cairn)")
	fs.StringVar(&name, "name", server.DefaultName, "name of the restored member")
	fs.StringVar(&initialCluster, "initial-cluster", "", "the new cluster's members, name=peerURL,... (default <name>=<initial-advertise-peer-urls>)")
	fs.StringVar(&clusterToken, "initial-cluster-token", server.DefaultInitialClusterToken, "the new cluster's token")
	fs.StringVar(&peerURLs, "initial-advertise-peer-urls", defaultPeerURL, "the restored member's peer URLs")
	return cmd
}

// restoreSnapshot restores the snapshot file at path. Like etcdutl it
// accepts an existing empty directory as the data directory.
func restoreSnapshot(s streams, path string, cfg snapshot.RestoreConfig) error {
	f, err := os.Open(path)
	if err != nil {
		return ctlError(exitError, err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return ctlError(exitError, err)
	}
	if fi.IsDir() {
		return ctlErrorf(exitError, "snapshot restore: %s is a directory", path)
	}
	if ents, err := os.ReadDir(cfg.DataDir); err == nil && len(ents) == 0 {
		di, err := os.Stat(cfg.DataDir)
		if err != nil {
			return ctlError(exitError, err)
		}
		if err := os.Remove(cfg.DataDir); err != nil {
			return ctlError(exitError, fmt.Errorf("snapshot restore: %w", err))
		}
		// Put the empty directory back if the restore fails.
		defer func() {
			if _, err := os.Stat(cfg.DataDir); errors.Is(err, os.ErrNotExist) {
				os.Mkdir(cfg.DataDir, di.Mode().Perm())
			}
		}()
	}
	total := fi.Size()
	meter := newProgressMeter(s.err, "restored")
	var done int64
	cfg.Progress = func(read int64) {
		done = read
		meter.update(read, total)
	}
	err = snapshot.Restore(f, cfg)
	if err != nil {
		meter.finish(done, total)
		return ctlError(exitError, err)
	}
	// The last records are followed by the checksum, read after them.
	meter.finish(total, total)
	return nil
}
