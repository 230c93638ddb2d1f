package framework

import (
	"bytes"
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// toolTimeout bounds one run of etcdctl or cairn as a client tool.
const toolTimeout = 60 * time.Second

// Both tools run in the test's environment minus the ETCD_*, ETCDCTL_* and
// CAIRN_* variables (see Config.Env), so only their arguments configure them.
// To test environment handling, run CairnBinary(t) with os/exec.

// Etcdctl runs the official etcdctl with --endpoints set to endpoints
// (comma-joined) followed by args, and returns its output. err is non-nil
// when etcdctl exits non-zero (an *exec.ExitError) or cannot run.
func Etcdctl(t testing.TB, endpoints []string, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	full := append([]string{"--endpoints=" + strings.Join(endpoints, ",")}, args...)
	return run(EtcdctlBinary(t), full)
}

// Cairn runs the cairn binary with args and returns its output. err is
// non-nil when it exits non-zero (an *exec.ExitError) or cannot run.
func Cairn(t testing.TB, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	return run(CairnBinary(t), args)
}

func run(bin string, args []string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), toolTimeout)
	defer cancel()
	var out, errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = cleanEnv()
	cmd.Stdout = &out
	cmd.Stderr = &errOut
	err := cmd.Run()
	return out.String(), errOut.String(), err
}
