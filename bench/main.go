// Command bench measures cairn beside etcd 3.6 on the same machine.
//
// It builds cairn from this checkout, etcd v3.6.16 from tests/tools/etcd and
// etcd's own benchmark tool (v3.5.11) from bench/tools/benchmark, starts both
// servers with the same flags and their data on the same disk, runs every
// selected workload against each of them in turn for -rounds rounds, and
// prints the medians side by side with the cairn/etcd ratio:
//
//	cd bench && go run .                      # everything, 3 rounds
//	cd bench && go run . -quick -rounds 1     # a smoke run
//	cd bench && go run . -workloads 'put-*' -cluster single -markdown /tmp/b.md
//
// README.md beside this file explains each figure and how to read the ratios.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// errUsage marks a bad command line; main exits 2 for it.
var errUsage = errors.New("usage")

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// options are the parsed command line.
type options struct {
	rounds     int
	cluster    string   // single, three or both
	patterns   []string // -workloads, split on commas
	quick      bool
	dataRoot   string
	keep       bool
	markdown   string
	repo       string
	binDir     string
	cairnBin   string
	cairnRev   string
	etcdBin    string
	benchBin   string
	serverArgs []string
	settle     time.Duration
	runTimeout time.Duration
	pauseIdle  bool
	list       bool
	verbose    bool
	// pprofDir, if set, receives profiles of each throughput run's leader
	// (profile.go), each covering pprofSeconds.
	pprofDir     string
	pprofSeconds time.Duration
}

func parseFlags(args []string, stderr io.Writer) (*options, error) {
	o := &options{}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var workloads, serverArgs string
	fs.IntVar(&o.rounds, "rounds", 3, "rounds per workload; each round runs cairn and etcd once, alternating which goes first")
	fs.StringVar(&o.cluster, "cluster", "both", "topologies to measure: single (one member), three (a 3-member cluster on loopback) or both")
	fs.StringVar(&workloads, "workloads", "*", "comma-separated glob patterns of workload IDs to run (see -list)")
	fs.BoolVar(&o.quick, "quick", false, "scale every total down for a smoke run; the figures are then not comparable with a full run")
	fs.StringVar(&o.dataRoot, "data-root", "", "directory for the servers' data and logs (default: a new temporary directory, removed afterwards)")
	fs.BoolVar(&o.keep, "keep", false, "keep the data root (data directories and server logs) after the run")
	fs.StringVar(&o.markdown, "markdown", "", "also write the results as Markdown, with the machine and the command, to this file")
	fs.StringVar(&o.repo, "repo", "", "the cairn checkout to build (default: the enclosing repository of the working directory)")
	fs.StringVar(&o.binDir, "bin-dir", "", "where the binaries are built (default: bench/bin in the repository)")
	fs.StringVar(&o.cairnBin, "cairn", "", "use this cairn binary instead of building one")
	fs.StringVar(&o.cairnRev, "cairn-rev", "", "build cairn from this committed revision (git archive) instead of the working tree")
	fs.StringVar(&o.etcdBin, "etcd", "", "use this etcd binary instead of building one")
	fs.StringVar(&o.benchBin, "benchmark", "", "use this benchmark tool binary instead of building one")
	fs.StringVar(&serverArgs, "server-args", "", "extra flags, space-separated, given to both servers after the common ones")
	fs.DurationVar(&o.settle, "settle", 0, "how long the disk workload waits before measuring again (default 30s, 3s with -quick)")
	fs.DurationVar(&o.runTimeout, "run-timeout", 15*time.Minute, "limit for one workload run against one server")
	fs.BoolVar(&o.pauseIdle, "pause-idle", true, "stop (SIGSTOP) the server that is not being measured, so its background work cannot take CPU from the other")
	fs.BoolVar(&o.list, "list", false, "list the workloads and exit")
	fs.BoolVar(&o.verbose, "v", false, "print the benchmark tool's commands")
	fs.StringVar(&o.pprofDir, "pprof", "", "write CPU and allocation profiles of each throughput run's leader into this directory (adds --enable-pprof to both servers)")
	fs.DurationVar(&o.pprofSeconds, "pprof-seconds", 10*time.Second, "length of each CPU profile taken with -pprof, from the start of the run")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: go run . [flags]\n\nRuns the same workloads against cairn and etcd and prints the medians side by side.\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, errUsage
		}
		return nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "unexpected arguments: %q\n", fs.Args())
		return nil, errUsage
	}
	if o.rounds < 1 {
		fmt.Fprintln(stderr, "-rounds must be at least 1")
		return nil, errUsage
	}
	switch o.cluster {
	case "single", "three", "both":
	default:
		fmt.Fprintf(stderr, "-cluster must be single, three or both, not %q\n", o.cluster)
		return nil, errUsage
	}
	for _, p := range strings.Split(workloads, ",") {
		if p = strings.TrimSpace(p); p != "" {
			if _, err := filepath.Match(p, ""); err != nil {
				fmt.Fprintf(stderr, "bad -workloads pattern %q: %v\n", p, err)
				return nil, errUsage
			}
			o.patterns = append(o.patterns, p)
		}
	}
	o.serverArgs = strings.Fields(serverArgs)
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o755); err != nil {
			fmt.Fprintf(stderr, "-pprof: %v\n", err)
			return nil, errUsage
		}
		if o.pprofSeconds < time.Second {
			fmt.Fprintln(stderr, "-pprof-seconds must be at least 1s")
			return nil, errUsage
		}
		o.serverArgs = append(o.serverArgs, "--enable-pprof")
	}
	if o.settle == 0 {
		o.settle = 30 * time.Second
		if o.quick {
			o.settle = 3 * time.Second
		}
	}
	return o, nil
}

// topologies returns the cluster sizes -cluster selects.
func (o *options) topologies() []int {
	switch o.cluster {
	case "single":
		return []int{1}
	case "three":
		return []int{3}
	}
	return []int{1, 3}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	catalogue := workloads(o.quick)
	if o.list {
		for _, w := range catalogue {
			fmt.Fprintf(stdout, "%-18s %s\n", w.id, w.title)
		}
		return nil
	}
	selected := selectWorkloads(catalogue, o.patterns)
	if len(selected) == 0 {
		fmt.Fprintf(stderr, "no workload matches -workloads %q; -list shows them\n", strings.Join(o.patterns, ","))
		return errUsage
	}

	started := time.Now()
	logf := func(format string, a ...any) {
		fmt.Fprintf(stderr, "%s "+format+"\n", append([]any{time.Since(started).Round(time.Second)}, a...)...)
	}

	// The binaries come first: a build failure should cost seconds, not a
	// half-finished run.
	repo, err := findRepo(o.repo)
	if err != nil {
		return err
	}
	// The revision is read before the build: others may commit while a
	// long run goes on.
	rev := describeRevision(ctx, o, repo)
	bins, err := buildAll(ctx, o, repo, logf)
	if err != nil {
		return err
	}

	dataRoot := o.dataRoot
	if dataRoot == "" {
		if dataRoot, err = os.MkdirTemp("", "cairn-bench-"); err != nil {
			return err
		}
		if !o.keep {
			defer os.RemoveAll(dataRoot)
		}
	} else if err := os.MkdirAll(dataRoot, 0o755); err != nil {
		return err
	}
	if dataRoot, err = filepath.Abs(dataRoot); err != nil {
		return err
	}
	logf("data root %s", dataRoot)
	if o.keep {
		defer logf("kept the data root %s", dataRoot)
	}

	r := &runner{
		opts:     o,
		bins:     bins,
		dataRoot: dataRoot,
		logf:     logf,
		results:  newResults(),
	}
	runErr := r.runAll(ctx, selected)

	machine := describeMachine(context.WithoutCancel(ctx), dataRoot, rev)
	rep := &report{
		opts:      o,
		workloads: selected,
		results:   r.results,
		machine:   machine,
		command:   commandLine(args),
		date:      started.UTC(),
		elapsed:   time.Since(started),
		aborted:   runErr,
	}
	fmt.Fprintln(stdout)
	rep.writeText(stdout)
	if o.markdown != "" {
		if err := os.WriteFile(o.markdown, []byte(rep.markdown()), 0o644); err != nil {
			return errors.Join(runErr, err)
		}
		logf("wrote %s", o.markdown)
	}
	return runErr
}

// commandLine renders the invocation as something to paste into a shell from
// the bench directory. "go run ." binaries live in a go-build temporary
// directory, which says nothing useful, so it is shown as "go run .".
func commandLine(args []string) string {
	prog := "go run ."
	if exe := os.Args[0]; !strings.Contains(exe, "go-build") && !strings.HasSuffix(exe, ".test") {
		prog = "./" + filepath.Base(exe)
	}
	parts := []string{"cd bench &&", prog}
	for _, a := range args {
		parts = append(parts, shellQuote(a))
	}
	return strings.Join(parts, " ")
}

func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_=./,:@+", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
