package locksmith

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
)

// DefaultConfigFiles are the update.conf files locksmithd's unit read, in
// order; a later file overrides an earlier one, and a missing one is
// skipped (systemd's EnvironmentFile=-).
var DefaultConfigFiles = []string{"/usr/share/coreos/update.conf", "/etc/coreos/update.conf"}

// ReadEnvFiles reads update.conf-style files in order into one map, later
// files overriding earlier ones; a missing file is skipped.
func ReadEnvFiles(paths ...string) (map[string]string, error) {
	vars := map[string]string{}
	for _, path := range paths {
		f, err := os.Open(path)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		m, err := ParseEnv(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		for k, v := range m {
			vars[k] = v
		}
	}
	return vars, nil
}

// ParseEnv reads an environment file as systemd's EnvironmentFile= does
// for the files CoreOS shipped: KEY=VALUE lines, blank lines and lines
// starting with # or ; ignored, whitespace around the key and value
// trimmed, and a value wholly in single or double quotes unquoted (double
// quotes also take \" and \\ escapes). A line without '=' is an error.
func ParseEnv(r io.Reader) (map[string]string, error) {
	vars := map[string]string{}
	sc := bufio.NewScanner(r)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		key, val, ok := strings.Cut(line, "=")
		key = strings.TrimSpace(key)
		if !ok || key == "" || strings.ContainsAny(key, " \t") {
			return nil, fmt.Errorf("line %d: want KEY=VALUE, got %q", n, line)
		}
		vars[key] = unquote(strings.TrimSpace(val))
	}
	return vars, sc.Err()
}

func unquote(v string) string {
	if len(v) < 2 {
		return v
	}
	switch q := v[0]; {
	case q == '\'' && v[len(v)-1] == '\'':
		return v[1 : len(v)-1]
	case q == '"' && v[len(v)-1] == '"':
		var sb strings.Builder
		in := v[1 : len(v)-1]
		for i := 0; i < len(in); i++ {
			if in[i] == '\\' && i+1 < len(in) && (in[i+1] == '"' || in[i+1] == '\\') {
				i++
			}
			sb.WriteByte(in[i])
		}
		return sb.String()
	}
	return v
}

// Variables returns the environment (and update.conf) variables that can
// set the flag of the daemon ("LOCKSMITHD") or of the control command
// ("LOCKSMITHCTL"), in precedence order. Every flag can be set as
// <PREFIX>_<FLAG>, upper case with dashes as underscores, as in locksmith;
// some also take locksmith's own names:
//
//	strategy                REBOOT_STRATEGY
//	reboot-window-start     REBOOT_WINDOW_START (locksmith's deprecated name)
//	reboot-window-length    REBOOT_WINDOW_LENGTH (likewise)
//	endpoints               <PREFIX>_ENDPOINT
//	cacert, cert, key       <PREFIX>_ETCD_CAFILE, _ETCD_CERTFILE, _ETCD_KEYFILE
//	user, password          <PREFIX>_ETCD_USERNAME, _ETCD_PASSWORD
func Variables(prefix, flag string) []string {
	names := []string{prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))}
	switch flag {
	case "strategy":
		names = append(names, "REBOOT_STRATEGY")
	case "reboot-window-start":
		names = append(names, "REBOOT_WINDOW_START")
	case "reboot-window-length":
		names = append(names, "REBOOT_WINDOW_LENGTH")
	case "endpoints":
		names = append(names, prefix+"_ENDPOINT")
	case "cacert":
		names = append(names, prefix+"_ETCD_CAFILE")
	case "cert":
		names = append(names, prefix+"_ETCD_CERTFILE")
	case "key":
		names = append(names, prefix+"_ETCD_KEYFILE")
	case "user":
		names = append(names, prefix+"_ETCD_USERNAME")
	case "password":
		names = append(names, prefix+"_ETCD_PASSWORD")
	}
	return names
}

// WindowFromSettings builds the reboot window from its two settings; both
// empty is no window, one alone is an error.
func WindowFromSettings(start, length string) (*Window, error) {
	if start == "" && length == "" {
		return nil, nil
	}
	if start == "" || length == "" {
		return nil, errNoWindowPair
	}
	return ParseWindow(start, length)
}
