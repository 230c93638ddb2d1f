package cli_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/version"
	"github.com/cairn-io/cairn/tests/framework"
)

// TestSnapshotSaveMatchesEtcdctl covers snapshot save: the saved file and
// etcdctl's lines, and its errors (one endpoint only, a file that cannot be
// written, no server).
func TestSnapshotSaveMatchesEtcdctl(t *testing.T) {
	isolateEnv(t)
	m := testServer(t)
	cli := m.Client(t)
	for i := range 50 {
		mustPut(t, cli, fmt.Sprintf("s/%02d", i), strings.Repeat("x", i*100))
	}
	dir := t.TempDir()
	file := filepath.Join(dir, "snap.db")
	s := &shotSuite{m: m, cli: cli}
	s.prepare = func(t *testing.T) map[string]string {
		os.Remove(file)
		return map[string]string{"file": file, "dir": dir, "ep": m.Endpoint(), "dead": closedEndpoint(t)}
	}
	var cases []ctlCase
	for _, args := range [][]string{
		{"snapshot", "save", "{file}"},
		{"snapshot", "save", "{file}", "-w", "json"},
		{"snapshot", "save", "{file}", "--command-timeout=30s"},
		{"snapshot", "save"},
		{"snapshot", "save", "{file}", "extra"},
		{"snapshot", "save", "{dir}/missing/snap.db"},
		{"snapshot", "save", "{file}", "-w", "yaml"},
		{"--endpoints={ep},{ep}", "snapshot", "save", "{file}"},
		{"--endpoints={dead}", "snapshot", "save", "{file}", "--command-timeout=1s"},
	} {
		cases = append(cases, ctlCase{args: args, noEndpoint: strings.HasPrefix(args[0], "--endpoints=")})
	}
	s.runAll(t, cases)

	r := runCairn(t, "", "--endpoints="+m.Endpoint(), "snapshot", "save", file)
	if r.code != 0 {
		t.Fatalf("snapshot save: %v", r)
	}
	fi, err := os.Stat(file)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.Size()%512 != 32 {
		t.Errorf("saved file: mode %v, size %d; want 0600 and a size 32 past a multiple of 512", fi.Mode().Perm(), fi.Size())
	}
	if _, err := os.Stat(file + ".part"); !os.IsNotExist(err) {
		t.Errorf("%s.part left behind: %v", file, err)
	}
}

// TestSnapshotStatusAndRestore saves a snapshot of a member with history,
// a lease and a compaction, checks snapshot status in every format,
// restores it, serves the restored directory, and compares the two
// members: the same keys, lease, compaction and hashkv at the snapshot's
// revision. etcdutl is not available to compare with, so the formats are
// checked against etcdutl's as documented in the printers.
func TestSnapshotStatusAndRestore(t *testing.T) {
	isolateEnv(t)
	if serverIsEtcd() {
		// cairn reads its own snapshot format; an etcd snapshot is a bbolt
		// database. Check that it is refused clearly, then skip the rest.
		m := testServer(t)
		file := filepath.Join(t.TempDir(), "etcd.db")
		if r := runCairn(t, "", "--endpoints="+m.Endpoint(), "snapshot", "save", file); r.code != 0 {
			t.Fatalf("snapshot save from etcd: %v", r)
		}
		if r := runCairn(t, "", "snapshot", "status", file); r.code != 1 || !strings.Contains(r.stderr, "not a valid cairn snapshot") {
			t.Errorf("snapshot status of an etcd snapshot: %v, want exit 1 and a clear error", r)
		}
		t.Skip("cairn snapshot status and restore read cairn's snapshot format; etcd's snapshots are bbolt databases, read by etcdutl")
	}
	m := testServer(t)
	cli := m.Client(t)
	ep := "--endpoints=" + m.Endpoint()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 30 {
		mustPut(t, cli, fmt.Sprintf("r/%02d", i%10), fmt.Sprintf("v%d", i))
	}
	compactAt := mustPut(t, cli, "r/mark", "m").Header.Revision
	lease := grant(t, cli, 3600)
	mustPut(t, cli, "r/leased", "l", clientv3.WithLease(lease))
	if _, err := cli.Delete(ctx, "r/0", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Compact(ctx, compactAt); err != nil {
		t.Fatal(err)
	}
	rev := mustPut(t, cli, "r/last", "z").Header.Revision

	dir := t.TempDir()
	file := filepath.Join(dir, "backup.db")
	if r := runCairn(t, "", ep, "snapshot", "save", file); r.code != 0 || r.stdout != "Snapshot saved at "+file+"\nServer version "+version.StorageVersion+"\n" {
		t.Fatalf("snapshot save: %v", r)
	}
	// Writes after the snapshot are not in it.
	mustPut(t, cli, "r/after", "a")

	st, err := snapshot.ReadStatus(file)
	if err != nil {
		t.Fatal(err)
	}
	if st.Revision != rev {
		t.Errorf("snapshot revision %d, want %d", st.Revision, rev)
	}
	t.Run("status", func(t *testing.T) { checkSnapshotStatus(t, file, st) })

	restored := filepath.Join(dir, "restored")
	t.Run("restore errors", func(t *testing.T) { checkRestoreErrors(t, file, dir) })
	r := runCairn(t, "", "snapshot", "restore", file, "--data-dir", restored, "--name", "r0",
		"--initial-cluster", "r0=http://127.0.0.1:2390", "--initial-advertise-peer-urls", "http://127.0.0.1:2390")
	if r.code != 0 || r.stdout != "" || r.stderr != "" {
		t.Fatalf("snapshot restore: %v, want exit 0 and no output", r)
	}

	// Serve the restored directory. The framework's cluster flags are
	// ignored for an existing data directory, as etcd ignores them; the
	// peer URL is overridden to the one restored so the member listens
	// where its membership says.
	peer := closedEndpoint(t)
	m2 := framework.Start(t, framework.Config{
		Binary:  framework.CairnBinary(t),
		DataDir: restored,
		Name:    "r0",
		Args: []string{
			"--listen-peer-urls", "http://" + peer,
			"--initial-advertise-peer-urls", "http://" + peer,
			"--initial-cluster", "r0=http://" + peer,
		},
	})
	ep2 := "--endpoints=" + m2.Endpoint()

	hashAt := fmt.Sprintf("--rev=%d", rev)
	orig := runCairn(t, "", ep, "endpoint", "hashkv", hashAt, "-w", "json")
	again := runCairn(t, "", ep2, "endpoint", "hashkv", hashAt, "-w", "json")
	h1, h2 := hashOf(t, orig), hashOf(t, again)
	if h1 != h2 {
		t.Errorf("hashkv %s: original %s, restored %s", hashAt, h1, h2)
	}
	// The same data at the snapshot's revision and at the compaction, the
	// same compaction, and the lease with its key.
	cli2 := m2.Client(t)
	for _, at := range []int64{rev, compactAt} {
		a, err := cli.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(at))
		if err != nil {
			t.Fatal(err)
		}
		b, err := cli2.Get(ctx, "", clientv3.WithPrefix(), clientv3.WithRev(at))
		if err != nil {
			t.Fatalf("restored member, get at %d: %v", at, err)
		}
		if !reflect.DeepEqual(a.Kvs, b.Kvs) || len(a.Kvs) == 0 {
			t.Errorf("get at revision %d:\noriginal %v\nrestored %v", at, a.Kvs, b.Kvs)
		}
	}
	for _, args := range [][]string{
		{"get", "r/00", "--rev=" + fmt.Sprint(compactAt-1)},
		{"lease", "list"},
		{"lease", "timetolive", fmt.Sprintf("%x", lease), "--keys"},
	} {
		a := runCairn(t, "", append([]string{ep}, args...)...)
		b := runCairn(t, "", append([]string{ep2}, args...)...)
		norm := func(s string) string { return remainingTTL.ReplaceAllString(s, "remaining(<TTL>)") }
		if norm(a.stdout) != norm(b.stdout) || a.code != b.code || a.stderr != b.stderr {
			t.Errorf("cairn %s:\noriginal %v\nrestored %v", strings.Join(args, " "), a, b)
		}
	}
	// The restored member is a new cluster of one.
	if r := runCairn(t, "", ep2, "endpoint", "status", "-w", "json"); r.code != 0 || !strings.Contains(r.stdout, `"revision":`+fmt.Sprint(rev)) {
		t.Errorf("endpoint status of the restored member: %v, want revision %d", r, rev)
	}
}

var hashInResult = regexp.MustCompile(`"hash":(\d+),"compact_revision":(-?\d+),"hash_revision":(\d+)`)

func hashOf(t *testing.T, r result) string {
	t.Helper()
	m := hashInResult.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("endpoint hashkv: %v", r)
	}
	return fmt.Sprintf("hash %s, compact revision %s, hash revision %s", m[1], m[2], m[3])
}

// checkSnapshotStatus checks snapshot status in every format against the
// file's status as the snapshot package reads it, laid out as etcdutl lays
// it out.
func checkSnapshotStatus(t *testing.T, file string, st snapshot.Status) {
	hash := fmt.Sprintf("%x", st.Hash)
	size := humanize(st.TotalSize)
	simple := fmt.Sprintf("%s, %d, %d, %s, %s\n", hash, st.Revision, st.TotalKey, size, version.StorageVersion)
	jsonOut := fmt.Sprintf(`{"hash":%d,"revision":%d,"totalKey":%d,"totalSize":%d,"version":"%s"}`+"\n",
		st.Hash, st.Revision, st.TotalKey, st.TotalSize, version.StorageVersion)
	fields := fmt.Sprintf("\"Hash\" : %d\n\"Revision\" : %d\n\"Keys\" : %d\n\"Size\" : %d\n\"Version\" : %s\n",
		st.Hash, st.Revision, st.TotalKey, st.TotalSize, version.StorageVersion)
	row := []string{hash, fmt.Sprint(st.Revision), fmt.Sprint(st.TotalKey), size, version.StorageVersion}
	table := drawTable([]string{"HASH", "REVISION", "TOTAL KEYS", "TOTAL SIZE", "VERSION"}, row)
	for _, tt := range []struct {
		args []string
		want string
	}{
		{nil, simple},
		{[]string{"-w", "simple"}, simple},
		{[]string{"--write-out=json"}, jsonOut},
		{[]string{"-w", "fields"}, fields},
		{[]string{"-w", "table"}, table},
	} {
		r := runCairn(t, "", append([]string{"snapshot", "status", file}, tt.args...)...)
		if r.code != 0 || r.stdout != tt.want || r.stderr != "" {
			t.Errorf("snapshot status %s: %v\nwant stdout:\n%s", strings.Join(tt.args, " "), r, tt.want)
		}
	}

	corrupt := filepath.Join(t.TempDir(), "corrupt.db")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)/2] ^= 0xff
	if err := os.WriteFile(corrupt, data, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"-w", "protobuf"}, 4, fmt.Sprintf("Error: marshal unsupported for type snapshot.Status ({%d %d %d %d %s})\n",
			st.Hash, st.Revision, st.TotalKey, st.TotalSize, version.StorageVersion)},
		{[]string{"-w", "yaml"}, 4, "Error: unsupported output format\n"},
		{[]string{"extra"}, 128, "Error: snapshot status requires exactly one argument\n"},
		{[]string{"--bogus"}, 1, "Error: unknown flag: --bogus\n"},
	} {
		r := runCairn(t, "", append([]string{"snapshot", "status", file}, tt.args...)...)
		if r.code != tt.code || r.stdout != "" || r.stderr != tt.want {
			t.Errorf("snapshot status %s: %v\nwant exit %d and %q", strings.Join(tt.args, " "), r, tt.code, tt.want)
		}
	}
	for _, tt := range []struct {
		file string
		want string
	}{
		{filepath.Join(filepath.Dir(file), "missing.db"), "no such file or directory"},
		{corrupt, "not a valid cairn snapshot"},
		{filepath.Dir(file), "is a directory"},
	} {
		r := runCairn(t, "", "snapshot", "status", tt.file)
		if r.code != 1 || r.stdout != "" || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("snapshot status %s: %v\nwant exit 1 and an error saying %q", tt.file, r, tt.want)
		}
	}
	if r := runCairn(t, "", "snapshot", "status"); r.code != 128 {
		t.Errorf("snapshot status with no file: %v, want exit 128", r)
	}
}

// checkRestoreErrors checks what snapshot restore refuses, and that a
// refused restore leaves nothing behind.
func checkRestoreErrors(t *testing.T, file, dir string) {
	nonEmpty := filepath.Join(dir, "nonempty")
	if err := os.MkdirAll(filepath.Join(nonEmpty, "x"), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"snapshot", "restore"}, 128, "requires exactly one argument"},
		{[]string{"snapshot", "restore", file, "other"}, 128, "requires exactly one argument"},
		{[]string{"snapshot", "restore", filepath.Join(dir, "missing.db"), "--data-dir", filepath.Join(dir, "e1")}, 1, "no such file or directory"},
		{[]string{"snapshot", "restore", file, "--data-dir", nonEmpty}, 1, "exists"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(dir, "e2"), "--name", "other", "--initial-cluster", "r0=http://127.0.0.1:2380"}, 1, "other"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(dir, "e3"), "--initial-advertise-peer-urls", "not a url"}, 1, "initial-advertise-peer-urls"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(dir, "e4"), "--initial-advertise-peer-urls", "http://127.0.0.1:1", "--initial-cluster", "default=http://127.0.0.1:2"}, 1, "initial-advertise-peer-urls"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(dir, "e5"), "--name", ""}, 128, "--name"},
		{[]string{"snapshot", "restore", file, "--data-dir", filepath.Join(dir, "e6"), "--bogus"}, 1, "unknown flag: --bogus"},
		{[]string{"snapshot", "restore", dir, "--data-dir", filepath.Join(dir, "e7")}, 1, "is a directory"},
	} {
		r := runCairn(t, "", tt.args...)
		if r.code != tt.code || r.stdout != "" || !strings.Contains(r.stderr, tt.want) {
			t.Errorf("cairn %s: %v\nwant exit %d and an error containing %q", strings.Join(tt.args, " "), r, tt.code, tt.want)
		}
	}
	for _, name := range []string{"e1", "e2", "e3", "e4", "e5", "e6", "e7"} {
		if _, err := os.Stat(filepath.Join(dir, name)); !os.IsNotExist(err) {
			t.Errorf("a refused restore left %s behind (%v)", name, err)
		}
	}
	if ents, _ := os.ReadDir(nonEmpty); len(ents) != 1 {
		t.Errorf("a refused restore changed the non-empty directory: %v", ents)
	}

	// An existing empty directory is accepted, as etcdutl accepts it; the
	// defaults restore member "default" into ./default.cairn.
	empty := filepath.Join(dir, "empty")
	if err := os.Mkdir(empty, 0o700); err != nil {
		t.Fatal(err)
	}
	if r := runCairn(t, "", "snapshot", "restore", file, "--data-dir", empty); r.code != 0 {
		t.Errorf("restore into an empty directory: %v", r)
	}
	t.Chdir(t.TempDir())
	if r := runCairn(t, "", "snapshot", "restore", file); r.code != 0 {
		t.Errorf("restore with the defaults: %v", r)
	}
	if _, err := os.Stat("default.cairn"); err != nil {
		t.Errorf("restore with the defaults: %v", err)
	}
	if r := runCairn(t, "", "snapshot", "restore", file, "--name", "n1",
		"--initial-cluster", "n1=http://127.0.0.1:3001,n2=http://127.0.0.1:3002",
		"--initial-advertise-peer-urls", "http://127.0.0.1:3001"); r.code != 0 {
		t.Errorf("restore of one member of two: %v", r)
	}
	if _, err := os.Stat("n1.cairn"); err != nil {
		t.Errorf("restore of one member of two: %v", err)
	}
}

// humanize formats a size as etcdutl does: SI units, rounded to one
// decimal, shown with one below ten.
func humanize(n int64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB"}
	f, i := float64(n), 0
	for f >= 1000 && i < len(units)-1 {
		f /= 1000
		i++
	}
	f = math.Floor(f*10+0.5) / 10
	if f < 10 {
		return fmt.Sprintf("%.1f %s", f, units[i])
	}
	return fmt.Sprintf("%.0f %s", f, units[i])
}

// drawTable draws a one-row table as etcdutl's table library does for
// short cells: header names centred, cells right-aligned.
func drawTable(header, row []string) string {
	var b strings.Builder
	widths := make([]int, len(header))
	for i := range header {
		widths[i] = max(len(header[i]), len(row[i]))
	}
	rule := func() {
		b.WriteString("+")
		for _, w := range widths {
			b.WriteString(strings.Repeat("-", w+2) + "+")
		}
		b.WriteString("\n")
	}
	rule()
	b.WriteString("|")
	for i, h := range header {
		gap := widths[i] - len(h)
		b.WriteString(" " + strings.Repeat(" ", gap/2) + h + strings.Repeat(" ", gap-gap/2) + " |")
	}
	b.WriteString("\n")
	rule()
	b.WriteString("|")
	for i, c := range row {
		b.WriteString(" " + strings.Repeat(" ", widths[i]-len(c)) + c + " |")
	}
	b.WriteString("\n")
	rule()
	return b.String()
}
