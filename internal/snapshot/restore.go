package snapshot

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/storage"
)

// RestoreConfig says what cluster a restored data directory belongs to,
// with etcd's flags: the restored member is Name in InitialCluster.
type RestoreConfig struct {
	// DataDir is the data directory to create. It must not exist.
	DataDir             string
	Name                string
	InitialCluster      string
	InitialClusterToken string
	// PeerURLs are this member's --initial-advertise-peer-urls.
	PeerURLs []string
	// Progress, if set, is called with the bytes of snapshot read so far.
	Progress func(read int64)
}

// Status describes a snapshot file.
type Status struct {
	// Hash is a CRC-32C of the records.
	Hash uint32
	// Revision is the store revision the snapshot was taken at.
	Revision int64
	// TotalKey is the number of MVCC revisions it holds.
	TotalKey int
	// TotalSize is the file size in bytes.
	TotalSize int64
}

// ReadStatus reads and verifies the snapshot at path.
func ReadStatus(path string) (Status, error) {
	f, err := os.Open(path)
	if err != nil {
		return Status{}, fmt.Errorf("snapshot: %w", err)
	}
	defer f.Close()
	st := Status{}
	if fi, err := f.Stat(); err == nil {
		st.TotalSize = fi.Size()
	}
	h := crc32.New(crc32.MakeTable(crc32.Castagnoli))
	err = Read(f, func(k, v []byte) error {
		h.Write(k)
		h.Write(v)
		if len(k) > 0 && k[0] == storage.PrefixKV {
			r, _, err := storage.ParseRevKey(k)
			if err != nil {
				return fmt.Errorf("%w: %v", ErrCorrupt, err)
			}
			st.TotalKey++
			st.Revision = max(st.Revision, r.Main)
		}
		return nil
	})
	if err != nil {
		return Status{}, err
	}
	st.Hash = h.Sum32()
	return st, nil
}

// Restore builds a new data directory from the snapshot read from r. The
// directory is assembled beside DataDir and renamed into place only when the
// whole snapshot has been read and verified, so a damaged snapshot leaves
// nothing behind.
func Restore(r io.Reader, cfg RestoreConfig) error {
	if cfg.DataDir == "" {
		return errors.New("snapshot restore: --data-dir is required")
	}
	if _, err := os.Stat(cfg.DataDir); err == nil {
		return fmt.Errorf("snapshot restore: data-dir %q exists", cfg.DataDir)
	}
	members, err := membership.ParseInitialCluster(cfg.InitialCluster, cfg.InitialClusterToken)
	if err != nil {
		return fmt.Errorf("snapshot restore: --initial-cluster: %w", err)
	}
	var self *membership.Member
	ids := make([]uint64, len(members))
	for i := range members {
		ids[i] = members[i].ID
		if members[i].Name == cfg.Name {
			self = &members[i]
		}
	}
	if self == nil {
		return fmt.Errorf("snapshot restore: --initial-cluster %q has no member named %q", cfg.InitialCluster, cfg.Name)
	}
	if len(cfg.PeerURLs) > 0 && !membership.SameURLs(self.PeerURLs, cfg.PeerURLs) {
		return fmt.Errorf("snapshot restore: --initial-cluster has %s=%v but --initial-advertise-peer-urls is %v",
			cfg.Name, self.PeerURLs, cfg.PeerURLs)
	}

	parent := filepath.Dir(filepath.Clean(cfg.DataDir))
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, filepath.Base(cfg.DataDir)+".restoring-")
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	db, err := storage.Open(storage.Config{Dir: storage.DataPath(tmp)})
	if err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	defer func() {
		if db != nil {
			db.Close()
		}
	}()

	b := db.NewBatch()
	var read int64
	cr := &countingReader{r: r, n: &read}
	err = Read(cr, func(k, v []byte) error {
		if err := b.Set(k, v, nil); err != nil {
			return err
		}
		if b.Len() >= 4<<20 {
			if err := db.Commit(b, false); err != nil {
				return err
			}
			b = db.NewBatch()
		}
		if cfg.Progress != nil {
			cfg.Progress(read)
		}
		return nil
	})
	if err != nil {
		b.Close()
		return fmt.Errorf("snapshot restore: %w", err)
	}

	// The new cluster's identity and membership, as a bootstrap would
	// write them, and a raft state that starts from a snapshot containing
	// exactly this data.
	cluster := membership.New(membership.ClusterID(ids))
	for _, m := range members {
		if err := cluster.Add(b, m); err != nil {
			b.Close()
			return fmt.Errorf("snapshot restore: %w", err)
		}
	}
	index := uint64(len(members))
	storage.PutUint64(b, storage.MetaMemberID, self.ID)
	storage.PutUint64(b, storage.MetaClusterID, cluster.ID())
	storage.PutUint64(b, storage.MetaAppliedIndex, index)
	storage.PutUint64(b, storage.MetaAppliedTerm, 1)
	cs, err := (&raftpb.ConfState{Voters: ids}).Marshal()
	if err != nil {
		b.Close()
		return fmt.Errorf("snapshot restore: %w", err)
	}
	b.Set(storage.MetaKey(storage.MetaConfState), cs, nil)
	if err := db.Commit(b, true); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	snap := raftpb.Snapshot{Metadata: raftpb.SnapshotMetadata{
		Index: index, Term: 1, ConfState: raftpb.ConfState{Voters: ids},
	}}
	if err := db.SaveRaft(raftpb.HardState{Term: 1, Commit: index}, nil, snap, true); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	if err := db.Close(); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	db = nil
	if err := os.Rename(tmp, cfg.DataDir); err != nil {
		return fmt.Errorf("snapshot restore: %w", err)
	}
	ok = true
	return nil
}

type countingReader struct {
	r io.Reader
	n *int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	*c.n += int64(n)
	return n, err
}
