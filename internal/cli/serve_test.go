package cli

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/cairn-io/cairn/internal/embed"
)

// parseServe builds the configuration cairn serve would run with, from
// args and the environment, without starting anything.
func parseServe(t *testing.T, args ...string) (embed.Config, error) {
	t.Helper()
	f := &serveFlags{}
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	f.addFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %q: %v", args, err)
	}
	return f.load(fs)
}

// clearServeEnv unsets every CAIRN_* and ETCD_* variable cairn serve reads,
// for the rest of the test, so the developer's shell cannot leak in.
func clearServeEnv(t *testing.T) {
	t.Helper()
	fs := pflag.NewFlagSet("serve", pflag.ContinueOnError)
	(&serveFlags{}).addFlags(fs)
	fs.VisitAll(func(fl *pflag.Flag) {
		suffix := strings.ToUpper(strings.ReplaceAll(fl.Name, "-", "_"))
		for _, p := range []string{"CAIRN_", "ETCD_"} {
			t.Setenv(p+suffix, "") // restored when the test ends
			os.Unsetenv(p + suffix)
		}
	})
}

// TestServeFlagsFromEnvironment sets each of the flags the README lists
// through CAIRN_<FLAG>, one at a time and then all together, and checks the
// configuration cairn serve builds from it.
func TestServeFlagsFromEnvironment(t *testing.T) {
	dataDir := filepath.Join(t.TempDir(), "data") // not created by parsing
	cases := []struct {
		env   string // CAIRN_<env>
		value string
		check func(c embed.Config) any // returns what it saw if wrong, nil if right
	}{
		{"NAME", "envname", func(c embed.Config) any {
			return unless(c.Member.Name == "envname" && c.Member.InitialCluster == "envname=http://127.0.0.1:2380", c.Member.Name+" "+c.Member.InitialCluster)
		}},
		{"DATA_DIR", dataDir, func(c embed.Config) any { return unless(c.Member.DataDir == dataDir, c.Member.DataDir) }},
		{"LISTEN_CLIENT_URLS", "http://127.0.0.1:12379,http://127.0.0.1:12389", func(c embed.Config) any {
			want := []string{"http://127.0.0.1:12379", "http://127.0.0.1:12389"}
			return unless(reflect.DeepEqual(c.ListenClientURLs, want), c.ListenClientURLs)
		}},
		{"ADVERTISE_CLIENT_URLS", "http://10.0.0.1:2379", func(c embed.Config) any {
			return unless(reflect.DeepEqual(c.Member.ClientURLs, []string{"http://10.0.0.1:2379"}), c.Member.ClientURLs)
		}},
		{"LISTEN_PEER_URLS", "http://127.0.0.1:12380", func(c embed.Config) any {
			return unless(reflect.DeepEqual(c.ListenPeerURLs, []string{"http://127.0.0.1:12380"}), c.ListenPeerURLs)
		}},
		{"INITIAL_ADVERTISE_PEER_URLS", "http://127.0.0.1:12380", func(c embed.Config) any {
			return unless(reflect.DeepEqual(c.Member.PeerURLs, []string{"http://127.0.0.1:12380"}), c.Member.PeerURLs)
		}},
		{"INITIAL_CLUSTER", "default=http://127.0.0.1:2380,other=http://127.0.0.1:2381", func(c embed.Config) any {
			return unless(c.Member.InitialCluster == "default=http://127.0.0.1:2380,other=http://127.0.0.1:2381", c.Member.InitialCluster)
		}},
		{"INITIAL_CLUSTER_STATE", "existing", func(c embed.Config) any {
			return unless(c.Member.InitialClusterState == "existing", c.Member.InitialClusterState)
		}},
		{"INITIAL_CLUSTER_TOKEN", "envtoken", func(c embed.Config) any {
			return unless(c.Member.InitialClusterToken == "envtoken", c.Member.InitialClusterToken)
		}},
		{"SNAPSHOT_COUNT", "1234", func(c embed.Config) any { return unless(c.Member.SnapshotCount == 1234, c.Member.SnapshotCount) }},
		{"QUOTA_BACKEND_BYTES", "8589934592", func(c embed.Config) any {
			return unless(c.Member.QuotaBackendBytes == 8<<30, c.Member.QuotaBackendBytes)
		}},
		{"MAX_REQUEST_BYTES", "2097152", func(c embed.Config) any {
			return unless(c.Member.MaxRequestBytes == 2<<20, c.Member.MaxRequestBytes)
		}},
		{"MAX_TXN_OPS", "7", func(c embed.Config) any { return unless(c.MaxTxnOps == 7, c.MaxTxnOps) }},
		{"AUTO_COMPACTION_MODE", "revision", func(c embed.Config) any {
			return unless(c.Member.AutoCompactionMode == "revision", c.Member.AutoCompactionMode)
		}},
		{"AUTO_COMPACTION_RETENTION", "1000", func(c embed.Config) any {
			return unless(c.Member.AutoCompactionRetention == "1000", c.Member.AutoCompactionRetention)
		}},
		{"LOG_LEVEL", "debug", func(c embed.Config) any {
			return unless(c.Logger.Enabled(context.Background(), slog.LevelDebug), "debug logging off")
		}},
	}
	for _, tc := range cases {
		t.Run(tc.env, func(t *testing.T) {
			clearServeEnv(t)
			// Without the variable the check must not pass: the default
			// is not what the variable sets.
			cfg, err := parseServe(t)
			if err != nil {
				t.Fatal(err)
			}
			if tc.check(cfg) == nil {
				t.Fatalf("the default already passes the check of CAIRN_%s", tc.env)
			}
			t.Setenv("CAIRN_"+tc.env, tc.value)
			if cfg, err = parseServe(t); err != nil {
				t.Fatalf("CAIRN_%s=%s: %v", tc.env, tc.value, err)
			}
			if got := tc.check(cfg); got != nil {
				t.Fatalf("CAIRN_%s=%s: got %v", tc.env, tc.value, got)
			}
		})
	}
	t.Run("all at once", func(t *testing.T) {
		clearServeEnv(t)
		for _, tc := range cases {
			t.Setenv("CAIRN_"+tc.env, tc.value)
		}
		// The cluster must name this member with its advertised peer URL.
		t.Setenv("CAIRN_INITIAL_CLUSTER", "envname=http://127.0.0.1:12380,other=http://127.0.0.1:2381")
		cfg, err := parseServe(t)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range cases {
			if tc.env == "NAME" || tc.env == "INITIAL_CLUSTER" {
				continue
			}
			if got := tc.check(cfg); got != nil {
				t.Errorf("CAIRN_%s=%s among all the others: got %v", tc.env, tc.value, got)
			}
		}
		if cfg.Member.Name != "envname" || cfg.Member.InitialCluster != "envname=http://127.0.0.1:12380,other=http://127.0.0.1:2381" {
			t.Errorf("name %q, initial cluster %q", cfg.Member.Name, cfg.Member.InitialCluster)
		}
	})
}

// TestServeEmptyEnvironmentIsUnset: an empty CAIRN_<FLAG> is no value at
// all, as in etcd: the default holds and ETCD_<FLAG> still applies; a flag
// on the command line beats both.
func TestServeEmptyEnvironmentIsUnset(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		want uint64 // snapshot count
	}{
		{"empty keeps the default", nil, map[string]string{"CAIRN_SNAPSHOT_COUNT": ""}, 10000},
		{"empty lets ETCD_ through", nil, map[string]string{"CAIRN_SNAPSHOT_COUNT": "", "ETCD_SNAPSHOT_COUNT": "77"}, 77},
		{"CAIRN_ before ETCD_", nil, map[string]string{"CAIRN_SNAPSHOT_COUNT": "55", "ETCD_SNAPSHOT_COUNT": "77"}, 55},
		{"the flag wins", []string{"--snapshot-count", "33"}, map[string]string{"CAIRN_SNAPSHOT_COUNT": "55", "ETCD_SNAPSHOT_COUNT": "77"}, 33},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clearServeEnv(t)
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			cfg, err := parseServe(t, tc.args...)
			if err != nil {
				t.Fatalf("args %q, environment %v: %v", tc.args, tc.env, err)
			}
			if cfg.Member.SnapshotCount != tc.want {
				t.Fatalf("args %q, environment %v: snapshot count %d, want %d", tc.args, tc.env, cfg.Member.SnapshotCount, tc.want)
			}
		})
	}
	// An empty value still leaves a bad ETCD_ value to be reported.
	clearServeEnv(t)
	t.Setenv("CAIRN_SNAPSHOT_COUNT", "")
	t.Setenv("ETCD_SNAPSHOT_COUNT", "many")
	if _, err := parseServe(t); err == nil || !strings.Contains(err.Error(), "ETCD_SNAPSHOT_COUNT") {
		t.Fatalf("ETCD_SNAPSHOT_COUNT=many behind an empty CAIRN_SNAPSHOT_COUNT: %v", err)
	}
}

// unless returns got if ok is false, nil otherwise.
func unless(ok bool, got any) any {
	if ok {
		return nil
	}
	if got == nil {
		return "nil"
	}
	return got
}

// TestReadmeTwoCommands holds the README's "two commands" to what they do:
// the first, cairn serve without flags, starts a single member with its
// data in ./default.cairn, clients on 127.0.0.1:2379 and peers on
// 127.0.0.1:2380, as the README says; the second is the test command, and
// .ci/run runs exactly it.
func TestReadmeTwoCommands(t *testing.T) {
	root := filepath.Join("..", "..")
	readme, err := os.ReadFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "\n## The two commands\n")
	if !ok {
		t.Fatal(`README.md has no "## The two commands" section`)
	}
	section, _, _ = strings.Cut(section, "\n## ")
	var commands []string
	for _, line := range strings.Split(section, "\n") {
		if cmd, ok := strings.CutPrefix(line, "    "); ok {
			commands = append(commands, strings.TrimSpace(cmd))
		}
	}
	if len(commands) != 2 {
		t.Fatalf("the README's two commands section shows %d commands: %q", len(commands), commands)
	}
	serve, test := commands[0], commands[1]
	args, ok := strings.CutPrefix(serve, "go run ./cmd/cairn serve")
	if !ok || strings.TrimSpace(args) != "" {
		t.Fatalf("the README's first command is %q, want go run ./cmd/cairn serve with no flags", serve)
	}
	for _, claim := range []string{"`./default.cairn`", "`127.0.0.1:2379`", "`127.0.0.1:2380`"} {
		if !strings.Contains(section, claim) {
			t.Errorf("the README no longer says where cairn serve keeps its data and listens (%s)", claim)
		}
	}

	clearServeEnv(t)
	cfg, err := parseServe(t)
	if err != nil {
		t.Fatalf("cairn serve with no flags: %v", err)
	}
	want := map[string][2]any{
		"listen client URLs":    {cfg.ListenClientURLs, []string{"http://127.0.0.1:2379"}},
		"advertise client URLs": {cfg.Member.ClientURLs, []string{"http://127.0.0.1:2379"}},
		"listen peer URLs":      {cfg.ListenPeerURLs, []string{"http://127.0.0.1:2380"}},
		"advertise peer URLs":   {cfg.Member.PeerURLs, []string{"http://127.0.0.1:2380"}},
		"data dir":              {cfg.Member.DataDir, "default.cairn"},
		"initial cluster":       {cfg.Member.InitialCluster, "default=http://127.0.0.1:2380"},
	}
	for what, gw := range want {
		if !reflect.DeepEqual(gw[0], gw[1]) {
			t.Errorf("cairn serve with no flags: %s %v, want %v", what, gw[0], gw[1])
		}
	}

	if test != "go test ./..." {
		t.Errorf("the README's test command is %q, want go test ./...", test)
	}
	ci, err := os.ReadFile(filepath.Join(root, ".ci", "run"))
	if err != nil {
		t.Fatal(err)
	}
	var run []string
	for _, line := range strings.Split(string(ci), "\n") {
		line = strings.TrimSpace(line)
		switch {
		case line == "", strings.HasPrefix(line, "#"), strings.HasPrefix(line, "set "), strings.HasPrefix(line, "cd "):
			continue
		}
		run = append(run, line)
	}
	if len(run) != 1 || strings.TrimPrefix(run[0], "exec ") != test {
		t.Errorf(".ci/run runs %q, want exactly the README's %q", run, test)
	}
}
