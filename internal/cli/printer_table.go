package cli

import (
	"fmt"
	"io"
	"math"
	"strings"
	"unicode"
	"unicode/utf8"

	clientv3 "go.etcd.io/etcd/client/v3"
	"golang.org/x/text/width"
)

// tablePrinter draws the endpoint results, the member list and a snapshot's
// status as etcdctl's and etcdutl's bordered tables. Like etcdctl it cannot
// print other responses (key-value, watch, lease, alarm, member changes,
// move-leader).
type tablePrinter struct {
	out io.Writer
}

func (*tablePrinter) supports(k outputKind) bool { return k != kvOutput && k != changeOutput }

func (*tablePrinter) get(*clientv3.GetResponse)    {}
func (*tablePrinter) put(*clientv3.PutResponse)    {}
func (*tablePrinter) del(*clientv3.DeleteResponse) {}
func (*tablePrinter) txn(*clientv3.TxnResponse)    {}

func (*tablePrinter) watch(clientv3.WatchResponse)                                {}
func (*tablePrinter) leaseGrant(*clientv3.LeaseGrantResponse)                     {}
func (*tablePrinter) leaseRevoke(clientv3.LeaseID, *clientv3.LeaseRevokeResponse) {}
func (*tablePrinter) leaseKeepAlive(*clientv3.LeaseKeepAliveResponse)             {}
func (*tablePrinter) leaseTimeToLive(*clientv3.LeaseTimeToLiveResponse, bool)     {}
func (*tablePrinter) leaseList(*clientv3.LeaseLeasesResponse)                     {}
func (*tablePrinter) alarms(*clientv3.AlarmResponse)                              {}
func (*tablePrinter) memberAdd(*clientv3.MemberAddResponse)                       {}
func (*tablePrinter) memberRemove(uint64, *clientv3.MemberRemoveResponse)         {}
func (*tablePrinter) memberUpdate(uint64, *clientv3.MemberUpdateResponse)         {}
func (*tablePrinter) memberPromote(uint64, *clientv3.MemberPromoteResponse)       {}
func (*tablePrinter) moveLeader(_, _ uint64, _ *clientv3.MoveLeaderResponse)      {}

func (p *tablePrinter) memberList(r *clientv3.MemberListResponse) {
	rows := make([][]string, len(r.Members))
	for i, m := range r.Members {
		rows[i] = memberRow(m)
	}
	writeTable(p.out, memberHeader, rows)
}

func (p *tablePrinter) endpointHealth(hs []epHealth) {
	rows := make([][]string, len(hs))
	for i, h := range hs {
		rows[i] = healthRow(h)
	}
	writeTable(p.out, healthHeader, rows)
}

func (p *tablePrinter) endpointStatus(sts []epStatus) {
	rows := make([][]string, len(sts))
	for i, st := range sts {
		rows[i] = statusRow(st)
	}
	writeTable(p.out, statusHeader, rows)
}

func (p *tablePrinter) endpointHashKV(hs []epHashKV) {
	rows := make([][]string, len(hs))
	for i, h := range hs {
		rows[i] = hashKVRow(h)
	}
	writeTable(p.out, hashKVHeader, rows)
}

func (p *tablePrinter) snapshotStatus(st snapshotStatus) {
	writeTable(p.out, snapshotHeader, [][]string{snapshotRow(st)})
}

// tableCellWidth is the width past which a cell's text is wrapped onto
// several lines.
const tableCellWidth = 30

// writeTable draws header and rows in the layout etcdctl's tables have:
//
//	+----------+--------+
//	| ENDPOINT | HEALTH |
//	+----------+--------+
//	| 1.2.3.4  |   true |
//	+----------+--------+
//
// Header names are upper-cased and centred; cells are right-aligned. A cell
// wider than tableCellWidth is word-wrapped into as many lines as needed,
// breaking where the lines come out most even; a word is never split.
func writeTable(w io.Writer, header []string, rows [][]string) {
	ncol := len(header)
	widths := make([]int, ncol)
	wrapCell := func(col int, s string) []string {
		lines, wd := wrapTableCell(s)
		if col < ncol && wd > widths[col] {
			widths[col] = wd
		}
		return lines
	}
	hdrCells := make([][]string, ncol)
	for i, h := range header {
		hdrCells[i] = wrapCell(i, h)
	}
	bodyCells := make([][][]string, len(rows))
	for r, row := range rows {
		bodyCells[r] = make([][]string, len(row))
		for i, c := range row {
			bodyCells[r][i] = wrapCell(i, c)
		}
	}

	var b strings.Builder
	rule := func() {
		b.WriteByte('+')
		for _, wd := range widths {
			b.WriteString(strings.Repeat("-", wd+2))
			b.WriteByte('+')
		}
		b.WriteByte('\n')
	}

	rule()
	hdrHeight := tallest(hdrCells)
	for line := 0; line < hdrHeight; line++ {
		b.WriteByte('|')
		for i := range ncol {
			text := ""
			if line < len(hdrCells[i]) {
				text = headerTitle(hdrCells[i][line])
			}
			b.WriteString(" " + padCenter(text, widths[i]) + " |")
		}
		b.WriteByte('\n')
	}
	rule()
	for _, cells := range bodyCells {
		height := tallest(cells)
		for line := 0; line < height; line++ {
			for i, cell := range cells {
				// A cell shorter than its row is filled with two-space
				// lines, as etcdctl's table library does.
				text := "  "
				if line < len(cell) {
					text = cell[line]
				}
				wd := 0
				if i < ncol {
					wd = widths[i]
				}
				b.WriteString("| " + padLeft(text, wd) + " ")
			}
			b.WriteString("|\n")
		}
	}
	rule()
	io.WriteString(w, b.String())
}

func tallest(cells [][]string) int {
	h := 0
	for _, c := range cells {
		h = max(h, len(c))
	}
	return h
}

// headerTitle formats a header name: '_' and most '.' become spaces, then
// the name is trimmed and upper-cased. A '.' between digits or spaces stays.
func headerTitle(name string) string {
	rs := []rune(name)
	isDigitOrSpace := func(r rune) bool { return r == ' ' || ('0' <= r && r <= '9') }
	for i, r := range rs {
		switch {
		case r == '_':
			rs[i] = ' '
		case r == '.':
			prevWord := i > 0 && !isDigitOrSpace(rs[i-1])
			nextWord := i < len(rs)-1 && !isDigitOrSpace(rs[i+1])
			if prevWord || nextWord {
				rs[i] = ' '
			}
		}
	}
	out := strings.TrimSpace(string(rs))
	if out == "" && name != "" {
		out = " "
	}
	return strings.ToUpper(out)
}

// wrapTableCell splits a cell into lines no wider than tableCellWidth where
// its words allow, and returns them with the column width they need. A cell
// that already had several lines is reflowed as one paragraph.
func wrapTableCell(s string) ([]string, int) {
	lines := strings.Split(s, "\n")
	limit := 0
	for _, l := range lines {
		limit = max(limit, textWidth(l))
	}
	limit = min(limit, tableCellWidth)
	wrapped := wrapWords(strings.Join(lines, " "), limit)
	wd := limit
	for _, l := range wrapped {
		wd = max(wd, textWidth(l))
	}
	return wrapped, wd
}

// wrapWords breaks text at single spaces into lines of at most limit columns
// (or the longest word, if wider), choosing the breaks that minimise the sum
// of the squared free space at the end of every line but the last.
func wrapWords(text string, limit int) []string {
	words := strings.Split(text, " ")
	for _, w := range words {
		limit = max(limit, textWidth(w))
	}
	n := len(words)
	wordWidth := make([]int, n)
	for i, w := range words {
		wordWidth[i] = textWidth(w)
	}
	// span(i, j) is the width of words[i..j] joined by single spaces.
	span := func(i, j int) int {
		s := j - i
		for k := i; k <= j; k++ {
			s += wordWidth[k]
		}
		return s
	}
	const overfull = 100000 // cost added to a line that cannot fit
	best := make([]int, n)  // least cost of laying out words[i:]
	next := make([]int, n)  // where the line starting at word i ends
	for i := n - 1; i >= 0; i-- {
		if span(i, n-1) <= limit {
			best[i], next[i] = 0, n
			continue
		}
		best[i] = math.MaxInt32
		for j := i + 1; j < n; j++ {
			used := span(i, j-1)
			slack := limit - used
			cost := slack*slack + best[j]
			if used > limit {
				cost += overfull
			}
			if cost < best[i] {
				best[i], next[i] = cost, j
			}
		}
	}
	var out []string
	for i := 0; i < n; i = next[i] {
		out = append(out, strings.Join(words[i:next[i]], " "))
	}
	return out
}

// textWidth is the number of terminal columns s takes: East Asian wide
// characters take two, control and combining characters none.
func textWidth(s string) int {
	wd := 0
	for _, r := range s {
		switch {
		case r < 0x20 || (r >= 0x7f && r < 0xa0):
		case unicode.In(r, unicode.Mn, unicode.Me, unicode.Cf):
		case r == utf8.RuneError:
			wd++
		default:
			switch width.LookupRune(r).Kind() {
			case width.EastAsianWide, width.EastAsianFullwidth:
				wd += 2
			default:
				wd++
			}
		}
	}
	return wd
}

func padLeft(s string, wd int) string {
	if gap := wd - textWidth(s); gap > 0 {
		return strings.Repeat(" ", gap) + s
	}
	return s
}

// padCenter centres s in wd columns; an odd gap leaves the extra space on
// the right.
func padCenter(s string, wd int) string {
	gap := wd - textWidth(s)
	if gap <= 0 {
		return s
	}
	left := gap / 2
	return strings.Repeat(" ", left) + s + strings.Repeat(" ", gap-left)
}

// humanBytes formats a byte count in SI units the way etcdctl's status table
// does: "20 kB", "2.1 GB", one decimal below ten.
func humanBytes(n uint64) string {
	if n < 10 {
		return fmt.Sprintf("%d B", n)
	}
	units := []string{"B", "kB", "MB", "GB", "TB", "PB", "EB"}
	exp := math.Floor(math.Log(float64(n)) / math.Log(1000))
	val := math.Floor(float64(n)/math.Pow(1000, exp)*10+0.5) / 10
	if val < 10 {
		return fmt.Sprintf("%.1f %s", val, units[int(exp)])
	}
	return fmt.Sprintf("%.0f %s", val, units[int(exp)])
}
