package cli

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"

	"github.com/spf13/pflag"

	"github.com/cairn-io/cairn/internal/discovery"
	"github.com/cairn-io/cairn/internal/embed"
	"github.com/cairn-io/cairn/internal/membership"
	"github.com/cairn-io/cairn/internal/storage"
)

// checkDiscovery validates --discovery against the other bootstrap flags.
// With --discovery the member starts as a cluster of itself (the default
// --initial-cluster) until discovery names the real members.
func (f *serveFlags) checkDiscovery(fs *pflag.FlagSet) error {
	if f.discovery == "" {
		return nil
	}
	if fs.Changed("initial-cluster") {
		return errors.New(`--discovery and --initial-cluster cannot both be set: choose one way to bootstrap the cluster ` +
			`(etcd: multiple discovery or bootstrap flags are set. Choose one of "initial-cluster" or "discovery")`)
	}
	if f.initialClusterState == "existing" {
		return errors.New("--discovery bootstraps a new cluster and cannot be used with --initial-cluster-state=existing")
	}
	u, err := url.Parse(f.discovery)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid value %q for flag --discovery: must be an http(s) URL such as http://host:2379/v2/keys/discovery/<token>", f.discovery)
	}
	return nil
}

// discoverCluster replaces the initial cluster with the one the discovery
// service at durl assembles, unless durl is empty or the member already has
// data (a restarted member ignores discovery, as etcd does).
func discoverCluster(ctx context.Context, cfg *embed.Config, durl string) error {
	if durl == "" {
		return nil
	}
	m := &cfg.Member
	if _, err := os.Stat(storage.DataPath(m.DataDir)); err == nil {
		return nil
	}
	id := membership.MemberID(m.PeerURLs, durl, nil)
	ic, err := discovery.JoinCluster(ctx, discovery.Config{
		URL:      durl,
		MemberID: id,
		Self:     discovery.SelfValue(m.Name, m.PeerURLs),
		Logger:   cfg.Logger,
	})
	if err != nil {
		return fmt.Errorf("failed to join discovery cluster (%w)", err)
	}
	cfg.Logger.Info("discovery assembled the initial cluster", "initial-cluster", ic)
	m.InitialCluster = ic
	if err := m.Validate(); err != nil {
		return err
	}
	return nil
}
