package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// The versions the nested modules pin; a test keeps them in step with the
// go.mod files.
const (
	etcdVersion      = "v3.6.16" // tests/tools/etcd
	benchmarkVersion = "v3.5.11" // bench/tools/benchmark
	clientVersion    = "v3.6.16" // this module's clientv3
)

// machine describes where a run happened.
type machine struct {
	cpu       string
	memory    string
	kernel    string
	disk      string
	load      string
	goVersion string
	cairnRev  string
}

// loadAtStart is /proc/loadavg when the program started, before the
// harness itself added to it.
var loadAtStart = readLoad()

func describeMachine(ctx context.Context, dataRoot, cairnRev string) *machine {
	m := &machine{
		cpu:       cpuModel(),
		memory:    memTotal(),
		kernel:    firstLine("/proc/sys/kernel/osrelease"),
		disk:      describeDisk(dataRoot),
		goVersion: runtime.Version(),
		cairnRev:  cairnRev,
	}
	if v, err := exec.CommandContext(ctx, "go", "env", "GOVERSION").Output(); err == nil {
		m.goVersion = strings.TrimSpace(string(v))
	}
	if loadAtStart != "" {
		m.load = loadAtStart + " at the start, " + readLoad() + " at the end (1, 5, 15 min)"
	}
	return m
}

func readLoad() string {
	f := strings.Fields(firstLine("/proc/loadavg"))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

func firstLine(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strings.TrimSpace(line)
}

// cpuModel reads the model name and counts the logical CPUs in
// /proc/cpuinfo, and adds how many this process may use.
func cpuModel() string {
	f, err := os.Open("/proc/cpuinfo")
	if err != nil {
		return fmt.Sprintf("%d logical CPUs", runtime.NumCPU())
	}
	defer f.Close()
	var model string
	var logical int
	cores := map[string]bool{} // physical id/core id
	var phys string
	s := bufio.NewScanner(f)
	for s.Scan() {
		k, v, ok := strings.Cut(s.Text(), ":")
		if !ok {
			continue
		}
		k, v = strings.TrimSpace(k), strings.TrimSpace(v)
		switch k {
		case "processor":
			logical++
		case "model name":
			if model == "" {
				model = v
			}
		case "physical id":
			phys = v
		case "core id":
			cores[phys+"/"+v] = true
		}
	}
	if model == "" {
		model = runtime.GOARCH
	}
	s2 := fmt.Sprintf("%s, %d logical CPUs", model, logical)
	if len(cores) > 0 && len(cores) != logical {
		s2 += fmt.Sprintf(" (%d cores)", len(cores))
	}
	if n := runtime.NumCPU(); n != logical {
		s2 += fmt.Sprintf(", %d usable by this process", n)
	}
	return s2
}

func memTotal() string {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return ""
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				return strings.TrimSpace(rest)
			}
			return fmt.Sprintf("%.1f GiB", float64(kb)/(1<<20))
		}
	}
	return ""
}

// describeDisk names the filesystem holding dir (device, type and mount
// point from /proc/self/mountinfo), its size and free space (statfs), and
// whether the kernel thinks the device is rotational.
func describeDisk(dir string) string {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return ""
	}
	size := float64(st.Blocks) * float64(st.Bsize) / (1 << 30)
	free := float64(st.Bavail) * float64(st.Bsize) / (1 << 30)
	fsType := fsTypes[int64(st.Type)]
	if fsType == "" {
		fsType = fmt.Sprintf("fs type 0x%x", st.Type)
	}
	desc := fsType
	if mp, dev, typ, ok := mountOf(dir); ok {
		desc = fmt.Sprintf("%s (%s) mounted on %s", dev, typ, mp)
		if rot := rotational(dev); rot != "" {
			desc += ", " + rot
		}
	}
	desc += fmt.Sprintf(", %.0f GiB, %.0f GiB free", size, free)
	if fsType == "tmpfs" {
		desc += "; tmpfs: fsync costs nothing here, pass -data-root on a real disk"
	}
	return desc
}

// Filesystem magic numbers from statfs(2).
var fsTypes = map[int64]string{
	0xEF53:     "ext4",
	0x58465342: "xfs",
	0x9123683E: "btrfs",
	0x01021994: "tmpfs",
	0x794c7630: "overlayfs",
	0x2FC12FC1: "zfs",
	0x6969:     "nfs",
	0xF2F52010: "f2fs",
}

// mountOf returns the mount point, device and filesystem type of the
// longest mount point in /proc/self/mountinfo that contains dir.
func mountOf(dir string) (mountPoint, device, fsType string, ok bool) {
	dir, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return "", "", "", false
	}
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return "", "", "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source superoptions
		pre, post, found := strings.Cut(s.Text(), " - ")
		if !found {
			continue
		}
		pf, qf := strings.Fields(pre), strings.Fields(post)
		if len(pf) < 5 || len(qf) < 2 {
			continue
		}
		mp := pf[4]
		if (dir == mp || strings.HasPrefix(dir, strings.TrimSuffix(mp, "/")+"/")) && len(mp) >= len(mountPoint) {
			mountPoint, fsType, device, ok = mp, qf[0], qf[1], true
		}
	}
	return mountPoint, device, fsType, ok
}

// rotational reads /sys/block/<disk>/queue/rotational for a /dev device,
// walking from a partition to its disk.
func rotational(dev string) string {
	name, ok := strings.CutPrefix(dev, "/dev/")
	if !ok {
		return ""
	}
	for _, cand := range []string{name, strings.TrimRight(name, "0123456789"), strings.TrimSuffix(strings.TrimRight(name, "0123456789"), "p")} {
		switch firstLine("/sys/block/" + cand + "/queue/rotational") {
		case "0":
			return "non-rotational"
		case "1":
			return "rotational"
		}
	}
	return ""
}

// gitRevision names the checkout's commit and whether the working tree has
// changes; with -buildvcs=false the binary cannot tell.
func gitRevision(ctx context.Context, repo string) string {
	rev, err := exec.CommandContext(ctx, "git", "-C", repo, "rev-parse", "--short=12", "HEAD").Output()
	if err != nil {
		return ""
	}
	s := "commit " + strings.TrimSpace(string(rev))
	if st, err := exec.CommandContext(ctx, "git", "-C", repo, "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(strings.TrimSpace(string(st))) > 0 {
		s += ", with uncommitted changes"
	}
	return s
}
