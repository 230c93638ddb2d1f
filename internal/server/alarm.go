package server

import (
	"context"
	"encoding/binary"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	pb "go.etcd.io/etcd/api/v3/etcdserverpb"

	"github.com/cairn-io/cairn/internal/storage"
)

// alarmStore holds the raised alarms (keyspace 'a'): which member raised
// which alarm. NOSPACE makes the cluster refuse writes that add data;
// CORRUPT refuses everything.
type alarmStore struct {
	mu sync.RWMutex
	m  map[alarmKey]struct{}
}

type alarmKey struct {
	member uint64
	typ    pb.AlarmType
}

func alarmStorageKey(k alarmKey) []byte {
	b := make([]byte, 0, 13)
	b = append(b, storage.PrefixAlarm)
	b = binary.BigEndian.AppendUint64(b, k.member)
	return binary.BigEndian.AppendUint32(b, uint32(k.typ))
}

func loadAlarms(db *pebble.DB) (*alarmStore, error) {
	a := &alarmStore{m: map[alarmKey]struct{}{}}
	lo, hi := storage.PrefixBounds(storage.PrefixAlarm)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("load alarms: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		if len(k) != 13 {
			return nil, fmt.Errorf("alarm key %x: %w", k, storage.ErrBadKey)
		}
		a.m[alarmKey{member: binary.BigEndian.Uint64(k[1:9]), typ: pb.AlarmType(binary.BigEndian.Uint32(k[9:]))}] = struct{}{}
	}
	return a, it.Error()
}

func (a *alarmStore) active(typ pb.AlarmType) bool {
	a.mu.RLock()
	defer a.mu.RUnlock()
	for k := range a.m {
		if k.typ == typ {
			return true
		}
	}
	return false
}

// list returns the alarms of type typ (all of them for NONE), ordered.
func (a *alarmStore) list(typ pb.AlarmType) []*pb.AlarmMember {
	a.mu.RLock()
	defer a.mu.RUnlock()
	var out []*pb.AlarmMember
	for k := range a.m {
		if typ == pb.AlarmType_NONE || k.typ == typ {
			out = append(out, &pb.AlarmMember{MemberID: k.member, Alarm: k.typ})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].MemberID != out[j].MemberID {
			return out[i].MemberID < out[j].MemberID
		}
		return out[i].Alarm < out[j].Alarm
	})
	return out
}

func (s *Server) applyAlarm(b *pebble.Batch, ar *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	resp := &pb.AlarmResponse{Header: &pb.ResponseHeader{}}
	a := s.alarms
	k := alarmKey{member: ar.MemberID, typ: ar.Alarm}
	switch ar.Action {
	case pb.AlarmRequest_GET:
		resp.Alarms = a.list(ar.Alarm)
	case pb.AlarmRequest_ACTIVATE:
		if ar.Alarm == pb.AlarmType_NONE {
			break
		}
		a.mu.Lock()
		_, exists := a.m[k]
		a.m[k] = struct{}{}
		a.mu.Unlock()
		// An alarm already raised is answered with, as etcd does.
		resp.Alarms = []*pb.AlarmMember{{MemberID: k.member, Alarm: k.typ}}
		if exists {
			break
		}
		if err := b.Set(alarmStorageKey(k), nil, nil); err != nil {
			return nil, fmt.Errorf("record alarm: %w", err)
		}
		s.lg.Warn("alarm raised", "alarm", k.typ.String(), "member-id", fmt.Sprintf("%x", k.member))
	case pb.AlarmRequest_DEACTIVATE:
		a.mu.Lock()
		_, exists := a.m[k]
		delete(a.m, k)
		a.mu.Unlock()
		if !exists {
			break
		}
		if err := b.Delete(alarmStorageKey(k), nil); err != nil {
			return nil, fmt.Errorf("clear alarm: %w", err)
		}
		resp.Alarms = []*pb.AlarmMember{{MemberID: k.member, Alarm: k.typ}}
		s.lg.Info("alarm cleared", "alarm", k.typ.String(), "member-id", fmt.Sprintf("%x", k.member))
	}
	return resp, nil
}

// Alarm serves the Maintenance Alarm call: GET is answered locally,
// ACTIVATE and DEACTIVATE go through raft.
func (s *Server) Alarm(ctx context.Context, r *pb.AlarmRequest) (*pb.AlarmResponse, error) {
	if r.Action == pb.AlarmRequest_GET {
		return &pb.AlarmResponse{Header: &pb.ResponseHeader{Revision: s.kv.Rev()}, Alarms: s.alarms.list(r.Alarm)}, nil
	}
	res, err := s.propose(ctx, &pb.InternalRaftRequest{Alarm: r})
	if err != nil {
		return nil, err
	}
	resp := res.resp.(*pb.AlarmResponse)
	resp.Header.Revision = s.kv.Rev()
	return resp, nil
}

// Alarms returns the raised alarms.
func (s *Server) Alarms() []*pb.AlarmMember { return s.alarms.list(pb.AlarmType_NONE) }

// Quota. Cost estimates follow etcd: a put costs its key and value plus a
// fixed overhead; a txn costs its more expensive branch.
const (
	kvOverhead    = 256
	leaseOverhead = 64
)

func putCost(r *pb.PutRequest) int { return kvOverhead + len(r.Key) + len(r.Value) }

func txnCost(r *pb.TxnRequest) int {
	branch := func(ops []*pb.RequestOp) int {
		n := 0
		for _, op := range ops {
			if p := op.GetRequestPut(); p != nil {
				n += putCost(p)
			} else if t := op.GetRequestTxn(); t != nil {
				n += txnCost(t)
			}
		}
		return n
	}
	return max(branch(r.Success), branch(r.Failure))
}

// checkQuota refuses a request that adds cost bytes when the store is past
// its quota, raising the NOSPACE alarm the first time.
func (s *Server) checkQuota(ctx context.Context, cost int) error {
	if cost == 0 || s.cfg.QuotaBackendBytes < 0 {
		return nil
	}
	if s.alarms.active(pb.AlarmType_NOSPACE) {
		return ErrNoSpace
	}
	total, _ := s.db.Size()
	if total+int64(cost) < s.cfg.QuotaBackendBytes {
		return nil
	}
	s.lg.Warn("database space exceeded", "size", total, "quota", s.cfg.QuotaBackendBytes)
	_, _ = s.Alarm(ctx, &pb.AlarmRequest{Action: pb.AlarmRequest_ACTIVATE, MemberID: s.id, Alarm: pb.AlarmType_NOSPACE})
	return ErrNoSpace
}
