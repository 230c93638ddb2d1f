package cli

import (
	"bufio"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestParseCompare(t *testing.T) {
	tests := []struct {
		line string
		want clientv3.Cmp
	}{
		{`mod("k") > "5"`, clientv3.Compare(clientv3.ModRevision("k"), ">", 5)},
		{`m("k") = "0"`, clientv3.Compare(clientv3.ModRevision("k"), "=", 0)},
		{`create("k") < "100"`, clientv3.Compare(clientv3.CreateRevision("k"), "<", 100)},
		{`c("k") != "-1"`, clientv3.Compare(clientv3.CreateRevision("k"), "!=", -1)},
		{`version("k") = "3"`, clientv3.Compare(clientv3.Version("k"), "=", 3)},
		{`ver("k") > "0"`, clientv3.Compare(clientv3.Version("k"), ">", 0)},
		{`value("k") = "v"`, clientv3.Compare(clientv3.Value("k"), "=", "v")},
		{`val("k") != ""`, clientv3.Compare(clientv3.Value("k"), "!=", "")},
		{`value("a b") = "x y"`, clientv3.Compare(clientv3.Value("a b"), "=", "x y")},
		{`value("q\"uo)te") = "tab\there"`, clientv3.Compare(clientv3.Value(`q"uo)te`), "=", "tab\there")},
		{"value(`raw\\n`) = `v`", clientv3.Compare(clientv3.Value(`raw\n`), "=", "v")},
		{`value("\xff") = "\x00"`, clientv3.Compare(clientv3.Value("\xff"), "=", "\x00")},
		{`lease("k") = "694d77aa9e38260f"`, clientv3.Compare(clientv3.LeaseValue("k"), "=", 0x694d77aa9e38260f)},
		{`lease("k") = "0"`, clientv3.Compare(clientv3.LeaseValue("k"), "=", 0)},
		// Spacing etcdctl also accepts, and some it does not but is harmless.
		{`mod( "k")   >    "5"`, clientv3.Compare(clientv3.ModRevision("k"), ">", 5)},
		{`mod("k")> "5"`, clientv3.Compare(clientv3.ModRevision("k"), ">", 5)},
		{`mod ( "k" ) >"5"`, clientv3.Compare(clientv3.ModRevision("k"), ">", 5)},
	}
	for _, tt := range tests {
		got, err := parseCompare(tt.line)
		if err != nil {
			t.Errorf("parseCompare(%s): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("parseCompare(%s) = %+v, want %+v", tt.line, got, tt.want)
		}
	}
}

func TestParseCompareErrors(t *testing.T) {
	tests := []struct{ line, want string }{
		{`mod"k" > "5"`, `want target("key") op "value"`},
		{`foo("k") > "5"`, `unknown target "foo"`},
		{`Mod("k") > "5"`, `unknown target "Mod"`},
		{`mod(k) > "5"`, `key: want a quoted string`},
		{`mod("k > "5"`, `want ')' after the key`},
		{`mod("k) > "5"`, `want ')' after the key`},
		{`mod("k`, `key: unterminated quoted string`},
		{`mod("\q") > "5"`, `key: bad quoted string`},
		{`mod("k") "5"`, `missing operator`},
		{`mod("k") >= "5"`, `unknown operator ">="`},
		{`mod("k") == "5"`, `unknown operator "=="`},
		{`mod("k") =`, `value: want a quoted string, got nothing`},
		{`mod("k") = 5`, `value: want a quoted string, got 5`},
		{`mod("k") = "5" "6"`, `unexpected "\"6\"" after the value`},
		{`mod("k") = "x"`, `invalid txn compare request`},
		{`mod("k") = "99999999999999999999"`, `value out of range`},
		{`lease("k") = "xyz"`, `invalid txn compare request`},
		{`version("k") = "0x1"`, `invalid txn compare request`},
	}
	for _, tt := range tests {
		_, err := parseCompare(tt.line)
		if err == nil {
			t.Errorf("parseCompare(%s) succeeded, want an error with %q", tt.line, tt.want)
			continue
		}
		if !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.line) {
			t.Errorf("parseCompare(%s) error %q, want it to contain %q and the line", tt.line, err, tt.want)
		}
	}
}

func TestSplitTxnWords(t *testing.T) {
	tests := []struct {
		line string
		want []string
	}{
		{`put k v`, []string{"put", "k", "v"}},
		{"put\tk  \t v", []string{"put", "k", "v"}},
		{`put k "a b"`, []string{"put", "k", "a b"}},
		{`put k "a\"b\n"`, []string{"put", "k", "a\"b\n"}},
		{`put k 'a b\n'`, []string{"put", "k", `a b\n`}},
		{`put k ""`, []string{"put", "k", ""}},
		{`put k ''`, []string{"put", "k", ""}},
		{`put k a"b c"`, []string{"put", "k", `a"b`, `c"`}},
		{`put k "ab"cd`, []string{"put", "k", "ab", "cd"}},
		{`put k "unterminated`, []string{"put", "k", "unterminated"}},
		{`put k 'unterminated`, []string{"put", "k", "unterminated"}},
		{`put k "x\"`, []string{"put", "k", `x\"`}},
		{`put k -- --v`, []string{"put", "k", "--", "--v"}},
	}
	for _, tt := range tests {
		got, err := splitTxnWords(tt.line)
		if err != nil {
			t.Errorf("splitTxnWords(%s): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("splitTxnWords(%s) = %q, want %q", tt.line, got, tt.want)
		}
	}
	if _, err := splitTxnWords(`put k "\q"`); err == nil {
		t.Errorf(`splitTxnWords(put k "\q") succeeded, want a bad quoted word error`)
	}
}

func TestParseTxnOp(t *testing.T) {
	tests := []struct {
		line string
		want clientv3.Op
		warn bool
	}{
		{`put k v`, clientv3.OpPut("k", "v"), false},
		{`p k "v w" --prev-kv`, clientv3.OpPut("k", "v w", clientv3.WithPrevKV()), false},
		{`put k v --lease=1f`, clientv3.OpPut("k", "v", clientv3.WithLease(0x1f)), false},
		{`put --ignore-value k`, clientv3.OpPut("k", "", clientv3.WithIgnoreValue()), false},
		{`get k`, clientv3.OpGet("k", clientv3.WithLimit(0), clientv3.WithSort(clientv3.SortByKey, clientv3.SortNone)), false},
		{`ge k --prefix`, clientv3.OpGet("k", clientv3.WithLimit(0), clientv3.WithSort(clientv3.SortByKey, clientv3.SortNone), clientv3.WithPrefix()), false},
		{`get k --consistency s`, clientv3.OpGet("k", clientv3.WithSerializable(), clientv3.WithLimit(0), clientv3.WithSort(clientv3.SortByKey, clientv3.SortNone)), false},
		{`del k`, clientv3.OpDelete("k"), false},
		{`d k --prefix --prev-kv`, clientv3.OpDelete("k", clientv3.WithPrefix(), clientv3.WithPrevKV()), false},
		{`del a b`, clientv3.OpDelete("a", clientv3.WithRange("b")), true},
		{`del a b --range`, clientv3.OpDelete("a", clientv3.WithRange("b")), false},
		{`del "" --from-key`, clientv3.OpDelete("\x00", clientv3.WithFromKey()), false},
	}
	for _, tt := range tests {
		got, err := parseTxnOp(tt.line)
		if err != nil {
			t.Errorf("parseTxnOp(%s): %v", tt.line, err)
			continue
		}
		if !reflect.DeepEqual(got.op, tt.want) {
			t.Errorf("parseTxnOp(%s) = %+v, want %+v", tt.line, got.op, tt.want)
		}
		if (got.warn != nil) != tt.warn {
			t.Errorf("parseTxnOp(%s) range warning %v, want %v", tt.line, got.warn != nil, tt.warn)
		}
	}
}

func TestParseTxnOpErrors(t *testing.T) {
	tests := []struct {
		line string
		code int
		want string
	}{
		{`put`, exitInvalidInput, "want get, put or del and a key"},
		{`foo k`, exitInvalidInput, `unknown request "foo"`},
		{`"" k`, exitInvalidInput, `unknown request ""`},
		{`get k -w json`, exitInvalidInput, "unknown shorthand flag: 'w'"},
		{`get k --bogus`, exitInvalidInput, "unknown flag: --bogus"},
		{`get k --limit=x`, exitInvalidInput, `invalid argument "x"`},
		{`put k`, exitBadArgs, "put command needs 1 argument"},
		{`put k v --ignore-value`, exitBadArgs, "needs only 1 argument"},
		{`put k v --lease=zz`, exitBadArgs, "bad lease ID"},
		{`get k --prefix --from-key`, exitBadArgs, "cannot be set at the same time"},
		{`get k --consistency=x`, exitBadFeature, `unknown consistency flag "x"`},
		{`get k --order=up`, exitBadFeature, "bad sort order up"},
		{`del a b c`, exitBadArgs, "del command needs one argument"},
		{`put k "\q"`, exitInvalidInput, "bad quoted word"},
	}
	for _, tt := range tests {
		_, err := parseTxnOp(tt.line)
		var exit ExitError
		if !errors.As(err, &exit) {
			t.Errorf("parseTxnOp(%s) = %v, want an ExitError", tt.line, err)
			continue
		}
		if exit.Code != tt.code || !strings.Contains(err.Error(), tt.want) || !strings.Contains(err.Error(), tt.line) {
			t.Errorf("parseTxnOp(%s) = exit %d %q, want exit %d and an error with %q and the line", tt.line, exit.Code, err, tt.code, tt.want)
		}
	}
}

func TestReadTxnInput(t *testing.T) {
	in := bufio.NewReader(strings.NewReader("mod(\"k\") > \"0\"\r\n  value(\"k\") = \"v\"  \n\nput k v\n\n\n"))
	cmps, err := readCompares(in)
	if err != nil || len(cmps) != 2 {
		t.Fatalf("readCompares = %d compares, %v; want 2", len(cmps), err)
	}
	thenOps, err := readTxnOps(in, "success requests")
	if err != nil || len(thenOps) != 1 {
		t.Fatalf("success ops = %d, %v; want 1", len(thenOps), err)
	}
	elseOps, err := readTxnOps(in, "failure requests")
	if err != nil || len(elseOps) != 0 {
		t.Fatalf("failure ops = %d, %v; want 0", len(elseOps), err)
	}

	// Like etcdctl, input must close every section with an empty line.
	in = bufio.NewReader(strings.NewReader("mod(\"k\") > \"0\"\n\nput k v\n"))
	if _, err := readCompares(in); err != nil {
		t.Fatal(err)
	}
	_, err = readTxnOps(in, "success requests")
	var exit ExitError
	if !errors.As(err, &exit) || exit.Code != exitInvalidInput || !strings.Contains(err.Error(), "end of input") {
		t.Errorf("truncated input: %v, want exit %d about the end of input", err, exitInvalidInput)
	}
}

// formatCompare writes cmp back in the txn grammar.
func formatCompare(cmp clientv3.Cmp) string {
	var target, val string
	switch cmp.Target {
	case pb.Compare_VERSION:
		target, val = "version", strconv.FormatInt(cmp.TargetUnion.(*pb.Compare_Version).Version, 10)
	case pb.Compare_CREATE:
		target, val = "create", strconv.FormatInt(cmp.TargetUnion.(*pb.Compare_CreateRevision).CreateRevision, 10)
	case pb.Compare_MOD:
		target, val = "mod", strconv.FormatInt(cmp.TargetUnion.(*pb.Compare_ModRevision).ModRevision, 10)
	case pb.Compare_VALUE:
		target, val = "value", string(cmp.TargetUnion.(*pb.Compare_Value).Value)
	case pb.Compare_LEASE:
		target, val = "lease", strconv.FormatInt(cmp.TargetUnion.(*pb.Compare_Lease).Lease, 16)
	}
	op := map[pb.Compare_CompareResult]string{
		pb.Compare_EQUAL: "=", pb.Compare_NOT_EQUAL: "!=", pb.Compare_GREATER: ">", pb.Compare_LESS: "<",
	}[cmp.Result]
	return fmt.Sprintf("%s(%s) %s %s", target, strconv.Quote(string(cmp.Key)), op, strconv.Quote(val))
}

// checkParseError fails unless err is a clear parse error: it names the
// line and says what is wrong after it.
func checkParseError(t *testing.T, line string, err error) {
	t.Helper()
	msg := err.Error()
	if !strings.Contains(msg, line) || len(msg) <= len(line)+len("invalid txn request: ") {
		t.Fatalf("error %q for %q does not name the line and the problem", msg, line)
	}
}

// FuzzParseCompare checks that no compare line panics, that every rejected
// line gets an error naming it, and that an accepted line means what it
// says: written back in canonical form it parses to the same compare.
func FuzzParseCompare(f *testing.F) {
	for _, seed := range []string{
		`mod("k") > "5"`, `value("k") = "v"`, `lease("k") != "1f"`, `ver("k") < "2"`,
		`c("k") = "0"`, "val(`k`) = `v`", `mod("k") >= "5"`, `value("\q") = ""`, `(`, `mod(")`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.TrimSpace(line)
		cmp, err := parseCompare(line)
		if err != nil {
			checkParseError(t, line, err)
			return
		}
		canon := formatCompare(cmp)
		again, err := parseCompare(canon)
		if err != nil {
			t.Fatalf("%q parsed, but its canonical form %q does not: %v", line, canon, err)
		}
		if !reflect.DeepEqual(cmp, again) {
			t.Fatalf("%q parsed to %+v, its canonical form %q to %+v", line, cmp, canon, again)
		}
	})
}

// FuzzParseTxnOp checks that no request line panics (clientv3's Op
// constructors panic on bad option mixes) and that errors name the line.
func FuzzParseTxnOp(f *testing.F) {
	for _, seed := range []string{
		`put k v`, `get k --prefix --limit 2`, `del a b`, `del k --from-key --prev-kv`,
		`put k "v w" --lease=1f`, `get k --sort-by=VALUE --order=DESCEND --rev=3`, `get k -- --x`,
		`g "" --prefix --keys-only`, `put --ignore-value --ignore-lease k`, `d 'a b' --prefix`,
		`get k --help`,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, line string) {
		line = strings.TrimSpace(line)
		if _, err := parseTxnOp(line); err != nil {
			checkParseError(t, line, err)
		}
	})
}

// FuzzTxnInput feeds whole txn inputs through the section readers.
func FuzzTxnInput(f *testing.F) {
	f.Add("mod(\"k\") > \"0\"\n\nput k v\n\nget k\n\n")
	f.Add("\n\n\n")
	f.Add("value(\"k\") = \"v\"\n")
	f.Fuzz(func(t *testing.T, input string) {
		in := bufio.NewReader(strings.NewReader(input))
		if _, err := readCompares(in); err != nil {
			return
		}
		if _, err := readTxnOps(in, "success requests"); err != nil {
			return
		}
		_, _ = readTxnOps(in, "failure requests")
	})
}
