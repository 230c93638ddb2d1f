package cli_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/cli"
	"github.com/cairn-io/cairn/internal/locksmith"
)

// locksmithEnv clears the variables the locksmith commands read, so the
// test's own environment cannot leak in.
func locksmithEnv(t *testing.T) {
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		for _, p := range []string{"LOCKSMITHCTL_", "LOCKSMITHD_", "REBOOT_", "CAIRN_", "ETCDCTL_"} {
			if strings.HasPrefix(name, p) {
				t.Setenv(name, "")
			}
		}
	}
}

func TestLocksmithCtl(t *testing.T) {
	locksmithEnv(t)
	m := testServer(t)
	ep := "--endpoints=" + m.Endpoint()
	run := func(args ...string) result {
		t.Helper()
		return runCairn(t, "", append([]string{"locksmith", ep}, args...)...)
	}
	expect := func(r result, code int, stdout, stderr string) {
		t.Helper()
		if r.code != code || r.stdout != stdout || r.stderr != stderr {
			t.Fatalf("got %v\nwant exit %d\n--- stdout:\n%s--- stderr:\n%s", r, code, stdout, stderr)
		}
	}

	expect(run("status"), 0, "Available: 1\nMax: 1\n", "")
	expect(run("lock", "node-a"), 0, "", "")
	expect(run("status"), 0, "Available: 0\nMax: 1\n\nMACHINE ID\nnode-a\n", "")
	expect(run("lock", "node-a"), 1, "", "Error locking: holder exists\n")
	expect(run("lock", "node-b"), 1, "", "Error locking: semaphore is at 0: group \"default\" has 1 of 1 slots held\n")
	expect(run("set-max", "2"), 0, "Old-Max: 1\nMax: 2\n", "")
	expect(run("--group", "default", "lock", "node-b"), 0, "", "")
	expect(run("status"), 0, "Available: 0\nMax: 2\n\nMACHINE ID\nnode-a\nnode-b\n", "")
	expect(run("unlock", "node-x"), 1, "", "Error unlocking: holder does not exist\n")
	expect(run("unlock", "node-a"), 0, "", "")
	expect(run("set-max"), 2, "", "Error: set-max needs the new maximum\n")
	expect(run("set-max", "--", "-1"), 2, "", "Error: invalid maximum \"-1\": want a number of slots, 0 or more\n")
	expect(run("set-max", "two"), 2, "", "Error: invalid maximum \"two\": want a number of slots, 0 or more\n")

	// Another group, a holder bound to a lease, this machine's id.
	idFile := filepath.Join(t.TempDir(), "machine-id")
	if err := os.WriteFile(idFile, []byte("4a1b2c3d\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	expect(run("--group", "workers", "set-max", "3"), 0, "Old-Max: 1\nMax: 3\n", "")
	expect(run("--group", "workers", "--machine-id-file", idFile, "lock"), 0, "", "")
	expect(run("--group", "workers", "lock", "--ttl", "1m", "node-c"), 0, "", "")
	r := run("--group", "workers", "status")
	if !regexp.MustCompile(`^Available: 1\nMax: 3\n\nMACHINE ID\n4a1b2c3d\nnode-c\tlease=[0-9a-f]{16}\n$`).MatchString(r.stdout) || r.code != 0 {
		t.Fatalf("status of workers: %v", r)
	}
	// The group and the endpoint from locksmithctl's variables.
	t.Setenv("LOCKSMITHCTL_GROUP", "workers")
	t.Setenv("LOCKSMITHCTL_ENDPOINT", m.ClientURL())
	r = runCairn(t, "", "locksmith", "--machine-id-file", idFile, "unlock")
	expect(r, 0, "", "")
	r = runCairn(t, "", "locksmith", "status", "-w", "json")
	var st struct {
		Group     string
		Max       int
		Available int
		Holders   []struct{ ID, Lease string }
	}
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil || r.code != 0 {
		t.Fatalf("status -w json: %v (%v)", r, err)
	}
	if st.Group != "workers" || st.Max != 3 || st.Available != 2 || len(st.Holders) != 1 || st.Holders[0].ID != "node-c" || len(st.Holders[0].Lease) != 16 {
		t.Fatalf("status -w json: %+v", st)
	}
	// A flag beats the variable.
	expect(runCairn(t, "", "locksmith", "--group", "default", "status"), 0, "Available: 1\nMax: 2\n\nMACHINE ID\nnode-b\n", "")
	t.Setenv("LOCKSMITHCTL_GROUP", "")
	t.Setenv("LOCKSMITHCTL_ENDPOINT", "")

	r = run("status", "--all")
	if !regexp.MustCompile(`^Group: default\nAvailable: 1\nMax: 2\n\nMACHINE ID\nnode-b\n\nGroup: workers\nAvailable: 2\nMax: 3\n\nMACHINE ID\nnode-c\tlease=[0-9a-f]{16}\n$`).MatchString(r.stdout) {
		t.Fatalf("status --all: %v", r)
	}
	expect(run("status", "-w", "yaml"), 2, "", "Error: invalid --write-out \"yaml\": want simple or json\n")

	// A group whose document is not one: the listing says why, the other
	// groups are still listed, and the command fails.
	badKey := "coreos.com/updateengine/rebootlock/groups/bad/semaphore"
	expect(runCairn(t, "", "put", ep, badKey, "not json"), 0, "OK\n", "")
	badErr := "semaphore " + badKey + " holds no valid document: invalid character 'o' in literal null (expecting 'u')"
	r = run("status", "--all")
	if !regexp.MustCompile(`^Group: default\nAvailable: 1\nMax: 2\n\nMACHINE ID\nnode-b\n\nGroup: bad\nError: `+regexp.QuoteMeta(badErr)+`\n\nGroup: workers\nAvailable: 2\n`).MatchString(r.stdout) ||
		r.code != 1 || r.stderr != "Error: cannot read the semaphore of group \"bad\"\n" {
		t.Fatalf("status --all with a corrupt group: %v", r)
	}
	r = run("status", "--all", "-w", "json")
	var all []struct {
		Group string
		Max   int
		Error string
	}
	if err := json.Unmarshal([]byte(r.stdout), &all); err != nil || r.code != 1 || r.stderr != "Error: cannot read the semaphore of group \"bad\"\n" {
		t.Fatalf("status --all -w json with a corrupt group: %v (%v)", r, err)
	}
	if len(all) != 3 || all[0].Group != "default" || all[0].Error != "" || all[1].Group != "bad" || all[1].Error != badErr || all[2].Group != "workers" || all[2].Max != 3 {
		t.Fatalf("status --all -w json with a corrupt group: %+v", all)
	}
	expect(run("--group", "bad", "status"), 1, "", "Error: "+badErr+"\n")
}

func TestLocksmithSendNeedReboot(t *testing.T) {
	locksmithEnv(t)
	dir := t.TempDir()
	bootFile := filepath.Join(dir, "boot_id")
	if err := os.WriteFile(bootFile, []byte("b00t\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	r := runCairn(t, "", "locksmith", "send-need-reboot", "--state-dir", state, "--boot-id-file", bootFile)
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatal(r)
	}
	requested := func(dir string) bool {
		t.Helper()
		need, _, err := locksmith.NeedRebootFile(dir, locksmith.BootIDFile(bootFile))(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		return need
	}
	if !requested(state) {
		t.Fatal("no request after send-need-reboot")
	}

	// Without the flags, the daemon's own settings say where its state
	// is: the environment, then its update.conf.
	fromFile, fromEnv, fromCtl := filepath.Join(dir, "file"), filepath.Join(dir, "env"), filepath.Join(dir, "ctl")
	conf := filepath.Join(dir, "update.conf")
	if err := os.WriteFile(conf, []byte("REBOOT_STRATEGY=etcd-lock\nLOCKSMITHD_STATE_DIR="+fromFile+"\nLOCKSMITHD_BOOT_ID_FILE="+bootFile+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  map[string]string
		args []string
		want string
	}{
		{"update.conf", nil, []string{"--config", conf}, fromFile},
		{"LOCKSMITHD_CONFIG", map[string]string{"LOCKSMITHD_CONFIG": conf}, nil, fromFile},
		{"the daemon's environment beats its update.conf", map[string]string{"LOCKSMITHD_STATE_DIR": fromEnv}, []string{"--config", conf}, fromEnv},
		{"the command's own variable beats the daemon's", map[string]string{"LOCKSMITHD_STATE_DIR": fromEnv, "LOCKSMITHCTL_STATE_DIR": fromCtl}, []string{"--config", conf}, fromCtl},
	} {
		for _, d := range []string{fromFile, fromEnv, fromCtl} {
			os.RemoveAll(d)
		}
		for k, v := range tc.env {
			t.Setenv(k, v)
		}
		r := runCairn(t, "", append([]string{"locksmith", "send-need-reboot"}, tc.args...)...)
		for k := range tc.env {
			t.Setenv(k, "")
		}
		if r.code != 0 || r.stdout != "" || r.stderr != "" {
			t.Fatalf("%s: %v", tc.name, r)
		}
		for _, d := range []string{fromFile, fromEnv, fromCtl} {
			if got := requested(d); got != (d == tc.want) {
				t.Fatalf("%s: request in %s: %v, want it in %s only", tc.name, d, got, tc.want)
			}
		}
	}
}

// daemonLog is a bytes.Buffer safe for a daemon writing while the test
// reads.
type daemonLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *daemonLog) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *daemonLog) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// startDaemon runs "cairn locksmithd args..." in process until the test
// ends; its log is returned.
func startDaemon(t *testing.T, args ...string) (*daemonLog, func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var logs daemonLog
	done := make(chan error, 1)
	go func() {
		done <- cli.Run(ctx, append([]string{"locksmithd"}, args...), strings.NewReader(""), &logs, &logs)
	}()
	var once sync.Once
	var err error
	stop := func() error {
		once.Do(func() {
			cancel()
			select {
			case err = <-done:
			case <-time.After(30 * time.Second):
				t.Error("locksmithd did not stop")
			}
		})
		return err
	}
	t.Cleanup(func() { stop() })
	return &logs, stop
}

func waitLog(t *testing.T, logs *daemonLog, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("log never said %q:\n%s", want, logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLocksmithdSettings checks where the daemon's settings come from: the
// command line, then the environment, then the update.conf files, later
// files overriding earlier ones.
func TestLocksmithdSettings(t *testing.T) {
	locksmithEnv(t)
	m := testServer(t)
	dir := t.TempDir()
	usr := filepath.Join(dir, "usr-update.conf")
	etc := filepath.Join(dir, "etc-update.conf")
	if err := os.WriteFile(usr, []byte("GROUP=stable\nREBOOT_STRATEGY=reboot\nSERVER=https://public.update.core-os.net/v1/update/\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	conf := "# written by hand\nREBOOT_STRATEGY=\"etcd-lock\"\nLOCKSMITHD_REBOOT_WINDOW_START='Thu 23:00'\nLOCKSMITHD_REBOOT_WINDOW_LENGTH=1h\nLOCKSMITHD_GROUP=from-file\nLOCKSMITHD_ENDPOINT=http://127.0.0.1:1\nLOCKSMITHD_REBOOT_TIMEOUT=20m\n"
	if err := os.WriteFile(etc, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"--config", usr + "," + etc, "--id", "n1", "--state-dir", filepath.Join(dir, "state"), "--sentinel", "", "--boot-id-file", filepath.Join(dir, "none"), "--check-interval", "50ms"}

	// From the files alone (the endpoint there is wrong on purpose: the
	// environment fixes it below).
	t.Setenv("LOCKSMITHD_ENDPOINT", m.ClientURL())
	if r := runCairn(t, "", "locksmith", "--endpoints", m.ClientURL(), "--group", "from-file", "set-max", "3"); r.code != 0 {
		t.Fatal(r)
	}
	logs, stop := startDaemon(t, append(base, "--metrics-addr", "127.0.0.1:0")...)
	waitLog(t, logs, "msg=starting")
	waitLog(t, logs, "msg=\"no reboot needed\"")
	// --metrics-addr serves the semaphores' metrics, read from the store.
	addr := regexp.MustCompile(`msg="serving metrics" addr=(\S+)`).FindStringSubmatch(logs.String())
	if addr == nil {
		t.Fatalf("no metrics address in the log:\n%s", logs)
	}
	resp, err := http.Get("http://" + addr[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d %v", resp.StatusCode, err)
	}
	for _, line := range []string{`cairn_locksmith_store_up 1`, `cairn_locksmith_slots{group="from-file"} 3`, `cairn_locksmith_holders{group="from-file"} 0`} {
		if !strings.Contains(string(body), "\n"+line+"\n") {
			t.Errorf("metrics lack %q:\n%s", line, body)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"strategy=etcd-lock", "id=n1", "group=from-file", `window="Thu 23:00 for 1h"`, "lock_ttl=30m0s", "reboot_timeout=20m0s"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("files: log lacks %q:\n%s", want, logs)
		}
	}

	// The environment beats the files, the command line the environment.
	t.Setenv("LOCKSMITHD_GROUP", "from-env")
	t.Setenv("REBOOT_STRATEGY", "reboot")
	t.Setenv("LOCKSMITHD_REBOOT_TIMEOUT", "0")
	logs, stop = startDaemon(t, append(base, "--strategy", "etcd-lock", "--lock-ttl", "0")...)
	waitLog(t, logs, "msg=\"no reboot needed\"")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"strategy=etcd-lock", "group=from-env", "reboot_timeout=none"} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("env: log lacks %q:\n%s", want, logs)
		}
	}
	if strings.Contains(logs.String(), "lock_ttl") {
		t.Errorf("--lock-ttl 0 still binds to a lease:\n%s", logs)
	}

	// A window locksmith accepted, however odd, is accepted, with
	// warnings.
	odd := filepath.Join(dir, "odd-update.conf")
	if err := os.WriteFile(odd, []byte("REBOOT_STRATEGY=reboot\nREBOOT_WINDOW_START=4:5\nREBOOT_WINDOW_LENGTH=0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("LOCKSMITHD_GROUP", "")
	t.Setenv("REBOOT_STRATEGY", "")
	logs, stop = startDaemon(t, append([]string{"--config", odd}, base[2:]...)...)
	waitLog(t, logs, "msg=\"no reboot needed\"")
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`window="4:5 for 0"`, `level=WARN msg="reboot window start \"4:5\": time of day \"4:5\" read as 04:05"`, `level=WARN msg="reboot window length \"0\": a window of length 0`} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("odd window: log lacks %q:\n%s", want, logs)
		}
	}

	// Strategy off exits at once, whatever else is set.
	r := runCairn(t, "", append([]string{"locksmithd"}, append(base, "--strategy", "off")...)...)
	if r.code != 0 || !strings.Contains(r.stderr, "reboot strategy is off") {
		t.Fatal(r)
	}
	// Bad settings are usage errors.
	for _, tc := range []struct {
		args []string
		msg  string
	}{
		{[]string{"--strategy", "best-effort"}, `unknown reboot strategy "best-effort"`},
		{[]string{"--reboot-window-start", "Thu 25:00", "--reboot-window-length", "1h"}, `invalid time of day "25:00"`},
		{[]string{"--reboot-window-start", "Thu 23:00", "--reboot-window-length", ""}, "needs both a start and a length"},
		{[]string{"--reboot-window-start", "23:00", "--reboot-window-length", "-1h"}, "must not be negative"},
		{[]string{"--reboot-timeout", "-1s"}, "--reboot-timeout must not be negative"},
	} {
		t.Setenv("LOCKSMITHD_REBOOT_WINDOW_START", "")
		r := runCairn(t, "", append([]string{"locksmithd", "--config", ""}, append(tc.args, "--id", "n1")...)...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.msg) {
			t.Errorf("%v: %v, want exit 2 with %q", tc.args, r, tc.msg)
		}
	}
}

// TestLocksmithdStrategyChange: a node rebooted under etcd-lock whose
// daemon comes back with strategy off or reboot still gives its slot back,
// lease and all, and clears its record; off then exits.
func TestLocksmithdStrategyChange(t *testing.T) {
	locksmithEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	ctx := context.Background()
	sem := locksmith.NewSemaphore(cli, "changed")
	for _, strategy := range []string{"off", "reboot"} {
		dir := t.TempDir()
		lease, err := cli.Grant(ctx, 60)
		if err != nil {
			t.Fatal(err)
		}
		if err := sem.Lock(ctx, "n1", lease.ID); err != nil {
			t.Fatal(err)
		}
		// What the daemon of the boot before recorded as it rebooted.
		st := &locksmith.State{Phase: locksmith.PhaseRebooting, ID: "n1", Group: "changed", Locked: true, Lease: fmt.Sprintf("%016x", lease.ID), BootID: "boot-0"}
		if err := locksmith.SaveState(filepath.Join(dir, "state"), st); err != nil {
			t.Fatal(err)
		}
		args := []string{"--config=", "--strategy", strategy, "--endpoints", m.ClientURL(), "--state-dir", filepath.Join(dir, "state"),
			"--sentinel", "", "--boot-id-file", filepath.Join(dir, "none"), "--machine-id-file", filepath.Join(dir, "none"), "--check-interval", "50ms"}
		if strategy == "off" {
			r := runCairn(t, "", append([]string{"locksmithd"}, args...)...)
			if r.code != 0 || !strings.Contains(r.stderr, "giving its lock back") || !strings.Contains(r.stderr, "released the reboot lock") || !strings.Contains(r.stderr, "reboot strategy is off") {
				t.Fatalf("strategy off with a slot held: %v", r)
			}
		} else {
			logs, stop := startDaemon(t, append(args, "--id", "n1")...)
			waitLog(t, logs, "msg=\"no reboot needed\"")
			if err := stop(); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(logs.String(), "released the reboot lock") {
				t.Fatalf("strategy reboot with a slot held:\n%s", logs)
			}
		}
		if got, err := sem.Status(ctx); err != nil || len(got.Holders) != 0 {
			t.Fatalf("%s: status after the daemon: %+v, %v", strategy, got, err)
		}
		if ttl, err := cli.TimeToLive(ctx, lease.ID); err != nil || ttl.TTL != -1 {
			t.Fatalf("%s: the slot's lease was not revoked: %+v, %v", strategy, ttl, err)
		}
		if got, err := locksmith.LoadState(filepath.Join(dir, "state")); err != nil || got != nil {
			t.Fatalf("%s: state after the daemon: %+v, %v", strategy, got, err)
		}
	}
	// Without a record strategy off needs nothing, not even a store.
	r := runCairn(t, "", "locksmithd", "--config=", "--strategy", "off", "--endpoints", "http://127.0.0.1:1", "--state-dir", t.TempDir())
	if r.code != 0 || !strings.Contains(r.stderr, "reboot strategy is off") {
		t.Fatal(r)
	}
}
