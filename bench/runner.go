package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// runner carries a run's settings and collects its results.
type runner struct {
	opts     *options
	bins     *binaries
	dataRoot string
	logf     func(string, ...any)
	results  *results

	seq int // numbers deployment directories
}

// scale returns total, divided down under -quick but not below floor.
func (r *runner) scale(total, floor int) int { return scale(r.opts.quick, total, floor) }

func (r *runner) binary(system string) string {
	if system == cairn {
		return r.bins.cairn
	}
	return r.bins.etcd
}

func topologyName(size int) string {
	if size == 1 {
		return "single"
	}
	return "three"
}

// order returns the systems in the order round runs them: cairn first in
// odd rounds, etcd first in even ones, so neither always follows the other.
func order(round int) []string {
	if round%2 == 1 {
		return []string{cairn, etcd}
	}
	return []string{etcd, cairn}
}

// newDeployment starts a deployment in a directory of its own.
func (r *runner) newDeployment(ctx context.Context, system string, size int, label string) (*deployment, error) {
	r.seq++
	dir := filepath.Join(r.dataRoot, fmt.Sprintf("%02d-%s-%s-%s", r.seq, topologyName(size), label, system))
	start := time.Now()
	d, err := startDeployment(ctx, system, r.binary(system), dir, size, r.opts.serverArgs)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", system, err)
	}
	r.logf("started %s (%d member(s)) in %v: %s", system, size, time.Since(start).Round(time.Millisecond), strings.Join(d.endpoints(), ","))
	return d, nil
}

// discard stops a deployment and, unless -keep, removes its data.
func (r *runner) discard(d *deployment) {
	if d == nil {
		return
	}
	if err := d.stop(); err != nil {
		r.logf("stopping %s: %v", d.system, err)
	}
	if !r.opts.keep {
		os.RemoveAll(d.dir)
	}
}

// runAll runs the selected workloads for every topology. A failed run is
// recorded and the rest go on; only an interrupt or a failure to start a
// server ends the run early.
func (r *runner) runAll(ctx context.Context, selected []*workload) error {
	var shared, fresh []*workload
	for _, w := range selected {
		if w.resource() {
			fresh = append(fresh, w)
		} else {
			shared = append(shared, w)
		}
	}
	for _, size := range r.opts.topologies() {
		topo := topologyName(size)
		if len(shared) > 0 {
			if err := r.runShared(ctx, size, shared); err != nil {
				return fmt.Errorf("%s: %w", topo, err)
			}
		}
		for _, w := range fresh {
			for round := 1; round <= r.opts.rounds; round++ {
				for _, sys := range order(round) {
					if err := ctx.Err(); err != nil {
						return err
					}
					d, err := r.newDeployment(ctx, sys, size, w.id)
					if err != nil {
						return fmt.Errorf("%s: %w", topo, err)
					}
					r.measure(ctx, topo, w, round, d)
					r.discard(d)
				}
			}
		}
	}
	return nil
}

// runShared starts one deployment per system and runs the throughput
// workloads on them. With -pause-idle the deployment not being measured is
// stopped with SIGSTOP so that its background work (a storage compaction, a
// backend commit) cannot take CPU from the one being measured.
func (r *runner) runShared(ctx context.Context, size int, ws []*workload) error {
	topo := topologyName(size)
	deps := map[string]*deployment{}
	defer func() {
		for _, d := range deps {
			r.discard(d)
		}
	}()
	for _, sys := range systems {
		d, err := r.newDeployment(ctx, sys, size, "shared")
		if err != nil {
			return err
		}
		deps[sys] = d
		if r.opts.pauseIdle {
			d.pause()
		}
	}
	setupDone := map[string]bool{}
	for _, w := range ws {
		for round := 1; round <= r.opts.rounds; round++ {
			for _, sys := range order(round) {
				if err := ctx.Err(); err != nil {
					return err
				}
				d := deps[sys]
				if err := d.alive(); err != nil {
					// Replace a crashed deployment so the remaining
					// workloads still run; the crash is in the log.
					r.logf("%v; starting a new %s deployment (log: %s)", err, sys, d.dir)
					d.kill()
					nd, err := r.newDeployment(ctx, sys, size, "shared")
					if err != nil {
						return err
					}
					deps[sys], d = nd, nd
					setupDone = map[string]bool{}
				} else if err := d.resume(ctx); err != nil {
					r.results.fail(topo, w.id, sys, round, err)
					r.logf("%s %s round %d %s: %v", topo, w.id, round, sys, err)
					continue
				}
				if w.setup != nil && !setupDone[sys+"/"+w.id] {
					if err := w.setup(ctx, r, d); err != nil {
						r.results.fail(topo, w.id, sys, round, fmt.Errorf("setup: %w", err))
						r.logf("%s %s setup on %s: %v", topo, w.id, sys, err)
						continue
					}
					setupDone[sys+"/"+w.id] = true
				}
				r.measure(ctx, topo, w, round, d)
				if r.opts.pauseIdle {
					d.pause()
				}
			}
		}
	}
	return nil
}

// measure runs w once on d and records the outcome.
func (r *runner) measure(ctx context.Context, topo string, w *workload, round int, d *deployment) {
	rctx, cancel := context.WithTimeout(ctx, r.opts.runTimeout)
	defer cancel()
	prof := r.startProfile(rctx, topo, w, round, d)
	start := time.Now()
	v, err := w.run(rctx, r, d)
	prof.finish(ctx)
	if err == nil {
		// A run whose server died underneath it measured nothing useful.
		err = d.alive()
	}
	if err != nil {
		r.results.fail(topo, w.id, d.system, round, err)
		r.logf("%s %s round %d/%d %s: FAILED: %v", topo, w.id, round, r.opts.rounds, d.system, err)
		return
	}
	r.results.add(topo, w.id, d.system, round, v)
	r.logf("%s %s round %d/%d %s (%v): %s", topo, w.id, round, r.opts.rounds, d.system,
		time.Since(start).Round(100*time.Millisecond), formatValues(w, v))
}

func formatValues(w *workload, v values) string {
	if !w.resource() {
		s := fmt.Sprintf("%.0f %s, p99 %s", v[keyRate], w.unit, formatSeconds(v[keyP99]))
		if n := v[keyErrs]; n > 0 {
			s += fmt.Sprintf(", %.0f errors", n)
		}
		return s
	}
	var parts []string
	for _, m := range w.metrics {
		if x, ok := v[m.key]; ok {
			parts = append(parts, fmt.Sprintf("%s %s", m.key, formatUnit(x, m.unit)))
		}
	}
	return strings.Join(parts, ", ")
}

// benchmark runs etcd's benchmark tool against d and parses its summary.
func (r *runner) benchmark(ctx context.Context, d *deployment, clients, conns int, args ...string) (values, error) {
	full := []string{
		"--endpoints=" + strings.Join(d.leaderFirst(ctx), ","),
		"--clients=" + strconv.Itoa(clients),
		"--conns=" + strconv.Itoa(conns),
		"--precise",
	}
	full = append(full, args...)
	if r.opts.verbose {
		r.logf("%s %s", filepath.Base(r.bins.benchmark), strings.Join(full, " "))
	}
	cmd := exec.CommandContext(ctx, r.bins.benchmark, full...)
	cmd.Env = cleanEnv()
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	err := cmd.Run()
	if ctx.Err() != nil {
		return nil, fmt.Errorf("benchmark %s: %w", args[0], ctx.Err())
	}
	if err != nil {
		return nil, fmt.Errorf("benchmark %s: %w\n%s", args[0], err, tail(out.Bytes(), 2000))
	}
	v, err := parseBenchmark(out.String())
	if err != nil {
		return nil, fmt.Errorf("benchmark %s: %w\n%s", args[0], err, tail(out.Bytes(), 2000))
	}
	return v, nil
}

var (
	reRPS    = regexp.MustCompile(`(?m)^\s*Requests/sec:\s+([0-9.eE+-]+)\s*$`)
	reP99    = regexp.MustCompile(`(?m)^\s*99% in ([0-9.eE+-]+) secs\.\s*$`)
	reErrors = regexp.MustCompile(`(?m)^\s*\[(\d+)\]\t`)
)

// errNoSummary means the benchmark tool's output had no result summary:
// every request failed, or the tool failed before it began.
var errNoSummary = errors.New("no summary in the benchmark tool's output")

// parseBenchmark reads requests per second, the 99th percentile latency and
// the error count from the report of etcd's benchmark tool (pkg/report).
func parseBenchmark(out string) (values, error) {
	v := values{}
	for _, m := range reErrors.FindAllStringSubmatch(out, -1) {
		n, _ := strconv.Atoi(m[1])
		v[keyErrs] += float64(n)
	}
	rps := reRPS.FindStringSubmatch(out)
	p99 := reP99.FindStringSubmatch(out)
	if rps == nil || p99 == nil {
		if v[keyErrs] > 0 {
			return nil, fmt.Errorf("all %.0f requests failed", v[keyErrs])
		}
		return nil, errNoSummary
	}
	var err error
	if v[keyRate], err = strconv.ParseFloat(rps[1], 64); err != nil {
		return nil, fmt.Errorf("requests/sec %q: %w", rps[1], err)
	}
	if v[keyP99], err = strconv.ParseFloat(p99[1], 64); err != nil {
		return nil, fmt.Errorf("p99 %q: %w", p99[1], err)
	}
	return v, nil
}
