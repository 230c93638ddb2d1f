package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/storage"
	"github.com/cairn-io/cairn/internal/transport"
	"github.com/cairn-io/cairn/internal/version"
)

// Membership, peer endpoints and snapshots between members.

// More sentinel errors of clustering, with etcd's texts.
var (
	// ErrRemoved: this member was removed from the cluster and stopped.
	ErrRemoved = errors.New("etcdserver: the member has been permanently removed from the cluster")
	// ErrLearnerNotReady: a learner cannot be promoted before it caught up.
	ErrLearnerNotReady = errors.New("etcdserver: can only promote a learner member which is in sync with leader")
	// ErrNotEnoughStartedMembers: the change would leave too few members
	// running for a quorum.
	ErrNotEnoughStartedMembers = errors.New("etcdserver: re-configuration failed due to not enough started members")
	// ErrBadLeaderTransferee: the leadership target is not a voting member.
	ErrBadLeaderTransferee = errors.New("etcdserver: bad leader transferee")
	// ErrLeaderTransferTimeout: leadership did not move in time.
	ErrLeaderTransferTimeout = errors.New("etcdserver: request timed out, leader transfer took too long")
	// ErrNotSupportedForLearner: learners serve only serializable reads.
	ErrNotSupportedForLearner = errors.New("etcdserver: rpc not supported for learner")
)

// maxLearners is how many learners a cluster may have at once (etcd's
// default).
const maxLearners = 1

// snapDir is where received snapshots wait to be installed.
func (s *Server) snapDir() string { return filepath.Join(s.cfg.DataDir, "member", "snap") }

func (s *Server) snapPath(index uint64) string {
	return filepath.Join(s.snapDir(), fmt.Sprintf("%016x.snap", index))
}

// peerSnapshots gives the transport the member's snapshots.
type peerSnapshots struct{ s *Server }

func (p peerSnapshots) OpenSnapshot(m raftpb.Message) (raftpb.Message, io.ReadCloser, error) {
	return p.s.openReplicaSnapshot(m)
}

func (p peerSnapshots) ReceiveSnapshot(m raftpb.Message, r io.Reader) error {
	return p.s.receiveSnapshot(m, r)
}

// openReplicaSnapshot reads the state from a point-in-time view of storage,
// and replaces the message's metadata with the applied index, term and
// configuration recorded in that same view, so the follower installs
// exactly what the metadata says.
func (s *Server) openReplicaSnapshot(m raftpb.Message) (raftpb.Message, io.ReadCloser, error) {
	snap := s.db.Pebble().NewSnapshot()
	meta, err := snapshotMetadata(snap)
	if err != nil {
		snap.Close()
		return m, nil, err
	}
	m.Snapshot = &raftpb.Snapshot{Metadata: meta}
	pr, pw := io.Pipe()
	go func() {
		err := snapshot.Write(pw, snap, snapshot.Replica)
		snap.Close()
		pw.CloseWithError(err)
	}()
	return m, pr, nil
}

func snapshotMetadata(r interface {
	Get([]byte) ([]byte, io.Closer, error)
}) (raftpb.SnapshotMetadata, error) {
	var meta raftpb.SnapshotMetadata
	get := func(name string) ([]byte, error) {
		v, closer, err := r.Get(storage.MetaKey(name))
		if err != nil {
			return nil, fmt.Errorf("snapshot metadata %s: %w", name, err)
		}
		defer closer.Close()
		return append([]byte(nil), v...), nil
	}
	idx, err := get(storage.MetaAppliedIndex)
	if err != nil {
		return meta, err
	}
	term, err := get(storage.MetaAppliedTerm)
	if err != nil {
		return meta, err
	}
	cs, err := get(storage.MetaConfState)
	if err != nil {
		return meta, err
	}
	if len(idx) != 8 || len(term) != 8 {
		return meta, fmt.Errorf("snapshot metadata: %w", storage.ErrCorrupt)
	}
	meta.Index, meta.Term = beUint64(idx), beUint64(term)
	if err := meta.ConfState.Unmarshal(cs); err != nil {
		return meta, fmt.Errorf("snapshot metadata: conf state: %w", err)
	}
	return meta, nil
}

func beUint64(b []byte) uint64 {
	return uint64(b[0])<<56 | uint64(b[1])<<48 | uint64(b[2])<<40 | uint64(b[3])<<32 |
		uint64(b[4])<<24 | uint64(b[5])<<16 | uint64(b[6])<<8 | uint64(b[7])
}

// receiveSnapshot writes a snapshot from the leader to a file and verifies
// it before raft hears of it. The file and its name are durable before it
// returns: raft may record the snapshot, and a restart then installs it
// from the file.
func (s *Server) receiveSnapshot(m raftpb.Message, r io.Reader) error {
	if err := os.MkdirAll(s.snapDir(), 0o700); err != nil {
		return err
	}
	index := m.Snapshot.Metadata.Index
	path := s.snapPath(index)
	tmp, err := os.CreateTemp(s.snapDir(), "receiving-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	tee := io.TeeReader(r, tmp)
	if err := snapshot.Read(tee, func(k, v []byte) error { return nil }); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	if err := syncDir(s.snapDir()); err != nil {
		return fmt.Errorf("received snapshot %d: %w", index, err)
	}
	s.snapFilesMu.Lock()
	s.snapFiles[index] = struct{}{}
	s.snapFilesMu.Unlock()
	return nil
}

// syncDir makes the entries of directory dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// dropRejectedSnapshots removes the received snapshot files at or below
// the applied index: raft refuses a snapshot it does not need (its log
// already has the entries, committed), and the apply loop installs the
// ones it takes before the applied index passes them, so a file still here
// by then was refused.
func (s *Server) dropRejectedSnapshots() {
	applied := s.appliedIndex.Load()
	s.snapFilesMu.Lock()
	defer s.snapFilesMu.Unlock()
	for index := range s.snapFiles {
		if index > applied {
			continue
		}
		if err := os.Remove(s.snapPath(index)); err != nil && !os.IsNotExist(err) {
			s.lg.Warn("removing a received snapshot raft did not need", "index", index, "err", err)
			continue
		}
		s.lg.Info("removed a received snapshot raft did not need", "index", index)
		delete(s.snapFiles, index)
	}
}

// installSnapshot replaces this member's state with a snapshot received
// from the leader. Storage is rewritten while every store transaction is
// locked out, and the applied index moves to the snapshot's in the last,
// synced batch: a crash midway leaves the old applied index, so the install
// runs again at restart from the kept file.
func (s *Server) installSnapshot(snap raftpb.Snapshot) error {
	meta := snap.Metadata
	path := s.snapPath(meta.Index)
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("install snapshot at %d: %w", meta.Index, err)
	}
	defer f.Close()
	s.lg.Info("installing a snapshot from the leader", "index", meta.Index, "term", meta.Term)
	err = s.kv.Replace(func() error {
		b := s.db.NewBatch()
		for _, p := range snapshot.ReplicatedPrefixes {
			lo, hi := storage.PrefixBounds(p)
			b.DeleteRange(lo, hi, nil)
		}
		b.Delete(storage.MetaKey(storage.MetaScheduledCompact), nil)
		b.Delete(storage.MetaKey(storage.MetaFinishedCompact), nil)
		err := snapshot.Read(f, func(k, v []byte) error {
			if len(k) > 0 && k[0] == storage.PrefixMeta {
				switch string(k[1:]) {
				case storage.MetaAppliedIndex, storage.MetaAppliedTerm, storage.MetaConfState:
					return nil // written last, below
				}
			}
			if err := b.Set(k, v, nil); err != nil {
				return err
			}
			if b.Len() >= 4<<20 {
				if err := s.db.Commit(b, false); err != nil {
					return err
				}
				b = s.db.NewBatch()
			}
			return nil
		})
		if err != nil {
			b.Close()
			return err
		}
		storage.PutUint64(b, storage.MetaAppliedIndex, meta.Index)
		storage.PutUint64(b, storage.MetaAppliedTerm, meta.Term)
		cs, _ := meta.ConfState.Marshal()
		b.Set(storage.MetaKey(storage.MetaConfState), cs, nil)
		if err := s.db.Commit(b, true); err != nil {
			return err
		}
		// The lease table reloads before the index rebuild, which
		// re-attaches keys to leases.
		return s.lessor.Reload(s.db.Pebble())
	})
	if err != nil {
		return fmt.Errorf("install snapshot at %d: %w", meta.Index, err)
	}
	if s.alarms, err = loadAlarms(s.db.Pebble()); err != nil {
		return err
	}
	if err := s.cluster.Reload(s.db.Pebble()); err != nil {
		return err
	}
	if err := s.authStore.Load(s.db.Pebble()); err != nil {
		return err
	}
	if err := s.v2.store.Reload(s.db.Pebble()); err != nil {
		return err
	}
	s.syncPeers()
	s.hub.Reset()
	s.appliedIndex.Store(meta.Index)
	s.appliedTerm.Store(meta.Term)
	s.confState = meta.ConfState
	s.snapIndex = meta.Index
	os.Remove(path)
	s.snapFilesMu.Lock()
	delete(s.snapFiles, meta.Index)
	s.snapFilesMu.Unlock()
	s.lg.Info("installed a snapshot from the leader", "index", meta.Index, "revision", s.kv.Rev())
	return nil
}

// syncPeers makes the transport send to exactly the current members.
func (s *Server) syncPeers() {
	if s.transport == nil {
		return
	}
	want := map[uint64]bool{}
	for _, m := range s.cluster.Members() {
		if m.ID == s.id {
			continue
		}
		want[m.ID] = true
		s.transport.AddPeer(m.ID, m.PeerURLs)
	}
	for _, id := range s.transport.Peers() {
		if !want[id] {
			s.transport.RemovePeer(id)
		}
	}
}

// PeerHandler serves the peer port: raft streams and snapshots, the member
// list a joining member reads, the requests followers forward to the leader
// (member changes, lease renewals and time-to-live), and the version. The
// forwarded requests act as the member itself, past any client
// authentication, so they are served only to requests that name this
// cluster and one of its members as the sender, as raft's are. Those
// headers keep clusters apart, not attackers out: a peer port reachable by
// untrusted hosts needs peer TLS with --peer-client-cert-auth, as in etcd.
func (s *Server) PeerHandler() http.Handler {
	mux := http.NewServeMux()
	th := s.transport.Handler()
	mux.Handle(transport.StreamPath, th)
	mux.Handle(transport.SnapshotPath, th)
	mux.Handle(transport.ProbePath, th)
	mux.HandleFunc("/members", s.serveMembers)
	mux.Handle(memberChangePath, s.transport.Guard(http.HandlerFunc(s.serveMemberChange)))
	mux.Handle(leaseRenewPath, s.transport.Guard(http.HandlerFunc(s.serveLeaseRenew)))
	mux.Handle(leaseTTLPath, s.transport.Guard(http.HandlerFunc(s.serveLeaseTTL)))
	mux.HandleFunc("/version", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"etcdserver":%q,"etcdcluster":%q}`, version.EtcdServerVersion, version.EtcdClusterVersion)
	})
	return mux
}

func (s *Server) serveMembers(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Etcd-Cluster-ID", strconv.FormatUint(s.clusterID, 16))
	json.NewEncoder(w).Encode(s.cluster.Members())
}

// fetchCluster asks the members at peerURLs for the cluster's ID and
// members, for a member joining an existing cluster.
func fetchCluster(ctx context.Context, client *http.Client, peerURLs []string) (uint64, []membership.Member, error) {
	var errs []error
	for _, u := range peerURLs {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(u, "/")+"/members", nil)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		resp, err := client.Do(req)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		var members []membership.Member
		err = json.NewDecoder(resp.Body).Decode(&members)
		resp.Body.Close()
		if err != nil || resp.StatusCode != http.StatusOK {
			errs = append(errs, fmt.Errorf("%s: %s %v", u, resp.Status, err))
			continue
		}
		cid, err := strconv.ParseUint(resp.Header.Get("X-Etcd-Cluster-ID"), 16, 64)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: no cluster ID", u))
			continue
		}
		return cid, members, nil
	}
	return 0, nil, fmt.Errorf("could not reach any member of the cluster: %w", errors.Join(errs...))
}

// checkNotBootstrapped refuses to bootstrap member id of a new cluster
// when the cluster already runs with it, as etcd refuses: its data
// directory was lost, and starting it afresh would give it an empty raft
// state, so that it could vote a second time in a term it voted in before.
// The other members of --initial-cluster are asked for their member list;
// the member was bootstrapped if one lists it with client URLs, which only
// the member itself publishes once it runs. Peers that cannot answer (not
// started yet, or starting too) are no evidence either way.
func (s *Server) checkNotBootstrapped(id uint64, members []membership.Member) error {
	var urls []string
	for _, m := range members {
		if m.ID != id {
			urls = append(urls, m.PeerURLs...)
		}
	}
	if len(urls) == 0 {
		return nil
	}
	// As etcd: a second for the request plus an election timeout.
	timeout := time.Second + s.cfg.ElectionTimeout
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	client := s.newPeerHTTPClient(timeout)
	lists := make(chan []membership.Member, len(urls))
	for _, u := range urls {
		go func() {
			_, ms, err := fetchCluster(ctx, client, []string{u})
			if err != nil {
				s.lg.Debug("asking a peer whether this member was bootstrapped", "peer", u, "err", err)
			}
			lists <- ms
		}()
	}
	for range urls {
		for _, m := range <-lists {
			if m.ID == id && len(m.ClientURLs) > 0 {
				return fmt.Errorf("%w: member %x has already been bootstrapped (its peers list it with client URLs %v); "+
					"start it on its old data directory, or remove it from the cluster and add it back as a new member (--initial-cluster-state existing)",
					ErrBadConfig, id, m.ClientURLs)
			}
		}
	}
	return nil
}

// join makes this member part of an existing cluster: the cluster's ID and
// members come from the other members listed in --initial-cluster, and this
// member must already have been added (cairn member add) with its peer
// URLs.
func (s *Server) join() error {
	members, err := membership.ParseInitialCluster(s.cfg.InitialCluster, s.cfg.InitialClusterToken)
	if err != nil {
		return fmt.Errorf("%w: --initial-cluster: %v", ErrBadConfig, err)
	}
	var others []string
	for _, m := range members {
		if m.Name != s.cfg.Name {
			others = append(others, m.PeerURLs...)
		}
	}
	if len(others) == 0 {
		return fmt.Errorf("%w: --initial-cluster-state=existing needs the other members in --initial-cluster", ErrBadConfig)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cid, existing, err := fetchCluster(ctx, s.newPeerHTTPClient(2*time.Second), others)
	if err != nil {
		return err
	}
	var self *membership.Member
	for i := range existing {
		if membership.SameURLs(existing[i].PeerURLs, s.cfg.PeerURLs) {
			self = &existing[i]
		}
	}
	if self == nil {
		return fmt.Errorf("%w: the cluster has no member with peer URLs %v; add it first (cairn member add %s --peer-urls=%s)",
			ErrBadConfig, s.cfg.PeerURLs, s.cfg.Name, strings.Join(s.cfg.PeerURLs, ","))
	}
	if err := s.recordIdentity(self.ID, cid, existing); err != nil {
		return err
	}
	s.lg.Info("joining an existing cluster", "member-id", hexID(s.id), "cluster-id", hexID(s.clusterID))
	return nil
}

// Member changes are decided on the leader, which knows which members are
// up (they answer its heartbeats) and how far a learner is; a follower
// forwards them. The leader makes one change at a time, so that a second is
// refused at once rather than dropped by raft after a timeout. The checks
// are etcd's strict reconfiguration checks.

// healthInterval is how long a member must have been connected to count
// as active for a membership change, as in etcd.
const healthInterval = 5 * time.Second

// memberChange is a membership change, as forwarded to the leader.
type memberChange struct {
	Op        string   `json:"op"` // add, remove, update, promote
	ID        uint64   `json:"id,omitempty"`
	PeerURLs  []string `json:"peerURLs,omitempty"`
	IsLearner bool     `json:"isLearner,omitempty"`
}

type memberChangeResult struct {
	Member  membership.Member   `json:"member"`
	Members []membership.Member `json:"members"`
}

// MemberAdd adds a member (a learner if isLearner) and returns it with the
// new member list.
func (s *Server) MemberAdd(ctx context.Context, peerURLs []string, isLearner bool) (membership.Member, []membership.Member, error) {
	res, err := s.changeMembers(ctx, memberChange{Op: "add", PeerURLs: peerURLs, IsLearner: isLearner})
	return res.Member, res.Members, err
}

// MemberRemove removes a member.
func (s *Server) MemberRemove(ctx context.Context, id uint64) ([]membership.Member, error) {
	res, err := s.changeMembers(ctx, memberChange{Op: "remove", ID: id})
	return res.Members, err
}

// MemberUpdate changes a member's peer URLs.
func (s *Server) MemberUpdate(ctx context.Context, id uint64, peerURLs []string) ([]membership.Member, error) {
	res, err := s.changeMembers(ctx, memberChange{Op: "update", ID: id, PeerURLs: peerURLs})
	return res.Members, err
}

// MemberPromote turns a learner that has caught up into a voter.
func (s *Server) MemberPromote(ctx context.Context, id uint64) ([]membership.Member, error) {
	res, err := s.changeMembers(ctx, memberChange{Op: "promote", ID: id})
	return res.Members, err
}

func (s *Server) changeMembers(ctx context.Context, c memberChange) (memberChangeResult, error) {
	for _, u := range c.PeerURLs {
		if err := membership.ValidateURL(u); err != nil {
			return memberChangeResult{}, fmt.Errorf("%w: %v", ErrBadRequest, err)
		}
	}
	if !s.IsLeader() {
		return s.forwardMemberChange(ctx, c)
	}
	s.confMu.Lock()
	defer s.confMu.Unlock()
	var res memberChangeResult
	var err error
	switch c.Op {
	case "add":
		res.Member, err = s.addMember(ctx, c.PeerURLs, c.IsLearner)
	case "remove":
		err = s.removeMember(ctx, c.ID)
	case "update":
		err = s.updateMember(ctx, c.ID, c.PeerURLs)
	case "promote":
		err = s.promoteMember(ctx, c.ID)
	default:
		err = fmt.Errorf("%w: unknown member change %q", ErrBadRequest, c.Op)
	}
	if err != nil {
		return res, err
	}
	res.Members = s.cluster.Members()
	return res, nil
}

func (s *Server) memberOrErr(id uint64) (membership.Member, error) {
	m, ok := s.cluster.Member(id)
	if ok {
		return m, nil
	}
	if s.cluster.IsRemoved(id) {
		return m, membership.ErrIDRemoved
	}
	return m, membership.ErrIDNotFound
}

// connectedSince reports whether member id has been connected to this
// member (the leader) since t.
func (s *Server) connectedSince(id uint64, t time.Time) bool {
	if id == s.id {
		return true
	}
	since := s.transport.ActiveSince(id)
	return !since.IsZero() && !since.After(t)
}

func (s *Server) voters() []membership.Member {
	var out []membership.Member
	for _, m := range s.cluster.Members() {
		if !m.IsLearner {
			out = append(out, m)
		}
	}
	return out
}

// startedVoters counts the voting members that have published their
// attributes (they have run), not counting except.
func (s *Server) startedVoters(except uint64) (started, voters int) {
	for _, m := range s.voters() {
		if m.ID == except {
			continue
		}
		voters++
		if m.Name != "" {
			started++
		}
	}
	return started, voters
}

func (s *Server) addMember(ctx context.Context, peerURLs []string, isLearner bool) (membership.Member, error) {
	now := time.Now()
	m := membership.Member{ID: membership.MemberID(peerURLs, "", &now), PeerURLs: peerURLs, IsLearner: isLearner}
	if err := s.cluster.CheckAdd(m); err != nil {
		return m, err
	}
	if isLearner {
		n := 0
		for _, x := range s.cluster.Members() {
			if x.IsLearner {
				n++
			}
		}
		if n >= maxLearners {
			return m, membership.ErrTooManyLearners
		}
	} else {
		// The new voter counts as not started: the started voters must
		// still make a quorum of the larger cluster.
		started, voters := s.startedVoters(0)
		if started < (voters+1)/2+1 {
			return m, ErrNotEnoughStartedMembers
		}
	}
	// Every voter must be up: adding to a cluster with a member down can
	// leave it without a quorum.
	since := now.Add(-healthInterval)
	for _, v := range s.voters() {
		if !s.connectedSince(v.ID, since) {
			return m, ErrUnhealthy
		}
	}
	typ := raftpb.ConfChangeAddNode
	if isLearner {
		typ = raftpb.ConfChangeAddLearnerNode
	}
	return m, s.proposeConfChange(ctx, typ, m)
}

func (s *Server) removeMember(ctx context.Context, id uint64) error {
	m, err := s.memberOrErr(id)
	if err != nil {
		return err
	}
	if !m.IsLearner {
		started, voters := s.startedVoters(id)
		if started < voters/2+1 {
			return ErrNotEnoughStartedMembers
		}
		// A member that is down can go: it is not part of the active
		// quorum. Removing a live one must leave a live quorum.
		if id == s.id || !s.transport.ActiveSince(id).IsZero() {
			since := time.Now().Add(-healthInterval)
			all := s.voters()
			active := 0
			for _, v := range all {
				if s.connectedSince(v.ID, since) {
					active++
				}
			}
			if active-1 < (len(all)-1)/2+1 {
				return ErrUnhealthy
			}
		}
	}
	return s.proposeConfChange(ctx, raftpb.ConfChangeRemoveNode, m)
}

func (s *Server) updateMember(ctx context.Context, id uint64, peerURLs []string) error {
	m, err := s.memberOrErr(id)
	if err != nil {
		return err
	}
	if err := s.cluster.CheckPeerURLs(id, peerURLs); err != nil {
		return err
	}
	m.PeerURLs = peerURLs
	return s.proposeConfChange(ctx, raftpb.ConfChangeUpdateNode, m)
}

func (s *Server) promoteMember(ctx context.Context, id uint64) error {
	m, err := s.memberOrErr(id)
	if err != nil {
		return err
	}
	if !m.IsLearner {
		return membership.ErrNotLearner
	}
	if !s.learnerReady(id) {
		return ErrLearnerNotReady
	}
	started, voters := s.startedVoters(0)
	if m.Name != "" {
		started++
	}
	if started < (voters+1)/2+1 {
		return ErrNotEnoughStartedMembers
	}
	m.IsLearner = false
	return s.proposeConfChange(ctx, raftpb.ConfChangeAddNode, m)
}

// learnerReady: the learner's log reaches at least 90% of the leader's, as
// etcd requires before promotion.
func (s *Server) learnerReady(id uint64) bool {
	st := s.node.Status()
	pr, ok := st.Progress[id]
	if !ok {
		return false
	}
	leader := st.Progress[s.id]
	return float64(pr.Match) >= float64(leader.Match)*0.9
}

// proposeConfChange replicates a membership change and waits until this
// member has applied it.
func (s *Server) proposeConfChange(ctx context.Context, typ raftpb.ConfChangeType, m membership.Member) error {
	if s.Leader() == 0 {
		return ErrNoLeader
	}
	id := s.reqIDs.next()
	data, err := json.Marshal(confChangeContext{RequestID: id, Member: m})
	if err != nil {
		return err
	}
	ch := s.w.register(id)
	s.node.ProposeConfChange(id, raftnode.NewConfChange(typ, m.ID, data))
	timer := time.NewTimer(s.cfg.ReqTimeout())
	defer timer.Stop()
	select {
	case res := <-ch:
		return res.err
	case <-ctx.Done():
		s.w.forget(id)
		return ctx.Err()
	case <-timer.C:
		s.w.forget(id)
		return ErrTimeout
	case <-s.stopping:
		return ErrStopped
	}
}

// MoveLeader hands leadership to member target. Only the leader can.
func (s *Server) MoveLeader(ctx context.Context, target uint64) error {
	if !s.IsLeader() {
		return ErrNotLeader
	}
	m, ok := s.cluster.Member(target)
	if !ok || m.IsLearner {
		return ErrBadLeaderTransferee
	}
	if target == s.id {
		return nil
	}
	s.node.TransferLeadership(target)
	deadline := time.NewTimer(s.cfg.ReqTimeout())
	defer deadline.Stop()
	tick := time.NewTicker(s.cfg.TickInterval)
	defer tick.Stop()
	for {
		if s.Leader() == target {
			return nil
		}
		select {
		case <-tick.C:
		case <-deadline.C:
			return ErrLeaderTransferTimeout
		case <-ctx.Done():
			return ctx.Err()
		case <-s.stopping:
			return ErrStopped
		}
	}
}

// onPeerRemoved is called when a peer says this member was removed.
func (s *Server) onRemoved() {
	s.lg.Warn("this member has been permanently removed from the cluster; stopping")
	s.fail(ErrRemoved)
}

// dropOldSnapshotFiles removes, at start, the received snapshots left
// over: after the snapshot raft recorded is installed, every other file is
// one raft refused, or never heard of (a crash came first, and the leader
// sends it again), or a partial receive.
func (s *Server) dropOldSnapshotFiles() {
	entries, err := os.ReadDir(s.snapDir())
	if err != nil {
		return
	}
	for _, e := range entries {
		var idx uint64
		if _, err := fmt.Sscanf(e.Name(), "%016x.snap", &idx); err == nil || strings.HasPrefix(e.Name(), "receiving-") {
			os.Remove(filepath.Join(s.snapDir(), e.Name()))
		}
	}
}
