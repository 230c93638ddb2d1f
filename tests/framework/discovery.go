package framework

import (
	"strconv"
	"testing"
	"time"
)

// StartDiscovery starts n members that bootstrap one new cluster through
// the v2 discovery service at discoveryURL (--discovery instead of
// --initial-cluster) and waits until every member serves and they agree
// on a leader. The token directory must hold _config/size. Members are
// named cfg.Name (default "m") followed by the index. There is no retry on
// a port clash: the registrations of a failed attempt would stay in the
// token directory.
func StartDiscovery(t testing.TB, n int, cfg Config, discoveryURL string) *Cluster {
	t.Helper()
	prefix := cfg.Name
	if prefix == "" {
		prefix = "m"
	}
	cfg = withDefaults(t, cfg)
	c := &Cluster{}
	for i := range n {
		m := newMember(t, cfg, prefix+strconv.Itoa(i), t.TempDir())
		m.args = append(m.args, "--discovery", discoveryURL)
		m.args = append(m.args, cfg.Args...)
		c.Members = append(c.Members, m)
	}
	if err := c.launchAll(); err != nil {
		t.Fatalf("discovery cluster did not start: %v", err)
	}
	if _, err := c.waitLeader(time.Now().Add(startTimeout())); err != nil {
		t.Fatalf("discovery cluster did not start: %v (member logs follow)", err)
	}
	return c
}
