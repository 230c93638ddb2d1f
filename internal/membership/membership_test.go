package membership_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/internal/membership"
)

// The expected IDs below were computed by etcd 3.6's own membership package
// (types.NewURLsMap, membership.NewClusterFromURLsMap, NewMember), so a
// cluster bootstrapped by cairn with the same flags has etcd's IDs.
func TestIDsMatchEtcd(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster string
		token   string
		members map[string]uint64
		id      uint64
	}{
		{"etcd's default member", "default=http://localhost:2380", "etcd-cluster",
			map[string]uint64{"default": 0x8e9e05c52164694d}, 0xcdf818194e3a8c32},
		{"default member, empty token", "default=http://localhost:2380", "",
			map[string]uint64{"default": 0x37807cb0bf7500f6}, 0x2c833ae9c7555b5e},
		{"etcd's Procfile", "infra1=http://127.0.0.1:12380,infra2=http://127.0.0.1:22380,infra3=http://127.0.0.1:32380", "etcd-cluster-1",
			map[string]uint64{"infra1": 0x8211f1d0f64f3269, "infra2": 0x91bc3c398fb3c146, "infra3": 0xfd422379fda50e48}, 0xef37ad9dc622a7c4},
		{"three local members", "infra1=http://127.0.0.1:2380,infra2=http://127.0.0.1:2381,infra3=http://127.0.0.1:2382", "etcd-cluster",
			map[string]uint64{"infra1": 0xb71f75320dc06a6c, "infra2": 0x09d3e65edfa29c46, "infra3": 0x9e85cc091d4d15bb}, 0x9f887e148ee475d7},
		{"two URLs", "a=http://10.0.0.1:2380,a=https://10.0.0.1:2381", "tok",
			map[string]uint64{"a": 0x46aef69c88b6f197}, 0x16e797ccfed58b86},
		{"two URLs, other order", "a=https://10.0.0.1:2381,a=http://10.0.0.1:2380", "tok",
			map[string]uint64{"a": 0x46aef69c88b6f197}, 0x16e797ccfed58b86},
		{"IPv6", "m1=http://[::1]:2380", "",
			map[string]uint64{"m1": 0x6b43974a66769f4f}, 0x31247ef40857f3ff},
		{"unix socket", "a=unix://h", "t",
			map[string]uint64{"a": 0x4ea91c4c830570c5}, 0x4a10a249b49462c3},
		{"plain", "a=http://h:2380", "t",
			map[string]uint64{"a": 0x3d6f981f86258a89}, 0x6f722dce562309e2},
		// etcd hashes the URL as net/url prints it back: the scheme in
		// lower case, an empty fragment dropped, an empty query kept.
		{"upper-case scheme", "a=HTTP://h:2380", "t",
			map[string]uint64{"a": 0x3d6f981f86258a89}, 0x6f722dce562309e2},
		{"empty fragment", "a=http://h:2380#", "t",
			map[string]uint64{"a": 0x3d6f981f86258a89}, 0x6f722dce562309e2},
		{"empty query", "a=http://h:2380?", "t",
			map[string]uint64{"a": 0x86a45175691d789d}, 0xcc7238a98a87b348},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := membership.ParseInitialCluster(tc.cluster, tc.token)
			if err != nil {
				t.Fatalf("ParseInitialCluster: %v", err)
			}
			got := map[string]uint64{}
			var ids []uint64
			for _, m := range ms {
				got[m.Name] = m.ID
				ids = append(ids, m.ID)
				if id := membership.MemberID(m.PeerURLs, tc.token, nil); id != m.ID {
					t.Errorf("member %s: MemberID gives %x, ParseInitialCluster %x", m.Name, id, m.ID)
				}
			}
			for name, want := range tc.members {
				if got[name] != want {
					t.Errorf("member %s: ID %016x, etcd computes %016x", name, got[name], want)
				}
			}
			if len(got) != len(tc.members) {
				t.Errorf("members %v, want %v", got, tc.members)
			}
			id := membership.ClusterID(ids)
			if id != tc.id {
				t.Errorf("cluster ID %016x, etcd computes %016x", id, tc.id)
			}
			slices.Reverse(ids)
			if again := membership.ClusterID(ids); again != id {
				t.Errorf("cluster ID depends on the order of members: %016x, then %016x", id, again)
			}
		})
	}
}

// A member added to a running cluster has its ID salted with the time it
// was added (etcd's NewMember with a non-nil time).
func TestMemberIDWithAddTime(t *testing.T) {
	added := time.Unix(1700000000, 0)
	if id := membership.MemberID([]string{"http://10.0.0.4:2380"}, "etcd-cluster", &added); id != 0x278334c15a811b88 {
		t.Errorf("MemberID = %016x, etcd computes 278334c15a811b88", id)
	}
	urls := []string{"http://10.0.0.5:2390", "http://10.0.0.5:2380"}
	if id := membership.MemberID(urls, "", &added); id != 0xbfbf3525c85548d1 {
		t.Errorf("MemberID = %016x, etcd computes bfbf3525c85548d1", id)
	}
	if !slices.Equal(urls, []string{"http://10.0.0.5:2390", "http://10.0.0.5:2380"}) {
		t.Errorf("MemberID reordered its argument: %v", urls)
	}
	if a, b := membership.MemberID(urls, "", &added), membership.MemberID(urls, "", nil); a == b {
		t.Error("the add time does not change the ID")
	}
}

func TestParseInitialCluster(t *testing.T) {
	type member struct {
		name string
		urls []string
	}
	for _, tc := range []struct {
		name    string
		cluster string
		want    []member
	}{
		{"one", "a=http://10.0.0.1:2380", []member{{"a", []string{"http://10.0.0.1:2380"}}}},
		{"three", "a=http://h1:2380,b=https://h2:2380,c=unix://c.sock",
			[]member{{"a", []string{"http://h1:2380"}}, {"b", []string{"https://h2:2380"}}, {"c", []string{"unix://c.sock"}}}},
		{"several URLs per name", "a=http://h:1,b=http://h:3,a=http://h:2",
			[]member{{"a", []string{"http://h:1", "http://h:2"}}, {"b", []string{"http://h:3"}}}},
		{"spaces around entries", "  a=http://h:1 ,\tb=http://h:2\n", []member{{"a", []string{"http://h:1"}}, {"b", []string{"http://h:2"}}}},
		{"space in a name", "my member=http://h:1", []member{{"my member", []string{"http://h:1"}}}},
		{"URL with =", "a=http://h:1?x=y", []member{{"a", []string{"http://h:1?x=y"}}}},
		{"trailing slash", "a=http://h:1/", []member{{"a", []string{"http://h:1/"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := membership.ParseInitialCluster(tc.cluster, "tok")
			if err != nil {
				t.Fatalf("ParseInitialCluster(%q): %v", tc.cluster, err)
			}
			var got []member
			for _, m := range ms {
				got = append(got, member{m.Name, m.PeerURLs})
				if m.ID == 0 || m.IsLearner || len(m.ClientURLs) != 0 {
					t.Errorf("member %+v", m)
				}
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("members %v, want %v", got, tc.want)
			}
		})
	}
}

func TestParseInitialClusterErrors(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cluster string
		// culprit lists what the message must name.
		culprit []string
	}{
		{"empty", "", []string{"empty"}},
		{"blank", " \t", []string{"empty"}},
		{"missing =", "a=http://h:1,bee", []string{`"bee"`}},
		{"empty name", "a=http://h:1,=http://h:2", []string{`"=http://h:2"`}},
		{"empty URL", "a=", []string{`"a="`}},
		{"empty entry", "a=http://h:1,,b=http://h:2", []string{`""`}},
		{"bad URL", "a=http://h:1,b=http://h:%zz", []string{"member b", "http://h:%zz"}},
		{"bad scheme", "a=ftp://h:1", []string{"member a", "ftp://h:1", "scheme"}},
		{"no scheme", "a=h:2380", []string{"member a", "h:2380"}},
		{"no port", "node1=http://10.0.0.1", []string{"member node1", "http://10.0.0.1", "host:port"}},
		{"path", "a=http://h:1/raft", []string{"member a", "http://h:1/raft", "path"}},
		{"duplicate peer URL", "a=http://h:1,b=http://h:1", []string{"http://h:1", "a", "b"}},
		{"duplicate peer URL, other spelling", "a=http://h:1,b=HTTP://h:1", []string{"h:1", "a", "b"}},
		{"duplicate URL of one member", "a=http://h:1,a=http://h:1", []string{"http://h:1", "a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ms, err := membership.ParseInitialCluster(tc.cluster, "tok")
			if err == nil {
				t.Fatalf("ParseInitialCluster(%q) = %+v, want an error", tc.cluster, ms)
			}
			if !errors.Is(err, membership.ErrBadInitialCluster) {
				t.Errorf("error %v is not ErrBadInitialCluster", err)
			}
			for _, c := range tc.culprit {
				if !strings.Contains(err.Error(), c) {
					t.Errorf("error %q does not name %s", err, c)
				}
			}
		})
	}
}

func TestValidateURL(t *testing.T) {
	for _, ok := range []string{"http://h:1", "https://10.0.0.1:2379", "http://[::1]:2380", "unix://sock", "unixs://sock:1", "http://h:1/"} {
		if err := membership.ValidateURL(ok); err != nil {
			t.Errorf("ValidateURL(%q): %v", ok, err)
		}
	}
	for _, bad := range []string{"", "h:1", "http://h", "http://:1/x", "ftp://h:1", "http://h:1/x", "http//h:1", "://h:1"} {
		if err := membership.ValidateURL(bad); err == nil {
			t.Errorf("ValidateURL(%q) accepted it", bad)
		} else if !strings.Contains(err.Error(), fmt.Sprintf("%q", bad)) {
			t.Errorf("ValidateURL(%q) = %q, which does not name the URL", bad, err)
		}
	}
}
