package cli

import (
	"bytes"
	"testing"
	"time"
)

// TestProgressMeter checks when the meter draws: not during the first
// second, then at most every progressInterval, and a last time with a
// newline when done; never without a terminal.
func TestProgressMeter(t *testing.T) {
	now := time.Unix(1000, 0)
	clock := func() time.Time { return now }
	var out bytes.Buffer
	m := newProgressMeterTo(&out, "received", clock)

	m.update(100, 10000)
	now = now.Add(900 * time.Millisecond)
	m.update(5000, 10000)
	if out.Len() != 0 {
		t.Fatalf("drew %q before a second had passed", out.String())
	}
	now = now.Add(200 * time.Millisecond)
	m.update(5000, 10000)
	if got, want := out.String(), "\rreceived 5.0 kB of 10 kB (50%)\x1b[K"; got != want {
		t.Fatalf("first draw %q, want %q", got, want)
	}
	out.Reset()
	now = now.Add(50 * time.Millisecond)
	m.update(6000, 10000)
	if out.Len() != 0 {
		t.Fatalf("redrew %q within %v", out.String(), progressInterval)
	}
	now = now.Add(progressInterval)
	m.update(7000, 10000)
	if got, want := out.String(), "\rreceived 7.0 kB of 10 kB (70%)\x1b[K"; got != want {
		t.Fatalf("second draw %q, want %q", got, want)
	}
	out.Reset()
	m.finish(10000, 10000)
	if got, want := out.String(), "\rreceived 10 kB of 10 kB (100%)\x1b[K\n"; got != want {
		t.Fatalf("finish %q, want %q", got, want)
	}

	// More than the total (a read-ahead), and an unknown total.
	out.Reset()
	m.draw(20000, 10000)
	if got, want := out.String(), "\rreceived 10 kB of 10 kB (100%)\x1b[K"; got != want {
		t.Errorf("over the total: %q, want %q", got, want)
	}
	out.Reset()
	m.draw(1500, 0)
	if got, want := out.String(), "\rreceived 1.5 kB\x1b[K"; got != want {
		t.Errorf("unknown total: %q, want %q", got, want)
	}

	// A quick transfer ends without a line.
	out.Reset()
	quick := newProgressMeterTo(&out, "restored", clock)
	quick.update(10, 10)
	quick.finish(10, 10)
	if out.Len() != 0 {
		t.Errorf("a quick transfer drew %q", out.String())
	}

	// Not a terminal: nothing, however long it takes.
	m = newProgressMeter(&out, "received")
	m.start = m.start.Add(-time.Hour)
	m.update(1, 2)
	m.finish(2, 2)
	if out.Len() != 0 {
		t.Errorf("drew %q to a writer that is not a terminal", out.String())
	}
}
