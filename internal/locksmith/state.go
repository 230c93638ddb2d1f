package locksmith

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Files of the daemon's state directory. It must survive a reboot (the
// default, /var/lib/cairn/locksmith, does); /run would not.
const (
	// StateFileName records a reboot in progress: written just before the
	// reboot command runs, read by the daemon that starts after the boot,
	// removed once that daemon has released the lock.
	StateFileName = "state.json"
	// NeedRebootFileName is written by "cairn locksmith send-need-reboot":
	// it asks for one reboot of the boot it was written in.
	NeedRebootFileName = "need-reboot"

	// DefaultStateDir is the daemon's default state directory.
	DefaultStateDir = "/var/lib/cairn/locksmith"
	// DefaultSentinel is the default reboot-required sentinel file, the
	// one Debian and Ubuntu packages and kured use.
	DefaultSentinel = "/run/reboot-required"
	// DefaultBootIDFile is where Linux publishes the current boot's ID.
	DefaultBootIDFile = "/proc/sys/kernel/random/boot_id"
)

// PhaseRebooting is the phase of a state file written before the reboot
// command ran.
const PhaseRebooting = "rebooting"

// State is the daemon's record of a reboot in progress.
type State struct {
	Phase string `json:"phase"`
	// ID and Group are the holder and group the lock was taken as.
	ID    string `json:"id"`
	Group string `json:"group,omitempty"`
	// Locked says whether the lock was held (etcd-lock) and Lease, in
	// hex, the lease its holder entry is bound to ("" for none).
	Locked bool   `json:"locked"`
	Lease  string `json:"lease,omitempty"`
	// BootID is the boot the reboot was started from; the daemon that
	// finds another boot ID knows the machine did reboot.
	BootID string    `json:"boot_id,omitempty"`
	Time   time.Time `json:"time"`
}

func (s *State) leaseID() clientv3.LeaseID {
	if s.Lease == "" {
		return 0
	}
	l, err := parseLease(s.Lease)
	if err != nil {
		return 0
	}
	return l
}

// LoadState reads dir's state file; nil and no error when there is none.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, StateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("state file %s: %w", filepath.Join(dir, StateFileName), err)
	}
	return &st, nil
}

// SaveState writes dir's state file atomically and durably: the reboot that
// follows must not find it half written, or not at all.
func SaveState(dir string, st *State) error {
	b, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return err
	}
	return writeFileSync(dir, StateFileName, append(b, '\n'))
}

// ClearState removes dir's state file.
func ClearState(dir string) error {
	err := os.Remove(filepath.Join(dir, StateFileName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// writeFileSync replaces dir/name with data through a synced temporary file
// and a synced directory.
func writeFileSync(dir, name string, data []byte) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), filepath.Join(dir, name)); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// BootIDFile returns a function that reads the boot ID from path, "" when
// it cannot.
func BootIDFile(path string) func() string {
	return func() string {
		b, err := os.ReadFile(path)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
}

// A NeedCheck reports whether the node needs a reboot, and why.
type NeedCheck func(ctx context.Context) (need bool, reason string, err error)

// SentinelFile needs a reboot while path exists. The file is expected to
// live on a file system the reboot clears (/run).
func SentinelFile(path string) NeedCheck {
	return func(context.Context) (bool, string, error) {
		_, err := os.Stat(path)
		switch {
		case err == nil:
			return true, "sentinel file " + path + " exists", nil
		case errors.Is(err, fs.ErrNotExist):
			return false, "", nil
		}
		return false, "", err
	}
}

// RequestReboot records in dir that this boot (bootID) needs a reboot; it
// is what "cairn locksmith send-need-reboot" does.
func RequestReboot(dir, bootID string) error {
	return writeFileSync(dir, NeedRebootFileName, []byte(bootID+"\n"))
}

// NeedRebootFile needs a reboot while dir holds a request made during the
// current boot. A request from an earlier boot has been served by the
// reboot since, and is removed. Without a boot ID (bootID returns "") a
// request stands until the daemon removes it as it runs the reboot command.
func NeedRebootFile(dir string, bootID func() string) NeedCheck {
	path := filepath.Join(dir, NeedRebootFileName)
	return func(context.Context) (bool, string, error) {
		b, err := os.ReadFile(path)
		if errors.Is(err, fs.ErrNotExist) {
			return false, "", nil
		}
		if err != nil {
			return false, "", err
		}
		if asked, now := strings.TrimSpace(string(b)), bootID(); asked != now && now != "" {
			if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return false, "", err
			}
			return false, "", nil
		}
		return true, "reboot requested with send-need-reboot", nil
	}
}
