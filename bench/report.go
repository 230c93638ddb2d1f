package main

import (
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// results collects every run by topology, workload and system.
type results struct {
	mu    sync.Mutex
	cells map[string]*cell
}

// A cell is one workload on one system in one topology, over the rounds.
type cell struct {
	runs     map[int]values // by round, successful runs only
	failures map[int]error
}

func newResults() *results { return &results{cells: map[string]*cell{}} }

func (r *results) get(topo, id, system string) *cell {
	k := topo + "/" + id + "/" + system
	c := r.cells[k]
	if c == nil {
		c = &cell{runs: map[int]values{}, failures: map[int]error{}}
		r.cells[k] = c
	}
	return c
}

func (r *results) add(topo, id, system string, round int, v values) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.get(topo, id, system).runs[round] = v
}

func (r *results) fail(topo, id, system string, round int, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.get(topo, id, system).failures[round] = err
}

// median returns the median of key over the successful runs, and whether
// there was any.
func (c *cell) median(key string) (float64, bool) {
	var xs []float64
	for _, v := range c.runs {
		if x, ok := v[key]; ok {
			xs = append(xs, x)
		}
	}
	if len(xs) == 0 {
		return 0, false
	}
	slices.Sort(xs)
	n := len(xs)
	if n%2 == 1 {
		return xs[n/2], true
	}
	return (xs[n/2-1] + xs[n/2]) / 2, true
}

// errors returns the largest error count of any run: the benchmark tool's
// failed requests, or watch events that never arrived.
func (c *cell) errors() float64 {
	var worst float64
	for _, v := range c.runs {
		worst = max(worst, v[keyErrs])
	}
	return worst
}

// series returns key of every round in order, "-" for a failed round.
func (c *cell) series(key string, rounds int, format func(float64) string) string {
	var parts []string
	for round := 1; round <= rounds; round++ {
		if v, ok := c.runs[round]; ok {
			parts = append(parts, format(v[key]))
		} else if _, failed := c.failures[round]; failed {
			parts = append(parts, "failed")
		} else {
			parts = append(parts, "-")
		}
	}
	return strings.Join(parts, " / ")
}

// report renders the results.
type report struct {
	opts      *options
	workloads []*workload
	results   *results
	machine   *machine
	command   string
	date      time.Time
	elapsed   time.Duration
	aborted   error
}

// A row of a rendered table; empty cells are rendered as "-".
type tableRow []string

// throughputRows are the rows of the throughput table for topo: workload,
// cairn rate, etcd rate, ratio, cairn p99, etcd p99, ratio.
func (rep *report) throughputRows(topo string) []tableRow {
	var rows []tableRow
	for _, w := range rep.workloads {
		if w.resource() {
			continue
		}
		c, e := rep.results.get(topo, w.id, cairn), rep.results.get(topo, w.id, etcd)
		cr, cok := c.median(keyRate)
		er, eok := e.median(keyRate)
		cp, _ := c.median(keyP99)
		ep, _ := e.median(keyP99)
		row := tableRow{
			w.title + rep.notes(c, e),
			maybe(cok, formatRate(cr, w.unit)), maybe(eok, formatRate(er, w.unit)), ratio(cr, er, cok && eok),
			maybe(cok, formatSeconds(cp)), maybe(eok, formatSeconds(ep)), ratio(cp, ep, cok && eok),
		}
		rows = append(rows, row)
	}
	return rows
}

// resourceRows are the rows of the resource table for topo: figure, cairn,
// etcd, ratio.
func (rep *report) resourceRows(topo string) []tableRow {
	var rows []tableRow
	for _, w := range rep.workloads {
		if !w.resource() {
			continue
		}
		c, e := rep.results.get(topo, w.id, cairn), rep.results.get(topo, w.id, etcd)
		for _, m := range w.metrics {
			cv, cok := c.median(m.key)
			ev, eok := e.median(m.key)
			rows = append(rows, tableRow{
				m.label + rep.notes(c, e),
				maybe(cok, formatUnit(cv, m.unit)), maybe(eok, formatUnit(ev, m.unit)), ratio(cv, ev, cok && eok),
			})
		}
	}
	return rows
}

// notes marks a row whose medians stand on fewer rounds than asked for, or
// whose runs had errors.
func (rep *report) notes(cells ...*cell) string {
	var s string
	for i, c := range cells {
		if n := len(c.runs); n < rep.opts.rounds && (len(c.failures) > 0 || n > 0) {
			s += fmt.Sprintf(" [%s: %d/%d rounds]", systems[i], n, rep.opts.rounds)
		}
		if e := c.errors(); e > 0 {
			s += fmt.Sprintf(" [%s: %.0f errors]", systems[i], e)
		}
	}
	return s
}

var (
	throughputHeader = tableRow{"workload", "cairn", "etcd", "cairn/etcd", "cairn p99", "etcd p99", "cairn/etcd"}
	resourceHeader   = tableRow{"figure", "cairn", "etcd", "cairn/etcd"}
)

func topologyTitle(topo string) string {
	if topo == "single" {
		return "single member"
	}
	return "3-member cluster on loopback"
}

// writeText prints the tables for a terminal.
func (rep *report) writeText(w io.Writer) {
	mode := "medians of " + plural(rep.opts.rounds, "round")
	if rep.opts.quick {
		mode += ", -quick (smoke run, not comparable with a full run)"
	}
	fmt.Fprintf(w, "cairn vs etcd %s, %s\n", etcdVersion, mode)
	fmt.Fprintln(w, "throughput: higher is better (ratio > 1 favours cairn); p99, memory, disk, time: lower is better (ratio < 1 favours cairn)")
	for _, size := range rep.opts.topologies() {
		topo := topologyName(size)
		if rows := rep.throughputRows(topo); len(rows) > 0 {
			fmt.Fprintf(w, "\n== %s: throughput\n", topologyTitle(topo))
			writeAligned(w, throughputHeader, rows)
		}
		if rows := rep.resourceRows(topo); len(rows) > 0 {
			fmt.Fprintf(w, "\n== %s: resources\n", topologyTitle(topo))
			writeAligned(w, resourceHeader, rows)
		}
	}
	if rep.aborted != nil {
		fmt.Fprintf(w, "\nthe run ended early: %v\n", rep.aborted)
	}
}

// writeAligned prints a table with two spaces between columns, the first
// column aligned left and the others right.
func writeAligned(w io.Writer, header tableRow, rows []tableRow) {
	all := append([]tableRow{header}, rows...)
	widths := make([]int, len(header))
	for _, r := range all {
		for i, c := range r {
			widths[i] = max(widths[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range all {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", widths[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, b.String())
	}
}

// markdown renders the whole report, machine and command included.
func (rep *report) markdown() string {
	var b strings.Builder
	m := rep.machine
	fmt.Fprintf(&b, "# cairn beside etcd %s\n\n", etcdVersion)
	if rep.opts.quick {
		b.WriteString("**Smoke run (-quick): totals scaled down; not comparable with a full run.**\n\n")
	}
	fmt.Fprintf(&b, "Medians of %s; each round runs every workload once against each server, alternating which goes first. ", plural(rep.opts.rounds, "round"))
	b.WriteString("Throughput: higher is better, a cairn/etcd ratio above 1 favours cairn. ")
	b.WriteString("p99 latency, memory, disk and time: lower is better, a ratio below 1 favours cairn. ")
	b.WriteString("`bench/README.md` explains each figure.\n\n")

	b.WriteString("| | |\n|---|---|\n")
	kv := func(k, v string) {
		if v != "" {
			fmt.Fprintf(&b, "| %s | %s |\n", k, mdEscape(v))
		}
	}
	kv("Date", rep.date.Format("2006-01-02 15:04 MST"))
	kv("Command", "`"+rep.command+"`")
	kv("Duration", rep.elapsed.Round(time.Second).String())
	kv("CPU", m.cpu)
	kv("Memory", m.memory)
	kv("Kernel", m.kernel)
	kv("Disk (data root)", m.disk)
	kv("Load average", m.load)
	kv("Go", m.goVersion)
	kv("cairn", m.cairnRev)
	kv("etcd", etcdVersion+" (tests/tools/etcd)")
	kv("Client", "etcd's benchmark tool "+benchmarkVersion+" (bench/tools/benchmark); the harness's clientv3 "+clientVersion+" for loading, watch, compaction and defrag")
	kv("Server flags (both)", "`"+strings.Join(append(slices.Clone(commonFlags), rep.opts.serverArgs...), " ")+"`")
	kv("Idle server", map[bool]string{true: "paused (SIGSTOP) while the other is measured", false: "left running"}[rep.opts.pauseIdle])
	b.WriteString("\n")
	if rep.aborted != nil {
		fmt.Fprintf(&b, "**The run ended early:** %s\n\n", mdEscape(rep.aborted.Error()))
	}

	for _, size := range rep.opts.topologies() {
		topo := topologyName(size)
		trows, rrows := rep.throughputRows(topo), rep.resourceRows(topo)
		if len(trows)+len(rrows) == 0 {
			continue
		}
		title := topologyTitle(topo)
		fmt.Fprintf(&b, "## %s%s\n\n", strings.ToUpper(title[:1]), title[1:])
		if len(trows) > 0 {
			writeMarkdownTable(&b, 1, throughputHeader, trows)
			b.WriteString("\n")
		}
		if len(rrows) > 0 {
			writeMarkdownTable(&b, 1, resourceHeader, rrows)
			b.WriteString("\n")
		}
	}

	b.WriteString("<details><summary>Every round</summary>\n\n")
	writeMarkdownTable(&b, 3, tableRow{"topology", "workload", "figure", "cairn", "etcd"}, rep.roundRows())
	b.WriteString("\n")
	if fails := rep.failureLines(); len(fails) > 0 {
		b.WriteString("Failed runs:\n\n")
		for _, f := range fails {
			fmt.Fprintf(&b, "- %s\n", mdEscape(f))
		}
		b.WriteString("\n")
	}
	b.WriteString("</details>\n")
	return b.String()
}

// roundRows lists every round's figures, to judge the spread.
func (rep *report) roundRows() []tableRow {
	var rows []tableRow
	for _, size := range rep.opts.topologies() {
		topo := topologyName(size)
		for _, w := range rep.workloads {
			c, e := rep.results.get(topo, w.id, cairn), rep.results.get(topo, w.id, etcd)
			type fig struct {
				key, label string
				format     func(float64) string
			}
			var figs []fig
			if w.resource() {
				for _, m := range w.metrics {
					unit := m.unit
					figs = append(figs, fig{m.key, m.key, func(x float64) string { return formatUnit(x, unit) }})
				}
			} else {
				unit := w.unit
				figs = []fig{
					{keyRate, unit, func(x float64) string { return formatRate(x, "") }},
					{keyP99, "p99", formatSeconds},
				}
			}
			for _, f := range figs {
				rows = append(rows, tableRow{topo, w.id, f.label,
					c.series(f.key, rep.opts.rounds, f.format), e.series(f.key, rep.opts.rounds, f.format)})
			}
		}
	}
	return rows
}

func (rep *report) failureLines() []string {
	var out []string
	for _, size := range rep.opts.topologies() {
		topo := topologyName(size)
		for _, w := range rep.workloads {
			for _, sys := range systems {
				c := rep.results.get(topo, w.id, sys)
				for round := 1; round <= rep.opts.rounds; round++ {
					if err, ok := c.failures[round]; ok {
						msg, _, _ := strings.Cut(err.Error(), "\n")
						out = append(out, fmt.Sprintf("%s %s %s round %d: %s", topo, w.id, sys, round, msg))
					}
				}
			}
		}
	}
	return out
}

// writeMarkdownTable writes a table whose first left columns are text and
// the rest right-aligned figures.
func writeMarkdownTable(b *strings.Builder, left int, header tableRow, rows []tableRow) {
	cells := func(r tableRow) string {
		var esc []string
		for _, c := range r {
			esc = append(esc, mdEscape(c))
		}
		return "| " + strings.Join(esc, " | ") + " |\n"
	}
	b.WriteString(cells(header))
	seps := make(tableRow, len(header))
	for i := range seps {
		seps[i] = "---:"
	}
	for i := range left {
		seps[i] = "---"
	}
	b.WriteString("|" + strings.Join(seps, "|") + "|\n")
	for _, r := range rows {
		b.WriteString(cells(r))
	}
}

func mdEscape(s string) string { return strings.ReplaceAll(s, "|", `\|`) }

func maybe(ok bool, s string) string {
	if !ok {
		return "-"
	}
	return s
}

func ratio(a, b float64, ok bool) string {
	if !ok || b == 0 || math.IsNaN(a/b) {
		return "-"
	}
	return fmt.Sprintf("%.2f", a/b)
}

func formatRate(x float64, unit string) string {
	s := groupThousands(int64(math.Round(x)))
	if unit != "" {
		s += " " + unit
	}
	return s
}

func groupThousands(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + groupThousands(-n)
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

// formatSeconds prints a latency or duration with about three significant
// figures, in ms below a second.
func formatSeconds(s float64) string {
	ms := s * 1000
	switch {
	case ms < 1:
		return fmt.Sprintf("%.3f ms", ms)
	case ms < 10:
		return fmt.Sprintf("%.2f ms", ms)
	case ms < 100:
		return fmt.Sprintf("%.1f ms", ms)
	case ms < 1000:
		return fmt.Sprintf("%.0f ms", ms)
	case s < 10:
		return fmt.Sprintf("%.2f s", s)
	}
	return fmt.Sprintf("%.1f s", s)
}

func formatUnit(x float64, unit string) string {
	switch unit {
	case "s":
		return formatSeconds(x)
	case "MiB":
		return fmt.Sprintf("%.1f MiB", x)
	}
	return fmt.Sprintf("%g %s", x, unit)
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
