package cli

import (
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// permRange never panics and turns the arguments into what etcdctl sends:
// a non-empty key; with --prefix the prefix's range, with --from-key an
// open end; an empty key means every key.
func FuzzPermRange(f *testing.F) {
	f.Add("k", "", false, false, false)
	f.Add("k", "", true, false, false)
	f.Add("k", "", false, true, false)
	f.Add("", "", true, false, false)
	f.Add("", "", true, true, false)
	f.Add("a", "b", false, false, true)
	f.Add("a", "b", true, false, true)
	f.Add("\xff\xff", "", true, false, false)
	f.Fuzz(func(t *testing.T, key, end string, prefix, fromKey, withEnd bool) {
		args := []string{key}
		if withEnd {
			args = append(args, end)
		}
		k, e, err := permRange(args, prefix, fromKey)
		if err != nil {
			if !(prefix && fromKey) && !(withEnd && key != "" && (prefix || fromKey)) {
				t.Fatalf("permRange(%q, %v, %v): unexpected error %v", args, prefix, fromKey, err)
			}
			return
		}
		if k == "" {
			t.Fatalf("permRange(%q): empty key", args)
		}
		switch {
		case key == "":
			if k != "\x00" || (prefix || fromKey) != (e == "\x00") {
				t.Fatalf("permRange(%q, %v, %v) = %q, %q", args, prefix, fromKey, k, e)
			}
		case prefix:
			if e != clientv3.GetPrefixRangeEnd(key) {
				t.Fatalf("permRange(%q, prefix) end %q", args, e)
			}
		case fromKey:
			if e != "\x00" {
				t.Fatalf("permRange(%q, from-key) end %q", args, e)
			}
		case withEnd:
			if e != end {
				t.Fatalf("permRange(%q) end %q", args, e)
			}
		default:
			if e != "" {
				t.Fatalf("permRange(%q) end %q", args, e)
			}
		}
	})
}
