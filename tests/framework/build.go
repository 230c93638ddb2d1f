package framework

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// A binary is built at most once per test process. A failed build is
// remembered too, so every test that needs it fails with the same output
// instead of rebuilding.
type binary struct {
	name   string // output file name
	subdir string // module directory, relative to the repository root
	pkg    string // package to build, relative to subdir
	envVar string // names a prebuilt binary to use instead
	// tagsVar names a variable holding extra build tags (comma-separated).
	// A binary built with tags gets its own file name, so it is cached
	// apart from the normal build.
	tagsVar string

	once sync.Once
	path string
	err  error
}

var (
	cairnBin   = &binary{name: "cairn", subdir: ".", pkg: "./cmd/cairn", envVar: "CAIRN_TEST_CAIRN_BINARY", tagsVar: "CAIRN_TEST_BUILD_TAGS"}
	etcdBin    = &binary{name: "etcd", subdir: "tests/tools/etcd", pkg: ".", envVar: "CAIRN_TEST_ETCD_BINARY"}
	etcdctlBin = &binary{name: "etcdctl", subdir: "tests/tools/etcdctl", pkg: ".", envVar: "CAIRN_TEST_ETCDCTL_BINARY"}
)

// CairnBinary returns the path of the cairn binary built from this checkout
// (go build ./cmd/cairn), building it on the first call in the process.
// CAIRN_TEST_BUILD_TAGS adds build tags (go build -tags), for instance
// cairn_unsafe_ack, the deliberately broken build the robustness suite must
// catch; that binary is named cairn-<tags> and cached apart from the
// normal one.
func CairnBinary(t testing.TB) string { t.Helper(); return cairnBin.get(t) }

// EtcdBinary returns the path of the reference etcd server v3.6.16, built from
// the nested module in tests/tools/etcd on the first call in the process.
func EtcdBinary(t testing.TB) string { t.Helper(); return etcdBin.get(t) }

// EtcdctlBinary returns the path of the official etcdctl v3.6.16, built from
// the nested module in tests/tools/etcdctl on the first call in the process.
func EtcdctlBinary(t testing.TB) string { t.Helper(); return etcdctlBin.get(t) }

func (b *binary) get(t testing.TB) string {
	t.Helper()
	b.once.Do(func() {
		if p := os.Getenv(b.envVar); p != "" {
			b.path, b.err = p, nil
			if _, err := os.Stat(p); err != nil {
				b.err = fmt.Errorf("%s: %w", b.envVar, err)
			}
			return
		}
		start := time.Now()
		b.path, b.err = b.build()
		if b.err == nil {
			t.Logf("built %s in %v: %s", b.fileName(), time.Since(start).Round(time.Millisecond), b.path)
		}
	})
	if b.err != nil {
		t.Fatalf("cannot build %s: %v", b.name, b.err)
	}
	return b.path
}

// build runs go build into a private file in the cache directory and renames
// it into place, so test processes building concurrently (go test ./... runs
// packages in parallel) never execute a half-written binary.
func (b *binary) build() (string, error) {
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	dir, err := binDir()
	if err != nil {
		return "", err
	}
	goTool, err := goCommand()
	if err != nil {
		return "", err
	}
	unlock, err := lockFile(filepath.Join(dir, "."+b.fileName()+".lock"))
	if err != nil {
		return "", err
	}
	defer unlock()
	tmp, err := os.CreateTemp(dir, "."+b.fileName()+".*.tmp")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())

	args := []string{"build", "-buildvcs=false", "-o", tmp.Name()}
	if tags := b.tags(); tags != "" {
		args = append(args, "-tags", tags)
	}
	cmd := exec.Command(goTool, append(args, b.pkg)...)
	cmd.Dir = filepath.Join(root, b.subdir)
	// The nested tool modules must build with their own go.mod even when a
	// go.work exists further up.
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s in %s: %w\n%s", b.pkg, cmd.Dir, err, out)
	}
	final := filepath.Join(dir, b.fileName())
	if err := os.Rename(tmp.Name(), final); err != nil {
		return "", err
	}
	return final, nil
}

// tags returns the extra build tags, normalised: sorted, without blanks
// or duplicates.
func (b *binary) tags() string {
	if b.tagsVar == "" {
		return ""
	}
	var tags []string
	for _, tag := range strings.FieldsFunc(os.Getenv(b.tagsVar), func(r rune) bool { return r == ',' || r == ' ' }) {
		if !slices.Contains(tags, tag) {
			tags = append(tags, tag)
		}
	}
	slices.Sort(tags)
	return strings.Join(tags, ",")
}

// fileName is the binary's name in the cache directory: its name, followed
// by its extra build tags if it has any ("cairn-cairn_unsafe_ack"). It
// still starts with the name, which is how Config knows to run it as
// "cairn serve".
func (b *binary) fileName() string {
	tags := b.tags()
	if tags == "" {
		return b.name
	}
	return b.name + "-" + strings.NewReplacer(",", "-", "/", "_").Replace(tags)
}

func binDir() (string, error) {
	dir := os.Getenv("CAIRN_TEST_BIN_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		// One directory per checkout: two checkouts testing at once must
		// not swap each other's cairn binary mid-run.
		root, err := repoRoot()
		if err != nil {
			return "", err
		}
		sum := sha256.Sum256([]byte(root))
		dir = filepath.Join(cache, "cairn-tests", hex.EncodeToString(sum[:6]), "bin")
	}
	return dir, os.MkdirAll(dir, 0o755)
}

func goCommand() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	if goroot := os.Getenv("GOROOT"); goroot != "" {
		p := filepath.Join(goroot, "bin", "go")
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("the go command is not on PATH; the framework builds its binaries with it")
}

// repoRoot finds the checkout this package was compiled from: the directory
// two levels above this source file, confirmed by its go.mod. When sources
// were trimmed from the binary, it falls back to the main module of the
// working directory (a test's working directory is its package directory).
func repoRoot() (string, error) {
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		root := filepath.Dir(filepath.Dir(filepath.Dir(file)))
		if isCairnModule(root) {
			return root, nil
		}
	}
	goTool, err := goCommand()
	if err != nil {
		return "", err
	}
	out, err := exec.Command(goTool, "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	root := filepath.Dir(strings.TrimSpace(string(out)))
	if !isCairnModule(root) {
		return "", fmt.Errorf("cannot find the cairn repository root (tried %s)", root)
	}
	return root, nil
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
