package server

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/membershippb"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/auth"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/storage"
)

// splitEntries reads fuzz input as entries, each a length (2 bytes,
// big-endian) and that many bytes; a short last one takes what is left.
func splitEntries(data []byte) [][]byte {
	var out [][]byte
	for len(data) >= 2 && len(out) < 8 {
		n := min(int(binary.BigEndian.Uint16(data)), len(data)-2)
		out = append(out, data[2:2+n])
		data = data[2+n:]
	}
	return out
}

func joinEntries(entries ...[]byte) []byte {
	var out []byte
	for _, e := range entries {
		out = binary.BigEndian.AppendUint16(out, uint16(len(e)))
		out = append(out, e...)
	}
	return out
}

// FuzzApplyEntry commits arbitrary bytes as raft entries (up to 8, see
// splitEntries) of a fresh member, as a faulty leader or a damaged log could
// hand them over, and applies them one by one. An entry that is not a
// request stops the member with ErrCorrupt; one that is must be applied,
// whatever its fields hold, and leave a member that still reads, hashes its
// keys and takes writes (or refuses them with an answer, when an entry
// raised an alarm or turned on authentication). It never panics. Seeds are
// requests of every kind, alone and in pairs.
func FuzzApplyEntry(f *testing.F) {
	var seeds [][]byte
	for _, r := range []*pb.InternalRaftRequest{
		{Put: &pb.PutRequest{Key: []byte("a"), Value: []byte("1")}},
		{Put: &pb.PutRequest{Key: []byte("a"), Lease: 99}},
		{DeleteRange: &pb.DeleteRangeRequest{Key: []byte{0}, RangeEnd: []byte{0}}},
		{Txn: &pb.TxnRequest{Compare: []*pb.Compare{{Key: []byte("a"), Target: pb.Compare_MOD, Result: pb.Compare_GREATER}},
			Success: []*pb.RequestOp{{Request: &pb.RequestOp_RequestPut{RequestPut: &pb.PutRequest{Key: []byte("b")}}}}}},
		{Compaction: &pb.CompactionRequest{Revision: 1 << 40}},
		{Compaction: &pb.CompactionRequest{Revision: -3}},
		{LeaseGrant: &pb.LeaseGrantRequest{ID: 7, TTL: -1}},
		{LeaseRevoke: &pb.LeaseRevokeRequest{ID: 7}},
		{LeaseCheckpoint: &pb.LeaseCheckpointRequest{Checkpoints: []*pb.LeaseCheckpoint{{ID: 7, Remaining_TTL: -5}}}},
		{Alarm: &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: 1, Alarm: pb.AlarmType_NOSPACE}},
		{AuthUserAdd: &pb.AuthUserAddRequest{Name: "", HashedPassword: "x"}},
		{AuthRoleGrantPermission: &pb.AuthRoleGrantPermissionRequest{Name: "r"}},
		{V2: &pb.Request{Method: "PUT", Path: "/a/../b", Val: "x", Time: 1}},
		{V2: &pb.Request{Method: "SYNC", Time: -1}},
		{V2: &pb.Request{Method: "BOGUS"}},
		{ClusterVersionSet: &membershippb.ClusterVersionSetRequest{Ver: "9.9.9"}},
	} {
		data, err := r.Marshal()
		if err != nil {
			f.Fatal(err)
		}
		seeds = append(seeds, data)
		f.Add(joinEntries(data))
	}
	for i := 1; i < len(seeds); i++ {
		f.Add(joinEntries(seeds[i-1], seeds[i]))
	}
	f.Add(joinEntries([]byte("not a request")))

	f.Fuzz(func(t *testing.T, data []byte) {
		entries := splitEntries(data)
		if len(entries) == 0 {
			return
		}
		s := startTestMember(t, func(*Config) {})
		for _, e := range entries {
			if !applyFuzzEntry(t, s, e) {
				return
			}
		}
	})
}

// applyFuzzEntry commits e on s and checks the member after it; it reports
// false when e stopped the member, as it must when e is not a request. A
// request is proposed with its header's ID replaced by one this test waits
// on (the ID only routes the answer), so that the test knows when that
// entry, and not one the member proposed itself, was applied.
func applyFuzzEntry(t *testing.T, s *Server, e []byte) bool {
	if len(e) == 0 {
		return true // raft's own empty entries are not applied
	}
	var req pb.InternalRaftRequest
	if err := req.Unmarshal(e); err != nil {
		s.node.Propose(0, e)
		select {
		case err := <-s.Errors():
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("the member stopped on an entry that is not a request (%x) with %v, want ErrCorrupt", e, err)
			}
		case <-time.After(20 * time.Second):
			t.Fatalf("an entry that is not a request (%x) did not stop the member within 20s", e)
		}
		return false
	}
	if req.Header == nil {
		req.Header = &pb.RequestHeader{}
	}
	req.Header.ID = s.reqIDs.next()
	data, err := req.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	ch := s.w.register(req.Header.ID)
	s.node.Propose(req.Header.ID, data)
	select {
	case <-ch:
	case err := <-s.Errors():
		t.Fatalf("the member stopped on a request (%x): %v", data, err)
	case <-time.After(20 * time.Second):
		t.Fatalf("the request (%x) was not applied within 20s", data)
	}
	ctx, cancel := context.WithTimeout(auth.AsInternal(context.Background()), 20*time.Second)
	defer cancel()
	if _, err := s.Range(ctx, &pb.RangeRequest{Key: []byte{0}, RangeEnd: []byte{0}, Serializable: true}); err != nil {
		t.Fatalf("range after the entry (%x): %v", e, err)
	}
	if _, _, _, err := s.HashKV(ctx, 0); err != nil {
		t.Fatalf("hashkv after the entry (%x): %v", e, err)
	}
	if _, err := s.Put(ctx, &pb.PutRequest{Key: []byte("after"), Value: e}); err != nil &&
		!errors.Is(err, ErrNoSpace) && !errors.Is(err, ErrCorrupt) && !errors.Is(err, auth.ErrPermissionDenied) {
		t.Fatalf("put after the entry (%x): %v", e, err)
	}
	return true
}

// FuzzDecodeConfChange reads arbitrary committed configuration changes:
// decoding never panics, fails only with ErrCorrupt, and what it accepts
// names the request and member the entry carried.
func FuzzDecodeConfChange(f *testing.F) {
	m := membership.Member{ID: 5, Name: "n", PeerURLs: []string{"http://127.0.0.1:1"}}
	ctx, err := json.Marshal(confChangeContext{RequestID: 9, Member: m})
	if err != nil {
		f.Fatal(err)
	}
	member, err := json.Marshal(m)
	if err != nil {
		f.Fatal(err)
	}
	v2, err := (&raftpb.ConfChangeV2{Changes: []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: 5}}, Context: ctx}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	v1, err := (&raftpb.ConfChange{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 5, ID: 9, Context: member}).Marshal()
	if err != nil {
		f.Fatal(err)
	}
	f.Add(uint8(raftpb.EntryConfChangeV2), v2)
	f.Add(uint8(raftpb.EntryConfChange), v1)
	f.Add(uint8(raftpb.EntryConfChangeV2), []byte{})
	f.Add(uint8(raftpb.EntryNormal), v2)
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		e := &raftpb.Entry{Index: 3, Type: raftpb.EntryType(typ % 4), Data: data}
		changes, carried, id, err := decodeConfChange(e)
		if err != nil {
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("decoding %v %x: %v, want ErrCorrupt", e.Type, data, err)
			}
			return
		}
		switch e.Type {
		case raftpb.EntryConfChange:
			var cc raftpb.ConfChange
			if cc.Unmarshal(data) != nil || len(changes) != 1 || changes[0].NodeID != cc.NodeID || id != cc.ID {
				t.Fatalf("V1 %x decoded as %v, request %d", data, changes, id)
			}
		case raftpb.EntryConfChangeV2:
			var cc raftpb.ConfChangeV2
			if cc.Unmarshal(data) != nil || len(changes) != len(cc.Changes) || (len(cc.Context) == 0 && (carried != nil || id != 0)) {
				t.Fatalf("V2 %x decoded as %v, %v, request %d", data, changes, carried, id)
			}
		default:
			t.Fatalf("an entry of type %v decoded as a configuration change", e.Type)
		}
	})
}
