package cli_test

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pb "go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestMemberCommandsMatchEtcdctl runs member list, add, remove, update and
// promote and move-leader, through cairn and the official etcdctl, against
// one 3-member cluster: every format, argument and server errors, a learner
// that never starts, one that joins, catches up, is promoted, moves to a
// new peer URL and is removed, and leadership moved to a follower.
func TestMemberCommandsMatchEtcdctl(t *testing.T) {
	isolateEnv(t)
	bin := framework.CairnBinary
	if serverIsEtcd() {
		bin = framework.EtcdBinary
	}
	c := framework.StartCluster(t, 3, framework.Config{Binary: bin(t)})
	s := &memberSuite{
		top:  t,
		c:    c,
		cli:  c.Client(t),
		ids:  map[*framework.Member]uint64{},
		clis: map[*framework.Member]*clientv3.Client{},
	}

	// Each step starts from the membership the one before left.
	_ = t.Run("List", s.list) &&
		t.Run("BadArguments", s.badArguments) &&
		t.Run("ServerErrors", s.serverErrors) &&
		t.Run("Add", s.add) &&
		t.Run("UnstartedLearner", s.unstartedLearner) &&
		t.Run("Lifecycle", s.lifecycle) &&
		t.Run("MoveLeader", s.moveLeader)
}

// memberSuite runs command lines through both tools against the cluster.
type memberSuite struct {
	top  *testing.T // the test the cluster lives as long as
	c    *framework.Cluster
	cli  *clientv3.Client // over every member
	ids  map[*framework.Member]uint64
	clis map[*framework.Member]*clientv3.Client // of one member each

	// prepare, when set, runs before each tool's run and returns the values
	// {name} stands for in the arguments (it may add to the common ones).
	prepare func(t *testing.T) map[string]string
	// runID, when set, runs after each tool's run and returns the ID of
	// the member the run added or removed (0: none). The two runs create
	// different members, so their IDs are replaced by NEWID before the
	// outputs are compared.
	runID func(t *testing.T) uint64
	// placeholders name the values of prepare that differ between runs
	// (a new member's peer URLs); they are replaced by {name} in the
	// outputs.
	placeholders []string
	// canon, when set, first rewrites the stdout of a run that added
	// member id (see canonAdd).
	canon func(t *testing.T, out string, id uint64) string
}

func (s *memberSuite) with(prepare func(*testing.T) map[string]string, runID func(*testing.T) uint64) *memberSuite {
	return &memberSuite{top: s.top, c: s.c, cli: s.cli, ids: s.ids, clis: s.clis, prepare: prepare, runID: runID}
}

// id returns m's member ID.
func (s *memberSuite) id(t *testing.T, m *framework.Member) uint64 {
	t.Helper()
	if id, ok := s.ids[m]; ok {
		return id
	}
	id := memberStatus(t, m).Header.MemberId
	s.ids[m] = id
	return id
}

// vars are the values every case may refer to: the endpoints of the
// members in order ({ep0}..) and all together ({all}), their hex IDs
// ({id0}..), peer URLs ({peer0}..), the leader's endpoint and ID
// ({leader}, {leaderID}), the followers' ({f0}, {f0ID}, ...), and an
// address nothing listens on ({dead}).
func (s *memberSuite) vars(t *testing.T) map[string]string {
	t.Helper()
	v := map[string]string{"all": strings.Join(s.c.Endpoints(), ","), "dead": closedEndpoint(t)}
	leader := s.c.Leader(t)
	f := 0
	for i, m := range s.c.Members {
		id := fmt.Sprintf("%x", s.id(t, m))
		v[fmt.Sprintf("ep%d", i)] = m.Endpoint()
		v[fmt.Sprintf("id%d", i)] = id
		v[fmt.Sprintf("peer%d", i)] = m.AdvertisedPeerURL()
		if m == leader {
			v["leader"], v["leaderID"] = m.Endpoint(), id
		} else {
			v[fmt.Sprintf("f%d", f)], v[fmt.Sprintf("f%dID", f)] = m.Endpoint(), id
			f++
		}
	}
	return v
}

// run runs c through etcdctl, then cairn, and compares stdout, stderr and
// exit code as ctlCase says. The cases talk to the first member unless
// they name their endpoints.
func (s *memberSuite) run(t *testing.T, c ctlCase) {
	t.Helper()
	common := s.vars(t)
	do := func(tool func(args []string) result) (result, []string) {
		vars := maps.Clone(common)
		if s.prepare != nil {
			maps.Copy(vars, s.prepare(t))
		}
		expand := func(text string) string {
			for k, v := range vars {
				text = strings.ReplaceAll(text, "{"+k+"}", v)
			}
			return text
		}
		var args []string
		if !c.noEndpoint {
			ep := s.c.Members[0].Endpoint()
			if c.endpoint != "" {
				ep = expand(c.endpoint)
			}
			args = append(args, "--endpoints="+ep)
		}
		for _, a := range c.args {
			args = append(args, expand(a))
		}
		r := tool(args)
		if s.runID != nil {
			if id := s.runID(t); id != 0 {
				if s.canon != nil {
					r.stdout = s.canon(t, r.stdout, id)
				}
				r.stdout, r.stderr = replaceID(r.stdout, id), replaceID(r.stderr, id)
			}
		}
		for _, name := range s.placeholders {
			r.stdout = strings.ReplaceAll(r.stdout, vars[name], "{"+name+"}")
			r.stderr = strings.ReplaceAll(r.stderr, vars[name], "{"+name+"}")
		}
		return r, args
	}
	want, args := do(func(args []string) result { return runEtcdctl(t, nil, "", args...) })
	got, _ := do(func(args []string) result { return runCairn(t, "", args...) })

	c.compare(t, args, got, want)
}

func (s *memberSuite) runAll(t *testing.T, cases []ctlCase) {
	for _, c := range cases {
		name := strings.Join(c.args, " ")
		if c.endpoint != "" {
			name = "--endpoints=" + c.endpoint + " " + name
		}
		t.Run(name, func(t *testing.T) { s.run(t, c) })
	}
}

// replaceID writes NEWID for every way the outputs write a member ID: hex
// padded to 16 columns with spaces, plain hex, decimal.
func replaceID(s string, id uint64) string {
	for _, form := range []string{fmt.Sprintf("%16x", id), fmt.Sprintf("%x", id), fmt.Sprint(id)} {
		s = strings.ReplaceAll(s, form, "NEWID")
	}
	return s
}

// canonAdd makes member add's stdout independent of the new member's ID,
// which decides where the member sorts among the others: a json or
// protobuf response is decoded (and must encode back to the bytes
// printed), its copy of the new member gets ID 0 and its member list is
// sorted; the simple format's ETCD_INITIAL_CLUSTER entries are sorted.
func canonAdd(t *testing.T, out string, id uint64) string {
	t.Helper()
	canon := func(r *pb.MemberAddResponse) {
		for _, m := range append([]*pb.Member{r.Member}, r.Members...) {
			if m != nil && m.ID == id {
				m.ID = 0
			}
		}
		slices.SortFunc(r.Members, func(a, b *pb.Member) int {
			return strings.Compare(a.Name+" "+strings.Join(a.PeerURLs, ","), b.Name+" "+strings.Join(b.PeerURLs, ","))
		})
	}
	var r pb.MemberAddResponse
	switch {
	case strings.HasPrefix(out, "{"):
		line := strings.TrimSuffix(out, "\n")
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return out
		}
		if b, err := json.Marshal(&r); err != nil || string(b) != line {
			return out
		}
		canon(&r)
		b, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	case strings.HasPrefix(out, "Member "):
		lines := strings.Split(out, "\n")
		for i, l := range lines {
			v, ok := strings.CutPrefix(l, "ETCD_INITIAL_CLUSTER=")
			if !ok {
				continue
			}
			v, err := strconv.Unquote(v)
			if err != nil {
				return out
			}
			parts := strings.Split(v, ",")
			slices.Sort(parts)
			lines[i] = "ETCD_INITIAL_CLUSTER=" + strconv.Quote(strings.Join(parts, ","))
		}
		return strings.Join(lines, "\n")
	case out != "":
		if err := r.Unmarshal([]byte(out)); err != nil {
			return out
		}
		if b, err := r.Marshal(); err != nil || string(b) != out {
			return out
		}
		canon(&r)
		b, err := r.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	return out
}

func (s *memberSuite) list(t *testing.T) {
	s.runAll(t, listCases())
	s.runAll(t, []ctlCase{
		{args: []string{"member", "list", "--consistency=s"}},
		{args: []string{"member", "list", "--consistency=s", "-w", "json"}},
		{args: []string{"member", "list", "-w", "table"}, endpoint: "{ep2}"},
		{args: []string{"member", "list", "-w", "yaml"}},
		{args: []string{"member", "list", "extra"}},
		{args: []string{"member", "list", "--command-timeout=1s"}, endpoint: "{dead}"},
		// etcdctl names the get command's --consistency, not the one
		// given.
		{args: []string{"member", "list", "--consistency=x"}, clearerError: true},
	})
	r := runCairn(t, "", "--endpoints="+s.c.Members[0].Endpoint(), "member", "list", "--consistency=x")
	if r.code != 4 || r.stderr != "Error: unknown consistency flag \"x\"\n" {
		t.Errorf("member list --consistency=x: %v, want exit 4 naming \"x\"", r)
	}
}

// listCases are member list in every format, with and without --hex.
func listCases() []ctlCase {
	var cases []ctlCase
	for _, w := range []string{"simple", "json", "fields", "table", "protobuf"} {
		cases = append(cases,
			ctlCase{args: []string{"member", "list", "-w", w}},
			ctlCase{args: []string{"member", "list", "-w", w, "--hex"}})
	}
	return cases
}

func (s *memberSuite) badArguments(t *testing.T) {
	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	add("member", "add")
	add("member", "add", "newm")
	add("member", "add", "newm", "--peer-urls=")
	add("member", "add", "newm", "http://127.0.0.1:1")
	add("member", "add", "newm", "http://127.0.0.1:1", "--peer-urls=http://127.0.0.1:2")
	add("member", "add", "HTTP://127.0.0.1:1", "newm", "https://127.0.0.1:2")
	add("member", "add", "a", "b")
	add("member", "remove")
	add("member", "remove", "zz")
	add("member", "remove", "1", "2")
	add("member", "remove", "10000000000000000")
	add("member", "update")
	add("member", "update", "zz", "--peer-urls=http://127.0.0.1:1")
	add("member", "update", "1")
	add("member", "update", "1", "2", "--peer-urls=http://127.0.0.1:1")
	add("member", "promote")
	add("member", "promote", "0x1g")
	add("member", "promote", "1", "2")
	add("move-leader")
	add("move-leader", "zz")
	add("move-leader", "1", "2")
	add("member", "add", "newm", "--peer-urls=http://127.0.0.1:1", "-w", "yaml")
	cases = append(cases,
		ctlCase{args: []string{"member", "add", "newm", "--peer-urls=http://127.0.0.1:1", "--learner=maybe"}, usageOnStdout: true},
		ctlCase{args: []string{"member", "remove", "1", "--bogus"}, usageOnStdout: true},
		ctlCase{args: []string{"move-leader", "1", "--bogus"}, usageOnStdout: true},
	)
	s.runAll(t, cases)
}

// serverErrors are requests the cluster refuses, and changes that change
// nothing (a member updated to the peer URLs it has, leadership moved to
// the leader), in every format.
func (s *memberSuite) serverErrors(t *testing.T) {
	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	add("member", "remove", "1")
	add("member", "update", "1", "--peer-urls=http://127.0.0.1:1")
	add("member", "promote", "1")
	add("member", "promote", "{id1}")
	add("member", "add", "newm", "--peer-urls={peer1}")
	add("member", "add", "newm", "--peer-urls=notaurl")
	add("member", "update", "{id1}", "--peer-urls=notaurl")
	for _, w := range []string{"simple", "json", "fields", "table", "protobuf"} {
		add("member", "update", "{id1}", "--peer-urls={peer1}", "-w", w)
		cases = append(cases, ctlCase{args: []string{"move-leader", "{leaderID}", "-w", w}, endpoint: "{all}"})
	}
	cases = append(cases,
		ctlCase{args: []string{"move-leader", "{f0ID}"}, endpoint: "{f0},{f1}"},
		ctlCase{args: []string{"move-leader", "1"}, endpoint: "{all}"},
		ctlCase{args: []string{"move-leader", "{leaderID}", "--command-timeout=1s"}, endpoint: "{dead},{all}"},
	)
	s.runAll(t, cases)
}

// add adds a member that never starts, in every format. Each run adds it
// at fresh peer URLs ({url}, {url2}), as a member that was removed cannot
// come back under the same ID, which the same URLs in the same second
// would give it; members added by earlier runs are removed first.
func (s *memberSuite) add(t *testing.T) {
	var urls []string
	fresh := func(t *testing.T) map[string]string {
		s.removeOthers(t)
		// In order, as the server keeps them.
		urls = []string{"http://" + closedEndpoint(t), "http://" + closedEndpoint(t)}
		slices.Sort(urls)
		return map[string]string{"url": urls[0], "url2": urls[1]}
	}
	added := func(t *testing.T) uint64 { return s.memberAt(t, urls[0]) }
	t.Cleanup(func() { s.removeOthers(t) })
	suite := s.with(fresh, added)
	suite.placeholders = []string{"url", "url2"}
	suite.canon = canonAdd

	var cases []ctlCase
	add := func(args ...string) { cases = append(cases, ctlCase{args: args}) }
	add("member", "add", "newm", "--peer-urls={url}", "--learner")
	add("member", "add", "newm", "--peer-urls={url}")
	add("member", "add", "newm", "--peer-urls={url},{url2}", "--learner")
	add("member", "add", "newm", "--peer-urls={url}", "--learner", "--hex")
	for _, w := range []string{"json", "fields", "table", "protobuf"} {
		add("member", "add", "newm", "--peer-urls={url}", "--learner", "-w", w)
	}
	add("member", "add", "newm", "--peer-urls={url}", "-w", "json", "--hex")
	add("member", "add", "newm", "--peer-urls={url},{url2}", "-w", "protobuf")
	suite.runAll(t, cases)

	// fields and table fail only after the member was added.
	fresh(t)
	r := runCairn(t, "", "--endpoints="+s.c.Members[0].Endpoint(), "member", "add", "newm", "--peer-urls="+urls[0], "-w", "table")
	if r.code != 4 || r.stderr != "Error: table not supported as output format\n" || s.memberAt(t, urls[0]) == 0 {
		t.Errorf("member add -w table: %v, want the member added and exit 4", r)
	}
}

// unstartedLearner lists the members with a learner that never started,
// in every format, fails to promote it or move leadership to it, and
// removes such a learner in every format.
func (s *memberSuite) unstartedLearner(t *testing.T) {
	url := "http://" + closedEndpoint(t)
	t.Cleanup(func() { s.removeOthers(t) })
	id := s.addLearner(t, url)
	learner := func(*testing.T) map[string]string { return map[string]string{"learner": fmt.Sprintf("%x", id)} }
	suite := s.with(learner, nil)
	cases := listCases()
	cases = append(cases,
		ctlCase{args: []string{"member", "promote", "{learner}"}},
		ctlCase{args: []string{"member", "promote", "{learner}"}, endpoint: "{f0}"},
		ctlCase{args: []string{"move-leader", "{learner}"}, endpoint: "{all}"},
		ctlCase{args: []string{"member", "update", "{learner}", "--peer-urls=" + url, "-w", "json"}},
	)
	suite.runAll(t, cases)

	// Removed in every format: each run removes a learner of its own.
	var current uint64
	fresh := func(t *testing.T) map[string]string {
		s.removeOthers(t)
		current = s.addLearner(t, "http://"+closedEndpoint(t))
		return map[string]string{"learner": fmt.Sprintf("%x", current)}
	}
	removed := func(*testing.T) uint64 { return current }
	suite = s.with(fresh, removed)
	cases = nil
	for _, w := range []string{"simple", "json", "fields", "table", "protobuf"} {
		cases = append(cases, ctlCase{args: []string{"member", "remove", "{learner}", "-w", w}})
	}
	cases = append(cases, ctlCase{args: []string{"member", "remove", "{learner}"}, endpoint: "{f1}"})
	suite.runAll(t, cases)
	if got := len(s.memberList(t).Members); got != len(s.c.Members) {
		t.Errorf("%d members after member remove, want %d", got, len(s.c.Members))
	}
}

var addedRE = regexp.MustCompile(`^Member ([ 0-9a-f]{16}) added as learner to cluster ([ 0-9a-f]{16})\n`)

// lifecycle adds a learner with cairn, starts it, promotes it once it has
// caught up, moves it to a new peer URL and removes it.
func (s *memberSuite) lifecycle(t *testing.T) {
	c := s.c
	m := c.NewMember(t, "m3")
	all := "--endpoints=" + strings.Join(c.Endpoints(), ",")

	r := runCairn(t, "", all, "member", "add", "m3", "--peer-urls="+m.AdvertisedPeerURL(), "--learner")
	sub := addedRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || sub == nil {
		t.Fatalf("member add m3 --learner: %v", r)
	}
	id, err := strconv.ParseUint(strings.TrimSpace(sub[1]), 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	cluster := s.memberList(t)
	var peers []string
	for _, x := range cluster.Members {
		name := x.Name
		if x.ID == id {
			name = "m3"
		}
		peers = append(peers, name+"="+x.PeerURLs[0])
	}
	want := fmt.Sprintf("Member %16x added as learner to cluster %16x\n\n"+
		"ETCD_NAME=\"m3\"\nETCD_INITIAL_CLUSTER=%q\nETCD_INITIAL_ADVERTISE_PEER_URLS=%q\nETCD_INITIAL_CLUSTER_STATE=\"existing\"\n",
		id, cluster.Header.ClusterId, strings.Join(peers, ","), m.AdvertisedPeerURL())
	if r.stdout != want || r.stderr != "" {
		t.Fatalf("member add m3 --learner: %v\nwant stdout:\n%s", r, want)
	}
	hexID := strconv.FormatUint(id, 16)

	// Started with --initial-cluster-state existing (NewMember's), it
	// catches up; until then promotion is refused as not in sync.
	m.Launch(t)
	var refusals int
	framework.Poll(t, 60*time.Second, "the learner to be promoted", func() error {
		r := runCairn(t, "", all, "member", "promote", hexID)
		if r.code == 0 {
			want := fmt.Sprintf("Member %16x promoted in cluster %16x\n", id, cluster.Header.ClusterId)
			if r.stdout != want || r.stderr != "" {
				t.Fatalf("member promote: %v, want %q", r, want)
			}
			return nil
		}
		if r.code != 1 || !strings.Contains(r.stderr, "can only promote a learner member which is in sync with leader") {
			t.Fatalf("member promote of a learner catching up: %v", r)
		}
		refusals++
		return fmt.Errorf("not in sync: %s", r.stderr)
	})
	t.Logf("promotion refused %d times while the learner caught up", refusals)
	c.Members = append(c.Members, m)
	t.Cleanup(func() {
		if i := slices.Index(c.Members, m); i >= 0 {
			c.Members = slices.Delete(c.Members, i, i+1)
		}
	})
	c.Leader(t)
	if st := memberStatus(t, m); st.IsLearner || st.Header.MemberId != id {
		t.Fatalf("status of m3 after promotion: member %x, learner %v", st.Header.MemberId, st.IsLearner)
	}
	// Four started voters, the same to both tools once m3 has published
	// its name and client URL.
	framework.Poll(t, 30*time.Second, "m3 to publish its name", func() error {
		for _, x := range s.memberList(t).Members {
			if x.ID == id && (x.Name != "m3" || len(x.ClientURLs) == 0) {
				return fmt.Errorf("m3 listed as %v", x)
			}
		}
		return nil
	})
	s.runAll(t, listCases())

	// A new peer URL, given while m3 is down; it serves a linearizable
	// read once restarted there.
	m.Stop(t)
	url := m.MovePeerURL(t)
	r = runCairn(t, "", "--endpoints="+c.Members[0].Endpoint(), "member", "update", hexID, "--peer-urls="+url)
	if want := fmt.Sprintf("Member %16x updated in cluster %16x\n", id, cluster.Header.ClusterId); r.code != 0 || r.stdout != want {
		t.Fatalf("member update: %v, want %q", r, want)
	}
	m.Restart(t)
	if got := s.memberAt(t, url); got != id {
		t.Fatalf("member at %s is %x after member update, want %x", url, got, id)
	}

	r = runCairn(t, "", all, "member", "remove", hexID)
	if want := fmt.Sprintf("Member %16x removed from cluster %16x\n", id, cluster.Header.ClusterId); r.code != 0 || r.stdout != want {
		t.Fatalf("member remove: %v, want %q", r, want)
	}
	m.WaitExit(t, 30*time.Second)
	c.Members = slices.DeleteFunc(c.Members, func(x *framework.Member) bool { return x == m })
	if got := len(s.memberList(t).Members); got != 3 {
		t.Fatalf("%d members after member remove, want 3", got)
	}
}

// moveLeader moves leadership from the leader to a follower with each tool
// (the leader given back in between) and checks with Status that it moved,
// then once more with cairn alone to the other follower.
func (s *memberSuite) moveLeader(t *testing.T) {
	c := s.c
	from := c.Leader(t)
	var to *framework.Member
	for _, m := range c.Members {
		if m != from {
			to = m
			break
		}
	}
	fromID, toID := s.id(t, from), s.id(t, to)
	giveBack := func(t *testing.T) map[string]string {
		if now := c.Leader(t); now != from {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if _, err := now.Client(t).MoveLeader(ctx, fromID); err != nil {
				t.Fatalf("move leadership back to %s: %v", from.Name(), err)
			}
			if now := c.Leader(t); now != from {
				t.Fatalf("leader %s after moving leadership back to %s", now.Name(), from.Name())
			}
		}
		return map[string]string{"to": fmt.Sprintf("%x", toID)}
	}
	s.with(giveBack, nil).run(t, ctlCase{args: []string{"move-leader", "{to}"}, endpoint: "{all}"})
	if now := c.Leader(t); now != to {
		t.Fatalf("leader is %s after cairn move-leader to %s", now.Name(), to.Name())
	}

	// From the new leader to the third member, the leader last among the
	// endpoints.
	var third *framework.Member
	for _, m := range c.Members {
		if m != from && m != to {
			third = m
		}
	}
	thirdID := s.id(t, third)
	eps := "--endpoints=" + third.Endpoint() + "," + from.Endpoint() + "," + to.Endpoint()
	r := runCairn(t, "", eps, "move-leader", fmt.Sprintf("%x", thirdID), "-w", "json")
	var resp pb.MoveLeaderResponse
	if err := json.Unmarshal([]byte(r.stdout), &resp); r.code != 0 || err != nil {
		t.Fatalf("move-leader -w json: %v, want a MoveLeaderResponse (%v)", r, err)
	}
	// etcd answers MoveLeader with an empty response; so does cairn.
	if r.stdout != "{}\n" {
		t.Fatalf("move-leader -w json printed %q, want etcd's empty response {}", r.stdout)
	}
	if now := c.Leader(t); now != third {
		t.Fatalf("leader is %s after cairn move-leader to %s", now.Name(), third.Name())
	}
	// The old leader, asked alone, has no leadership to give.
	r = runCairn(t, "", "--endpoints="+to.Endpoint(), "move-leader", fmt.Sprintf("%x", fromID))
	if want := fmt.Sprintf("Error: no leader endpoint given at [%s]\n", to.Endpoint()); r.code != 128 || r.stderr != want {
		t.Fatalf("move-leader through a follower: %v, want %q", r, want)
	}
}

// addLearner adds an unstarted learner at url and returns its ID.
func (s *memberSuite) addLearner(t *testing.T, url string) uint64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := s.cli.MemberAddAsLearner(ctx, []string{url})
	if err != nil {
		t.Fatalf("add a learner at %s: %v", url, err)
	}
	s.memberList(t)
	return resp.Member.ID
}

// memberAt returns the ID of the member with peer URL url, or 0.
func (s *memberSuite) memberAt(t *testing.T, url string) uint64 {
	t.Helper()
	for _, m := range s.memberList(t).Members {
		if slices.Contains(m.PeerURLs, url) {
			return m.ID
		}
	}
	return 0
}

// removeOthers removes every member that is not one of the cluster's.
func (s *memberSuite) removeOthers(t *testing.T) {
	t.Helper()
	keep := map[uint64]bool{}
	for _, m := range s.c.Members {
		keep[s.id(t, m)] = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, m := range s.memberList(t).Members {
		if !keep[m.ID] {
			if _, err := s.cli.MemberRemove(ctx, m.ID); err != nil {
				t.Fatalf("remove member %x: %v", m.ID, err)
			}
		}
	}
	s.memberList(t)
}

// memberList returns the member list once every running member of the
// cluster lists the same members. A member answers member list from what
// it has applied, so a follower may not list the last change yet; after
// this, whichever member a command asks lists it.
func (s *memberSuite) memberList(t *testing.T) *clientv3.MemberListResponse {
	t.Helper()
	var agreed *clientv3.MemberListResponse
	framework.Poll(t, 30*time.Second, "the members to list the same members", func() error {
		agreed = nil
		var first, firstName string
		for _, m := range s.c.Members {
			if !m.Running() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			resp, err := s.client(m).MemberList(ctx)
			cancel()
			if err != nil {
				return fmt.Errorf("member list from %s: %w", m.Name(), err)
			}
			var b strings.Builder
			for _, x := range resp.Members {
				b.WriteString(x.String() + "\n")
			}
			if agreed == nil {
				agreed, first, firstName = resp, b.String(), m.Name()
			} else if b.String() != first {
				return fmt.Errorf("%s lists\n%swhere %s lists\n%s", m.Name(), b.String(), firstName, first)
			}
		}
		return nil
	})
	return agreed
}

// client returns a client of m alone, open until the test ends.
func (s *memberSuite) client(m *framework.Member) *clientv3.Client {
	if cli, ok := s.clis[m]; ok {
		return cli
	}
	cli := m.Client(s.top)
	s.clis[m] = cli
	return cli
}

// memberStatus is m's answer to Status.
func memberStatus(t *testing.T, m *framework.Member) *clientv3.StatusResponse {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{m.Endpoint()}, DialTimeout: 5 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer cli.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := cli.Status(ctx, m.Endpoint())
	if err != nil {
		t.Fatalf("status of %s: %v", m.Name(), err)
	}
	return st
}
