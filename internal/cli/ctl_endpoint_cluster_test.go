package cli_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/tests/framework"
)

// TestEndpointClusterMatchesEtcdctl runs endpoint status, health and hashkv
// with --cluster, in every format, through cairn and the official etcdctl
// against one 3-member cluster: with every member up, and with a follower
// stopped (its client URL is still in the member list, and does not
// answer).
func TestEndpointClusterMatchesEtcdctl(t *testing.T) {
	isolateEnv(t)
	bin := framework.CairnBinary
	if serverIsEtcd() {
		bin = framework.EtcdBinary
	}
	c := framework.StartCluster(t, 3, framework.Config{Binary: bin(t)})
	cli := c.Client(t)
	for i := range 10 {
		mustPut(t, cli, fmt.Sprintf("ep/%d", i), fmt.Sprint(i))
	}
	leader := c.Leader(t)
	// Both tools check health of all endpoints at once and print them as
	// they answer: their order is compared sorted.
	health := &shotSuite{m: leader, cli: cli, norm: sortEndpointResults}
	inTurn := &shotSuite{m: leader, cli: cli}
	run := func(t *testing.T, extra ...string) {
		for _, cmd := range []string{"status", "health", "hashkv"} {
			s := inTurn
			if cmd == "health" {
				s = health
			}
			var cases []ctlCase
			for _, w := range []string{"simple", "json", "fields", "table", "protobuf"} {
				cases = append(cases, ctlCase{args: append([]string{"endpoint", cmd, "--cluster", "-w", w}, extra...)})
			}
			s.runAll(t, cases)
		}
	}
	t.Run("AllUp", func(t *testing.T) { run(t) })

	for _, m := range c.Members {
		if m != leader {
			m.Stop(t)
			break
		}
	}
	t.Run("FollowerDown", func(t *testing.T) { run(t, "--command-timeout=1s") })
}

// sortEndpointResults puts the per-endpoint results of an output in a
// fixed order: the elements of a json array, the rows of a table, the
// blocks of the fields format, the lines of the simple one.
func sortEndpointResults(s string) string {
	switch {
	case strings.HasPrefix(s, "["):
		var elems []json.RawMessage
		if err := json.Unmarshal([]byte(s), &elems); err != nil {
			return s
		}
		slices.SortFunc(elems, func(a, b json.RawMessage) int { return strings.Compare(string(a), string(b)) })
		out, _ := json.Marshal(elems)
		return string(out) + "\n"
	case strings.HasPrefix(s, "+-"):
		lines := strings.Split(s, "\n")
		// Borders and the header come first; the rows are those between
		// the second border and the last.
		if len(lines) > 4 {
			slices.Sort(lines[3 : len(lines)-2])
		}
		return strings.Join(lines, "\n")
	case strings.Contains(s, "\n\n"):
		blocks := strings.SplitAfter(s, "\n\n")
		slices.Sort(blocks)
		return strings.Join(blocks, "")
	default:
		lines := strings.SplitAfter(s, "\n")
		slices.Sort(lines)
		return strings.Join(lines, "")
	}
}
