package e2e

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/tests/framework"
)

// TestSnapshotRestore takes a snapshot over clientv3, restores it with the
// snapshot package into a new data directory, starts cairn serve on it and
// compares: the same keys at the same revision, the same lease, and the same
// HashKV at the snapshot's revision.
func TestSnapshotRestore(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx := deadlineCtx(t, 2*time.Minute)

	// A history with overwrites, deletes, a txn, a leased key and a
	// compaction, and one value large enough to span snapshot chunks.
	if _, err := pb.NewLeaseClient(cli.ActiveConnection()).LeaseGrant(ctx, &pb.LeaseGrantRequest{ID: 4242, TTL: 3600}); err != nil {
		t.Fatal(err)
	}
	must := func(_ any, err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range 30 {
		must(cli.Put(ctx, fmt.Sprintf("snap/%02d", i%12), fmt.Sprint(i)))
	}
	must(cli.Delete(ctx, "snap/0", clientv3.WithPrefix()))
	must(cli.Txn(ctx).Then(clientv3.OpPut("snap/t1", "a"), clientv3.OpPut("snap/t2", "b")).Commit())
	must(cli.Put(ctx, "snap/leased", "l", clientv3.WithLease(4242)))
	must(cli.Put(ctx, "snap/big", strings.Repeat("B", 200<<10)))
	mid, err := cli.Put(ctx, "snap/mid", "m")
	must(mid, err)
	must(cli.Compact(ctx, mid.Header.Revision-5, clientv3.WithCompactPhysical()))
	last, err := cli.Put(ctx, "snap/last", "z")
	must(last, err)
	rev := last.Header.Revision
	orig, err := cli.HashKV(ctx, m.Endpoint(), rev)
	must(orig, err)
	origKeys, err := cli.Get(ctx, "", clientv3.WithFromKey())
	must(origKeys, err)

	snap, err := cli.SnapshotWithVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, err := io.ReadAll(snap.Snapshot)
	snap.Snapshot.Close()
	if err != nil {
		t.Fatalf("reading the snapshot stream: %v", err)
	}
	if snap.Version != "3.6.0" {
		t.Errorf("snapshot version %q, want 3.6.0", snap.Version)
	}
	file := filepath.Join(t.TempDir(), "snapshot.db")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if st, err := snapshot.ReadStatus(file); err != nil || st.Revision != rev {
		t.Fatalf("snapshot status: %+v %v, want revision %d", st, err, rev)
	}

	// A second member, stopped, whose data directory the snapshot
	// replaces: restored as its only member, with its peer URL.
	r := framework.Start(t, framework.Config{Name: "restored"})
	r.Stop(t)
	if err := os.RemoveAll(r.DataDir()); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = snapshot.Restore(f, snapshot.RestoreConfig{
		DataDir:             r.DataDir(),
		Name:                r.Name(),
		InitialCluster:      r.Name() + "=" + r.PeerURL(),
		InitialClusterToken: "etcd-cluster",
		PeerURLs:            []string{r.PeerURL()},
	})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	r.Restart(t)
	rcli := r.Client(t)

	got, err := rcli.HashKV(ctx, r.Endpoint(), rev)
	if err != nil {
		t.Fatalf("HashKV(%d) on the restored member: %v", rev, err)
	}
	if got.Hash != orig.Hash || got.CompactRevision != orig.CompactRevision || got.HashRevision != orig.HashRevision {
		t.Errorf("HashKV(%d): restored hash=%d compact_revision=%d hash_revision=%d, original hash=%d compact_revision=%d hash_revision=%d",
			rev, got.Hash, got.CompactRevision, got.HashRevision, orig.Hash, orig.CompactRevision, orig.HashRevision)
	}
	keys, err := rcli.Get(ctx, "", clientv3.WithFromKey())
	if err != nil {
		t.Fatal(err)
	}
	if keys.Header.Revision != rev || len(keys.Kvs) != len(origKeys.Kvs) {
		t.Fatalf("restored member: %d keys at revision %d, original %d at %d", len(keys.Kvs), keys.Header.Revision, len(origKeys.Kvs), rev)
	}
	for i, kv := range keys.Kvs {
		o := origKeys.Kvs[i]
		if !bytes.Equal(kv.Key, o.Key) || !bytes.Equal(kv.Value, o.Value) || kv.CreateRevision != o.CreateRevision ||
			kv.ModRevision != o.ModRevision || kv.Version != o.Version || kv.Lease != o.Lease {
			t.Errorf("restored key %q (create %d mod %d version %d lease %d) differs from the original (create %d mod %d version %d lease %d)",
				kv.Key, kv.CreateRevision, kv.ModRevision, kv.Version, kv.Lease, o.CreateRevision, o.ModRevision, o.Version, o.Lease)
		}
	}
	if _, err := rcli.Get(ctx, "snap/mid", clientv3.WithRev(mid.Header.Revision-6)); err == nil {
		t.Errorf("a read below the compaction revision succeeded on the restored member")
	}
	ttl, err := rcli.TimeToLive(ctx, 4242, clientv3.WithAttachedKeys())
	if err != nil {
		t.Fatalf("the lease on the restored member: %v", err)
	}
	if ttl.GrantedTTL != 3600 || len(ttl.Keys) != 1 || string(ttl.Keys[0]) != "snap/leased" {
		t.Errorf("restored lease: granted %d keys %q", ttl.GrantedTTL, ttl.Keys)
	}
	// It is a working member: writes continue from the snapshot's revision.
	next, err := rcli.Put(ctx, "snap/after", "x")
	if err != nil {
		t.Fatal(err)
	}
	if next.Header.Revision != rev+1 {
		t.Errorf("first write on the restored member at revision %d, want %d", next.Header.Revision, rev+1)
	}

	t.Run("damaged", func(t *testing.T) { restoreDamaged(t, data) })
	t.Run("three-members", func(t *testing.T) { restoreCluster(t, file, rev, orig) })
}

// restoreCluster restores one snapshot into a new 3-member cluster with
// `cairn snapshot restore`, once per member with its name, the whole
// --initial-cluster and its peer URL (as etcdutl takes them), starts the
// three on the restored directories and checks that they form one cluster
// with the snapshot's history: one leader, the snapshot's HashKV on every
// member, and writes that continue from its revision on all of them.
func restoreCluster(t *testing.T, file string, rev int64, orig *clientv3.HashKVResponse) {
	c := framework.StartCluster(t, 3, framework.Config{Name: "r"})
	var peers []string
	for _, m := range c.Members {
		peers = append(peers, m.Name()+"="+m.AdvertisedPeerURL())
	}
	for _, m := range c.Members {
		m.Stop(t)
	}
	bin := framework.CairnBinary(t)
	for _, m := range c.Members {
		if err := os.RemoveAll(m.DataDir()); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(bin, "snapshot", "restore", file,
			"--name", m.Name(), "--data-dir", m.DataDir(),
			"--initial-cluster", strings.Join(peers, ","),
			"--initial-advertise-peer-urls", m.AdvertisedPeerURL(),
			"--initial-cluster-token", "restored-cluster").CombinedOutput()
		if err != nil {
			t.Fatalf("snapshot restore for %s: %v\n%s", m.Name(), err, out)
		}
	}
	for _, m := range c.Members {
		m.Launch(t)
	}
	c.Leader(t)
	ctx := deadlineCtx(t, time.Minute)
	ids := map[uint64]bool{}
	for _, m := range c.Members {
		cli := m.Client(t)
		got, err := cli.HashKV(ctx, m.Endpoint(), rev)
		if err != nil {
			t.Fatalf("HashKV(%d) on %s: %v", rev, m.Name(), err)
		}
		if got.Hash != orig.Hash || got.CompactRevision != orig.CompactRevision {
			t.Errorf("%s: HashKV(%d) hash=%d compact_revision=%d, snapshot's hash=%d compact_revision=%d",
				m.Name(), rev, got.Hash, got.CompactRevision, orig.Hash, orig.CompactRevision)
		}
		ml, err := cli.MemberList(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(ml.Members) != 3 {
			t.Errorf("%s lists %d members, want 3", m.Name(), len(ml.Members))
		}
		ids[ml.Header.ClusterId] = true
	}
	if len(ids) != 1 {
		t.Errorf("the restored members are in %d clusters, want one", len(ids))
	}
	put, err := c.Client(t).Put(ctx, "snap/after-restore", "x")
	if err != nil {
		t.Fatal(err)
	}
	if put.Header.Revision != rev+1 {
		t.Errorf("first write on the restored cluster at revision %d, want %d", put.Header.Revision, rev+1)
	}
	for _, m := range c.Members {
		framework.Poll(t, 30*time.Second, m.Name()+" to apply the write", func() error {
			r, err := m.Client(t).Get(ctx, "snap/after-restore", clientv3.WithSerializable())
			if err != nil || len(r.Kvs) != 1 {
				return fmt.Errorf("%v %v", r, err)
			}
			return nil
		})
	}
}

// restoreDamaged feeds Restore truncated and bit-flipped copies of a good
// snapshot: each must fail with snapshot.ErrCorrupt and leave nothing in the
// parent directory.
func restoreDamaged(t *testing.T, good []byte) {
	flip := func(at int) []byte {
		b := bytes.Clone(good)
		b[at] ^= 0x10
		return b
	}
	cases := []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"header only", good[:len(snapshot.Magic)]},
		{"truncated in the middle", good[:len(good)/2]},
		{"last byte missing", good[:len(good)-1]},
		{"checksum missing", good[:len(good)-32]},
		{"a byte too many", append(bytes.Clone(good), 0)},
		{"bit flipped in the header", flip(2)},
		{"bit flipped in a record", flip(len(good) / 3)},
		{"bit flipped in the checksum", flip(len(good) - 5)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			dir := filepath.Join(parent, "restored")
			err := snapshot.Restore(bytes.NewReader(tc.data), snapshot.RestoreConfig{
				DataDir:        dir,
				Name:           "x",
				InitialCluster: "x=http://127.0.0.1:2380",
			})
			if err == nil {
				t.Fatalf("Restore accepted a damaged snapshot")
			}
			if !errors.Is(err, snapshot.ErrCorrupt) {
				t.Errorf("Restore: %v, want an error wrapping snapshot.ErrCorrupt", err)
			}
			if !strings.Contains(err.Error(), "snapshot") {
				t.Errorf("the error %q does not say it is about the snapshot", err)
			}
			if _, serr := os.Stat(dir); !os.IsNotExist(serr) {
				t.Errorf("Restore failed (%v) but left %s behind (%v)", err, dir, serr)
			}
			entries, _ := os.ReadDir(parent)
			for _, e := range entries {
				t.Errorf("Restore failed (%v) but left %s in the parent directory", err, e.Name())
			}
		})
	}
}
