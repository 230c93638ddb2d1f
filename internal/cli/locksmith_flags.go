package cli

import (
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/internal/locksmith"
)

// The reboot-coordination commands (locksmith, locksmithd, fleetlock) are
// store clients with the connection flags of the etcdctl-shaped commands,
// but not their output flags.
var storeFlagNames = []string{
	"endpoints", "dial-timeout", "command-timeout", "keepalive-time", "keepalive-timeout",
	"user", "password", "insecure-transport", "insecure-skip-tls-verify", "cacert", "cert", "key",
}

// newStoreFlags registers the connection flags on fs and returns the values
// they fill in.
func newStoreFlags(fs *pflag.FlagSet) *ctlFlags {
	all := pflag.NewFlagSet("store", pflag.ContinueOnError)
	g := newCtlFlags(all)
	for _, name := range storeFlagNames {
		fs.AddFlag(all.Lookup(name))
	}
	return g
}

// varSource finds a variable's value: the environment, then update.conf
// style files already read.
type varSource struct {
	getenv func(string) string
	files  map[string]string
}

func (v varSource) lookup(names []string) (name, val string, ok bool) {
	for _, n := range names {
		if val := v.getenv(n); val != "" {
			return n, val, true
		}
	}
	for _, n := range names {
		if val, ok := v.files[n]; ok && val != "" {
			return n, val, true
		}
	}
	return "", "", false
}

// applyLocksmithVars sets every flag of fs not given on the command line
// from locksmith's variables for prefix (LOCKSMITHD, LOCKSMITHCTL; see
// locksmith.Variables), then the connection flags still unset from the
// CAIRN_* and ETCDCTL_* variables of the etcdctl-shaped commands.
func applyLocksmithVars(fs *pflag.FlagSet, prefix string, src varSource) error {
	return applyVars(fs, src, func(flag string) []string { return locksmith.Variables(prefix, flag) })
}

// applyVars is applyLocksmithVars with the variable names of each flag
// given by names, in precedence order.
func applyVars(fs *pflag.FlagSet, src varSource, names func(flag string) []string) error {
	var err error
	fs.VisitAll(func(f *pflag.Flag) {
		if err != nil || f.Changed || f.Name == "help" {
			return
		}
		name, val, ok := src.lookup(names(f.Name))
		if !ok {
			return
		}
		if serr := fs.Set(f.Name, val); serr != nil {
			err = fmt.Errorf("%s: %w", name, serr)
		}
	})
	if err != nil {
		return err
	}
	return applyCtlEnv(fs, src.getenv)
}

// storeClient dials the store the connection flags name.
func storeClient(cmd *cobra.Command, s streams, g *ctlFlags) (*clientv3.Client, error) {
	sess := &ctlSession{s: s, g: g, logger: zap.NewNop()}
	spec, err := sess.configSpec(cmd.Flags())
	if err != nil {
		return nil, err
	}
	sess.spec = spec
	return sess.client()
}

// readMachineID reads the machine ID file (/etc/machine-id).
func readMachineID(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("cannot read the machine id: %w", err)
	}
	id := strings.TrimSpace(string(b))
	if id == "" {
		return "", fmt.Errorf("cannot read the machine id: %s is empty", path)
	}
	return id, nil
}

// serviceLogger is the log of a long-running service command, on stderr.
func serviceLogger(s streams, level, format string) (*slog.Logger, error) {
	lvl, err := parseLogLevel(level)
	if err != nil {
		return nil, err
	}
	opts := &slog.HandlerOptions{Level: lvl}
	switch format {
	case "json":
		return slog.New(slog.NewJSONHandler(s.err, opts)), nil
	case "text", "console":
		return slog.New(slog.NewTextHandler(s.err, opts)), nil
	}
	return nil, fmt.Errorf("invalid value %q for flag --log-format: must be json or text", format)
}

// addLocksmithCommands registers the reboot-coordination commands.
func addLocksmithCommands(root *cobra.Command, s streams) {
	root.AddCommand(newLocksmithCommand(s), newLocksmithdCommand(s), newFleetlockCommand(s))
}

// readConfigFiles reads the update.conf-style files of the --config flag
// in fs, which LOCKSMITHD_CONFIG sets when the command line does not.
func readConfigFiles(fs *pflag.FlagSet) (map[string]string, error) {
	if !fs.Changed("config") {
		if v := os.Getenv("LOCKSMITHD_CONFIG"); v != "" {
			if err := fs.Set("config", v); err != nil {
				return nil, fmt.Errorf("LOCKSMITHD_CONFIG: %w", err)
			}
		}
	}
	files, err := fs.GetStringSlice("config")
	if err != nil {
		return nil, err
	}
	return locksmith.ReadEnvFiles(files...)
}
