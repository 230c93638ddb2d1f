package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// binaries are the three programs a run needs.
type binaries struct {
	cairn     string
	etcd      string
	benchmark string
	goVersion string // of the toolchain that built them
}

// Each binary is built from its own module, so the main module never
// requires etcd's server and this module never requires cairn.
var builds = []struct {
	name   string
	subdir string // module directory, relative to the repository root
	pkg    string
}{
	{"cairn", ".", "./cmd/cairn"},
	{"etcd", "tests/tools/etcd", "."},
	{"benchmark", "bench/tools/benchmark", "."},
}

// findRepo returns dir, or the nearest directory above the working directory
// whose go.mod declares the cairn module.
func findRepo(dir string) (string, error) {
	if dir != "" {
		dir, err := filepath.Abs(dir)
		if err != nil {
			return "", err
		}
		if !isCairnModule(dir) {
			return "", fmt.Errorf("-repo %s: no go.mod declaring github.com/cairn-io/cairn", dir)
		}
		return dir, nil
	}
	wd, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for d := wd; ; d = filepath.Dir(d) {
		if isCairnModule(d) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no cairn checkout above %s; run from inside the repository or pass -repo", wd)
		}
	}
}

func isCairnModule(dir string) bool {
	data, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.TrimSpace(line) == "module github.com/cairn-io/cairn" {
			return true
		}
	}
	return false
}

// buildAll builds the binaries the flags do not supply, one after another
// (the machine may have few cores, and the go build cache makes a rebuild
// with no change little more than a link).
func buildAll(ctx context.Context, o *options, repo string, logf func(string, ...any)) (*binaries, error) {
	dir := o.binDir
	if dir == "" {
		dir = filepath.Join(repo, "bench", "bin")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	given := map[string]string{"cairn": o.cairnBin, "etcd": o.etcdBin, "benchmark": o.benchBin}
	paths := map[string]string{}
	for _, b := range builds {
		if p := given[b.name]; p != "" {
			p, err := filepath.Abs(p)
			if err != nil {
				return nil, err
			}
			if _, err := os.Stat(p); err != nil {
				return nil, fmt.Errorf("-%s: %w", b.name, err)
			}
			paths[b.name] = p
			continue
		}
		out := filepath.Join(dir, b.name)
		start := time.Now()
		src := repo
		if b.name == "cairn" && o.cairnRev != "" {
			var err error
			if src, err = exportRevision(ctx, repo, o.cairnRev, dir); err != nil {
				return nil, err
			}
		}
		// Build under a private name and rename it into place: another
		// run may be executing the previous binary.
		tmp := fmt.Sprintf("%s.%d.tmp", out, os.Getpid())
		cmd := exec.CommandContext(ctx, "go", "build", "-buildvcs=false", "-o", tmp, b.pkg)
		cmd.Dir = filepath.Join(src, b.subdir)
		// The nested modules build with their own go.mod even when a
		// go.work exists further up.
		cmd.Env = append(os.Environ(), "GOWORK=off")
		if msg, err := cmd.CombinedOutput(); err != nil {
			os.Remove(tmp)
			return nil, fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, cmd.Dir, err, msg)
		}
		if err := os.Rename(tmp, out); err != nil {
			return nil, err
		}
		logf("built %s in %v", b.name, time.Since(start).Round(time.Millisecond))
		paths[b.name] = out
	}
	bins := &binaries{cairn: paths["cairn"], etcd: paths["etcd"], benchmark: paths["benchmark"]}
	if v, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		bins.goVersion = strings.TrimSpace(string(v))
	}
	return bins, nil
}

// exportRevision writes the tree of a committed revision into a directory
// under binDir (once per commit) and returns it, so cairn can be built as
// committed while the working tree is being edited.
func exportRevision(ctx context.Context, repo, rev, binDir string) (string, error) {
	out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--verify", rev+"^{commit}").Output()
	if err != nil {
		return "", fmt.Errorf("-cairn-rev %s: not a commit in %s", rev, repo)
	}
	commit := strings.TrimSpace(string(out))
	dir := filepath.Join(binDir, "src-"+commit)
	if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
		return dir, nil
	}
	tmp, err := os.MkdirTemp(binDir, ".src-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(tmp)
	archive := exec.CommandContext(ctx, "git", "-C", repo, "archive", "--format=tar", commit)
	extract := exec.CommandContext(ctx, "tar", "-x", "-C", tmp)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	var errBuf strings.Builder
	archive.Stderr, extract.Stderr = &errBuf, &errBuf
	if err := archive.Start(); err != nil {
		return "", err
	}
	xerr := extract.Run()
	aerr := archive.Wait()
	if err := errors.Join(aerr, xerr); err != nil {
		return "", fmt.Errorf("git archive %s: %w\n%s", commit, err, errBuf.String())
	}
	if err := os.Rename(tmp, dir); err != nil {
		return "", err
	}
	return dir, nil
}

// describeRevision says what the cairn binary was built from.
func describeRevision(ctx context.Context, o *options, repo string) string {
	switch {
	case o.cairnBin != "":
		return "prebuilt binary " + o.cairnBin
	case o.cairnRev != "":
		out, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short=12", o.cairnRev+"^{commit}").Output()
		if err != nil {
			return "-cairn-rev " + o.cairnRev
		}
		return "commit " + strings.TrimSpace(string(out)) + " (-cairn-rev " + o.cairnRev + ")"
	}
	return gitRevision(ctx, repo)
}
