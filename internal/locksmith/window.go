package locksmith

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Window is a reboot window that repeats daily ("14:00") or weekly
// ("Thu 23:00") for a fixed length, in the location of the times it is
// asked about (the daemon uses local time, as locksmith did). A time is in
// the window from its start, inclusive, to start+length, exclusive; a window
// as long as its period or longer is always open. A zero-length window
// contains only its start, and the daemon treats it as locksmith did: as
// the time from which it may reboot, whenever it gets the lock.
type Window struct {
	weekday  time.Weekday // meaningful when weekly
	weekly   bool
	hour     int
	minute   int
	length   time.Duration
	spec     string
	warnings []string
}

// ParseWindow parses locksmith's LOCKSMITHD_REBOOT_WINDOW_START ("14:00",
// "Thu 23:00"; the day is any case of its first three letters or its full
// English name) and LOCKSMITHD_REBOOT_WINDOW_LENGTH (a Go duration, not
// negative). It accepts everything locksmith's parser did, and says in
// Warnings what it accepted that is odd: a time of day not written HH:MM
// ("4:5" is 04:05; text after the minutes is ignored), a zero length, or a
// length of the whole period or more (the window is always open).
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
	// locksmith read the time of day with fmt.Sscanf("%d:%d"), which takes
	// one or more digits (and a sign) on each side and ignores what follows
	// the minutes; so does this.
	var rest string
	n, _ := fmt.Sscanf(fields[0], "%d:%d%s", &w.hour, &w.minute, &rest)
	if n < 2 || w.hour < 0 || w.hour > 23 || w.minute < 0 || w.minute > 59 {
		return nil, fmt.Errorf("reboot window start %q: invalid time of day %q", start, fields[0])
	}
	if canonical := fmt.Sprintf("%02d:%02d", w.hour, w.minute); canonical != fields[0] {
		w.warnings = append(w.warnings, fmt.Sprintf("reboot window start %q: time of day %q read as %s", start, fields[0], canonical))
	}
	var err error
	if w.length, err = time.ParseDuration(strings.TrimSpace(length)); err != nil {
		return nil, fmt.Errorf("reboot window length %q: %w", length, err)
	}
	if w.length < 0 {
		return nil, fmt.Errorf("reboot window length %q: must not be negative", length)
	}
	if w.length == 0 {
		w.warnings = append(w.warnings, fmt.Sprintf("reboot window length %q: a window of length 0 only says when reboots may start; once it has started the node reboots whenever it gets the lock, however late, as with locksmith", length))
	}
	if period := w.period(); w.length >= period {
		w.warnings = append(w.warnings, fmt.Sprintf("reboot window length %q: not shorter than the window's period (%v), so the window is always open", length, period))
	}
	return w, nil
}

// Warnings are what ParseWindow accepted, as locksmith did, but is likely
// not what was meant; the daemon logs them.
func (w *Window) Warnings() []string { return w.warnings }

// Length is the window's length.
func (w *Window) Length() time.Duration { return w.length }

func (w *Window) period() time.Duration {
	if w.weekly {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
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
	return t.Before(prev.Add(w.length)) || w.length == 0 && t.Equal(prev)
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
