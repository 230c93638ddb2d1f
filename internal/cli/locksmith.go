package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/locksmith"
)

// Defaults shared by locksmith and locksmithd.
const (
	defaultMachineIDFile = "/etc/machine-id"
)

// locksmithCtl holds the flags of "cairn locksmith".
type locksmithCtl struct {
	g             *ctlFlags
	group         string
	machineIDFile string
}

func newLocksmithCommand(s streams) *cobra.Command {
	c := &locksmithCtl{}
	cmd := &cobra.Command{
		Use:   "locksmith <subcommand>",
		Short: "Manage the cluster-wide reboot lock (locksmithctl)",
		Long: `Manage the cluster-wide reboot semaphore that locksmithd and the FleetLock
server take before a node reboots.

Each flag can also be set as LOCKSMITHCTL_<FLAG> (LOCKSMITHCTL_GROUP,
LOCKSMITHCTL_ENDPOINT, ...), as with locksmithctl; the connection flags also
as CAIRN_<FLAG> or ETCDCTL_<FLAG>. A flag on the command line wins.`,
	}
	fs := cmd.PersistentFlags()
	c.g = newStoreFlags(fs)
	fs.StringVar(&c.group, "group", "", `semaphore group (default: the default group, also called "default")`)
	fs.StringVar(&c.machineIDFile, "machine-id-file", defaultMachineIDFile, "file with this machine's id, the holder id of lock and unlock without an argument")

	var all bool
	var format string
	status := &cobra.Command{
		Use:   "status",
		Short: "Print the available slots, the max and the holders of the group (or of every group with --all)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if format != "simple" && format != "json" {
				return ExitError{Code: 2, Err: fmt.Errorf("invalid --write-out %q: want simple or json", format)}
			}
			return c.run(cmd, s, func(ctx context.Context, cli *clientv3.Client) error {
				var sts []locksmith.Status
				if all {
					var err error
					if sts, err = locksmith.StatusAll(ctx, cli); err != nil {
						return err
					}
				} else {
					st, err := locksmith.NewSemaphore(cli, c.group).Status(ctx)
					if err != nil {
						return err
					}
					sts = []locksmith.Status{st}
				}
				if format == "json" {
					if err := printStatusJSON(s.out, sts, all); err != nil {
						return err
					}
				} else {
					for i, st := range sts {
						if i > 0 {
							fmt.Fprintln(s.out)
						}
						if all {
							fmt.Fprintf(s.out, "Group: %s\n", st.Group)
						}
						printStatus(s.out, st)
					}
				}
				return unreadableGroups(sts)
			})
		},
	}
	status.Flags().BoolVar(&all, "all", false, "print every group that has a semaphore")
	status.Flags().StringVarP(&format, "write-out", "w", "simple", "output format: simple or json")

	var ttl time.Duration
	lock := &cobra.Command{
		Use:   "lock [machine-id]",
		Short: "Take a slot for this machine or the given id",
		Long: `Take a slot of the group's semaphore for this machine (its /etc/machine-id) or
the given id. With --ttl the slot is bound to a new lease of that TTL, which
nobody renews: the slot frees itself after the TTL.

A slot locked under the id of a node that runs locksmithd does not hold the
node back: the daemon takes it as its own and reboots at once when it needs
to. To hold reboots back, lock under an id no node uses, or set-max 0.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.holderID(args)
			if err != nil {
				return err
			}
			if ttl < 0 {
				return ExitError{Code: 2, Err: errors.New("--ttl must not be negative")}
			}
			return c.run(cmd, s, func(ctx context.Context, cli *clientv3.Client) error {
				var lease clientv3.LeaseID
				if ttl > 0 {
					resp, err := cli.Grant(ctx, int64((ttl+time.Second-1)/time.Second))
					if err != nil {
						return fmt.Errorf("grant lease: %w", err)
					}
					lease = resp.ID
				}
				if err := locksmith.NewSemaphore(cli, c.group).Lock(ctx, id, lease); err != nil {
					if lease != 0 {
						cli.Revoke(ctx, lease)
					}
					return ctlFailure(s, "Error locking:", err)
				}
				return nil
			})
		},
	}
	lock.Flags().DurationVar(&ttl, "ttl", 0, "bind the slot to a lease of this TTL (0: held until unlocked)")

	unlock := &cobra.Command{
		Use:   "unlock [machine-id]",
		Short: "Give back the slot of this machine or the given id",
		Args:  cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			id, err := c.holderID(args)
			if err != nil {
				return err
			}
			return c.run(cmd, s, func(ctx context.Context, cli *clientv3.Client) error {
				if err := locksmith.NewSemaphore(cli, c.group).Unlock(ctx, id); err != nil {
					return ctlFailure(s, "Error unlocking:", err)
				}
				return nil
			})
		},
	}

	setMax := &cobra.Command{
		Use:   "set-max <n>",
		Short: "Set how many machines of the group may reboot at a time",
		Args:  cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return ExitError{Code: 2, Err: errors.New("set-max needs the new maximum")}
			}
			n, err := strconv.Atoi(args[0])
			if err != nil || n < 0 {
				return ExitError{Code: 2, Err: fmt.Errorf("invalid maximum %q: want a number of slots, 0 or more", args[0])}
			}
			return c.run(cmd, s, func(ctx context.Context, cli *clientv3.Client) error {
				old, err := locksmith.NewSemaphore(cli, c.group).SetMax(ctx, n)
				if err != nil {
					return fmt.Errorf("setting max: %w", err)
				}
				fmt.Fprintf(s.out, "Old-Max: %d\nMax: %d\n", old, n)
				return nil
			})
		},
	}

	var stateDir, bootIDFile string
	sendNeedReboot := &cobra.Command{
		Use:   "send-need-reboot",
		Short: "Tell this machine's locksmithd that it needs a reboot",
		Long: `Ask this machine's locksmithd for one reboot, as if the update agent had
asked: the request is a file in locksmithd's state directory, served by the
next reboot (it names the current boot).

The state directory and boot ID file are locksmithd's: besides the flags and
LOCKSMITHCTL_STATE_DIR, LOCKSMITHCTL_BOOT_ID_FILE, they are read from
LOCKSMITHD_STATE_DIR and LOCKSMITHD_BOOT_ID_FILE in the environment, then
in the update.conf files of --config (or LOCKSMITHD_CONFIG), as locksmithd
reads them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			files, err := readConfigFiles(cmd.Flags())
			if err != nil {
				return ExitError{Code: 2, Err: err}
			}
			src := varSource{getenv: os.Getenv, files: files}
			err = applyVars(cmd.Flags(), src, func(flag string) []string {
				names := locksmith.Variables("LOCKSMITHCTL", flag)
				if flag == "state-dir" || flag == "boot-id-file" {
					names = append(names, locksmith.Variables("LOCKSMITHD", flag)...)
				}
				return names
			})
			if err != nil {
				return ExitError{Code: 2, Err: err}
			}
			boot := locksmith.BootIDFile(bootIDFile)()
			if err := locksmith.RequestReboot(stateDir, boot); err != nil {
				return ExitError{Code: 1, Err: fmt.Errorf("send-need-reboot: %w", err)}
			}
			return nil
		},
	}
	sendNeedReboot.Flags().StringVar(&stateDir, "state-dir", locksmith.DefaultStateDir, "locksmithd's state directory")
	sendNeedReboot.Flags().StringSlice("config", locksmith.DefaultConfigFiles, "locksmithd's update.conf-style files, to find its state directory in; missing ones are skipped")
	sendNeedReboot.Flags().StringVar(&bootIDFile, "boot-id-file", locksmith.DefaultBootIDFile, "file with the current boot's id")

	cmd.AddCommand(status, lock, unlock, setMax, sendNeedReboot)
	return cmd
}

// holderID is the id argument, or this machine's id.
func (c *locksmithCtl) holderID(args []string) (string, error) {
	if len(args) == 1 {
		if args[0] == "" {
			return "", ExitError{Code: 2, Err: errors.New("empty machine id")}
		}
		return args[0], nil
	}
	id, err := readMachineID(c.machineIDFile)
	if err != nil {
		return "", ExitError{Code: 1, Err: err}
	}
	return id, nil
}

// run applies the environment, dials the store and runs fn bounded by
// --command-timeout. fn's errors exit 1.
func (c *locksmithCtl) run(cmd *cobra.Command, s streams, fn func(context.Context, *clientv3.Client) error) error {
	if err := applyLocksmithVars(cmd.Flags(), "LOCKSMITHCTL", varSource{getenv: os.Getenv}); err != nil {
		return ExitError{Code: 2, Err: err}
	}
	cli, err := storeClient(cmd, s, c.g)
	if err != nil {
		return err
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(cmd.Context(), c.g.commandTimeout)
	defer cancel()
	if err := fn(ctx, cli); err != nil {
		var exit ExitError
		if errors.As(err, &exit) {
			return err
		}
		return ExitError{Code: 1, Err: err}
	}
	return nil
}

// ctlFailure prints err after prefix on stderr, as locksmithctl printed
// its errors ("Error locking: semaphore is at 0"), and exits 1.
func ctlFailure(s streams, prefix string, err error) error {
	fmt.Fprintln(s.err, prefix, err)
	return ExitError{Code: 1}
}

// printStatus prints a group's semaphore as locksmithctl status did, with
// the lease of a lease-bound holder after a tab and the expired holders
// after them; a group whose document cannot be read gets an Error line
// instead.
func printStatus(w io.Writer, st locksmith.Status) {
	if st.Error != "" {
		fmt.Fprintf(w, "Error: %s\n", st.Error)
		return
	}
	fmt.Fprintf(w, "Available: %d\nMax: %d\n", st.Available, st.Max)
	if len(st.Holders) > 0 {
		fmt.Fprintf(w, "\nMACHINE ID\n")
		for _, h := range st.Holders {
			if h.Lease != 0 {
				fmt.Fprintf(w, "%s\tlease=%016x\n", h.ID, uint64(h.Lease))
			} else {
				fmt.Fprintln(w, h.ID)
			}
		}
	}
	if len(st.Expired) > 0 {
		fmt.Fprintf(w, "\nEXPIRED (lease gone; dropped at the next change)\n")
		for _, h := range st.Expired {
			fmt.Fprintf(w, "%s\tlease=%016x\n", h.ID, uint64(h.Lease))
		}
	}
}

// statusJSON is a Status with the leases in hex, as etcdctl prints them.
type statusJSON struct {
	Group     string       `json:"group"`
	Max       int          `json:"max"`
	Available int          `json:"available"`
	Holders   []holderJSON `json:"holders"`
	Expired   []holderJSON `json:"expired,omitempty"`
	Revision  int64        `json:"revision"`
	Error     string       `json:"error,omitempty"`
}

type holderJSON struct {
	ID    string `json:"id"`
	Lease string `json:"lease,omitempty"`
}

func printStatusJSON(w io.Writer, sts []locksmith.Status, all bool) error {
	conv := func(hs []locksmith.Holder) []holderJSON {
		out := []holderJSON{}
		for _, h := range hs {
			j := holderJSON{ID: h.ID}
			if h.Lease != 0 {
				j.Lease = fmt.Sprintf("%016x", uint64(h.Lease))
			}
			out = append(out, j)
		}
		return out
	}
	out := []statusJSON{}
	for _, st := range sts {
		j := statusJSON{Group: st.Group, Max: st.Max, Available: st.Available, Holders: conv(st.Holders), Revision: st.Revision, Error: st.Error}
		if len(st.Expired) > 0 {
			j.Expired = conv(st.Expired)
		}
		out = append(out, j)
	}
	enc := json.NewEncoder(w)
	if all {
		return enc.Encode(out)
	}
	return enc.Encode(out[0])
}

// unreadableGroups is the error of a status listing with groups whose
// document cannot be read (their Error says why), nil if there are none.
func unreadableGroups(sts []locksmith.Status) error {
	var bad []string
	for _, st := range sts {
		if st.Error != "" {
			bad = append(bad, strconv.Quote(st.Group))
		}
	}
	switch len(bad) {
	case 0:
		return nil
	case 1:
		return fmt.Errorf("cannot read the semaphore of group %s", bad[0])
	}
	return fmt.Errorf("cannot read the semaphores of groups %s", strings.Join(bad, ", "))
}
