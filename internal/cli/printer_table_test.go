package cli

import (
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// testdata/table_golden.json holds tables as etcdctl's table library draws
// them (header names, rows, and the expected drawing), with cells that wrap,
// hold several lines, wide characters and words longer than a line.
func TestWriteTableGolden(t *testing.T) {
	data, err := os.ReadFile("testdata/table_golden.json")
	if err != nil {
		t.Fatal(err)
	}
	var cases []struct {
		Header []string   `json:"header"`
		Rows   [][]string `json:"rows"`
		Want   string     `json:"want"`
	}
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatal(err)
	}
	if len(cases) == 0 {
		t.Fatal("no cases")
	}
	for i, c := range cases {
		var b strings.Builder
		writeTable(&b, c.Header, c.Rows)
		if b.String() != c.Want {
			t.Errorf("case %d (header %q):\ngot:\n%s\nwant:\n%s", i, c.Header, b.String(), c.Want)
		}
	}
}

func TestHumanBytes(t *testing.T) {
	tests := []struct {
		n    uint64
		want string
	}{
		{0, "0 B"}, {9, "9 B"}, {10, "10 B"}, {999, "999 B"}, {1000, "1.0 kB"},
		{1049, "1.0 kB"}, {1050, "1.1 kB"}, {9949, "9.9 kB"}, {9950, "10 kB"},
		{16384, "16 kB"}, {20480, "20 kB"}, {2147483648, "2.1 GB"}, {8589934592, "8.6 GB"},
		{1 << 62, "4.6 EB"},
	}
	for _, tt := range tests {
		if got := humanBytes(tt.n); got != tt.want {
			t.Errorf("humanBytes(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
}

func TestHexEscape(t *testing.T) {
	if got, want := hexEscape([]byte("a\x00\xff")), `\x61\x00\xff`; got != want {
		t.Errorf("hexEscape = %q, want %q", got, want)
	}
	if got := hexEscape(nil); got != "" {
		t.Errorf("hexEscape(nil) = %q, want empty", got)
	}
}
