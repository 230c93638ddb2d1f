package cli

import (
	"bytes"
	"strings"
	"testing"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The snapshot status formats are etcdutl's; there is no etcdutl to compare
// with in the tests, so they are pinned here.
func TestSnapshotStatusFormats(t *testing.T) {
	st := snapshotStatus{Hash: 0x1a2b3c4d, Revision: 42, TotalKey: 7, TotalSize: 20512, Version: "3.6.0"}
	tests := []struct {
		format string
		want   string
	}{
		{"simple", "1a2b3c4d, 42, 7, 20 kB, 3.6.0\n"},
		{"json", `{"hash":439041101,"revision":42,"totalKey":7,"totalSize":20512,"version":"3.6.0"}` + "\n"},
		{"fields", "\"Hash\" : 439041101\n\"Revision\" : 42\n\"Keys\" : 7\n\"Size\" : 20512\n\"Version\" : 3.6.0\n"},
		{"table", "" +
			"+----------+----------+------------+------------+---------+\n" +
			"|   HASH   | REVISION | TOTAL KEYS | TOTAL SIZE | VERSION |\n" +
			"+----------+----------+------------+------------+---------+\n" +
			"| 1a2b3c4d |       42 |          7 |      20 kB |   3.6.0 |\n" +
			"+----------+----------+------------+------------+---------+\n"},
	}
	for _, tt := range tests {
		var out bytes.Buffer
		p, err := newPrinter(tt.format, false, &out, &out)
		if err != nil {
			t.Fatal(err)
		}
		if !p.supports(snapshotOutput) {
			t.Errorf("%s does not support snapshot status", tt.format)
		}
		p.snapshotStatus(st)
		if out.String() != tt.want {
			t.Errorf("%s:\ngot:\n%s\nwant:\n%s", tt.format, out.String(), tt.want)
		}
	}
}

// TestLeasePrintersSimple pins the simple lease lines, which scripts parse.
func TestLeasePrintersSimple(t *testing.T) {
	var out bytes.Buffer
	p := &simplePrinter{out: &out}
	hdr := &pb.ResponseHeader{}
	p.leaseGrant(&clientv3.LeaseGrantResponse{ResponseHeader: hdr, ID: 0x1f, TTL: 60})
	p.leaseRevoke(0x1f, &clientv3.LeaseRevokeResponse{})
	p.leaseKeepAlive(&clientv3.LeaseKeepAliveResponse{ResponseHeader: hdr, ID: 0x1f, TTL: 60})
	p.leaseTimeToLive(&clientv3.LeaseTimeToLiveResponse{ResponseHeader: hdr, ID: 0x1f, TTL: 59, GrantedTTL: 60, Keys: [][]byte{[]byte("a"), []byte("b c")}}, true)
	p.leaseTimeToLive(&clientv3.LeaseTimeToLiveResponse{ResponseHeader: hdr, ID: 0x1f, TTL: 59, GrantedTTL: 60}, false)
	p.leaseTimeToLive(&clientv3.LeaseTimeToLiveResponse{ResponseHeader: hdr, ID: 0x1f, TTL: -1}, true)
	p.leaseList(&clientv3.LeaseLeasesResponse{ResponseHeader: hdr, Leases: []clientv3.LeaseStatus{{ID: 1}, {ID: 0x7fffffffffffffff}}})
	want := strings.Join([]string{
		"lease 000000000000001f granted with TTL(60s)",
		"lease 000000000000001f revoked",
		"lease 000000000000001f keepalived with TTL(60)",
		"lease 000000000000001f granted with TTL(60s), remaining(59s), attached keys([a b c])",
		"lease 000000000000001f granted with TTL(60s), remaining(59s)",
		"lease 000000000000001f already expired",
		"found 2 leases",
		"0000000000000001",
		"7fffffffffffffff",
	}, "\n") + "\n"
	if out.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", out.String(), want)
	}
}
