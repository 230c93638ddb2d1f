package fleetlock_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/cairn-io/cairn/internal/fleetlock"
)

// downKV is a store that fails every transaction.
type downKV struct{}

func (downKV) Txn(context.Context) clientv3.Txn { return downTxn{} }

type downTxn struct{}

func (t downTxn) If(...clientv3.Cmp) clientv3.Txn      { return t }
func (t downTxn) Then(...clientv3.Op) clientv3.Txn     { return t }
func (t downTxn) Else(...clientv3.Op) clientv3.Txn     { return t }
func (downTxn) Commit() (*clientv3.TxnResponse, error) { return nil, errors.New("store down") }

// FuzzRequest sends any body to both endpoints: the answer is always a
// protocol error object, 400 for a body the protocol rejects and 500 (the
// store is down) for one it accepts; never a 200, never a crash.
func FuzzRequest(f *testing.F) {
	for _, seed := range []string{
		params("a", "default"), "", "{", "null", "[]", `{"client_params":null}`, `{"client_params":{"id":"a"}}`,
		`{"client_params":{"id":"a","group":"x y"}}`, "\x00\xff", `{"client_params":{"id":"\ud800","group":"g"}}`,
		params("a", "g") + params("b", "g"), `{"client_params":{"id":"a","group":"g","id":""}}`,
	} {
		f.Add(seed)
	}
	srv, err := fleetlock.New(fleetlock.Config{KV: downKV{}, Logger: logger()})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{fleetlock.PreRebootPath, fleetlock.SteadyStatePath} {
			req := httptest.NewRequest(http.MethodPost, path, strings.NewReader(body))
			req.Header.Set("fleet-lock-protocol", "true")
			rec := httptest.NewRecorder()
			srv.ServeHTTP(rec, req)
			var e struct {
				Kind  *string `json:"kind"`
				Value *string `json:"value"`
			}
			dec := json.NewDecoder(rec.Body)
			dec.DisallowUnknownFields()
			if err := dec.Decode(&e); err != nil || e.Kind == nil || e.Value == nil || *e.Kind == "" || *e.Value == "" {
				t.Fatalf("%s %q: answer %d is not an error object: %v", path, body, rec.Code, err)
			}
			switch {
			case rec.Code == 500 && (*e.Kind == "failed_lock" || *e.Kind == "failed_unlock"):
			case rec.Code == 400 && *e.Kind != "failed_lock" && *e.Kind != "failed_unlock":
			default:
				t.Fatalf("%s %q: %d %s/%s", path, body, rec.Code, *e.Kind, *e.Value)
			}
		}
	})
}
