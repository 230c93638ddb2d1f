package cli

import (
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/pflag"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The txn input grammar, which is etcdctl's:
//
//	compares        one per line, then an empty line
//	success ops     one per line, then an empty line
//	failure ops     one per line, then an empty line
//
// A compare is
//
//	target("key") op "value"
//
// where target is ver|version, c|create, m|mod, val|value or lease, op is one
// of = != < >, and key and value are Go-quoted ("..." with escapes, or
// `...`). Version, create and mod values are decimal revisions or counts;
// lease values are hex lease IDs. An op is a get, put or del command line with
// that command's flags, e.g. `put k "v w" --prev-kv` or `get k --prefix`.
// Words are split at blanks; "..." is a Go-quoted word and '...' a word taken
// as is.

// parseCompare parses one compare line.
func parseCompare(line string) (clientv3.Cmp, error) {
	bad := func(format string, args ...any) (clientv3.Cmp, error) {
		return clientv3.Cmp{}, fmt.Errorf("malformed comparison: %s (%s)", line, fmt.Sprintf(format, args...))
	}
	target, rest, ok := strings.Cut(line, "(")
	if !ok {
		return bad(`want target("key") op "value"`)
	}
	target = strings.TrimSpace(target)
	switch target {
	case "ver", "version", "c", "create", "m", "mod", "val", "value", "lease":
	default:
		return bad("unknown target %q; want version, create, mod, value or lease", target)
	}
	key, rest, err := cutQuoted(strings.TrimLeft(rest, " \t"))
	if err != nil {
		return bad("key: %v", err)
	}
	rest = strings.TrimLeft(rest, " \t")
	if !strings.HasPrefix(rest, ")") {
		return bad("want ')' after the key")
	}
	rest = strings.TrimLeft(rest[1:], " \t")
	end := strings.IndexAny(rest, " \t\"`")
	if end < 0 {
		end = len(rest)
	}
	op := rest[:end]
	switch op {
	case "=", "!=", "<", ">":
	case "":
		return bad("missing operator; want =, !=, < or >")
	default:
		return bad("unknown operator %q; want =, !=, < or >", op)
	}
	val, rest, err := cutQuoted(strings.TrimLeft(rest[end:], " \t"))
	if err != nil {
		return bad("value: %v", err)
	}
	if rest = strings.TrimSpace(rest); rest != "" {
		return bad("unexpected %q after the value", rest)
	}

	invalid := func(err error) (clientv3.Cmp, error) {
		return clientv3.Cmp{}, fmt.Errorf("invalid txn compare request: %s (%w)", line, err)
	}
	var cmp clientv3.Cmp
	switch target {
	case "ver", "version", "c", "create", "m", "mod":
		n, err := strconv.ParseInt(val, 10, 64)
		if err != nil {
			return invalid(err)
		}
		switch target[0] {
		case 'v':
			cmp = clientv3.Compare(clientv3.Version(key), op, n)
		case 'c':
			cmp = clientv3.Compare(clientv3.CreateRevision(key), op, n)
		default:
			cmp = clientv3.Compare(clientv3.ModRevision(key), op, n)
		}
	case "val", "value":
		cmp = clientv3.Compare(clientv3.Value(key), op, val)
	case "lease":
		n, err := strconv.ParseInt(val, 16, 64)
		if err != nil {
			return invalid(err)
		}
		cmp = clientv3.Compare(clientv3.LeaseValue(key), op, n)
	}
	return cmp, nil
}

// cutQuoted reads a Go-quoted string at the start of s and returns it
// unquoted with the rest of s.
func cutQuoted(s string) (string, string, error) {
	if s == "" {
		return "", "", errors.New("want a quoted string, got nothing")
	}
	switch s[0] {
	case '"':
		for i := 1; i < len(s); i++ {
			switch s[i] {
			case '\\':
				i++
			case '"':
				v, err := strconv.Unquote(s[:i+1])
				if err != nil {
					return "", "", fmt.Errorf("bad quoted string %s: %w", s[:i+1], err)
				}
				return v, s[i+1:], nil
			}
		}
		return "", "", fmt.Errorf("unterminated quoted string %s", s)
	case '`':
		if i := strings.IndexByte(s[1:], '`'); i >= 0 {
			return s[1 : i+1], s[i+2:], nil
		}
		return "", "", fmt.Errorf("unterminated quoted string %s", s)
	}
	return "", "", fmt.Errorf("want a quoted string, got %s", s)
}

// splitTxnWords splits an op line into words the way etcdctl does: runs of
// non-blank characters; "..." (Go-quoted, unquoted here) and '...' (taken as
// is) may hold blanks. A quote that opens no complete quoted word is dropped.
func splitTxnWords(line string) ([]string, error) {
	var words []string
	isBlank := func(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' }
	for i := 0; i < len(line); {
		c := line[i]
		switch {
		case isBlank(c):
			i++
		case c == '"':
			end := -1
			for j := i + 1; j < len(line); j++ {
				if line[j] == '\\' {
					if j+1 < len(line) && line[j+1] == '\n' {
						break
					}
					j++
					continue
				}
				if line[j] == '"' {
					end = j
					break
				}
			}
			if end < 0 {
				i++ // no closing quote: the quote starts no word
				continue
			}
			w, err := strconv.Unquote(line[i : end+1])
			if err != nil {
				return nil, fmt.Errorf("bad quoted word %s: %w", line[i:end+1], err)
			}
			words = append(words, w)
			i = end + 1
		case c == '\'':
			end := strings.IndexByte(line[i+1:], '\'')
			if end < 0 {
				i++
				continue
			}
			words = append(words, line[i+1:i+1+end])
			i += end + 2
		default:
			j := i
			for j < len(line) && !isBlank(line[j]) {
				j++
			}
			words = append(words, line[i:j])
			i = j
		}
	}
	return words, nil
}

// txnOp is one parsed success or failure request.
type txnOp struct {
	op   clientv3.Op
	warn *delRange // a del of [key, end) without --range
}

// parseTxnOp parses one request line: get, put or del (or an unambiguous
// prefix of one) with its arguments and flags. Errors carry the exit code
// the same mistake gets on the command line.
func parseTxnOp(line string) (txnOp, error) {
	invalid := func(format string, args ...any) (txnOp, error) {
		return txnOp{}, ctlErrorf(exitInvalidInput, "invalid txn request: %s (%s)", line, fmt.Sprintf(format, args...))
	}
	words, err := splitTxnWords(line)
	if err != nil {
		return invalid("%v", err)
	}
	if len(words) < 2 {
		return invalid("want get, put or del and a key")
	}
	name, ok := txnOpName(words[0])
	if !ok {
		return invalid("unknown request %q; want get, put or del", words[0])
	}
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	var (
		get getOptions
		put putOptions
		del delOptions
	)
	switch name {
	case "get":
		get.addFlags(fs)
	case "put":
		put.addFlags(fs)
	case "del":
		del.addFlags(fs)
	}
	if err := fs.Parse(words[1:]); err != nil {
		return invalid("%v", err)
	}
	args := fs.Args()
	wrap := func(err error) error {
		var exit ExitError
		if errors.As(err, &exit) && exit.Err != nil {
			return ctlErrorf(exit.Code, "invalid txn request: %s (%w)", line, exit.Err)
		}
		return err
	}
	switch name {
	case "get":
		key, opts, err := get.op(args)
		if err != nil {
			return txnOp{}, wrap(err)
		}
		return txnOp{op: clientv3.OpGet(key, opts...)}, nil
	case "put":
		key, val, opts, err := put.op(args, nil)
		if err != nil {
			return txnOp{}, wrap(err)
		}
		return txnOp{op: clientv3.OpPut(key, val, opts...)}, nil
	default:
		key, opts, warn, err := del.op(args)
		if err != nil {
			return txnOp{}, wrap(err)
		}
		return txnOp{op: clientv3.OpDelete(key, opts...), warn: warn}, nil
	}
}

// txnOpName resolves a request name, accepting unambiguous prefixes as
// etcdctl does ("g" is get).
func txnOpName(word string) (string, bool) {
	if word == "" {
		return "", false
	}
	for _, name := range []string{"get", "put", "del"} {
		if strings.HasPrefix(name, word) {
			return name, true
		}
	}
	return "", false
}
