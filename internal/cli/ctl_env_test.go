package cli_test

import (
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestCtlEnvironment checks the CAIRN_<FLAG> variables, the ETCDCTL_<FLAG>
// fallback and their precedence, against what etcdctl prints for the same
// settings given as flags.
func TestCtlEnvironment(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	mustPut(t, cli, "k", "v")
	ep := "--endpoints=" + m.Endpoint()

	same := func(t *testing.T, got, want result) {
		t.Helper()
		if got.code != want.code || normalize(got.stdout, 0) != normalize(want.stdout, 0) {
			t.Errorf("got %v\nwant %v", got, want)
		}
	}

	t.Run("CAIRN_WRITE_OUT", func(t *testing.T) {
		t.Setenv("CAIRN_WRITE_OUT", "fields")
		same(t, runCairn(t, "", "get", "k", ep), runEtcdctl(t, nil, "", "get", "k", ep, "-w", "fields"))
	})
	t.Run("CAIRN_ wins over ETCDCTL_", func(t *testing.T) {
		t.Setenv("CAIRN_ENDPOINTS", m.Endpoint())
		t.Setenv("ETCDCTL_ENDPOINTS", closedEndpoint(t))
		t.Setenv("ETCDCTL_WRITE_OUT", "json")
		t.Setenv("CAIRN_COMMAND_TIMEOUT", "2s")
		same(t, runCairn(t, "", "get", "k"), runEtcdctl(t, nil, "", "get", "k", ep, "-w", "json"))
	})
	t.Run("ETCDCTL_ fallback", func(t *testing.T) {
		t.Setenv("ETCDCTL_ENDPOINTS", m.Endpoint())
		t.Setenv("ETCDCTL_HEX", "true")
		same(t, runCairn(t, "", "get", "k"), runEtcdctl(t, nil, "", "get", "k", ep, "--hex"))
	})
	t.Run("flag wins over environment", func(t *testing.T) {
		t.Setenv("CAIRN_WRITE_OUT", "json")
		t.Setenv("CAIRN_ENDPOINTS", closedEndpoint(t))
		same(t, runCairn(t, "", "get", "k", ep, "-w", "simple"), runEtcdctl(t, nil, "", "get", "k", ep))
	})
	t.Run("empty variable is unset", func(t *testing.T) {
		t.Setenv("CAIRN_WRITE_OUT", "")
		t.Setenv("ETCDCTL_WRITE_OUT", "fields")
		same(t, runCairn(t, "", "get", "k", ep), runEtcdctl(t, nil, "", "get", "k", ep, "-w", "fields"))
	})
	t.Run("endpoint commands", func(t *testing.T) {
		t.Setenv("CAIRN_ENDPOINTS", m.Endpoint())
		t.Setenv("CAIRN_WRITE_OUT", "table")
		// The database grows between the two calls (the member writes in
		// the background), so sizes and the column widths they set are
		// left out of the comparison.
		sizes := regexp.MustCompile(`[0-9.]+ [kMG]?B`)
		pad := regexp.MustCompile(`[ -]+`)
		got := runCairn(t, "", "endpoint", "status")
		want := runEtcdctl(t, nil, "", "endpoint", "status", ep, "-w", "table")
		got.stdout = pad.ReplaceAllString(sizes.ReplaceAllString(got.stdout, "SIZE"), " ")
		want.stdout = pad.ReplaceAllString(sizes.ReplaceAllString(want.stdout, "SIZE"), " ")
		same(t, got, want)
	})
	t.Run("command timeout", func(t *testing.T) {
		t.Setenv("CAIRN_ENDPOINTS", closedEndpoint(t))
		t.Setenv("CAIRN_COMMAND_TIMEOUT", "300ms")
		start := time.Now()
		got := runCairn(t, "", "get", "k")
		if got.code != 1 || got.stderr != "Error: context deadline exceeded\n" {
			t.Errorf("got %v, want exit 1 with a deadline error", got)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v with a 300ms command timeout", d)
		}
	})

	for _, tt := range []struct{ name, val, flag string }{
		{"CAIRN_DIAL_TIMEOUT", "soon", "--dial-timeout"},
		{"CAIRN_COMMAND_TIMEOUT", "5", "--command-timeout"},
		{"ETCDCTL_HEX", "maybe", "--hex"},
		{"ETCDCTL_MAX_REQUEST_BYTES", "lots", "--max-request-bytes"},
		{"CAIRN_INSECURE_TRANSPORT", "nope", "--insecure-transport"},
	} {
		t.Run("bad "+tt.name, func(t *testing.T) {
			t.Setenv(tt.name, tt.val)
			got := runCairn(t, "", "get", "k", ep)
			if got.code != 1 || got.stdout != "" || !strings.Contains(got.stderr, tt.name) || !strings.Contains(got.stderr, tt.flag) || !strings.Contains(got.stderr, tt.val) {
				t.Errorf("got %v, want exit 1 with an error naming %s, %s and %q", got, tt.name, tt.flag, tt.val)
			}
		})
	}
	t.Run("bad flag value", func(t *testing.T) {
		got := runCairn(t, "", "get", "k", ep, "--command-timeout=5")
		if got.code != 1 || !strings.Contains(got.stderr, "--command-timeout") {
			t.Errorf("got %v, want exit 1 naming --command-timeout", got)
		}
	})
}

// TestCtlDebug checks that --debug lists the effective client flags on
// stderr, hides the password, and leaves stdout as it is. It runs the cairn
// binary: --debug installs a process-wide gRPC logger.
func TestCtlDebug(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	mustPut(t, m.Client(t), "k", "v")
	stdout, stderr, err := framework.Cairn(t, "get", "k", "--endpoints="+m.Endpoint(), "--debug", "--password=secret")
	// Without --user the password is not used.
	if stdout != "k\nv\n" || err != nil {
		t.Fatalf("got %v, stdout %q, stderr:\n%s", err, stdout, stderr)
	}
	for _, want := range []string{"CAIRN_ENDPOINTS=[" + m.Endpoint() + "]", "CAIRN_DEBUG=true", "CAIRN_PASSWORD=<hidden>", "CAIRN_USER="} {
		if !strings.Contains(stderr, want+"\n") {
			t.Errorf("stderr lacks %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "secret") {
		t.Errorf("stderr shows the password:\n%s", stderr)
	}
}
