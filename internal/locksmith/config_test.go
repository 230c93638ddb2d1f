package locksmith_test

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/internal/locksmith"
)

func TestParseEnv(t *testing.T) {
	in := `# /etc/coreos/update.conf
GROUP=stable
; a comment too
  REBOOT_STRATEGY = etcd-lock  

LOCKSMITHD_REBOOT_WINDOW_START="Thu 23:00"
LOCKSMITHD_REBOOT_WINDOW_LENGTH='1h30m'
QUOTED="say \"hi\" \\ there"
EMPTY=
EQUALS=a=b
`
	got, err := locksmith.ParseEnv(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"GROUP":                           "stable",
		"REBOOT_STRATEGY":                 "etcd-lock",
		"LOCKSMITHD_REBOOT_WINDOW_START":  "Thu 23:00",
		"LOCKSMITHD_REBOOT_WINDOW_LENGTH": "1h30m",
		"QUOTED":                          `say "hi" \ there`,
		"EMPTY":                           "",
		"EQUALS":                          "a=b",
	}
	if !maps.Equal(got, want) {
		t.Fatalf("got %q\nwant %q", got, want)
	}
	for _, bad := range []string{"no equals sign", "=value", "TWO WORDS=x"} {
		if _, err := locksmith.ParseEnv(strings.NewReader(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestReadEnvFiles(t *testing.T) {
	dir := t.TempDir()
	usr, etc := filepath.Join(dir, "usr"), filepath.Join(dir, "etc")
	os.WriteFile(usr, []byte("A=usr\nB=usr\n"), 0o644)
	os.WriteFile(etc, []byte("B=etc\n"), 0o644)
	got, err := locksmith.ReadEnvFiles(usr, filepath.Join(dir, "missing"), etc)
	if err != nil {
		t.Fatal(err)
	}
	if want := map[string]string{"A": "usr", "B": "etc"}; !maps.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestVariables(t *testing.T) {
	for _, tc := range []struct {
		prefix, flag string
		want         []string
	}{
		{"LOCKSMITHD", "strategy", []string{"LOCKSMITHD_STRATEGY", "REBOOT_STRATEGY"}},
		{"LOCKSMITHD", "reboot-window-start", []string{"LOCKSMITHD_REBOOT_WINDOW_START", "REBOOT_WINDOW_START"}},
		{"LOCKSMITHD", "endpoints", []string{"LOCKSMITHD_ENDPOINTS", "LOCKSMITHD_ENDPOINT"}},
		{"LOCKSMITHCTL", "group", []string{"LOCKSMITHCTL_GROUP"}},
		{"LOCKSMITHCTL", "cacert", []string{"LOCKSMITHCTL_CACERT", "LOCKSMITHCTL_ETCD_CAFILE"}},
		{"LOCKSMITHD", "lock-ttl", []string{"LOCKSMITHD_LOCK_TTL"}},
	} {
		if got := locksmith.Variables(tc.prefix, tc.flag); !slices.Equal(got, tc.want) {
			t.Errorf("Variables(%s, %s) = %v, want %v", tc.prefix, tc.flag, got, tc.want)
		}
	}
}

func TestStateFile(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if st, err := locksmith.LoadState(dir); st != nil || err != nil {
		t.Fatalf("no state: %v, %v", st, err)
	}
	want := &locksmith.State{Phase: locksmith.PhaseRebooting, ID: "n", Group: "g", Locked: true, Lease: "00000000000000ff", BootID: "b"}
	if err := locksmith.SaveState(dir, want); err != nil {
		t.Fatal(err)
	}
	got, err := locksmith.LoadState(dir)
	if err != nil || *got != *want {
		t.Fatalf("got %+v, %v", got, err)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("temporary files left: %v", entries)
	}
	if err := locksmith.ClearState(dir); err != nil {
		t.Fatal(err)
	}
	if err := locksmith.ClearState(dir); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(dir, locksmith.StateFileName), []byte("{"), 0o644)
	if _, err := locksmith.LoadState(dir); err == nil {
		t.Fatal("a torn state file was read")
	}
}
