package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strconv"
)

// values are one run's figures by metric key.
type values map[string]float64

// Throughput workloads report these two keys.
const (
	keyRate = "rate" // operations (or events) per second
	keyP99  = "p99"  // seconds
	keyErrs = "errors"
)

// A metric is one row of the resource table.
type metric struct {
	key   string
	label string
	unit  string // "MiB" or "s"
}

// A workload is one thing measured on both systems. Throughput workloads
// (metrics == nil) share a long-running deployment per system and report
// keyRate and keyP99; resource workloads start a fresh deployment for every
// run and report their metrics.
type workload struct {
	id    string
	title string
	unit  string // of keyRate: "req/s" or "events/s"
	// metrics, for a resource workload, are the rows it reports.
	metrics []metric
	// setup, if set, runs once on each shared deployment before the
	// workload's first round (preloading the keys a range reads).
	setup func(ctx context.Context, r *runner, d *deployment) error
	run   func(ctx context.Context, r *runner, d *deployment) (values, error)
}

func (w *workload) resource() bool { return w.metrics != nil }

// Totals of the full run. -quick divides them by quickDivisor.
const quickDivisor = 20

// scale returns total, divided down under -quick but not below floor.
func scale(quick bool, total, floor int) int {
	if !quick {
		return total
	}
	return max(total/quickDivisor, floor)
}

// countName writes 1000000 as 1M and 100000 as 100k.
func countName(n int) string {
	switch {
	case n >= 1_000_000 && n%1_000_000 == 0:
		return fmt.Sprintf("%dM", n/1_000_000)
	case n >= 1000 && n%1000 == 0:
		return fmt.Sprintf("%dk", n/1000)
	}
	return groupThousands(int64(n))
}

// Keys the range workloads read, loaded by their setup.
const (
	rangeOneKey    = "bench/range/one"
	rangeManyFrom  = "bench/range/many/"
	rangeManyEnd   = "bench/range/many0" // '/'+1
	rangeManyCount = 1000
)

// workloads returns the catalogue in the order it runs and is reported.
// Titles name the sizes a run uses, which -quick makes smaller.
func workloads(quick bool) []*workload {
	var ws []*workload
	put := func(clients, conns, total int) {
		for _, seq := range []bool{true, false} {
			id, title := fmt.Sprintf("put-%d", clients), fmt.Sprintf("put, %d client", clients)
			if clients > 1 {
				title = fmt.Sprintf("put, %d clients/%d conns", clients, conns)
			}
			if seq {
				id, title = id+"-seq", title+", sequential keys"
			} else {
				id, title = id+"-rand", title+", random keys"
			}
			ws = append(ws, &workload{
				id: id, title: title, unit: "req/s",
				run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
					n := r.scale(total, 200)
					args := []string{"put", "--key-size=8", "--val-size=256", "--total=" + strconv.Itoa(n)}
					if seq {
						// Each key once, in order, within a run.
						args = append(args, "--sequential-keys", "--key-space-size="+strconv.Itoa(n))
					} else {
						args = append(args, "--key-space-size=1000000")
					}
					return r.benchmark(ctx, d, clients, conns, args...)
				},
			})
		}
	}
	put(1, 1, 4000)
	put(100, 10, 60000)
	put(1000, 100, 100000)

	for _, c := range []struct{ id, title, flag string }{
		{"range-1-l", "range 1 key, linearizable, 100 clients/10 conns", "l"},
		{"range-1-s", "range 1 key, serializable, 100 clients/10 conns", "s"},
	} {
		ws = append(ws, &workload{
			id: c.id, title: c.title, unit: "req/s",
			setup: loadRangeKeys,
			run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
				return r.benchmark(ctx, d, 100, 10, "range", rangeOneKey,
					"--consistency="+c.flag, "--total="+strconv.Itoa(r.scale(100000, 500)))
			},
		})
	}
	ws = append(ws, &workload{
		id: "range-1000", title: "range 1000 keys, linearizable, 10 clients/10 conns", unit: "req/s",
		setup: loadRangeKeys,
		run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
			return r.benchmark(ctx, d, 10, 10, "range", rangeManyFrom, rangeManyEnd,
				"--consistency=l", "--total="+strconv.Itoa(r.scale(5000, 50)))
		},
	})
	ws = append(ws, &workload{
		id: "txn-put", title: "txn-put, 1 put per txn, 100 clients/10 conns", unit: "req/s",
		run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
			return r.benchmark(ctx, d, 100, 10, "txn-put", "--key-size=8", "--val-size=256",
				"--txn-ops=1", "--key-space-size=1000000", "--total="+strconv.Itoa(r.scale(60000, 200)))
		},
	})
	wc := watchConfigFor(quick)
	ws = append(ws, &workload{
		id:    "watch-fanout",
		title: fmt.Sprintf("watch fan-out, %s watchers on %d keys", countName(wc.watchers), wc.keys),
		unit:  "events/s",
		run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
			return runWatch(ctx, r, d, wc)
		},
	})
	ws = append(ws, &workload{
		id: "lease-keepalive", title: "lease keep-alive, 100 clients/10 conns", unit: "req/s",
		run: func(ctx context.Context, r *runner, d *deployment) (values, error) {
			return r.benchmark(ctx, d, 100, 10, "lease-keepalive", "--total="+strconv.Itoa(r.scale(100000, 500)))
		},
	})

	nLoad, nOver := countName(scale(quick, loadKeys, loadKeysQuick)), countName(scale(quick, overwriteKeys, overwriteKeysQuick))
	ws = append(ws, &workload{
		id:    "load-1m",
		title: "load " + nLoad + " keys of 256 bytes, then restart",
		metrics: []metric{
			{"rss_peak", "peak RSS (VmHWM) while loading " + nLoad + " keys", "MiB"},
			{"start", "start to serving with " + nLoad + " keys", "s"},
			{"rss_restart", "RSS once serving again with " + nLoad + " keys", "MiB"},
		},
		run: runLoad,
	})
	ws = append(ws, &workload{
		id:    "disk-overwrite",
		title: fmt.Sprintf("%d rounds of overwriting %s keys, compaction after each", overwriteTimes, nOver),
		metrics: []metric{
			{"disk_compacted", fmt.Sprintf("data dir after %d overwrites of %s keys, each compacted", overwriteTimes, nOver), "MiB"},
			{"disk_settled", "... the same after the settle period", "MiB"},
			{"disk_defrag", "... the same after defrag", "MiB"},
			{"disk_wal", "write-ahead log files in it after the settle period", "MiB"},
		},
		run: runDisk,
	})
	nMem := countName(scale(quick, memWatchers, memWatchersQuick))
	ws = append(ws, &workload{
		id:    "watch-memory",
		title: nMem + " watchers on distinct prefixes, " + strconv.Itoa(memStreams) + " streams",
		metrics: []metric{
			{"watch_rss", "RSS growth for " + nMem + " watchers on distinct prefixes", "MiB"},
		},
		run: runWatchMemory,
	})
	return ws
}

// selectWorkloads keeps the workloads whose ID matches one of patterns.
func selectWorkloads(all []*workload, patterns []string) []*workload {
	var out []*workload
	for _, w := range all {
		for _, p := range patterns {
			if ok, _ := filepath.Match(p, w.id); ok {
				out = append(out, w)
				break
			}
		}
	}
	return out
}
