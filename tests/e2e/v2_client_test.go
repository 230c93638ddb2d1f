package e2e

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	clientv2 "go.etcd.io/etcd/client/v2"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestV2Client drives a 3-member cluster with etcd's own v2 client: the
// KeysAPI (Set, Get, Delete, Create, CreateInOrder, Update, Watcher, TTLs
// and compare-and-swap options) and the MembersAPI (List, Leader, Add,
// Update, Remove), plus the client's endpoint Sync.
func TestV2Client(t *testing.T) {
	c := framework.StartCluster(t, 3, framework.Config{})
	var eps []string
	for _, m := range c.Members {
		eps = append(eps, m.ClientURL())
	}
	cli, err := clientv2.New(clientv2.Config{Endpoints: eps, HeaderTimeoutPerRequest: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	// Members publish their client URLs through raft once they serve;
	// Sync takes the endpoints from the member list.
	poll(t, 30*time.Second, "every member to publish its client URL", func() error {
		r := v2Request(t, "GET", eps[0], "/v2/members", nil)
		if n := strings.Count(r.body, `"clientURLs":["`); n != 3 {
			return fmt.Errorf("%d of 3 members have client URLs: %s", n, r.body)
		}
		return nil
	})
	if err := cli.Sync(ctx); err != nil {
		t.Fatalf("Sync: %v", err)
	}
	got := append([]string(nil), cli.Endpoints()...)
	sort.Strings(got)
	sort.Strings(eps)
	if len(got) != 3 || got[0] != eps[0] || got[2] != eps[2] {
		t.Fatalf("endpoints after Sync %v, want %v", got, eps)
	}

	kapi := clientv2.NewKeysAPI(cli)
	resp, err := kapi.Set(ctx, "/foo", "bar", nil)
	if err != nil || resp.Action != "set" || resp.Node.Key != "/foo" || resp.Node.Value != "bar" || resp.PrevNode != nil ||
		resp.Node.CreatedIndex != 1 || resp.Index != 1 {
		t.Fatalf("Set: %+v %v", resp, err)
	}
	resp, err = kapi.Set(ctx, "/foo", "baz", &clientv2.SetOptions{PrevValue: "bar", TTL: time.Hour})
	if err != nil || resp.Action != "compareAndSwap" || resp.PrevNode.Value != "bar" || resp.Node.TTL != 3600 || resp.Node.Expiration == nil {
		t.Fatalf("Set with PrevValue and TTL: %+v %v", resp, err)
	}
	_, err = kapi.Set(ctx, "/foo", "x", &clientv2.SetOptions{PrevIndex: 1})
	var cerr clientv2.Error
	if !errors.As(err, &cerr) || cerr.Code != clientv2.ErrorCodeTestFailed || cerr.Cause != "[1 != 2]" || cerr.Index != 2 {
		t.Fatalf("Set with a wrong PrevIndex: %v", err)
	}
	resp, err = kapi.Set(ctx, "/foo", "", &clientv2.SetOptions{TTL: 2 * time.Hour, Refresh: true, PrevExist: clientv2.PrevExist})
	if err != nil || resp.Action != "update" || resp.Node.Value != "baz" || resp.Node.TTL != 7200 {
		t.Fatalf("refresh: %+v %v", resp, err)
	}
	resp, err = kapi.Set(ctx, "/foo", "q", &clientv2.SetOptions{NoValueOnSuccess: true})
	if err != nil || resp.Action != "set" || resp.Node != nil {
		t.Fatalf("NoValueOnSuccess: %+v %v", resp, err)
	}

	resp, err = kapi.Create(ctx, "/dir/a", "1")
	if err != nil || resp.Action != "create" {
		t.Fatalf("Create: %+v %v", resp, err)
	}
	if _, err := kapi.Create(ctx, "/dir/a", "1"); !errors.As(err, &cerr) || cerr.Code != clientv2.ErrorCodeNodeExist {
		t.Fatalf("Create existing: %v", err)
	}
	resp, err = kapi.Update(ctx, "/dir/a", "2")
	if err != nil || resp.Action != "update" || resp.PrevNode.Value != "1" {
		t.Fatalf("Update: %+v %v", resp, err)
	}
	if _, err := kapi.Update(ctx, "/dir/none", "2"); !clientv2.IsKeyNotFound(err) {
		t.Fatalf("Update missing: %v", err)
	}
	first, err := kapi.CreateInOrder(ctx, "/queue", "job1", nil)
	if err != nil {
		t.Fatal(err)
	}
	second, err := kapi.CreateInOrder(ctx, "/queue", "job2", &clientv2.CreateInOrderOptions{TTL: time.Hour})
	if err != nil || second.Node.Key <= first.Node.Key || len(second.Node.Key) != len("/queue/")+20 {
		t.Fatalf("CreateInOrder: %+v, %+v, %v", first.Node, second.Node, err)
	}
	resp, err = kapi.Get(ctx, "/queue", &clientv2.GetOptions{Recursive: true, Sort: true, Quorum: true})
	if err != nil || !resp.Node.Dir || len(resp.Node.Nodes) != 2 || resp.Node.Nodes[0].Value != "job1" || resp.Node.Nodes[1].Value != "job2" {
		t.Fatalf("Get sorted: %+v %v", resp, err)
	}
	if _, err := kapi.Get(ctx, "/missing", nil); !clientv2.IsKeyNotFound(err) {
		t.Fatalf("Get missing: %v", err)
	}

	// A watcher on one member sees writes made through the client.
	w := kapi.Watcher("/dir", &clientv2.WatcherOptions{Recursive: true})
	done := make(chan *clientv2.Response, 1)
	errc := make(chan error, 1)
	go func() {
		r, err := w.Next(ctx)
		if err != nil {
			errc <- err
			return
		}
		done <- r
	}()
	// The watch starts with a request the client sends itself; write
	// until it has seen one (a write before the watch is in place is not
	// an event for it).
	for i := 0; ; i++ {
		if _, err := kapi.Set(ctx, "/dir/b", "w", nil); err != nil {
			t.Fatal(err)
		}
		select {
		case r := <-done:
			if r.Action != "set" || r.Node.Key != "/dir/b" {
				t.Fatalf("watch event %+v", r)
			}
		case err := <-errc:
			t.Fatalf("watch: %v", err)
		case <-time.After(200 * time.Millisecond):
			if i < 50 {
				continue
			}
			t.Fatal("the watcher saw no event")
		}
		break
	}
	// Watching from an index replays history.
	hw := kapi.Watcher("/dir/a", &clientv2.WatcherOptions{AfterIndex: 1})
	r, err := hw.Next(ctx)
	if err != nil || r.Action != "create" || r.Node.Value != "1" {
		t.Fatalf("watch from index: %+v %v", r, err)
	}

	resp, err = kapi.Delete(ctx, "/dir/a", &clientv2.DeleteOptions{PrevValue: "2"})
	if err != nil || resp.Action != "compareAndDelete" {
		t.Fatalf("Delete with PrevValue: %+v %v", resp, err)
	}
	if _, err := kapi.Delete(ctx, "/dir", nil); !errors.As(err, &cerr) || cerr.Code != clientv2.ErrorCodeNotFile {
		t.Fatalf("Delete dir without Dir: %v", err)
	}
	resp, err = kapi.Delete(ctx, "/dir", &clientv2.DeleteOptions{Recursive: true})
	if err != nil || resp.Action != "delete" || !resp.Node.Dir {
		t.Fatalf("Delete recursive: %+v %v", resp, err)
	}

	// MembersAPI.
	mapi := clientv2.NewMembersAPI(cli)
	members, err := mapi.List(ctx)
	if err != nil || len(members) != 3 {
		t.Fatalf("List: %+v %v", members, err)
	}
	leader, err := mapi.Leader(ctx)
	if err != nil || leader == nil || leader.Name != c.Leader(t).Name() {
		t.Fatalf("Leader: %+v %v", leader, err)
	}
	peer := framework.FreeURL(t)
	// The cluster refuses new members until every voter has been
	// connected for a while (etcd 3's strict reconfiguration check).
	var added *clientv2.Member
	poll(t, 30*time.Second, "the cluster to accept a new member", func() error {
		actx, acancel := context.WithTimeout(ctx, 5*time.Second)
		defer acancel()
		added, err = mapi.Add(actx, peer)
		return err
	})
	if added == nil || added.ID == "" || len(added.PeerURLs) != 1 || added.PeerURLs[0] != peer {
		t.Fatalf("Add: %+v %v", added, err)
	}
	if _, err := mapi.Add(ctx, peer); err == nil {
		t.Fatal("adding a peer URL twice succeeded")
	}
	if err := mapi.Update(ctx, added.ID, []string{framework.FreeURL(t)}); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if err := mapi.Remove(ctx, added.ID); err != nil {
		t.Fatalf("Remove: %v", err)
	}
	// The server answers 410 Gone, which the client takes as done.
	if err := mapi.Remove(ctx, added.ID); err != nil {
		t.Fatalf("removing a removed member: %v", err)
	}
	if members, err := mapi.List(ctx); err != nil || len(members) != 3 {
		t.Fatalf("List after remove: %+v %v", members, err)
	}
}
