package cli

import (
	"fmt"
	"io"
	"os"
	"time"
)

const (
	// progressDelay is how long a transfer runs before its progress is
	// shown: a quick one prints nothing.
	progressDelay = time.Second
	// progressInterval is how often the progress line is rewritten.
	progressInterval = 100 * time.Millisecond
)

// progressMeter shows how far a long transfer (snapshot save, restore) has
// got, on one line of stderr that it rewrites: "received 12 MB of 120 MB
// (10%)". It shows nothing when stderr is not a terminal, so scripts and
// logs see only the command's result.
type progressMeter struct {
	w     io.Writer // nil: show nothing
	verb  string
	now   func() time.Time
	start time.Time
	last  time.Time
	shown bool
}

// newProgressMeter returns a meter that writes to errOut if it is a
// terminal.
func newProgressMeter(errOut io.Writer, verb string) *progressMeter {
	var w io.Writer
	if f, ok := errOut.(*os.File); ok && ctlIsTerminal(f) {
		w = errOut
	}
	return newProgressMeterTo(w, verb, time.Now)
}

func newProgressMeterTo(w io.Writer, verb string, now func() time.Time) *progressMeter {
	return &progressMeter{w: w, verb: verb, now: now, start: now()}
}

// update records that done of total bytes are through; total is 0 when
// unknown.
func (m *progressMeter) update(done, total int64) {
	if m.w == nil {
		return
	}
	t := m.now()
	if t.Sub(m.start) < progressDelay || (m.shown && t.Sub(m.last) < progressInterval) {
		return
	}
	m.last, m.shown = t, true
	m.draw(done, total)
}

// finish shows the final count and ends the line, if a line was shown.
func (m *progressMeter) finish(done, total int64) {
	if m.w == nil || !m.shown {
		return
	}
	m.draw(done, total)
	fmt.Fprintln(m.w)
}

func (m *progressMeter) draw(done, total int64) {
	// \r returns to the start of the line and \x1b[K clears what a longer
	// earlier line left.
	if total <= 0 {
		fmt.Fprintf(m.w, "\r%s %s\x1b[K", m.verb, humanBytes(uint64(max(done, 0))))
		return
	}
	done = min(max(done, 0), total)
	fmt.Fprintf(m.w, "\r%s %s of %s (%d%%)\x1b[K", m.verb, humanBytes(uint64(done)), humanBytes(uint64(total)), done*100/total)
}
