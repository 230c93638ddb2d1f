package cli

import (
	"bytes"
	"io"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestApplyCtlEnv(t *testing.T) {
	env := map[string]string{
		"CAIRN_WRITE_OUT":       "json",
		"ETCDCTL_WRITE_OUT":     "fields",
		"ETCDCTL_ENDPOINTS":     "a:1, b:2",
		"CAIRN_HEX":             "",
		"ETCDCTL_HEX":           "true",
		"CAIRN_DIAL_TIMEOUT":    "3s",
		"ETCDCTL_PREFIX":        "true", // not a client flag: ignored
		"CAIRN_COMMAND_TIMEOUT": "7s",
	}
	fs := pflag.NewFlagSet("get", pflag.ContinueOnError)
	prefix := fs.Bool("prefix", false, "")
	g := newCtlFlags(fs)
	if err := fs.Parse([]string{"--command-timeout=1s"}); err != nil {
		t.Fatal(err)
	}
	if err := applyCtlEnv(fs, func(k string) string { return env[k] }); err != nil {
		t.Fatal(err)
	}
	if g.writeOut != "json" {
		t.Errorf("write-out = %q, want CAIRN_'s json over ETCDCTL_'s fields", g.writeOut)
	}
	if strings.Join(g.endpoints, "|") != "a:1| b:2" {
		t.Errorf("endpoints = %q, want ETCDCTL_ENDPOINTS split at commas", g.endpoints)
	}
	if !g.hex {
		t.Error("hex not set: an empty CAIRN_HEX must fall back to ETCDCTL_HEX")
	}
	if g.dialTimeout.String() != "3s" {
		t.Errorf("dial-timeout = %v, want 3s", g.dialTimeout)
	}
	if g.commandTimeout.String() != "1s" {
		t.Errorf("command-timeout = %v, want the flag's 1s over the environment's 7s", g.commandTimeout)
	}
	if *prefix {
		t.Error("ETCDCTL_PREFIX set --prefix; only the client flags come from the environment")
	}

	err := applyCtlEnv(newFlagsFor(t), func(k string) string {
		return map[string]string{"ETCDCTL_KEEPALIVE_TIME": "often"}[k]
	})
	if err == nil || !strings.Contains(err.Error(), "ETCDCTL_KEEPALIVE_TIME") || !strings.Contains(err.Error(), "--keepalive-time") {
		t.Errorf("bad value: %v, want an error naming ETCDCTL_KEEPALIVE_TIME and --keepalive-time", err)
	}
}

func newFlagsFor(t *testing.T) *pflag.FlagSet {
	t.Helper()
	fs := pflag.NewFlagSet("get", pflag.ContinueOnError)
	newCtlFlags(fs)
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	return fs
}

func TestCtlReadPassword(t *testing.T) {
	in := strings.NewReader("s3cret\r\nvalue for put\n")
	var errOut bytes.Buffer
	pass, err := ctlReadPassword(streams{in: in, err: &errOut}, "Password: ")
	if err != nil || pass != "s3cret" {
		t.Fatalf("password = %q, %v; want s3cret", pass, err)
	}
	if errOut.String() != "Password: \n" {
		t.Errorf("prompt = %q, want it on stderr", errOut.String())
	}
	rest, _ := io.ReadAll(in)
	if string(rest) != "value for put\n" {
		t.Errorf("stdin after the password = %q; the password must not consume more", rest)
	}

	pass, err = ctlReadPassword(streams{in: strings.NewReader("last"), err: io.Discard}, "")
	if err != nil || pass != "last" {
		t.Errorf("password without newline = %q, %v; want last", pass, err)
	}
	if _, err := ctlReadPassword(streams{in: strings.NewReader(""), err: io.Discard}, ""); err == nil {
		t.Error("empty stdin gave a password, want an error")
	}
}
