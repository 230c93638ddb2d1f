package v2store

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
)

// t0 is the test clock's origin; every time in these tests is explicit.
var t0 = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func at(sec float64) time.Time { return t0.Add(time.Duration(sec * float64(time.Second))) }

// show renders a result as the API would: the event's JSON, or the error's.
func show(ev *Event, err error) string {
	if err != nil {
		var ve *Error
		if errors.As(err, &ve) {
			return string(ve.JSON())
		}
		return "storage error: " + err.Error()
	}
	if ev == nil {
		return "<nil>"
	}
	b, err := json.Marshal(ev.Clone())
	if err != nil {
		return "marshal: " + err.Error()
	}
	return string(b)
}

type step struct {
	name string
	do   func(s *Store) (*Event, error)
	want string
	// index is the store index after the step (X-Etcd-Index of events).
	index uint64
}

func runSteps(t *testing.T, s *Store, steps []step) {
	t.Helper()
	for _, st := range steps {
		ev, err := st.do(s)
		if got := show(ev, err); got != st.want {
			t.Errorf("%s:\n got  %s\n want %s", st.name, got, st.want)
		}
		if st.index != 0 && s.Index() != st.index {
			t.Errorf("%s: index %d, want %d", st.name, s.Index(), st.index)
		}
		if ev != nil && st.index != 0 && ev.EtcdIndex != st.index {
			t.Errorf("%s: EtcdIndex %d, want %d", st.name, ev.EtcdIndex, st.index)
		}
	}
}

func ttl(sec int) TTLOptions { return TTLOptions{ExpireTime: at(float64(sec))} }

var none TTLOptions

// TestStoreOperations walks every operation and every error the store
// produces, with etcd 2.3's exact bodies.
func TestStoreOperations(t *testing.T) {
	now := at(0)
	steps := []step{
		{"set creates", func(s *Store) (*Event, error) { return s.Set(nil, "/foo", false, "bar", none, now) },
			`{"action":"set","node":{"key":"/foo","value":"bar","modifiedIndex":1,"createdIndex":1}}`, 1},
		{"set replaces", func(s *Store) (*Event, error) { return s.Set(nil, "/foo", false, "baz", none, now) },
			`{"action":"set","node":{"key":"/foo","value":"baz","modifiedIndex":2,"createdIndex":2},"prevNode":{"key":"/foo","value":"bar","modifiedIndex":1,"createdIndex":1}}`, 2},
		{"set empty value shows value", func(s *Store) (*Event, error) { return s.Set(nil, "/empty", false, "", none, now) },
			`{"action":"set","node":{"key":"/empty","value":"","modifiedIndex":3,"createdIndex":3}}`, 3},
		{"get", func(s *Store) (*Event, error) { return s.Get("/foo", false, false, now) },
			`{"action":"get","node":{"key":"/foo","value":"baz","modifiedIndex":2,"createdIndex":2}}`, 3},
		{"get missing", func(s *Store) (*Event, error) { return s.Get("/nope", false, false, now) },
			`{"errorCode":100,"message":"Key not found","cause":"/nope","index":3}`, 3},
		{"get below a file", func(s *Store) (*Event, error) { return s.Get("/foo/bar", false, false, now) },
			`{"errorCode":104,"message":"Not a directory","cause":"/foo","index":3}`, 3},
		{"create", func(s *Store) (*Event, error) { return s.Create(nil, "/dir/a", false, "1", false, none, now) },
			`{"action":"create","node":{"key":"/dir/a","value":"1","modifiedIndex":4,"createdIndex":4}}`, 4},
		{"create existing", func(s *Store) (*Event, error) { return s.Create(nil, "/dir/a", false, "1", false, none, now) },
			`{"errorCode":105,"message":"Key already exists","cause":"/dir/a","index":4}`, 4},
		{"create below a file", func(s *Store) (*Event, error) { return s.Create(nil, "/foo/x", false, "1", false, none, now) },
			`{"errorCode":104,"message":"Not a directory","cause":"/foo","index":4}`, 4},
		{"set over a directory", func(s *Store) (*Event, error) { return s.Set(nil, "/dir", false, "x", none, now) },
			`{"errorCode":102,"message":"Not a file","cause":"/dir","index":4}`, 4},
		{"set root", func(s *Store) (*Event, error) { return s.Set(nil, "/", false, "x", none, now) },
			`{"errorCode":107,"message":"Root is read only","cause":"/","index":4}`, 4},
		{"intermediate dir", func(s *Store) (*Event, error) { return s.Get("/dir", false, false, now) },
			`{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}}`, 4},
		{"hidden key", func(s *Store) (*Event, error) { return s.Set(nil, "/dir/_hidden", false, "h", none, now) },
			`{"action":"set","node":{"key":"/dir/_hidden","value":"h","modifiedIndex":5,"createdIndex":5}}`, 5},
		{"listing hides hidden keys", func(s *Store) (*Event, error) { return s.Get("/dir", false, false, now) },
			`{"action":"get","node":{"key":"/dir","dir":true,"nodes":[{"key":"/dir/a","value":"1","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":4,"createdIndex":4}}`, 5},
		{"hidden key is readable", func(s *Store) (*Event, error) { return s.Get("/dir/_hidden", false, false, now) },
			`{"action":"get","node":{"key":"/dir/_hidden","value":"h","modifiedIndex":5,"createdIndex":5}}`, 5},
		{"update", func(s *Store) (*Event, error) { return s.Update(nil, "/foo", "qux", none, now) },
			`{"action":"update","node":{"key":"/foo","value":"qux","modifiedIndex":6,"createdIndex":2},"prevNode":{"key":"/foo","value":"baz","modifiedIndex":2,"createdIndex":2}}`, 6},
		{"update missing", func(s *Store) (*Event, error) { return s.Update(nil, "/nope", "x", none, now) },
			`{"errorCode":100,"message":"Key not found","cause":"/nope","index":6}`, 6},
		{"update dir with value", func(s *Store) (*Event, error) { return s.Update(nil, "/dir", "x", none, now) },
			`{"errorCode":102,"message":"Not a file","cause":"/dir","index":6}`, 6},
		{"update root", func(s *Store) (*Event, error) { return s.Update(nil, "/", "", none, now) },
			`{"errorCode":107,"message":"Root is read only","cause":"/","index":6}`, 6},
		{"cas by value", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/foo", "qux", 0, "v7", none, now) },
			`{"action":"compareAndSwap","node":{"key":"/foo","value":"v7","modifiedIndex":7,"createdIndex":2},"prevNode":{"key":"/foo","value":"qux","modifiedIndex":6,"createdIndex":2}}`, 7},
		{"cas by index", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/foo", "", 7, "v8", none, now) },
			`{"action":"compareAndSwap","node":{"key":"/foo","value":"v8","modifiedIndex":8,"createdIndex":2},"prevNode":{"key":"/foo","value":"v7","modifiedIndex":7,"createdIndex":2}}`, 8},
		{"cas value mismatch", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/foo", "no", 0, "x", none, now) },
			`{"errorCode":101,"message":"Compare failed","cause":"[no != v8]","index":8}`, 8},
		{"cas index mismatch", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/foo", "", 3, "x", none, now) },
			`{"errorCode":101,"message":"Compare failed","cause":"[3 != 8]","index":8}`, 8},
		{"cas both mismatch", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/foo", "no", 3, "x", none, now) },
			`{"errorCode":101,"message":"Compare failed","cause":"[no != v8] [3 != 8]","index":8}`, 8},
		{"cas dir", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/dir", "x", 0, "x", none, now) },
			`{"errorCode":102,"message":"Not a file","cause":"/dir","index":8}`, 8},
		{"cas missing", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/nope", "x", 0, "x", none, now) },
			`{"errorCode":100,"message":"Key not found","cause":"/nope","index":8}`, 8},
		{"cas root", func(s *Store) (*Event, error) { return s.CompareAndSwap(nil, "/", "x", 0, "x", none, now) },
			`{"errorCode":107,"message":"Root is read only","cause":"/","index":8}`, 8},
		{"cad mismatch", func(s *Store) (*Event, error) { return s.CompareAndDelete(nil, "/foo", "no", 0, now) },
			`{"errorCode":101,"message":"Compare failed","cause":"[no != v8]","index":8}`, 8},
		{"cad dir", func(s *Store) (*Event, error) { return s.CompareAndDelete(nil, "/dir", "x", 0, now) },
			`{"errorCode":102,"message":"Not a file","cause":"/dir","index":8}`, 8},
		{"cad", func(s *Store) (*Event, error) { return s.CompareAndDelete(nil, "/foo", "v8", 8, now) },
			`{"action":"compareAndDelete","node":{"key":"/foo","modifiedIndex":9,"createdIndex":2},"prevNode":{"key":"/foo","value":"v8","modifiedIndex":8,"createdIndex":2}}`, 9},
		{"delete dir without dir", func(s *Store) (*Event, error) { return s.Delete(nil, "/dir", false, false, now) },
			`{"errorCode":102,"message":"Not a file","cause":"/dir","index":9}`, 9},
		{"delete non-empty dir", func(s *Store) (*Event, error) { return s.Delete(nil, "/dir", true, false, now) },
			`{"errorCode":108,"message":"Directory not empty","cause":"/dir","index":9}`, 9},
		{"delete key", func(s *Store) (*Event, error) { return s.Delete(nil, "/empty", false, false, now) },
			`{"action":"delete","node":{"key":"/empty","modifiedIndex":10,"createdIndex":3},"prevNode":{"key":"/empty","value":"","modifiedIndex":3,"createdIndex":3}}`, 10},
		{"delete missing", func(s *Store) (*Event, error) { return s.Delete(nil, "/empty", false, false, now) },
			`{"errorCode":100,"message":"Key not found","cause":"/empty","index":10}`, 10},
		{"delete root", func(s *Store) (*Event, error) { return s.Delete(nil, "/", true, true, now) },
			`{"errorCode":107,"message":"Root is read only","cause":"/","index":10}`, 10},
		{"delete recursive", func(s *Store) (*Event, error) { return s.Delete(nil, "/dir", false, true, now) },
			`{"action":"delete","node":{"key":"/dir","dir":true,"modifiedIndex":11,"createdIndex":4},"prevNode":{"key":"/dir","dir":true,"modifiedIndex":4,"createdIndex":4}}`, 11},
		{"gone with its children", func(s *Store) (*Event, error) { return s.Get("/dir/_hidden", false, false, now) },
			`{"errorCode":100,"message":"Key not found","cause":"/dir","index":11}`, 11},
		{"mkdir", func(s *Store) (*Event, error) { return s.Set(nil, "/d2", true, "ignored", none, now) },
			`{"action":"set","node":{"key":"/d2","dir":true,"modifiedIndex":12,"createdIndex":12}}`, 12},
		{"delete empty dir", func(s *Store) (*Event, error) { return s.Delete(nil, "/d2", true, false, now) },
			`{"action":"delete","node":{"key":"/d2","dir":true,"modifiedIndex":13,"createdIndex":12},"prevNode":{"key":"/d2","dir":true,"modifiedIndex":12,"createdIndex":12}}`, 13},
		{"in-order key", func(s *Store) (*Event, error) { return s.Create(nil, "/queue", false, "job1", true, none, now) },
			`{"action":"create","node":{"key":"/queue/00000000000000000014","value":"job1","modifiedIndex":14,"createdIndex":14}}`, 14},
		{"in-order dir", func(s *Store) (*Event, error) { return s.Create(nil, "/queue", true, "", true, none, now) },
			`{"action":"create","node":{"key":"/queue/00000000000000000015","dir":true,"modifiedIndex":15,"createdIndex":15}}`, 15},
		{"in-order at root", func(s *Store) (*Event, error) { return s.Create(nil, "/", false, "r", true, none, now) },
			`{"action":"create","node":{"key":"/00000000000000000016","value":"r","modifiedIndex":16,"createdIndex":16}}`, 16},
		{"root listing has no key", func(s *Store) (*Event, error) { return s.Get("/", false, true, now) },
			`{"action":"get","node":{"dir":true,"nodes":[{"key":"/00000000000000000016","value":"r","modifiedIndex":16,"createdIndex":16},{"key":"/queue","dir":true,"modifiedIndex":14,"createdIndex":14}]}}`, 16},
		{"recursive sorted", func(s *Store) (*Event, error) { return s.Get("/queue", true, true, now) },
			`{"action":"get","node":{"key":"/queue","dir":true,"nodes":[{"key":"/queue/00000000000000000014","value":"job1","modifiedIndex":14,"createdIndex":14},{"key":"/queue/00000000000000000015","dir":true,"modifiedIndex":15,"createdIndex":15}],"modifiedIndex":14,"createdIndex":14}}`, 16},
		{"paths are cleaned", func(s *Store) (*Event, error) { return s.Get("queue//00000000000000000014/", false, false, now) },
			`{"action":"get","node":{"key":"/queue/00000000000000000014","value":"job1","modifiedIndex":14,"createdIndex":14}}`, 16},
	}
	runSteps(t, New(), steps)
}

// TestStoreTTL covers TTL display, expiry through DeleteExpiredKeys,
// removing a TTL, refresh, directory TTLs and far-past expirations.
func TestStoreTTL(t *testing.T) {
	steps := []step{
		{"set with ttl", func(s *Store) (*Event, error) { return s.Set(nil, "/k", false, "v", ttl(5), at(0)) },
			`{"action":"set","node":{"key":"/k","value":"v","expiration":"2030-01-02T03:04:10Z","ttl":5,"modifiedIndex":1,"createdIndex":1}}`, 1},
		{"ttl rounds up", func(s *Store) (*Event, error) { return s.Get("/k", false, false, at(1.5)) },
			`{"action":"get","node":{"key":"/k","value":"v","expiration":"2030-01-02T03:04:10Z","ttl":4,"modifiedIndex":1,"createdIndex":1}}`, 1},
		{"not yet", func(s *Store) (*Event, error) { return nil, s.DeleteExpiredKeys(nil, at(4.999)) }, `<nil>`, 1},
		{"still there", func(s *Store) (*Event, error) { return s.Get("/k", false, false, at(4.999)) },
			`{"action":"get","node":{"key":"/k","value":"v","expiration":"2030-01-02T03:04:10Z","ttl":1,"modifiedIndex":1,"createdIndex":1}}`, 1},
		{"expires at its time", func(s *Store) (*Event, error) { return nil, s.DeleteExpiredKeys(nil, at(5)) }, `<nil>`, 2},
		{"gone", func(s *Store) (*Event, error) { return s.Get("/k", false, false, at(5)) },
			`{"errorCode":100,"message":"Key not found","cause":"/k","index":2}`, 2},
		{"dir with ttl", func(s *Store) (*Event, error) { return s.Set(nil, "/d", true, "", ttl(10), at(0)) },
			`{"action":"set","node":{"key":"/d","dir":true,"expiration":"2030-01-02T03:04:15Z","ttl":10,"modifiedIndex":3,"createdIndex":3}}`, 3},
		{"child of dir", func(s *Store) (*Event, error) { return s.Set(nil, "/d/c", false, "x", none, at(0)) },
			`{"action":"set","node":{"key":"/d/c","value":"x","modifiedIndex":4,"createdIndex":4}}`, 4},
		{"update dir ttl keeps its index", func(s *Store) (*Event, error) { return s.Update(nil, "/d", "", ttl(20), at(1)) },
			`{"action":"update","node":{"key":"/d","dir":true,"expiration":"2030-01-02T03:04:25Z","ttl":19,"modifiedIndex":5,"createdIndex":3},"prevNode":{"key":"/d","dir":true,"expiration":"2030-01-02T03:04:15Z","ttl":9,"modifiedIndex":3,"createdIndex":3}}`, 5},
		{"dir index unchanged", func(s *Store) (*Event, error) { return s.Get("/d", false, false, at(1)) },
			`{"action":"get","node":{"key":"/d","dir":true,"expiration":"2030-01-02T03:04:25Z","ttl":19,"nodes":[{"key":"/d/c","value":"x","modifiedIndex":4,"createdIndex":4}],"modifiedIndex":3,"createdIndex":3}}`, 5},
		{"set ttl on key", func(s *Store) (*Event, error) { return s.Set(nil, "/t", false, "a", ttl(30), at(0)) },
			`{"action":"set","node":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:35Z","ttl":30,"modifiedIndex":6,"createdIndex":6}}`, 6},
		{"remove ttl with update", func(s *Store) (*Event, error) { return s.Update(nil, "/t", "a", none, at(2)) },
			`{"action":"update","node":{"key":"/t","value":"a","modifiedIndex":7,"createdIndex":6},"prevNode":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:35Z","ttl":28,"modifiedIndex":6,"createdIndex":6}}`, 7},
		{"refresh update keeps value", func(s *Store) (*Event, error) {
			return s.Update(nil, "/t", "", TTLOptions{ExpireTime: at(40), Refresh: true}, at(3))
		}, `{"action":"update","node":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:45Z","ttl":37,"modifiedIndex":8,"createdIndex":6},"prevNode":{"key":"/t","value":"a","modifiedIndex":7,"createdIndex":6}}`, 8},
		{"refresh set re-creates", func(s *Store) (*Event, error) {
			return s.Set(nil, "/t", false, "", TTLOptions{ExpireTime: at(50), Refresh: true}, at(3))
		}, `{"action":"set","node":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:55Z","ttl":47,"modifiedIndex":9,"createdIndex":9},"prevNode":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:45Z","ttl":37,"modifiedIndex":8,"createdIndex":6}}`, 9},
		{"refresh cas", func(s *Store) (*Event, error) {
			return s.CompareAndSwap(nil, "/t", "a", 0, "", TTLOptions{ExpireTime: at(60), Refresh: true}, at(3))
		}, `{"action":"compareAndSwap","node":{"key":"/t","value":"a","expiration":"2030-01-02T03:05:05Z","ttl":57,"modifiedIndex":10,"createdIndex":9},"prevNode":{"key":"/t","value":"a","expiration":"2030-01-02T03:04:55Z","ttl":47,"modifiedIndex":9,"createdIndex":9}}`, 10},
		{"refresh missing", func(s *Store) (*Event, error) {
			return s.Set(nil, "/nope", false, "", TTLOptions{ExpireTime: at(60), Refresh: true}, at(3))
		}, `{"errorCode":100,"message":"Key not found","cause":"/nope","index":10}`, 10},
		{"expiration before 2000 means none", func(s *Store) (*Event, error) {
			return s.Set(nil, "/old", false, "o", TTLOptions{ExpireTime: time.Date(1999, 1, 1, 0, 0, 0, 0, time.UTC)}, at(0))
		}, `{"action":"set","node":{"key":"/old","value":"o","modifiedIndex":11,"createdIndex":11}}`, 11},
		{"dir expires with children", func(s *Store) (*Event, error) { return nil, s.DeleteExpiredKeys(nil, at(20)) }, `<nil>`, 12},
		{"child gone", func(s *Store) (*Event, error) { return s.Get("/d/c", false, false, at(20)) },
			`{"errorCode":100,"message":"Key not found","cause":"/d","index":12}`, 12},
	}
	s := New()
	runSteps(t, s, steps)

	// The expire events, from history.
	for _, tc := range []struct {
		key   string
		index uint64
		want  string
	}{
		{"/k", 2, `{"action":"expire","node":{"key":"/k","modifiedIndex":2,"createdIndex":1},"prevNode":{"key":"/k","value":"v","expiration":"2030-01-02T03:04:10Z","modifiedIndex":1,"createdIndex":1}}`},
		{"/d", 12, `{"action":"expire","node":{"key":"/d","dir":true,"modifiedIndex":12,"createdIndex":3},"prevNode":{"key":"/d","dir":true,"expiration":"2030-01-02T03:04:25Z","modifiedIndex":3,"createdIndex":3}}`},
	} {
		w, err := s.Watch(tc.key, false, false, tc.index)
		if err != nil {
			t.Fatal(err)
		}
		if got := show(<-w.EventChan(), nil); got != tc.want {
			t.Errorf("expire of %s:\n got  %s\n want %s", tc.key, got, tc.want)
		}
		w.Remove()
	}
	if s.HasTTLKeys() != true {
		t.Errorf("HasTTLKeys false with /t holding a TTL")
	}
	if next, ok := s.NextExpiry(); !ok || !next.Equal(at(60)) {
		t.Errorf("NextExpiry %v %v, want %v", next, ok, at(60))
	}
}

// TestApplyDispatch checks that a replicated request picks etcd's
// operation.
func TestApplyDispatch(t *testing.T) {
	yes, no := true, false
	s := New()
	base := pb.Request{Time: at(0).UnixNano()}
	req := func(f func(r *pb.Request)) *pb.Request {
		r := base
		f(&r)
		return &r
	}
	for _, tc := range []struct {
		r          *pb.Request
		wantAction string
		wantCode   int
	}{
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val = "PUT", "/a", "1" }), Set, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevExist = "PUT", "/a", "2", &yes }), Update, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevExist = "PUT", "/a", "3", &no }), "", EcodeNodeExist},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevExist = "PUT", "/b", "3", &no }), Create, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevValue = "PUT", "/a", "4", "2" }), CompareAndSwap, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevIndex, r.PrevExist = "PUT", "/a", "5", 4, &yes }), CompareAndSwap, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val, r.PrevExist = "PUT", "/missing", "5", &yes }), "", EcodeKeyNotFound},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Val = "POST", "/q", "j" }), Create, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.PrevValue = "DELETE", "/a", "nope" }), "", EcodeTestFailed},
		{req(func(r *pb.Request) { r.Method, r.Path, r.PrevIndex = "DELETE", "/a", 5 }), CompareAndDelete, 0},
		{req(func(r *pb.Request) { r.Method, r.Path = "DELETE", "/b" }), Delete, 0},
		{req(func(r *pb.Request) { r.Method, r.Path, r.Recursive = "DELETE", "/q", true }), Delete, 0},
		{req(func(r *pb.Request) { r.Method, r.Path = "QGET", "/" }), Get, 0},
		{req(func(r *pb.Request) { r.Method = "SYNC" }), "", 0},
		{req(func(r *pb.Request) { r.Method = "PATCH" }), "", EcodeRaftInternal},
	} {
		ev, err := s.Apply(nil, tc.r)
		var code int
		var ve *Error
		if errors.As(err, &ve) {
			code = ve.ErrorCode
		} else if err != nil {
			t.Fatalf("%s %s: %v", tc.r.Method, tc.r.Path, err)
		}
		var action string
		if ev != nil {
			action = ev.Action
		}
		if action != tc.wantAction || code != tc.wantCode {
			t.Errorf("%s %s (prevExist %v prevValue %q prevIndex %d): action %q code %d, want %q %d",
				tc.r.Method, tc.r.Path, tc.r.PrevExist, tc.r.PrevValue, tc.r.PrevIndex, action, code, tc.wantAction, tc.wantCode)
		}
	}
}

// TestHistoryWindow: 1000 events are kept; an older index is error 401
// with etcd's cause.
func TestHistoryWindow(t *testing.T) {
	s := New()
	for i := 1; i <= HistorySize+5; i++ {
		if _, err := s.Set(nil, "/k", false, fmt.Sprint(i), none, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	_, err := s.Watch("/k", false, false, 5)
	want := `{"errorCode":401,"message":"The event in requested index is outdated and cleared","cause":"the requested history has been cleared [6/5]","index":1005}`
	if got := show(nil, err); got != want {
		t.Fatalf("watch from 5:\n got  %s\n want %s", got, want)
	}
	w, err := s.Watch("/k", false, false, 6)
	if err != nil {
		t.Fatal(err)
	}
	ev := <-w.EventChan()
	if ev.Index() != 6 || ev.EtcdIndex != 1005 || w.StartIndex() != 1005 {
		t.Fatalf("watch from 6: event index %d, EtcdIndex %d, start %d", ev.Index(), ev.EtcdIndex, w.StartIndex())
	}
	w.Remove()
	if got := len(s.hist.all()); got != HistorySize {
		t.Fatalf("history holds %d events", got)
	}
}

func recv(t *testing.T, w *Watcher) *Event {
	t.Helper()
	select {
	case ev, ok := <-w.EventChan():
		if !ok {
			t.Fatal("watcher channel closed")
		}
		return ev
	default:
		t.Fatal("no event")
		return nil
	}
}

func none2(t *testing.T, w *Watcher) {
	t.Helper()
	select {
	case ev, ok := <-w.EventChan():
		t.Fatalf("unexpected event %v (open %v)", show(ev, nil), ok)
	default:
	}
}

// TestWatchers covers which watchers see which events.
func TestWatchers(t *testing.T) {
	s := New()
	now := at(0)
	mustWatch := func(p string, recursive, stream bool, since uint64) *Watcher {
		t.Helper()
		w, err := s.Watch(p, recursive, stream, since)
		if err != nil {
			t.Fatal(err)
		}
		return w
	}
	key := mustWatch("/a/b", false, false, 0)
	rec := mustWatch("/a", true, false, 0)
	nonrec := mustWatch("/a", false, false, 0)
	stream := mustWatch("/", true, true, 0)
	if _, err := s.Set(nil, "/a/b", false, "1", none, now); err != nil {
		t.Fatal(err)
	}
	for _, w := range []*Watcher{key, rec, stream} {
		if ev := recv(t, w); ev.Action != Set || ev.Node.Key != "/a/b" || ev.EtcdIndex != 1 {
			t.Fatalf("event %s", show(ev, nil))
		}
	}
	none2(t, nonrec)
	if s.WatcherCount() != 2 {
		t.Fatalf("%d watchers left, want 2 (the non-recursive one and the stream)", s.WatcherCount())
	}
	key.Remove()
	rec.Remove()
	key.Remove() // twice is fine

	// Hidden keys: a recursive watcher above does not see them, a watcher
	// of the hidden key itself does.
	hidden := mustWatch("/a/_h", false, false, 0)
	if _, err := s.Set(nil, "/a/_h", false, "h", none, now); err != nil {
		t.Fatal(err)
	}
	recv(t, hidden)
	none2(t, stream)
	hidden.Remove()

	// A refresh notifies nobody, but takes an index.
	if _, err := s.Update(nil, "/a/b", "", TTLOptions{ExpireTime: at(100), Refresh: true}, now); err != nil {
		t.Fatal(err)
	}
	none2(t, stream)

	// Deleting a directory reaches the watchers below it.
	below := mustWatch("/a/b", false, false, 0)
	if _, err := s.Delete(nil, "/a", true, true, now); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, below); ev.Action != Delete || ev.Node.Key != "/a" || !ev.Node.Dir {
		t.Fatalf("watcher below a deleted dir got %s", show(ev, nil))
	}
	if ev := recv(t, nonrec); ev.Action != Delete {
		t.Fatalf("watcher of the deleted dir got %s", show(ev, nil))
	}
	recv(t, stream)
	below.Remove()
	nonrec.Remove()

	// From history, waitIndex picks the first matching event.
	h := mustWatch("/a", true, false, 1)
	if ev := recv(t, h); ev.Index() != 1 || ev.EtcdIndex != s.Index() {
		t.Fatalf("history event %s, EtcdIndex %d", show(ev, nil), ev.EtcdIndex)
	}
	h.Remove()
	// The history scan skips refreshes and, unlike live watches, does not
	// hide hidden keys (etcd's behaviour).
	h = mustWatch("/a", true, false, 2)
	if ev := recv(t, h); ev.Node.Key != "/a/_h" {
		t.Fatalf("history from 2 gave %s", show(ev, nil))
	}
	h.Remove()
	h = mustWatch("/a/b", false, false, 3)
	if ev := recv(t, h); ev.Action != Delete || ev.Node.Key != "/a" {
		t.Fatalf("history from 3 for /a/b gave %s", show(ev, nil))
	}
	h.Remove()
	// A watch of a future index waits.
	f := mustWatch("/x", false, false, s.Index()+2)
	if _, err := s.Set(nil, "/x", false, "1", none, now); err != nil {
		t.Fatal(err)
	}
	none2(t, f)
	if _, err := s.Set(nil, "/x", false, "2", none, now); err != nil {
		t.Fatal(err)
	}
	if ev := recv(t, f); ev.Node.Value == nil || *ev.Node.Value != "2" {
		t.Fatalf("future watch got %s", show(ev, nil))
	}
	f.Remove()
	stream.Remove()
	if s.WatcherCount() != 0 {
		t.Fatalf("%d watchers left", s.WatcherCount())
	}
}

// TestSlowWatcherDropped: a stream watcher that does not read is dropped
// once its buffer is full, and its channel closes.
func TestSlowWatcherDropped(t *testing.T) {
	s := New()
	w, err := s.Watch("/", true, true, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < watcherBuffer+1; i++ {
		if _, err := s.Set(nil, "/k", false, "v", none, at(0)); err != nil {
			t.Fatal(err)
		}
	}
	n := 0
	for range w.EventChan() {
		n++
	}
	if n != watcherBuffer || s.WatcherCount() != 0 {
		t.Fatalf("read %d events, %d watchers left", n, s.WatcherCount())
	}
	w.Remove()
}

func TestStatsJSON(t *testing.T) {
	s := New()
	s.Set(nil, "/a", false, "1", none, at(0))
	s.Get("/a", false, false, at(0))
	s.Get("/b", false, false, at(0))
	s.Create(nil, "/a/b", false, "1", false, none, at(0)) // fails in the walk: counted as a failed set too
	s.Set(nil, "/t", false, "1", ttl(1), at(0))
	s.DeleteExpiredKeys(nil, at(2))
	w, _ := s.Watch("/", true, false, 0)
	defer w.Remove()
	want := `{"getsSuccess":1,"getsFail":1,"setsSuccess":2,"setsFail":1,"deleteSuccess":0,"deleteFail":0,"updateSuccess":0,"updateFail":0,"createSuccess":0,"createFail":1,"compareAndSwapSuccess":0,"compareAndSwapFail":0,"compareAndDeleteSuccess":0,"compareAndDeleteFail":0,"expireCount":1,"watchers":1}`
	if got := string(s.StatsJSON()); got != want {
		t.Fatalf("stats:\n got  %s\n want %s", got, want)
	}
}

func TestErrorTable(t *testing.T) {
	seen := 0
	for _, code := range Codes() {
		e := NewError(code, "c", 7)
		if e.Message == "" {
			t.Errorf("code %d has no message", code)
		}
		want := 400
		switch code {
		case 100:
			want = 404
		case 101, 105:
			want = 412
		case 102, 108:
			want = 403
		case 110:
			want = 401
		case 300, 301:
			want = 500
		}
		if e.StatusCode() != want {
			t.Errorf("code %d: status %d, want %d", code, e.StatusCode(), want)
		}
		seen++
	}
	if seen != len(messages) {
		t.Errorf("Codes lists %d codes, the message table has %d", seen, len(messages))
	}
	if got := NewError(EcodeKeyNotFound, "/foo", 6).Error(); got != "Key not found (/foo)" {
		t.Errorf("Error() = %q", got)
	}
	if got := string(NewError(EcodeKeyNotFound, "", 6).JSON()); !strings.Contains(got, `"message":"Key not found","index":6`) {
		t.Errorf("empty cause not omitted: %s", got)
	}
}
