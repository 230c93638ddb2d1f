package robustness

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/tests/framework"
)

// profile sizes a run.
type profile struct {
	traffic trafficConfig
	// warmup is how many writes must succeed before the first fault, and
	// after how many more following each recovery the next step starts.
	warmup, after int64
	// faultFor is how long a fault lasts: a member down, a partition, a
	// blackhole, a delay.
	faultFor time.Duration
	// rounds is how many times a run injects its fault.
	rounds int
}

var (
	// shortProfile is what go test runs: one run per fault kind, a few
	// seconds of traffic each.
	shortProfile = profile{
		traffic:  trafficConfig{clients: 8, rate: 150, keys: 8, timeout: 2 * time.Second},
		warmup:   100,
		after:    100,
		faultFor: 2 * time.Second,
		rounds:   1,
	}
	// soakProfile is a soak's run: more traffic, longer faults, each
	// injected three times.
	soakProfile = profile{
		traffic:  trafficConfig{clients: 10, rate: 250, keys: 10, timeout: 2 * time.Second},
		warmup:   300,
		after:    300,
		faultFor: 4 * time.Second,
		rounds:   3,
	}
)

// Environment of the suite (README.md).
const (
	envSeed         = "CAIRN_ROBUSTNESS_SEED"
	envSoak         = "CAIRN_ROBUSTNESS_SOAK"
	envFaults       = "CAIRN_ROBUSTNESS_FAULTS"
	envArtifacts    = "CAIRN_ROBUSTNESS_ARTIFACTS"
	envCheckTimeout = "CAIRN_ROBUSTNESS_CHECK_TIMEOUT"
)

// TestRobustness is the short profile: one run per fault kind with a fixed
// seed (CAIRN_ROBUSTNESS_SEED overrides it; CAIRN_ROBUSTNESS_FAULTS
// restricts the kinds).
func TestRobustness(t *testing.T) {
	seed := envInt(t, envSeed, 1)
	for i, f := range selectedFaults(t) {
		t.Run(f.name, func(t *testing.T) {
			runScenario(t, f, seed+int64(i), shortProfile)
		})
	}
}

// TestRobustnessSoak runs random fault kinds, one run after another, for
// CAIRN_ROBUSTNESS_SOAK (a duration; at least one run); it is skipped when
// that is unset. Run i uses seed CAIRN_ROBUSTNESS_SEED+i (default: from
// the clock), and its log names the command that repeats it.
func TestRobustnessSoak(t *testing.T) {
	d := os.Getenv(envSoak)
	if d == "" {
		t.Skipf("set %s (e.g. 30m) to run the soak", envSoak)
	}
	soak, err := time.ParseDuration(d)
	if err != nil || soak <= 0 {
		t.Fatalf("%s=%q: want a positive duration", envSoak, d)
	}
	seed := envInt(t, envSeed, time.Now().UnixNano()%1_000_000)
	faults := selectedFaults(t)
	deadline := time.Now().Add(soak)
	var totals runStats
	for i := 0; i == 0 || time.Now().Before(deadline); i++ {
		s := seed + int64(i)
		f := faults[rand.New(rand.NewSource(s)).Intn(len(faults))]
		name := fmt.Sprintf("run%03d-%s-seed%d", i, f.name, s)
		t.Run(name, func(t *testing.T) {
			t.Logf("reproduce with: %s=1s %s=%d %s=%s go test ./tests/robustness -run TestRobustnessSoak -v", envSoak, envSeed, s, envFaults, f.name)
			st := runScenario(t, f, s, soakProfile)
			totals.add(st)
		})
		if t.Failed() {
			break
		}
	}
	t.Logf("soak totals: %s", totals)
}

// runStats summarises runs for the log.
type runStats struct {
	runs, ops, unknown, recovered, dropped, events, resumed int
	faults                                                  []string
}

func (s *runStats) add(o runStats) {
	s.runs += o.runs
	s.ops += o.ops
	s.unknown += o.unknown
	s.recovered += o.recovered
	s.dropped += o.dropped
	s.events += o.events
	s.resumed += o.resumed
	s.faults = append(s.faults, o.faults...)
}

func (s runStats) String() string {
	return fmt.Sprintf("%d runs, %d operations (%d failed ambiguously: %d found in the watch history, %d dropped, %d kept unknown), %d watch events per watcher, %d watch resumptions, faults: %s",
		s.runs, s.ops, s.unknown+s.recovered+s.dropped, s.recovered, s.dropped, s.unknown, s.events, s.resumed, strings.Join(s.faults, ", "))
}

// run is one cluster under one fault kind.
type run struct {
	t      *testing.T
	seed   int64
	rng    *rand.Rand
	prof   profile
	net    *peerNetwork
	c      *framework.Cluster
	eps    *endpoints
	hist   *history
	ids    map[string]uint64 // member name -> ID
	faults []string          // what was injected, for the summary
}

func (r *run) logf(format string, args ...any) {
	r.t.Helper()
	r.t.Logf("[%v] "+format, append([]any{time.Duration(r.hist.now()).Round(time.Millisecond)}, args...)...)
}

// runScenario runs one cluster: traffic, the fault prof.rounds times, and
// every check.
func runScenario(t *testing.T, f fault, seed int64, prof profile) runStats {
	started := time.Now()
	r := &run{t: t, seed: seed, rng: rand.New(rand.NewSource(seed)), prof: prof, hist: newHistory(), ids: map[string]uint64{}}
	r.net = newPeerNetwork(seed, func(format string, args ...any) { r.logf(format, args...) })
	t.Logf("seed %d, fault %s", seed, f.name)

	r.c = framework.StartCluster(t, 3, framework.Config{
		DataDir:          t.TempDir(),
		AdvertisePeerURL: r.net.add,
		Args: []string{
			"--log-level", "warn",
			// Small enough that followers that fell behind and new
			// members catch up from a snapshot.
			"--snapshot-count", "400", "--snapshot-catchup-entries", "100",
		},
	})
	t.Cleanup(r.net.close)
	eps, err := newEndpoints(r.c.Endpoints())
	if err != nil {
		t.Fatal(err)
	}
	r.eps = eps
	t.Cleanup(eps.close)
	r.learnMembers()

	startRev := r.startRevision()
	var watchers []*watcher
	for slot := range r.c.Members {
		watchers = append(watchers, startWatcher(eps, slot, startRev+1))
	}
	defer func() {
		for _, w := range watchers {
			w.stop()
		}
	}()
	tr := startTraffic(prof.traffic, eps, r.hist, seed)
	defer tr.stop()

	r.waitWrites(prof.warmup, "warm-up")
	for round := range prof.rounds {
		r.logf("round %d: %s", round+1, f.name)
		f.inject(r)
		r.faults = append(r.faults, f.name)
		r.waitWrites(prof.after, "progress after recovery")
	}
	tr.stop()
	r.net.heal()
	r.logf("traffic stopped")

	final := r.converge()
	var (
		problems []string
		recorded = make([][]watchResponse, len(watchers))
		resumed  int
	)
	for slot, w := range watchers {
		r.poll(60*time.Second, fmt.Sprintf("watcher on slot %d reaching revision %d", slot, final), func() error {
			if last := w.lastRev(); last < final {
				return fmt.Errorf("at revision %d", last)
			}
			return nil
		})
		resps, streams, protoErrs := w.stop()
		recorded[slot] = resps
		resumed += streams - 1
		for _, e := range protoErrs {
			problems = append(problems, fmt.Sprintf("watcher on slot %d: %s", slot, e))
		}
	}

	ref, refProblems := r.reference(startRev+1, final)
	problems = append(problems, refProblems...)
	problems = append(problems, checkReference(ref, startRev+1, final)...)
	for slot, resps := range recorded {
		problems = append(problems, checkWatcher(r.c.Members[slot].Name(), resps, ref, startRev+1, final)...)
	}
	ops := r.hist.operations()
	problems = append(problems, checkAcknowledged(ops, ref)...)
	patched, dropped, unknown := patchHistory(ops, ref)
	recovered := 0
	for _, op := range patched {
		if op.Output.(*response).Recovered {
			recovered++
		}
	}
	dir := artifactsDir(t, seed)
	checkStart := time.Now()
	problems = append(problems, checkLinearizable(patched, startRev, envDuration(t, envCheckTimeout, 5*time.Minute), dir)...)
	checkTook := time.Since(checkStart)
	problems = append(problems, r.checkHashKV(final)...)

	st := runStats{
		runs: 1, ops: len(ops), unknown: unknown, recovered: recovered, dropped: dropped,
		events: len(ref), resumed: resumed, faults: r.faults,
	}
	t.Logf("%s; final revision %d; linearizability checked in %v; run took %v",
		st, final, checkTook.Round(time.Millisecond), time.Since(started).Round(time.Millisecond))
	if len(problems) > 0 {
		r.saveArtifacts(dir, ops, ref, recorded, problems, runMeta{Seed: seed, Fault: f.name, StartRev: startRev, FinalRev: final})
		for i, p := range problems {
			if i == maxReported {
				t.Errorf("... and %d more problems (problems.txt)", len(problems)-i)
				break
			}
			t.Error(p)
		}
		t.Errorf("seed %d, fault %s: %d problems; history, watch events and member logs in %s", seed, f.name, len(problems), dir)
	}
	return st
}

// learnMembers records every member's ID, for the proxies to recognise
// their connections.
func (r *run) learnMembers() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pb.NewClusterClient(r.eps.conn(0)).MemberList(ctx, &pb.MemberListRequest{Linearizable: true})
	if err != nil {
		r.t.Fatalf("member list: %v", err)
	}
	for _, m := range resp.Members {
		r.ids[m.Name] = m.ID
		r.net.learn(m.ID, m.Name)
	}
	if len(r.ids) != len(r.c.Members) {
		r.t.Fatalf("member list %v does not name the %d members", resp.Members, len(r.c.Members))
	}
}

// startRevision reads the revision of the fresh cluster, which must hold
// no key yet.
func (r *run) startRevision() int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := pb.NewKVClient(r.eps.conn(0)).Range(ctx, &pb.RangeRequest{Key: []byte(keyPrefix), RangeEnd: []byte(rangeEnd)})
	if err != nil {
		r.t.Fatalf("read the start revision: %v", err)
	}
	if len(resp.Kvs) != 0 {
		r.t.Fatalf("a fresh cluster holds %d keys", len(resp.Kvs))
	}
	return resp.Header.Revision
}

// poll is framework.Poll for the run's test.
func (r *run) poll(d time.Duration, what string, cond func() error) {
	r.t.Helper()
	framework.Poll(r.t, d, what, cond)
}

// waitWrites waits until n more writes succeed.
func (r *run) waitWrites(n int64, what string) {
	r.t.Helper()
	target := r.hist.writes.Load() + n
	r.poll(90*time.Second, fmt.Sprintf("%s: %d writes", what, n), func() error {
		if got := r.hist.writes.Load(); got < target {
			return fmt.Errorf("%d of %d writes succeeded", got-(target-n), n)
		}
		return nil
	})
}

// hold keeps a fault in place for the profile's fault duration, during
// which, if the cluster keeps a quorum, writes must keep succeeding.
func (r *run) hold(progress bool) {
	r.t.Helper()
	timer := time.NewTimer(r.prof.faultFor)
	defer timer.Stop()
	if progress {
		r.waitWrites(10, "writes during the fault")
	}
	<-timer.C
}

// converge waits, after the traffic stopped and every fault was lifted,
// until every member runs, they agree on a leader and all report the same
// revision twice in a row, which it returns.
func (r *run) converge() int64 {
	r.t.Helper()
	for _, m := range r.c.Members {
		if !m.Running() {
			r.t.Fatalf("member %s is not running at the end of the run", m.Name())
		}
	}
	r.c.Leader(r.t)
	var final int64
	same := 0
	r.poll(60*time.Second, "members reaching the same revision", func() error {
		revs, err := r.revisions()
		if err != nil {
			same = 0
			return err
		}
		for _, rev := range revs {
			if rev != revs[0] {
				same = 0
				return fmt.Errorf("revisions %v", revs)
			}
		}
		if revs[0] == final {
			same++
		} else {
			final, same = revs[0], 1
		}
		if same < 2 {
			return fmt.Errorf("revision %d not yet stable", final)
		}
		return nil
	})
	return final
}

// revisions returns each member's applied revision (a serializable read).
func (r *run) revisions() ([]int64, error) {
	var revs []int64
	for slot := range r.c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		resp, err := pb.NewKVClient(r.eps.conn(slot)).Range(ctx, &pb.RangeRequest{Key: []byte("\x00none"), Serializable: true})
		cancel()
		if err != nil {
			return nil, fmt.Errorf("member %s: %v", r.c.Members[slot].Name(), err)
		}
		revs = append(revs, resp.Header.Revision)
	}
	return revs, nil
}

// reference reads the run's whole history from every member with a fresh
// watch and checks that they agree; the first member's is the reference.
func (r *run) reference(from, to int64) ([]event, []string) {
	var (
		ref      []event
		problems []string
	)
	for slot, m := range r.c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		resps, err := readHistory(ctx, r.eps.conn(slot), from, to)
		cancel()
		if err != nil {
			r.t.Fatalf("read the history from %s: %v", m.Name(), err)
		}
		events := flatten(resps, to)
		if slot == 0 {
			ref = events
			continue
		}
		for i := 0; i < len(ref) || i < len(events); i++ {
			if i < len(ref) && i < len(events) && eventsEqual(ref[i], events[i]) {
				continue
			}
			var a, b string
			if i < len(ref) {
				a = ref[i].String()
			}
			if i < len(events) {
				b = events[i].String()
			}
			problems = append(problems, fmt.Sprintf("members' histories differ at event %d: %s has %q, %s has %q",
				i, r.c.Members[0].Name(), a, m.Name(), b))
			break
		}
	}
	return ref, problems
}

// checkHashKV compares the members' HashKV at the final revision.
func (r *run) checkHashKV(rev int64) []string {
	var (
		problems []string
		first    *pb.HashKVResponse
	)
	for slot, m := range r.c.Members {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		h, err := pb.NewMaintenanceClient(r.eps.conn(slot)).HashKV(ctx, &pb.HashKVRequest{Revision: rev})
		cancel()
		if err != nil {
			problems = append(problems, fmt.Sprintf("HashKV of %s at revision %d: %v", m.Name(), rev, err))
			continue
		}
		if first == nil {
			first = h
			continue
		}
		if h.Hash != first.Hash || h.CompactRevision != first.CompactRevision || h.HashRevision != first.HashRevision {
			problems = append(problems, fmt.Sprintf("HashKV at revision %d: %s has hash %x (compacted at %d, hash revision %d), %s has %x (%d, %d)",
				rev, r.c.Members[0].Name(), first.Hash, first.CompactRevision, first.HashRevision, m.Name(), h.Hash, h.CompactRevision, h.HashRevision))
		}
	}
	return problems
}

// artifactsDir is where a failed run leaves its files.
func artifactsDir(t *testing.T, seed int64) string {
	base := os.Getenv(envArtifacts)
	if base == "" {
		base = filepath.Join(os.TempDir(), "cairn-robustness")
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())
	return filepath.Join(base, fmt.Sprintf("%s-seed%d-%s", name, seed, time.Now().Format("20060102-150405")))
}

// maxReported bounds the problems a failed run prints; all of them go to
// its problems.txt.
const maxReported = 20

// saveArtifacts writes the run's problems, history, watch events and
// member logs.
func (r *run) saveArtifacts(dir string, ops []porcupine.Operation, ref []event, watched [][]watchResponse, problems []string, meta runMeta) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		r.t.Logf("cannot save artifacts: %v", err)
		return
	}
	var hist []opJSON
	for _, op := range ops {
		hist = append(hist, opJSON{op.ClientId, op.Call, op.Return, op.Input.(*request), op.Output.(*response)})
	}
	write := func(name string, v any) {
		b, err := json.MarshalIndent(v, "", " ")
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, name), b, 0o644)
		}
		if err != nil {
			r.t.Logf("cannot save %s: %v", name, err)
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "problems.txt"), []byte(strings.Join(problems, "\n")+"\n"), 0o644); err != nil {
		r.t.Logf("cannot save problems.txt: %v", err)
	}
	write("run.json", meta)
	write("history.json", hist)
	write("reference-events.json", ref)
	for slot, resps := range watched {
		write(fmt.Sprintf("watch-slot%d.json", slot), resps)
	}
	for _, m := range r.c.Members {
		os.WriteFile(filepath.Join(dir, m.Name()+".log"), []byte(m.Logs()), 0o644)
	}
}

// runMeta identifies a saved run.
type runMeta struct {
	Seed     int64  `json:"seed"`
	Fault    string `json:"fault"`
	StartRev int64  `json:"start_rev"`
	FinalRev int64  `json:"final_rev"`
}

// opJSON is one operation in history.json.
type opJSON struct {
	Client int       `json:"client"`
	Call   int64     `json:"call_ns"`
	Return int64     `json:"return_ns"`
	Req    *request  `json:"request"`
	Resp   *response `json:"response"`
}

// TestRecheck runs the history checks again on the files a failed run
// saved, in the directory CAIRN_ROBUSTNESS_RECHECK names; it is skipped
// when that is unset.
func TestRecheck(t *testing.T) {
	dir := os.Getenv("CAIRN_ROBUSTNESS_RECHECK")
	if dir == "" {
		t.Skip("set CAIRN_ROBUSTNESS_RECHECK to the directory of a failed run")
	}
	read := func(name string, v any) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err == nil {
			err = json.Unmarshal(b, v)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
	}
	var (
		meta runMeta
		hist []opJSON
		ref  []event
	)
	read("run.json", &meta)
	read("history.json", &hist)
	read("reference-events.json", &ref)
	var ops []porcupine.Operation
	for _, o := range hist {
		ops = append(ops, porcupine.Operation{ClientId: o.Client, Input: o.Req, Output: o.Resp, Call: o.Call, Return: o.Return})
	}
	problems := checkReference(ref, meta.StartRev+1, meta.FinalRev)
	problems = append(problems, checkAcknowledged(ops, ref)...)
	patched, dropped, unknown := patchHistory(ops, ref)
	start := time.Now()
	problems = append(problems, checkLinearizable(patched, meta.StartRev, envDuration(t, envCheckTimeout, 5*time.Minute), t.TempDir())...)
	t.Logf("%d operations, %d dropped, %d unknown; checked in %v", len(ops), dropped, unknown, time.Since(start).Round(time.Millisecond))
	for _, p := range problems {
		t.Error(p)
	}
}

func selectedFaults(t *testing.T) []fault {
	v := os.Getenv(envFaults)
	if v == "" {
		return faults
	}
	var out []fault
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		i := slices.IndexFunc(faults, func(f fault) bool { return f.name == name })
		if i < 0 {
			var names []string
			for _, f := range faults {
				names = append(names, f.name)
			}
			t.Fatalf("%s: unknown fault %q; the faults are %s", envFaults, name, strings.Join(names, ", "))
		}
		out = append(out, faults[i])
	}
	return out
}

func envInt(t *testing.T, name string, def int64) int64 {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return n
}

func envDuration(t *testing.T, name string, def time.Duration) time.Duration {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		t.Fatalf("%s=%q: %v", name, v, err)
	}
	return d
}
