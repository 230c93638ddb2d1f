package cli

import (
	"errors"
	"reflect"
	"strings"
	"testing"
)

func TestSplitWatchArgs(t *testing.T) {
	none := watchEnv{}
	tests := []struct {
		args     []string
		dash     int
		env      watchEnv
		wantKeys []string
		wantExec []string
		wantErr  error
	}{
		{[]string{"k"}, -1, none, []string{"k"}, nil, nil},
		{[]string{"a", "b"}, -1, none, []string{"a", "b"}, nil, nil},
		{[]string{"k", "echo", "hi"}, 1, none, []string{"k"}, []string{"echo", "hi"}, nil},
		{[]string{"k", "echo", "echo"}, 1, none, []string{"k"}, []string{"echo", "echo"}, nil},
		{[]string{"echo", "x"}, 0, watchEnv{key: "k"}, []string{"k"}, []string{"echo", "x"}, nil},
		{nil, -1, watchEnv{key: "a", end: "b"}, []string{"a", "b"}, nil, nil},
		{nil, -1, none, nil, nil, errWatchArgs},
		{[]string{"k"}, 1, none, nil, nil, errWatchArgsNoExec},
		{[]string{"k"}, -1, watchEnv{key: "e"}, nil, nil, errWatchArgsEnv},
		{[]string{"k", "echo"}, 1, watchEnv{key: "e"}, nil, nil, errWatchArgsEnv},
		// "watch -- echo x": no key; newWatchRequest refuses it.
		{[]string{"echo", "x"}, 0, none, []string{}, []string{"echo", "x"}, nil},
	}
	for _, tt := range tests {
		keys, exec, err := splitWatchArgs(tt.args, tt.dash, tt.env)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("splitWatchArgs(%q, %d, %+v) error %v, want %v", tt.args, tt.dash, tt.env, err, tt.wantErr)
			continue
		}
		if err == nil && (!reflect.DeepEqual(keys, tt.wantKeys) || !reflect.DeepEqual(exec, tt.wantExec)) {
			t.Errorf("splitWatchArgs(%q, %d, %+v) = %q, %q; want %q, %q", tt.args, tt.dash, tt.env, keys, exec, tt.wantKeys, tt.wantExec)
		}
	}
}

func TestNewWatchRequest(t *testing.T) {
	if _, err := newWatchRequest(nil, watchOptions{}, nil); !errors.Is(err, errWatchArgs) {
		t.Errorf("no key: %v", err)
	}
	if _, err := newWatchRequest([]string{"a", "b", "c"}, watchOptions{}, nil); !errors.Is(err, errWatchArgs) {
		t.Errorf("three keys: %v", err)
	}
	if _, err := newWatchRequest([]string{"a", "b"}, watchOptions{prefix: true}, nil); !errors.Is(err, errWatchPrefixAndEnd) {
		t.Errorf("range end with --prefix: %v", err)
	}
	r, err := newWatchRequest([]string{"a", ""}, watchOptions{rev: 3}, nil)
	if err != nil || r.key != "a" || !r.hasEnd || r.end != "" || r.opts.rev != 3 {
		t.Errorf("empty range end: %+v, %v", r, err)
	}
	if n := len(r.clientOptions()); n != 2 {
		t.Errorf("clientOptions: %d options, want rev and range end", n)
	}
}

func TestParseWatchLine(t *testing.T) {
	req := func(key string, opts watchOptions, exec ...string) *watchRequest {
		return &watchRequest{key: key, opts: opts, exec: exec}
	}
	ranged := func(key, end string) *watchRequest {
		return &watchRequest{key: key, end: end, hasEnd: true}
	}
	tests := []struct {
		line    string
		env     watchEnv
		want    watchLine
		wantErr string // part of the error that ends the command
		code    int
	}{
		{line: "watch k", want: watchLine{req: req("k", watchOptions{})}},
		{line: "watch k --prefix --rev=5 --prev-kv", want: watchLine{req: req("k", watchOptions{prefix: true, rev: 5, prevKV: true})}},
		{line: "watch --rev 5 k", want: watchLine{req: req("k", watchOptions{rev: 5})}},
		{line: "  watch   k  \r", want: watchLine{req: req("k", watchOptions{})}},
		{line: "watch a b", want: watchLine{req: ranged("a", "b")}},
		{line: `watch "a b" 'c d'`, want: watchLine{req: ranged("a b", "c d")}},
		{line: `watch "\x00\xff"`, want: watchLine{req: req("\x00\xff", watchOptions{})}},
		{line: "watch k -- echo hi there", want: watchLine{req: req("k", watchOptions{}, "echo", "hi", "there")}},
		{line: "watch k -- echo k", want: watchLine{req: req("k", watchOptions{}, "echo", "k")}},
		{line: "watch k --progress-notify", want: watchLine{req: req("k", watchOptions{progressNotify: true})}},
		{line: "watch -i k", want: watchLine{req: req("k", watchOptions{})}},
		{line: "progress", want: watchLine{progress: true}},
		{line: "progress now", want: watchLine{progress: true}},
		{line: "watch", env: watchEnv{key: "e"}, want: watchLine{req: req("e", watchOptions{})}},
		{line: "watch --prefix", env: watchEnv{key: "e"}, want: watchLine{req: req("e", watchOptions{prefix: true})}},
		{line: "watch", env: watchEnv{key: "a", end: "z"}, want: watchLine{req: ranged("a", "z")}},
		{line: "watch -- echo", env: watchEnv{key: "e"}, want: watchLine{req: req("e", watchOptions{}, "echo")}},
		// Lines reported on stderr and skipped.
		{line: "", want: watchLine{invalid: "Invalid command:  (watch and progress supported)"}},
		{line: "   ", want: watchLine{invalid: "Invalid command:     (watch and progress supported)"}},
		{line: "get k", want: watchLine{invalid: "Invalid command get k (only support watch)"}},
		{line: "Watch k", want: watchLine{invalid: "Invalid command Watch k (only support watch)"}},
		{line: "watch", want: watchLine{invalid: "Invalid command watch (command type or key is not provided)"}},
		{line: "watch a b --prefix", want: watchLine{invalid: "Invalid command watch a b --prefix (`range_end` and `--prefix` are mutually exclusive)"}},
		{line: "watch a b c", want: watchLine{invalid: "Invalid command watch a b c (bad number of arguments)"}},
		{line: "watch -- echo", want: watchLine{invalid: "Invalid command watch -- echo (bad number of arguments)"}},
		{line: "watch b", env: watchEnv{key: "a", end: "z"}, wantErr: "conflicting environment key", code: exitBadArgs},
		// Lines that end the command, as they end etcdctl.
		{line: "watch k --bogus", wantErr: "unknown flag: --bogus", code: exitBadArgs},
		{line: "watch k -w json", wantErr: "unknown shorthand flag: 'w' in -w", code: exitBadArgs},
		{line: "watch k --rev=x", wantErr: `invalid argument "x" for "--rev" flag`, code: exitBadArgs},
		{line: "watch --prefix", wantErr: "bad number of arguments", code: exitBadArgs},
		{line: "watch k --", wantErr: "found separator --, but no commands", code: exitBadArgs},
		{line: "watch k", env: watchEnv{key: "e"}, wantErr: "conflicting environment key", code: exitBadArgs},
		{line: `watch "\q"`, wantErr: "invalid watch request", code: exitInvalidInput},
		{line: "watch k --help", wantErr: "help requested", code: exitBadArgs},
	}
	for _, tt := range tests {
		got, err := parseWatchLine(tt.line, tt.env, false)
		if tt.wantErr != "" {
			var exit ExitError
			if !errors.As(err, &exit) || exit.Code != tt.code || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseWatchLine(%q, %+v) = %+v, %v; want an error with %q, exit %d", tt.line, tt.env, got, err, tt.wantErr, tt.code)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseWatchLine(%q, %+v) = %+v (req %+v), %v; want %+v (req %+v)", tt.line, tt.env, got, got.req, err, tt.want, tt.want.req)
		}
	}

	// The command line's --progress-notify applies to every watch.
	got, err := parseWatchLine("watch k", watchEnv{}, true)
	if err != nil || got.req == nil || !got.req.opts.progressNotify {
		t.Errorf("watch k with --progress-notify on the command line: %+v, %v", got, err)
	}
}

// FuzzParseWatchLine checks that no input line panics, that every line has
// exactly one outcome, and that a watch request is well formed: one key
// (or a key and a range end without --prefix), and a command only after
// "--".
func FuzzParseWatchLine(f *testing.F) {
	f.Add("watch k --prefix --rev=3", "", "")
	f.Add("watch a b -- echo hi", "", "")
	f.Add(`watch "a\tb" 'c d' --prev-kv`, "", "")
	f.Add("progress", "", "")
	f.Add("watch", "env", "end")
	f.Add("watch --", "", "")
	f.Add(`watch "\q`, "", "")
	f.Add("watch k -- ", "e", "")
	f.Fuzz(func(t *testing.T, line, key, end string) {
		if strings.ContainsRune(line, '\n') {
			return // a line never holds its newline
		}
		if key == "" {
			end = ""
		}
		got, err := parseWatchLine(line, watchEnv{key: key, end: end}, false)
		if err != nil {
			var exit ExitError
			if !errors.As(err, &exit) || (exit.Code != exitBadArgs && exit.Code != exitInvalidInput) {
				t.Fatalf("%q: error %v, want one with etcdctl's exit code for bad arguments or input", line, err)
			}
			return
		}
		outcomes := 0
		if got.req != nil {
			outcomes++
		}
		if got.progress {
			outcomes++
		}
		if got.invalid != "" {
			outcomes++
			if !strings.HasPrefix(got.invalid, "Invalid command") {
				t.Fatalf("%q: message %q", line, got.invalid)
			}
		}
		if outcomes != 1 {
			t.Fatalf("%q: %+v has %d outcomes, want one", line, got, outcomes)
		}
		if r := got.req; r != nil {
			if r.hasEnd && r.opts.prefix {
				t.Fatalf("%q: a range end with --prefix", line)
			}
			if len(r.exec) > 0 && !strings.Contains(line, "--") {
				t.Fatalf("%q: a command %q without --", line, r.exec)
			}
			_ = r.clientOptions()
		}
	})
}
