package watch

import (
	"fmt"
	"strings"
	"testing"

	"go.etcd.io/etcd/api/v3/mvccpb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

// BenchmarkNotify dispatches one put to 10,000 synced watchers on one key
// each, or on one prefix each: a put to a key nobody watches, or to a key
// one of them watches (its event is received before the next put). What it
// measures runs on the apply loop, under the hub's lock.
func BenchmarkNotify(b *testing.B) {
	const watchers = 10_000
	for _, bc := range []struct {
		name string
		opts func(i int) WatchOptions
		key  string
	}{
		{"single-keys/unwatched", func(i int) WatchOptions { return WatchOptions{Key: fmt.Appendf(nil, "k/%05d", i)} }, "k/05000x"},
		{"single-keys/one-match", func(i int) WatchOptions { return WatchOptions{Key: fmt.Appendf(nil, "k/%05d", i)} }, "k/05000"},
		// "p/05000x" sorts between two watched prefixes.
		{"distinct-prefixes/unwatched", func(i int) WatchOptions { return prefixOpts(fmt.Sprintf("p/%05d/", i)) }, "p/05000x"},
		{"distinct-prefixes/one-match", func(i int) WatchOptions { return prefixOpts(fmt.Sprintf("p/%05d/", i)) }, "p/05000/a"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			src := newFakeStore()
			h := New(Config{Source: src})
			defer h.Stop()
			s := h.NewStream()
			for i := range watchers {
				if _, _, err := s.Watch(bc.opts(i)); err != nil {
					b.Fatal(err)
				}
			}
			matches := !strings.HasSuffix(bc.key, "x")
			rev := src.Rev()
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				rev++
				h.Notify([]mvcc.Change{{KV: mvccpb.KeyValue{Key: []byte(bc.key), Value: []byte("v"), ModRevision: rev, CreateRevision: 2, Version: rev - 1}}})
				if !matches {
					continue
				}
				select {
				case <-s.Chan():
				default:
					b.Fatalf("the event of revision %d was not delivered", rev)
				}
			}
		})
	}
}

func prefixOpts(p string) WatchOptions {
	end := []byte(p)
	end[len(end)-1]++
	return WatchOptions{Key: []byte(p), End: end}
}
