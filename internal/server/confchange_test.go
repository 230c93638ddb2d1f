package server

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"go.etcd.io/raft/v3/raftpb"

	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/raftnode"
	"github.com/cairn-io/cairn/internal/storage"
)

// Configuration changes decode from the entries this version proposes
// (ConfChangeV2, the request ID in the context) and from those already in
// the logs of members that ran an older one (ConfChange, the request ID in
// its ID), with raft's own entries (bootstrap, leaving a joint
// configuration) carrying neither.
func TestDecodeConfChange(t *testing.T) {
	member := membership.Member{ID: 7, PeerURLs: []string{"http://10.0.0.7:2380"}}
	memberJSON, err := json.Marshal(member)
	if err != nil {
		t.Fatal(err)
	}
	entry := func(typ raftpb.EntryType, m interface{ Marshal() ([]byte, error) }) *raftpb.Entry {
		data, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return &raftpb.Entry{Index: 5, Type: typ, Data: data}
	}
	proposed, err := json.Marshal(confChangeContext{RequestID: 43, Member: member})
	if err != nil {
		t.Fatal(err)
	}
	v1 := raftpb.ConfChange{ID: 42, Type: raftpb.ConfChangeAddLearnerNode, NodeID: 7, Context: memberJSON}
	v2 := raftnode.NewConfChange(raftpb.ConfChangeAddLearnerNode, 7, proposed)
	bootstrap := raftpb.ConfChange{Type: raftpb.ConfChangeAddNode, NodeID: 7}
	leaveJoint := raftpb.ConfChangeV2{}

	for _, tc := range []struct {
		name    string
		e       *raftpb.Entry
		changes []raftpb.ConfChangeSingle
		member  *membership.Member
		reqID   uint64
	}{
		{"proposed now", entry(raftpb.EntryConfChangeV2, &v2), []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 7}}, &member, 43},
		{"proposed by an older member", entry(raftpb.EntryConfChange, &v1), []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddLearnerNode, NodeID: 7}}, &member, 42},
		{"raft's bootstrap", entry(raftpb.EntryConfChange, &bootstrap), []raftpb.ConfChangeSingle{{Type: raftpb.ConfChangeAddNode, NodeID: 7}}, nil, 0},
		{"raft leaving a joint configuration", entry(raftpb.EntryConfChangeV2, &leaveJoint), nil, nil, 0},
	} {
		changes, m, reqID, err := decodeConfChange(tc.e)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if !slices.Equal(changes, tc.changes) || reqID != tc.reqID {
			t.Errorf("%s: changes %v, request %d; want %v, %d", tc.name, changes, reqID, tc.changes, tc.reqID)
		}
		if (m == nil) != (tc.member == nil) || m != nil && (m.ID != tc.member.ID || !slices.Equal(m.PeerURLs, tc.member.PeerURLs)) {
			t.Errorf("%s: member %+v, want %+v", tc.name, m, tc.member)
		}
	}

	garbled := &raftpb.Entry{Index: 6, Type: raftpb.EntryConfChangeV2, Data: []byte{0xff, 0xff}}
	if _, _, _, err := decodeConfChange(garbled); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("garbled entry: %v, want %v", err, storage.ErrCorrupt)
	}
	bad := raftnode.NewConfChange(raftpb.ConfChangeAddNode, 7, []byte("{"))
	badContext := entry(raftpb.EntryConfChangeV2, &bad)
	if _, _, _, err := decodeConfChange(badContext); !errors.Is(err, storage.ErrCorrupt) {
		t.Errorf("entry with a garbled context: %v, want %v", err, storage.ErrCorrupt)
	}
}

// Applying a membership change from either kind of entry records the
// member and answers the request that waits for it.
func TestApplyConfChangeBothKinds(t *testing.T) {
	db, err := pebble.Open("", &pebble.Options{FS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s := &Server{cluster: membership.New(1), lg: slog.Default(), id: 1}
	add := func(id uint64) []byte {
		b, err := json.Marshal(membership.Member{ID: id, PeerURLs: []string{fmt.Sprintf("http://10.0.0.%d:2380", id)}})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	old := raftpb.ConfChange{ID: 42, Type: raftpb.ConfChangeAddNode, NodeID: 7, Context: add(7)}
	oldData, _ := old.Marshal()
	ctx, _ := json.Marshal(confChangeContext{RequestID: 43, Member: membership.Member{ID: 8, PeerURLs: []string{"http://10.0.0.8:2380"}}})
	cur := raftnode.NewConfChange(raftpb.ConfChangeAddLearnerNode, 8, ctx)
	curData, _ := cur.Marshal()

	ab := &applyBatch{b: db.NewBatch()}
	defer ab.b.Close()
	for _, e := range []raftpb.Entry{
		{Index: 5, Type: raftpb.EntryConfChange, Data: oldData},
		{Index: 6, Type: raftpb.EntryConfChangeV2, Data: curData},
	} {
		if err := s.applyConfChange(ab, &e, raftpb.ConfState{Voters: []uint64{1, 7}}); err != nil {
			t.Fatalf("apply entry %d: %v", e.Index, err)
		}
	}
	if m, ok := s.cluster.Member(7); !ok || m.IsLearner || m.PeerURLs[0] != "http://10.0.0.7:2380" {
		t.Errorf("member 7 (from an older member's entry): %+v, %v", m, ok)
	}
	if m, ok := s.cluster.Member(8); !ok || !m.IsLearner || m.PeerURLs[0] != "http://10.0.0.8:2380" {
		t.Errorf("member 8 (from this version's entry): %+v, %v", m, ok)
	}
	if len(ab.done) != 2 || ab.done[0].id != 42 || ab.done[1].id != 43 || ab.done[0].res.err != nil || ab.done[1].res.err != nil {
		t.Fatalf("answered requests %+v, want 42 and 43 without errors", ab.done)
	}
}
