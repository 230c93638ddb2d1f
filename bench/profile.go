package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// profiler takes Go profiles of the leader of a deployment while a
// workload runs (-pprof DIR): a CPU profile of the first -pprof-seconds of
// the run, and the heap's allocation profile before and after it, so that
//
//	go tool pprof -top DIR/single-put-100-seq-cairn-r1.cpu.pb.gz
//	go tool pprof -top -sample_index=alloc_space -diff_base DIR/...allocs-before.pb.gz DIR/...allocs-after.pb.gz
//
// show where the server spent its time and what it allocated. Both servers
// serve /debug/pprof (etcd with --enable-pprof, which -pprof adds). A
// profiled round pays for the profiling: its figures are for reading the
// profile beside, not for the table.
type profiler struct {
	r      *runner
	prefix string // DIR/<topology>-<workload>-<system>-r<round>
	base   string // the leader's client URL
	wg     sync.WaitGroup
	errs   []error
	mu     sync.Mutex
}

func (r *runner) startProfile(ctx context.Context, topo string, w *workload, round int, d *deployment) *profiler {
	if r.opts.pprofDir == "" || w.resource() {
		return nil
	}
	p := &profiler{
		r:      r,
		prefix: filepath.Join(r.opts.pprofDir, fmt.Sprintf("%s-%s-%s-r%d", topo, w.id, d.system, round)),
		base:   "http://" + d.leaderFirst(ctx)[0],
	}
	p.fetch(ctx, "/debug/pprof/allocs", ".allocs-before.pb.gz")
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		secs := int(r.opts.pprofSeconds / time.Second)
		p.fetch(ctx, fmt.Sprintf("/debug/pprof/profile?seconds=%d", max(secs, 1)), ".cpu.pb.gz")
	}()
	return p
}

// finish waits for the CPU profile and takes the allocation profile after
// the run.
func (p *profiler) finish(ctx context.Context) {
	if p == nil {
		return
	}
	p.wg.Wait()
	p.fetch(ctx, "/debug/pprof/allocs", ".allocs-after.pb.gz")
	for _, err := range p.errs {
		p.r.logf("profile: %v", err)
	}
}

func (p *profiler) fetch(ctx context.Context, path, suffix string) {
	err := func() error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.base+path, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: %s", path, resp.Status)
		}
		f, err := os.Create(p.prefix + suffix)
		if err != nil {
			return err
		}
		if _, err := io.Copy(f, resp.Body); err != nil {
			f.Close()
			return err
		}
		return f.Close()
	}()
	if err != nil {
		p.mu.Lock()
		p.errs = append(p.errs, fmt.Errorf("%s from %s: %w", path, p.base, err))
		p.mu.Unlock()
	}
}
