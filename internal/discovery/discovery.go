// Package discovery bootstraps a new cluster through etcd's v2 discovery
// protocol: any server of the v2 keys API (a cairn member, an etcd 2/3.x
// with v2, or discovery.etcd.io) holds, under a token directory, the
// expected cluster size in <token>/_config/size and one key per member,
// <token>/<member ID in hex>, whose value is that member's
// "name=peerURL,..." entry. Each member registers itself with a create,
// waits (with a watch) until size members registered, and builds its
// --initial-cluster from the first size registrations in creation order.
//
// The errors and their texts are etcd's (cluster is full, size key not
// found, duplicate name, ...), and so is the retry schedule when the
// discovery service cannot be reached: exponential backoff from 2s,
// capped at 256s, until the context ends.
package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/internal/membership"
)

// Errors, with etcd's texts.
var (
	ErrInvalidURL           = errors.New("discovery: invalid URL")
	ErrBadSizeKey           = errors.New("discovery: size key is bad")
	ErrSizeNotFound         = errors.New("discovery: size key not found")
	ErrTokenNotFound        = errors.New("discovery: token not found")
	ErrDuplicateID          = errors.New("discovery: found duplicate id")
	ErrDuplicateName        = errors.New("discovery: found duplicate name")
	ErrFullCluster          = errors.New("discovery: cluster is full")
	ErrTooManyRetries       = errors.New("discovery: too many retries")
	ErrBadDiscoveryEndpoint = errors.New("discovery: bad discovery endpoint")
)

// Config says how to join.
type Config struct {
	// URL is the discovery URL: the keys API URL of the token directory,
	// e.g. http://host:2379/v2/keys/discovery/<token>.
	URL string
	// MemberID is this member's ID, computed with the discovery URL as
	// cluster token (as etcd does).
	MemberID uint64
	// Self is this member's registration value, "name=peerURL,..."
	// (see SelfValue).
	Self string
	// Client makes the requests. Default: a client with a 30s dial and
	// header timeout per request (watches have no timeout).
	Client *http.Client
	// RetryBase is half the first backoff when the service cannot be
	// reached (the n-th retry waits RetryBase<<min(n,8)). Default 1s.
	RetryBase time.Duration
	// Logger defaults to slog.Default().
	Logger *slog.Logger
}

// SelfValue is a member's registration value: "name=url" for each peer
// URL, sorted, comma-separated (etcd's URLsMap string).
func SelfValue(name string, peerURLs []string) string {
	pairs := make([]string, len(peerURLs))
	for i, u := range peerURLs {
		pairs[i] = name + "=" + u
	}
	sort.Strings(pairs)
	return strings.Join(pairs, ",")
}

// JoinCluster registers this member with the discovery service, waits for
// the rest of the cluster and returns the initial cluster,
// "name=peerURL,...".
func JoinCluster(ctx context.Context, cfg Config) (string, error) {
	d, err := newDiscovery(cfg)
	if err != nil {
		return "", err
	}
	// Fast path: a full cluster needs no registration.
	if _, _, _, err := d.checkCluster(ctx); err != nil {
		return "", err
	}
	if err := d.createSelf(ctx); err != nil {
		return "", err
	}
	nodes, size, index, err := d.checkCluster(ctx)
	if err != nil {
		return "", err
	}
	all, err := d.waitNodes(ctx, nodes, size, index)
	if err != nil {
		return "", err
	}
	return nodesToCluster(all, size)
}

// GetCluster returns the initial cluster registered under the token,
// waiting until it is complete, without registering.
func GetCluster(ctx context.Context, cfg Config) (string, error) {
	d, err := newDiscovery(cfg)
	if err != nil {
		return "", err
	}
	nodes, size, index, err := d.checkCluster(ctx)
	if err != nil {
		if errors.Is(err, ErrFullCluster) {
			return nodesToCluster(nodes, size)
		}
		return "", err
	}
	all, err := d.waitNodes(ctx, nodes, size, index)
	if err != nil {
		return "", err
	}
	return nodesToCluster(all, size)
}

type discovery struct {
	cfg     Config
	lg      *slog.Logger
	c       *client
	cluster string // the token directory's key, "/v2/keys/discovery/<token>"
	retries uint
}

func newDiscovery(cfg Config) (*discovery, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		return nil, err
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("%w: %q is not an http(s) URL", ErrInvalidURL, cfg.URL)
	}
	token := u.Path
	u.Path, u.RawPath, u.RawQuery, u.Fragment = "", "", "", ""
	if cfg.Client == nil {
		cfg.Client = &http.Client{Transport: &http.Transport{
			Proxy:                 http.ProxyFromEnvironment,
			ResponseHeaderTimeout: 0,
			TLSHandshakeTimeout:   10 * time.Second,
		}}
	}
	if cfg.RetryBase <= 0 {
		cfg.RetryBase = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &discovery{
		cfg:     cfg,
		lg:      cfg.Logger.With("component", "discovery", "discovery-url", cfg.URL),
		c:       &client{endpoint: u.String(), hc: cfg.Client},
		cluster: token,
	}, nil
}

func (d *discovery) selfKey() string {
	return path.Join("/", d.cluster, strconv.FormatUint(d.cfg.MemberID, 16))
}

// createSelf registers this member, and then waits until the key shows on
// the server it talks to.
func (d *discovery) createSelf(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := d.c.create(rctx, d.selfKey(), d.cfg.Self)
	cancel()
	if err != nil {
		var ce *Error
		if errors.As(err, &ce) && ce.Code == errorCodeNodeExist {
			return ErrDuplicateID
		}
		return err
	}
	_, err = d.c.watch(ctx, d.selfKey(), resp.Node.CreatedIndex-1, false)
	return err
}

// requestTimeout bounds one request that is not a watch (etcd client's
// default).
const requestTimeout = 5 * time.Second

// checkCluster reads the size and the registrations, in creation order. It
// returns ErrFullCluster (and the first size registrations) when size
// members registered before this one.
func (d *discovery) checkCluster(ctx context.Context) ([]*Node, uint64, uint64, error) {
	configKey := path.Join("/", d.cluster, "_config")
	rctx, cancel := context.WithTimeout(ctx, requestTimeout)
	resp, err := d.c.get(rctx, path.Join(configKey, "size"))
	cancel()
	if err != nil {
		var ce *Error
		switch {
		case errors.As(err, &ce) && ce.Code == errorCodeKeyNotFound:
			return nil, 0, 0, ErrSizeNotFound
		case errors.Is(err, errInvalidJSON):
			return nil, 0, 0, ErrBadDiscoveryEndpoint
		case errors.Is(err, errCluster):
			d.lg.Warn("failed to get from discovery server", "path", path.Join(configKey, "size"), "err", err)
			return d.checkClusterRetry(ctx)
		}
		return nil, 0, 0, err
	}
	size, err := strconv.ParseUint(resp.Node.Value, 10, 0)
	if err != nil {
		return nil, 0, 0, ErrBadSizeKey
	}

	rctx, cancel = context.WithTimeout(ctx, requestTimeout)
	resp, err = d.c.get(rctx, d.cluster)
	cancel()
	if err != nil {
		if errors.Is(err, errCluster) {
			d.lg.Warn("failed to get from discovery server", "path", d.cluster, "err", err)
			return d.checkClusterRetry(ctx)
		}
		return nil, 0, 0, err
	}
	var nodes []*Node
	for _, n := range resp.Node.Nodes {
		if path.Base(n.Key) != path.Base(configKey) {
			nodes = append(nodes, n)
		}
	}
	sort.SliceStable(nodes, func(i, j int) bool { return nodes[i].CreatedIndex < nodes[j].CreatedIndex })
	self := path.Base(d.selfKey())
	for i := range nodes {
		if path.Base(nodes[i].Key) == self {
			break
		}
		if uint64(i) >= size-1 {
			return nodes[:size], size, resp.Index, ErrFullCluster
		}
	}
	return nodes, size, resp.Index, nil
}

// backoff sleeps before a retry: 2s, 4s, 8s, ... capped at 256s with the
// default base, as etcd.
func (d *discovery) backoff(ctx context.Context, step string) error {
	d.retries++
	n := min(d.retries, 8)
	wait := d.cfg.RetryBase << n
	d.lg.Info("retry connecting to discovery service", "reason", step, "backoff", wait)
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *discovery) checkClusterRetry(ctx context.Context) ([]*Node, uint64, uint64, error) {
	if err := d.backoff(ctx, "cluster status check"); err != nil {
		return nil, 0, 0, err
	}
	return d.checkCluster(ctx)
}

func (d *discovery) waitNodesRetry(ctx context.Context) ([]*Node, error) {
	if err := d.backoff(ctx, "waiting for other nodes"); err != nil {
		return nil, err
	}
	nodes, size, index, err := d.checkCluster(ctx)
	if err != nil {
		return nil, err
	}
	return d.waitNodes(ctx, nodes, size, index)
}

// waitNodes watches the token directory from after index until size
// members registered.
func (d *discovery) waitNodes(ctx context.Context, nodes []*Node, size, index uint64) ([]*Node, error) {
	if uint64(len(nodes)) > size {
		nodes = nodes[:size]
	}
	all := append([]*Node(nil), nodes...)
	self := path.Base(d.selfKey())
	for _, n := range all {
		if path.Base(n.Key) == self {
			d.lg.Info("found self from discovery server", "self", self)
		} else {
			d.lg.Info("found peer from discovery server", "peer", path.Base(n.Key))
		}
	}
	next := index
	for uint64(len(all)) < size {
		d.lg.Info("found peers from discovery server; waiting for more", "found-peers", len(all),
			"needed-peers", size-uint64(len(all)))
		resp, err := d.c.watch(ctx, d.cluster, next, true)
		if err != nil {
			if errors.Is(err, errCluster) {
				d.lg.Warn("error while waiting for peers", "err", err)
				return d.waitNodesRetry(ctx)
			}
			return nil, err
		}
		next = resp.Node.ModifiedIndex
		d.lg.Info("found peer from discovery server", "peer", path.Base(resp.Node.Key))
		all = append(all, resp.Node)
	}
	d.lg.Info("found all needed peers from discovery server", "found-peers", len(all))
	return all, nil
}

// nodesToCluster joins the registrations into an initial cluster and
// checks it: valid URLs, and size distinct names.
func nodesToCluster(nodes []*Node, size uint64) (string, error) {
	vals := make([]string, len(nodes))
	for i, n := range nodes {
		vals[i] = n.Value
	}
	us := strings.Join(vals, ",")
	names := map[string]bool{}
	for _, part := range strings.Split(us, ",") {
		if part == "" {
			continue
		}
		name, u, _ := strings.Cut(part, "=")
		if err := membership.ValidateURL(strings.TrimSpace(u)); err != nil {
			return us, ErrInvalidURL
		}
		names[name] = true
	}
	if uint64(len(names)) != size {
		return us, ErrDuplicateName
	}
	return us, nil
}
