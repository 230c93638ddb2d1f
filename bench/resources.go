package main

import (
	"bufio"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Loads of the resource workloads, as in a full run.
const (
	loadKeys           = 1_000_000
	loadKeysQuick      = 10_000
	overwriteKeys      = 100_000
	overwriteKeysQuick = 2_000
	overwriteTimes     = 10
	mib                = 1 << 20
)

// loaderSpec is how the resource workloads write: 100 concurrent requests
// over 10 connections, the shape of the put-100 workloads.
func loaderSpec(prefix string, count int) loadSpec {
	return loadSpec{prefix: prefix, count: count, valSize: 256, conns: 10, workers: 100}
}

// runLoad loads loadKeys keys into a fresh deployment and reads each
// member's peak RSS, then stops every member, starts them again and times
// how long it takes until each serves a linearizable Get.
func runLoad(ctx context.Context, r *runner, d *deployment) (values, error) {
	n := r.scale(loadKeys, loadKeysQuick)
	start := time.Now()
	if err := load(ctx, d.leaderFirst(ctx), loaderSpec("", n)); err != nil {
		return nil, err
	}
	r.logf("loaded %d keys into %s in %v", n, d.system, time.Since(start).Round(time.Millisecond))
	v := values{}
	for _, m := range d.members {
		hwm, err := procStatusBytes(m.pid(), "VmHWM")
		if err != nil {
			return nil, err
		}
		v["rss_peak"] = max(v["rss_peak"], float64(hwm)/mib)
	}
	if err := d.stop(); err != nil {
		return nil, err
	}
	start = time.Now()
	if err := d.restart(ctx); err != nil {
		return nil, err
	}
	v["start"] = time.Since(start).Seconds()
	for _, m := range d.members {
		rss, err := procStatusBytes(m.pid(), "VmRSS")
		if err != nil {
			return nil, err
		}
		v["rss_restart"] = max(v["rss_restart"], float64(rss)/mib)
	}
	return v, nil
}

// runDisk overwrites the same overwriteKeys keys overwriteTimes times,
// compacting to the latest revision after each round, and measures the
// largest member's data directory: right away, after the settle period
// (cairn's storage engine gives space back in the background, etcd's bbolt
// file never shrinks by itself), and after a defragmentation of every member.
func runDisk(ctx context.Context, r *runner, d *deployment) (values, error) {
	n := r.scale(overwriteKeys, overwriteKeysQuick)
	eps := d.leaderFirst(ctx)
	cli, err := newClient(eps)
	if err != nil {
		return nil, err
	}
	defer cli.Close()
	start := time.Now()
	for i := range overwriteTimes {
		if err := load(ctx, eps, loaderSpec("", n)); err != nil {
			return nil, fmt.Errorf("overwrite %d: %w", i+1, err)
		}
		resp, err := cli.Get(ctx, "bench-disk-revision")
		if err != nil {
			return nil, err
		}
		// Physical: return once the compaction has been applied, so the
		// next round does not overlap it.
		if _, err := cli.Compact(ctx, resp.Header.Revision, clientv3.WithCompactPhysical()); err != nil {
			return nil, fmt.Errorf("compact at %d: %w", resp.Header.Revision, err)
		}
	}
	r.logf("overwrote %d keys %d times on %s in %v", n, overwriteTimes, d.system, time.Since(start).Round(time.Millisecond))
	v := values{}
	sizeOf := func(match func(string) bool) (float64, error) {
		var largest int64
		for _, m := range d.members {
			b, err := diskUsage(m.dataDir, match)
			if err != nil {
				return 0, err
			}
			largest = max(largest, b)
		}
		return float64(largest) / mib, nil
	}
	size := func() (float64, error) { return sizeOf(nil) }
	if v["disk_compacted"], err = size(); err != nil {
		return nil, err
	}
	select {
	case <-time.After(r.opts.settle):
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	if v["disk_settled"], err = size(); err != nil {
		return nil, err
	}
	// Both servers preallocate their write-ahead log files, which can be
	// most of a small data directory.
	if v["disk_wal"], err = sizeOf(isLogFile); err != nil {
		return nil, err
	}
	for _, ep := range eps {
		// Defragmentation blocks a member for as long as it copies its
		// database; a large one can take a while.
		dctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
		_, err := cli.Defragment(dctx, ep)
		cancel()
		if err != nil {
			return nil, fmt.Errorf("defragment %s: %w", ep, err)
		}
	}
	if v["disk_defrag"], err = size(); err != nil {
		return nil, err
	}
	return v, nil
}

// isLogFile matches write-ahead log files: everything in etcd's member/wal
// (the segments and the preallocated next one, *.tmp) and Pebble's *.log.
func isLogFile(path string) bool {
	return strings.Contains(path, "/member/wal/") || strings.HasSuffix(path, ".log")
}

// diskUsage returns the bytes allocated on disk to the files under dir
// whose paths match (all files if match is nil), as du counts them:
// st_blocks, not the apparent size, since a sparse or preallocated file
// occupies what it has allocated.
func diskUsage(dir string, match func(path string) bool) (int64, error) {
	var total int64
	seen := map[uint64]bool{} // hard links count once
	err := filepath.WalkDir(dir, func(path string, e fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) {
				return nil // removed while walking (a compacted table)
			}
			return err
		}
		if match != nil && (e.IsDir() || !match(path)) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			if os.IsNotExist(err) {
				return nil
			}
			return err
		}
		st, ok := info.Sys().(*syscall.Stat_t)
		if !ok {
			total += info.Size()
			return nil
		}
		if seen[st.Ino] {
			return nil
		}
		seen[st.Ino] = true
		total += st.Blocks * 512
		return nil
	})
	return total, err
}

// procStatusBytes reads a "kB" field of /proc/<pid>/status, such as VmHWM
// (the peak resident set) or VmRSS.
func procStatusBytes(pid int, field string) (int64, error) {
	if pid == 0 {
		return 0, fmt.Errorf("no process to read %s of", field)
	}
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		name, rest, ok := strings.Cut(s.Text(), ":")
		if !ok || name != field {
			continue
		}
		num, unit, _ := strings.Cut(strings.TrimSpace(rest), " ")
		kb, err := strconv.ParseInt(num, 10, 64)
		if err != nil || unit != "kB" {
			return 0, fmt.Errorf("/proc/%d/status: cannot parse %s: %q", pid, field, rest)
		}
		return kb << 10, nil
	}
	if err := s.Err(); err != nil {
		return 0, err
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}
