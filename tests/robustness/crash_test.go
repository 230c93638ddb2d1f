package robustness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/tests/framework"
)

// Damaged data, as opposed to a torn tail (the wal-* faults of the
// suite): a bit flipped in the middle of a table or of the write-ahead log
// must be detected and reported, and the damaged data never served. A
// member may refuse to start, naming the corruption in its log, or start
// and answer reads of the damaged data with errors; it must not answer
// them with wrong or missing data.

// corruptionRE is what a clear report of damaged data says: Pebble's
// corruption and checksum errors, and its "invalid chunk" for a damaged
// log record.
var corruptionRE = regexp.MustCompile(`(?i)corrupt|checksum|invalid chunk`)

// memberDir is a data directory for a corruption test. Its path does not
// name the test, which would match corruptionRE in every line of the
// member's output that names the directory.
func memberDir(t *testing.T) string {
	dir, err := os.MkdirTemp("", "cairn-member-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// crashKeys is how many keys the corruption tests write.
const crashKeys = 300

// writeKeys writes crashKeys keys with random (incompressible) values, one
// after another, and returns them.
func writeKeys(t *testing.T, cli *clientv3.Client, prefix string) map[string]string {
	t.Helper()
	kvs := map[string]string{}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for i := range crashKeys {
		b := make([]byte, 48)
		rand.Read(b)
		k, v := fmt.Sprintf("%s%04d", prefix, i), hex.EncodeToString(b)
		if _, err := cli.Put(ctx, k, v); err != nil {
			t.Fatalf("put %s: %v", k, err)
		}
		kvs[k] = v
	}
	return kvs
}

// restartDamaged starts a member on damaged data and returns whether it
// serves; a member that exits instead must have said why in its log.
func restartDamaged(t *testing.T, m *framework.Member) bool {
	t.Helper()
	before := len(m.Logs())
	m.Launch(t)
	deadline := time.Now().Add(60 * time.Second)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if !m.Running() {
			m.WaitExit(t, time.Second)
			out := withoutMarkers(m.Logs()[before:])
			if !corruptionRE.MatchString(out) {
				t.Fatalf("member %s refused to start without naming the corruption; its output:\n%s", m.Name(), out)
			}
			line := firstMatchingLine(out, corruptionRE)
			if len(line) > 400 {
				line = line[:400] + " ..."
			}
			t.Logf("member %s refused to start: %s", m.Name(), line)
			return false
		}
		cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: time.Second, Logger: zap.NewNop()})
		if err == nil {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			_, err = cli.Get(ctx, "probe", clientv3.WithSerializable())
			cancel()
			cli.Close()
			if err == nil {
				return true
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("member %s neither serves nor exits after 60s: %v", m.Name(), err)
		}
		<-tick.C
	}
}

// withoutMarkers drops the framework's lines (the command line of each
// start, which names the data directory) from a member's output.
func withoutMarkers(s string) string {
	var lines []string
	for _, line := range strings.Split(s, "\n") {
		if !strings.HasPrefix(line, "=== ") {
			lines = append(lines, line)
		}
	}
	return strings.Join(lines, "\n")
}

func firstMatchingLine(s string, re *regexp.Regexp) string {
	for _, line := range strings.Split(s, "\n") {
		if re.MatchString(line) {
			return strings.TrimSpace(line)
		}
	}
	return ""
}

// checkServed reads every key from a member serving damaged data: each
// read must fail or return exactly what was written. It returns how many
// reads failed.
func checkServed(t *testing.T, m *framework.Member, kvs map[string]string) int {
	t.Helper()
	cli := m.Client(t)
	failed := 0
	var missing []string
	keys := sortedKeys(kvs)
	for _, k := range keys {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := cli.Get(ctx, k)
		cancel()
		switch {
		case err != nil:
			failed++
		case len(resp.Kvs) == 0:
			missing = append(missing, k)
		case string(resp.Kvs[0].Value) != kvs[k]:
			t.Errorf("member %s served damaged data: %s = %q, written %q", m.Name(), k, resp.Kvs[0].Value, kvs[k])
		}
	}
	if len(missing) > 0 {
		t.Errorf("member %s started on damaged data and serves without %d of %d acknowledged keys (%s ... %s): the damage was not detected",
			m.Name(), len(missing), len(kvs), missing[0], missing[len(missing)-1])
	}
	return failed
}

// TestCorruptTable flips a bit in the middle of a value stored in a table
// (*.sst) of a stopped member, and restarts it.
func TestCorruptTable(t *testing.T) {
	m := framework.Start(t, framework.Config{DataDir: memberDir(t), Args: []string{"--log-level", "warn"}})
	kvs := writeKeys(t, m.Client(t), "table/")
	// A clean stop flushes the memtable: the values are in a table now.
	m.Stop(t)
	dir := filepath.Join(m.DataDir(), "member", "db")
	keys := sortedKeys(kvs)
	target := kvs[keys[len(keys)/2]]
	tables, _ := filepath.Glob(filepath.Join(dir, "*.sst"))
	sort.Strings(tables)
	var damaged string
	for _, path := range tables {
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		// The first copy of the value is the MVCC record's (key 'k...'
		// sorts before the raft log's 'r...'), which the member reads
		// at start to rebuild its index.
		i := bytes.Index(data, []byte(target))
		if i < 0 {
			continue
		}
		off := i + len(target)/2
		data[off] ^= 0x10
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		damaged = fmt.Sprintf("%s (%d bytes) at offset %d, in the value of %s", filepath.Base(path), len(data), off, keys[len(keys)/2])
		break
	}
	if damaged == "" {
		t.Fatalf("no table in %s holds the value of %s (tables %v)", dir, keys[len(keys)/2], tables)
	}
	t.Logf("flipped a bit in %s", damaged)
	if restartDamaged(t, m) {
		failed := checkServed(t, m, kvs)
		t.Logf("member %s started on the damaged table; %d of %d reads failed", m.Name(), failed, len(kvs))
		if failed == 0 && !t.Failed() {
			t.Errorf("member %s started on a damaged table and every read succeeded: the damage was neither reported nor hit", m.Name())
		}
	}
}

// TestCorruptWALMiddle kills a member that just acknowledged a series of
// writes, flips a bit in the middle of its newest write-ahead log (well
// before its end: records after it were synced) and restarts it.
//
// Both the log of a new member and a log after restarts are tried. Pebble
// writes a new database's very first log in its older chunk format, without
// the sync offsets by which it tells a damaged record followed by synced
// ones from a torn tail; storage reopens a new database at once so that no
// data ever lands in that log (the first-log case guards this).
func TestCorruptWALMiddle(t *testing.T) {
	for _, restarts := range []int{0, 1} {
		name := "first-log"
		if restarts > 0 {
			name = "later-log"
		}
		t.Run(name, func(t *testing.T) {
			m := framework.Start(t, framework.Config{DataDir: memberDir(t), Args: []string{"--log-level", "warn"}})
			for range restarts {
				m.Kill(t)
				m.Restart(t)
			}
			kvs := writeKeys(t, m.Client(t), "wal/")
			m.Kill(t)
			dir := filepath.Join(m.DataDir(), "member", "db")
			path, err := newestWAL(dir)
			if err != nil {
				t.Fatal(err)
			}
			records, err := scanWAL(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(records) < 100 {
				t.Fatalf("%s holds %d records, want at least 100", path, len(records))
			}
			rec := records[len(records)/2]
			off := rec.start + (rec.end-rec.start)/2
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			data[off] ^= 0x10
			if err := os.WriteFile(path, data, 0o644); err != nil {
				t.Fatal(err)
			}
			format := "recyclable"
			if enc := data[rec.start+6]; enc >= 9 {
				format = "WAL sync"
			}
			t.Logf("flipped a bit at offset %d of %s (%s format; record %d of %d, which ends at %d; the log's valid records end at %d)",
				off, filepath.Base(path), format, len(records)/2, len(records), rec.end, records[len(records)-1].end)
			if restartDamaged(t, m) {
				failed := checkServed(t, m, kvs)
				t.Logf("member %s started on the damaged log; %d of %d reads failed", m.Name(), failed, len(kvs))
			}
		})
	}
}
