package e2e

import (
	"context"
	"errors"
	"testing"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestTxnFromKeyDeleteThenIgnoreValue sends the txn that crashes etcd 3.6
// permanently (a from-key delete, then a put with ignore_value of a key the
// delete removed): cairn must refuse it whole with "key not found", keep
// serving, and restart cleanly.
func TestTxnFromKeyDeleteThenIgnoreValue(t *testing.T) {
	m := framework.Start(t, framework.Config{})
	cli := m.Client(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := cli.Put(ctx, "b", "1"); err != nil {
		t.Fatal(err)
	}
	_, err := cli.Txn(ctx).Then(
		clientv3.OpDelete("a", clientv3.WithFromKey()),
		clientv3.OpPut("b", "", clientv3.WithIgnoreValue()),
	).Commit()
	if !errors.Is(err, rpctypes.ErrKeyNotFound) {
		t.Fatalf("txn: got %v, want %v", err, rpctypes.ErrKeyNotFound)
	}
	resp, err := cli.Get(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	if len(resp.Kvs) != 1 || string(resp.Kvs[0].Value) != "1" || resp.Header.Revision != 2 {
		t.Fatalf("after the refused txn: %v at revision %d; want b=1 at revision 2", resp.Kvs, resp.Header.Revision)
	}
	m.Restart(t)
	if _, err := m.Client(t).Put(ctx, "c", "1"); err != nil {
		t.Fatalf("put after restart: %v", err)
	}
}
