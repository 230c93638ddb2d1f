package locksmith

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Window is a reboot window that repeats daily ("14:00") or weekly
// ("Thu 23:00") for a fixed length, in the location of the times it is
// asked about (the daemon uses local time, as locksmith did). A time is in
// the window from its start, inclusive, to start+length, exclusive.
type Window struct {
	weekday time.Weekday // meaningful when weekly
	weekly  bool
	hour    int
	minute  int
	length  time.Duration
	spec    string
}

// ParseWindow parses locksmith's LOCKSMITHD_REBOOT_WINDOW_START ("14:00",
// "Thu 23:00"; the day is any case of its first three letters or its full
// English name) and LOCKSMITHD_REBOOT_WINDOW_LENGTH (a Go duration, more
// than zero and less than the period: a day, or a week for a weekly window).
func ParseWindow(start, length string) (*Window, error) {
	w := &Window{spec: strings.TrimSpace(start) + " for " + strings.TrimSpace(length)}
	fields := strings.Fields(start)
	switch len(fields) {
	case 1:
	case 2:
		day, ok := parseWeekday(fields[0])
		if !ok {
			return nil, fmt.Errorf("reboot window start %q: invalid day of week %q", start, fields[0])
		}
		w.weekday, w.weekly = day, true
		fields = fields[1:]
	default:
		return nil, fmt.Errorf("reboot window start %q: want \"HH:MM\" or \"Day HH:MM\"", start)
	}
	h, m, ok := strings.Cut(fields[0], ":")
	var err error
	if ok {
		if w.hour, err = strconv.Atoi(h); err == nil {
			w.minute, err = strconv.Atoi(m)
		}
	}
	if !ok || err != nil || len(m) != 2 || w.hour < 0 || w.hour > 23 || w.minute < 0 || w.minute > 59 {
		return nil, fmt.Errorf("reboot window start %q: invalid time of day %q", start, fields[0])
	}
	if w.length, err = time.ParseDuration(strings.TrimSpace(length)); err != nil {
		return nil, fmt.Errorf("reboot window length %q: %w", length, err)
	}
	period := 24 * time.Hour
	if w.weekly {
		period = 7 * 24 * time.Hour
	}
	if w.length <= 0 {
		return nil, fmt.Errorf("reboot window length %q: must be more than zero", length)
	}
	if w.length >= period {
		return nil, fmt.Errorf("reboot window length %q: must be less than the period (%v)", length, period)
	}
	return w, nil
}

var weekdays = map[string]time.Weekday{}

func init() {
	for d := time.Sunday; d <= time.Saturday; d++ {
		name := strings.ToLower(d.String())
		weekdays[name] = d
		weekdays[name[:3]] = d
	}
}

func parseWeekday(s string) (time.Weekday, bool) {
	d, ok := weekdays[strings.ToLower(s)]
	return d, ok
}

// String is the window as it was given: "Thu 23:00 for 1h".
func (w *Window) String() string { return w.spec }

// startOn is the window start on the calendar day of t (ignoring weekly).
func (w *Window) startOn(t time.Time, dayOffset int) time.Time {
	return time.Date(t.Year(), t.Month(), t.Day()+dayOffset, w.hour, w.minute, 0, 0, t.Location())
}

// Previous is the start of the latest window that starts at or before t.
func (w *Window) Previous(t time.Time) time.Time {
	back := 0
	if w.weekly {
		back = (int(t.Weekday()) - int(w.weekday) + 7) % 7
	}
	s := w.startOn(t, -back)
	if s.After(t) {
		if w.weekly {
			s = w.startOn(t, -back-7)
		} else {
			s = w.startOn(t, -1)
		}
	}
	return s
}

// Next is the start of the first window that starts after t.
func (w *Window) Next(t time.Time) time.Time {
	prev := w.Previous(t)
	if w.weekly {
		return w.startOn(prev, 7)
	}
	return w.startOn(prev, 1)
}

// Contains reports whether t is inside a window.
func (w *Window) Contains(t time.Time) bool {
	prev := w.Previous(t)
	return t.Before(prev.Add(w.length))
}

// Until is how long from t until a window is open: zero inside one.
func (w *Window) Until(t time.Time) time.Duration {
	if w.Contains(t) {
		return 0
	}
	return w.Next(t).Sub(t)
}

// End is when the window containing t closes; the zero time if t is outside
// every window.
func (w *Window) End(t time.Time) time.Time {
	if !w.Contains(t) {
		return time.Time{}
	}
	return w.Previous(t).Add(w.length)
}

// errNoWindowPair is the configuration error of a window with only one half.
var errNoWindowPair = errors.New("the reboot window needs both a start and a length, or neither")
