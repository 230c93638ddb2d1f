package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"

	"github.com/cairn-io/cairn/internal/mvcc"
)

func hexID(id uint64) string { return fmt.Sprintf("%x", id) }

// publishAttributes records this member's name and client URLs in the
// cluster through raft once it can, so every member lists them.
func (s *Server) publishAttributes() {
	for {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReqTimeout())
		err := s.WaitReady(ctx)
		if err == nil {
			_, err = s.proposeResult(ctx, &pb.InternalRaftRequest{ClusterMemberAttrSet: &membershippb.ClusterMemberAttrSetRequest{
				Member_ID:        s.id,
				MemberAttributes: &membershippb.Attributes{Name: s.cfg.Name, ClientUrls: s.cfg.ClientURLs},
			}})
		}
		cancel()
		if err == nil {
			s.lg.Info("published member attributes", "name", s.cfg.Name, "client-urls", s.cfg.ClientURLs)
			return
		}
		if errors.Is(err, ErrStopped) {
			return
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// parseAutoCompaction interprets --auto-compaction-mode and
// --auto-compaction-retention as etcd does: in periodic mode a bare number
// is hours, otherwise a duration; in revision mode a number of revisions.
func parseAutoCompaction(mode, retention string) (string, time.Duration, error) {
	if retention == "" || retention == "0" {
		return mode, 0, nil
	}
	switch mode {
	case "", "periodic", "revision":
	default:
		return "", 0, fmt.Errorf("%w: --auto-compaction-mode must be \"periodic\" or \"revision\", not %q", ErrBadConfig, mode)
	}
	if mode == "" {
		mode = "periodic"
	}
	if n, err := strconv.ParseInt(retention, 10, 64); err == nil {
		if n < 0 {
			return "", 0, fmt.Errorf("%w: --auto-compaction-retention must not be negative", ErrBadConfig)
		}
		if mode == "revision" {
			return mode, time.Duration(n), nil
		}
		return mode, time.Duration(n) * time.Hour, nil
	}
	if mode == "revision" {
		return "", 0, fmt.Errorf("%w: --auto-compaction-retention %q: revision mode needs a number of revisions", ErrBadConfig, retention)
	}
	d, err := time.ParseDuration(retention)
	if err != nil || d < 0 {
		return "", 0, fmt.Errorf("%w: --auto-compaction-retention %q is neither a number of hours nor a duration like 30m", ErrBadConfig, retention)
	}
	return mode, d, nil
}

// autoCompact runs etcd's auto compaction on the leader. Periodic mode
// samples the revision every retention/10 (at most every 6 minutes) and
// compacts to the revision from a whole retention ago; revision mode
// compacts to current minus retention every 5 minutes
// (Config.revisionCompactEvery).
func (s *Server) autoCompact(mode string, retention time.Duration) {
	defer s.wg.Done()
	compact := func(rev int64) bool {
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ReqTimeout())
		defer cancel()
		_, err := s.Compact(ctx, &pb.CompactionRequest{Revision: rev})
		if err == nil || errors.Is(err, mvcc.ErrCompacted) {
			s.lg.Info("auto compaction", "mode", mode, "revision", rev)
			return true
		}
		s.lg.Warn("auto compaction failed", "mode", mode, "revision", rev, "err", err)
		return false
	}
	if mode == "revision" {
		keep := int64(retention)
		var prev int64
		t := time.NewTicker(s.cfg.revisionCompactEvery)
		defer t.Stop()
		for {
			select {
			case <-s.stopping:
				return
			case <-t.C:
			}
			rev := s.kv.Rev() - keep
			if !s.IsLeader() || rev <= 0 || rev == prev {
				continue
			}
			if compact(rev) {
				prev = rev
			}
		}
	}
	interval := min(retention, time.Hour)
	sample := interval / 10
	samples := int(retention/sample) + 1
	var revs []int64
	var lastRev int64
	lastSuccess := time.Now()
	base := retention
	for {
		revs = append(revs, s.kv.Rev())
		if len(revs) > samples {
			revs = revs[1:]
		}
		select {
		case <-s.stopping:
			return
		case <-time.After(sample):
		}
		if !s.IsLeader() {
			continue
		}
		rev := revs[0]
		if time.Since(lastSuccess) < base || rev == lastRev {
			continue
		}
		base = interval
		if compact(rev) {
			lastRev, lastSuccess = rev, time.Now()
		}
	}
}
