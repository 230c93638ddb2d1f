package storage

import (
	"bytes"
	"testing"
)

// TestSizeNowCountsTheLastWrite: Size may answer from a cache made before
// the last write (the quota check asks on every write); SizeNow, which
// Status and the metrics report, counts a write made right after a Size
// call, and refreshes the cache.
func TestSizeNowCountsTheLastWrite(t *testing.T) {
	d, _ := openMem(t, nil)
	defer closeDB(t, d)
	before, _ := d.Size()
	b := d.NewBatch()
	if err := b.Set([]byte("k"), bytes.Repeat([]byte("v"), 4096), nil); err != nil {
		t.Fatal(err)
	}
	if err := d.Commit(b, true); err != nil {
		t.Fatal(err)
	}
	now, inUse := d.SizeNow()
	if now < before+4096 {
		t.Fatalf("SizeNow after a 4096-byte write = %d, want at least %d", now, before+4096)
	}
	if inUse > now {
		t.Fatalf("SizeNow in use %d > total %d", inUse, now)
	}
	if cached, _ := d.Size(); cached != now {
		t.Fatalf("Size after SizeNow = %d, want the refreshed %d", cached, now)
	}
}
