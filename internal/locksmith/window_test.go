package locksmith_test

import (
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/locksmith"
)

func TestParseWindowErrors(t *testing.T) {
	for _, tc := range []struct{ start, length, msg string }{
		{"", "1h", "want \"HH:MM\" or \"Day HH:MM\""},
		{"Thu 23:00 UTC", "1h", "want \"HH:MM\" or \"Day HH:MM\""},
		{"Thursday23:00", "1h", "invalid time of day"},
		{"Thx 23:00", "1h", "invalid day of week \"Thx\""},
		{"24:00", "1h", "invalid time of day"},
		{"23:60", "1h", "invalid time of day"},
		{"-1:00", "1h", "invalid time of day"},
		{"23", "1h", "invalid time of day"},
		{"23:00", "1 hour", "reboot window length"},
		{"23:00", "-1h", "must not be negative"},
		{"14:", "1h", "invalid time of day"},
		{":30", "1h", "invalid time of day"},
		{"0x1:00", "1h", "invalid time of day"},
		{"sat", "1h", "invalid time of day"},
		{"sat 14:00 1234", "1h", "want \"HH:MM\" or \"Day HH:MM\""},
	} {
		if _, err := locksmith.ParseWindow(tc.start, tc.length); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("ParseWindow(%q, %q) = %v, want an error with %q", tc.start, tc.length, err, tc.msg)
		}
	}
	if _, err := locksmith.WindowFromSettings("23:00", ""); err == nil {
		t.Error("a start without a length was accepted")
	}
	if w, err := locksmith.WindowFromSettings("", ""); w != nil || err != nil {
		t.Errorf("no window: %v, %v", w, err)
	}
}

// TestParseWindowAsLocksmith: what locksmith's parser accepted is accepted,
// with a warning where it is odd, so an update.conf that worked with
// locksmithd still does.
func TestParseWindowAsLocksmith(t *testing.T) {
	at := func(day, h, m, s int) time.Time { return time.Date(2024, 1, day, h, m, s, 0, time.UTC) } // 2024-01-01 is a Monday
	for _, tc := range []struct {
		start, length string
		warning       string // "" for none
		in, out       []time.Time
	}{
		{"14:00", "1h", "", []time.Time{at(1, 14, 0, 0)}, []time.Time{at(1, 15, 0, 0)}},
		{"4:5", "1h", `time of day "4:5" read as 04:05`, []time.Time{at(1, 4, 5, 0), at(1, 5, 4, 59)}, []time.Time{at(1, 4, 4, 59), at(1, 5, 5, 0)}},
		{"Thu 9:00", "1h", `time of day "9:00" read as 09:00`, []time.Time{at(4, 9, 0, 0)}, []time.Time{at(3, 9, 0, 0)}},
		{"+4:05", "1h", "read as 04:05", []time.Time{at(1, 4, 5, 0)}, nil},
		{"014:000", "1h", "read as 14:00", []time.Time{at(1, 14, 0, 0)}, nil},
		{"14:00:30", "1h", `time of day "14:00:30" read as 14:00`, []time.Time{at(1, 14, 0, 0)}, []time.Time{at(1, 13, 59, 59)}},
		{"23:00", "0", "length 0", []time.Time{at(1, 23, 0, 0)}, []time.Time{at(1, 23, 0, 1), at(1, 22, 59, 59)}},
		{"23:00", "24h", "always open", []time.Time{at(1, 0, 0, 0), at(1, 22, 59, 59), at(1, 23, 0, 0)}, nil},
		{"23:00", "30h", "always open", []time.Time{at(1, 0, 0, 0), at(1, 22, 59, 59)}, nil},
		{"Thu 23:00", "168h", "always open", []time.Time{at(1, 0, 0, 0), at(4, 22, 59, 59), at(7, 12, 0, 0)}, nil},
	} {
		w, err := locksmith.ParseWindow(tc.start, tc.length)
		if err != nil {
			t.Errorf("ParseWindow(%q, %q): %v", tc.start, tc.length, err)
			continue
		}
		warnings := strings.Join(w.Warnings(), "\n")
		if tc.warning == "" && warnings != "" || !strings.Contains(warnings, tc.warning) {
			t.Errorf("%s: warnings %q, want %q", w, warnings, tc.warning)
		}
		for _, in := range tc.in {
			if !w.Contains(in) || w.Until(in) != 0 {
				t.Errorf("%s: %v not in the window", w, in)
			}
		}
		for _, out := range tc.out {
			if w.Contains(out) || w.Until(out) == 0 {
				t.Errorf("%s: %v in the window", w, out)
			}
		}
	}
}

func TestWindow(t *testing.T) {
	at := func(day, h, m int) time.Time { return time.Date(2024, 1, day, h, m, 0, 0, time.UTC) } // 2024-01-01 is a Monday
	for _, tc := range []struct {
		start, length string
		t             time.Time
		in            bool
		until         time.Duration
	}{
		// Daily.
		{"14:00", "30m", at(1, 13, 59), false, time.Minute},
		{"14:00", "30m", at(1, 14, 0), true, 0},
		{"14:00", "30m", at(1, 14, 29), true, 0},
		{"14:00", "30m", at(1, 14, 30), false, 23*time.Hour + 30*time.Minute},
		// A daily window across midnight.
		{"23:30", "1h", at(2, 0, 15), true, 0},
		{"23:30", "1h", at(2, 0, 30), false, 23 * time.Hour},
		// Weekly, any case and full names.
		{"thu 23:00", "2h", at(4, 22, 0), false, time.Hour},
		{"Thursday 23:00", "2h", at(5, 0, 59), true, 0},
		{"THU 23:00", "2h", at(5, 1, 0), false, 7*24*time.Hour - 2*time.Hour},
		{"Mon 09:00", "1h", at(1, 8, 0), false, time.Hour},
		{"Sun 09:00", "1h", at(1, 8, 0), false, 6*24*time.Hour + time.Hour},
		// A weekly window across the week's end.
		{"Sat 23:00", "26h", at(7, 23, 0), true, 0},
		{"Sat 23:00", "26h", at(8, 0, 59), true, 0},
		{"Sat 23:00", "26h", at(8, 1, 0), false, 5*24*time.Hour + 22*time.Hour},
	} {
		w, err := locksmith.ParseWindow(tc.start, tc.length)
		if err != nil {
			t.Fatal(err)
		}
		if got := w.Contains(tc.t); got != tc.in {
			t.Errorf("%s: Contains(%v) = %v", w, tc.t, got)
		}
		if got := w.Until(tc.t); got != tc.until {
			t.Errorf("%s: Until(%v) = %v, want %v", w, tc.t, got, tc.until)
		}
		if tc.in && !w.End(tc.t).After(tc.t) {
			t.Errorf("%s: End(%v) = %v", w, tc.t, w.End(tc.t))
		}
	}
}
