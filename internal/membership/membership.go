// Package membership keeps the set of cluster members: their IDs, names,
// peer and client URLs and learner status, as etcd's Cluster API shows them.
// Member and cluster IDs are derived the way etcd derives them, so the same
// --initial-cluster gives the same IDs on every member. The set lives in
// storage (keyspace 'c') and changes only by applying raft entries.
package membership

import (
	"crypto/sha1"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/cairn-io/cairn/internal/storage"
)

// Sentinel errors.
var (
	ErrIDNotFound      = errors.New("membership: ID not found")
	ErrIDExists        = errors.New("membership: ID exists")
	ErrIDRemoved       = errors.New("membership: ID removed")
	ErrPeerURLExists   = errors.New("membership: peerURL exists")
	ErrNotLearner      = errors.New("membership: can only promote a learner member")
	ErrTooManyLearners = errors.New("membership: too many learner members in cluster")
	// ErrBadInitialCluster: the --initial-cluster flag cannot be used.
	ErrBadInitialCluster = errors.New("membership: invalid initial cluster")
)

// Member is one member of the cluster.
type Member struct {
	ID         uint64   `json:"id"`
	Name       string   `json:"name,omitempty"`
	PeerURLs   []string `json:"peerURLs"`
	ClientURLs []string `json:"clientURLs,omitempty"`
	IsLearner  bool     `json:"isLearner,omitempty"`
}

// MemberID computes a member's ID from its peer URLs and the cluster token,
// and for a member added to a running cluster the time it was added, as
// etcd does.
func MemberID(peerURLs []string, token string, added *time.Time) uint64 {
	urls := make([]string, len(peerURLs))
	for i, u := range peerURLs {
		urls[i] = canonicalURL(u)
	}
	sort.Strings(urls)
	b := []byte(strings.Join(urls, ""))
	b = append(b, token...)
	if added != nil {
		b = append(b, fmt.Sprintf("%d", added.Unix())...)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// canonicalURL returns u as etcd hashes and compares peer URLs: parsed and
// printed back by net/url, which lower-cases the scheme and drops an empty
// fragment. An unparsable u is returned as it is.
func canonicalURL(u string) string {
	p, err := url.Parse(strings.TrimSpace(u))
	if err != nil {
		return u
	}
	return p.String()
}

// ClusterID computes the cluster ID from the initial members' IDs.
func ClusterID(ids []uint64) uint64 {
	sorted := append([]uint64(nil), ids...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	b := make([]byte, 8*len(sorted))
	for i, id := range sorted {
		binary.BigEndian.PutUint64(b[8*i:], id)
	}
	h := sha1.Sum(b)
	return binary.BigEndian.Uint64(h[:8])
}

// ParseInitialCluster parses etcd's --initial-cluster syntax,
// "name1=http://host1:2380,name2=http://host2:2380" (a name may repeat to
// give a member several peer URLs), into members with IDs derived from
// token.
func ParseInitialCluster(s, token string) ([]Member, error) {
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadInitialCluster)
	}
	byName := map[string][]string{}
	var order []string
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		name, u, ok := strings.Cut(part, "=")
		if !ok || name == "" || u == "" {
			return nil, fmt.Errorf("%w: %q is not name=peerURL", ErrBadInitialCluster, part)
		}
		if err := ValidateURL(u); err != nil {
			return nil, fmt.Errorf("%w: member %s: %v", ErrBadInitialCluster, name, err)
		}
		if _, seen := byName[name]; !seen {
			order = append(order, name)
		}
		byName[name] = append(byName[name], u)
	}
	members := make([]Member, 0, len(order))
	seenURL := map[string]string{}
	for _, name := range order {
		urls := byName[name]
		for _, u := range urls {
			if other, dup := seenURL[canonicalURL(u)]; dup {
				return nil, fmt.Errorf("%w: peer URL %s given for both %s and %s", ErrBadInitialCluster, u, other, name)
			}
			seenURL[canonicalURL(u)] = name
		}
		members = append(members, Member{ID: MemberID(urls, token, nil), Name: name, PeerURLs: urls})
	}
	return members, nil
}

// ValidateURL checks a member URL: http or https, a host and a port, no path.
func ValidateURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("URL %q: %v", s, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" && u.Scheme != "unix" && u.Scheme != "unixs" {
		return fmt.Errorf("URL %q: scheme must be http or https", s)
	}
	if u.Scheme == "http" || u.Scheme == "https" {
		if u.Host == "" || u.Port() == "" {
			return fmt.Errorf("URL %q: must be scheme://host:port", s)
		}
		if u.Path != "" && u.Path != "/" {
			return fmt.Errorf("URL %q: must not have a path", s)
		}
	}
	return nil
}

// Cluster is the member set, cached in memory and persisted in storage.
type Cluster struct {
	mu      sync.RWMutex
	id      uint64
	members map[uint64]*Member
	removed map[uint64]bool
}

// New returns an empty member set of cluster id.
func New(id uint64) *Cluster {
	return &Cluster{id: id, members: map[uint64]*Member{}, removed: map[uint64]bool{}}
}

// ID returns the cluster ID.
func (c *Cluster) ID() uint64 { return c.id }

// Load reads the member set from storage.
func Load(db *pebble.DB, id uint64) (*Cluster, error) {
	c := New(id)
	lo, hi := storage.PrefixBounds(storage.PrefixMember)
	it, err := db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, fmt.Errorf("membership: load: %w", err)
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		mid, err := storage.ParseIDKey(storage.PrefixMember, it.Key())
		if err != nil {
			return nil, fmt.Errorf("membership: load: %w", err)
		}
		var rec record
		if err := json.Unmarshal(it.Value(), &rec); err != nil {
			return nil, fmt.Errorf("membership: member %x: %v: %w", mid, err, storage.ErrCorrupt)
		}
		if rec.Removed {
			c.removed[mid] = true
			continue
		}
		m := rec.Member
		c.members[mid] = &m
	}
	return c, it.Error()
}

type record struct {
	Member
	Removed bool `json:"removed,omitempty"`
}

// Members returns a copy of the members, ordered by ID.
func (c *Cluster) Members() []Member {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]Member, 0, len(c.members))
	for _, m := range c.members {
		out = append(out, clone(*m))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}

// Member returns a copy of one member.
func (c *Cluster) Member(id uint64) (Member, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	m, ok := c.members[id]
	if !ok {
		return Member{}, false
	}
	return clone(*m), true
}

// IsRemoved reports whether id was a member and was removed.
func (c *Cluster) IsRemoved(id uint64) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.removed[id]
}

func clone(m Member) Member {
	m.PeerURLs = append([]string(nil), m.PeerURLs...)
	m.ClientURLs = append([]string(nil), m.ClientURLs...)
	return m
}

// Add adds a member, recording it in batch b.
func (c *Cluster) Add(b *pebble.Batch, m Member) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed[m.ID] {
		return ErrIDRemoved
	}
	if _, ok := c.members[m.ID]; ok {
		return ErrIDExists
	}
	m = clone(m)
	c.members[m.ID] = &m
	return put(b, record{Member: m})
}

// Remove removes a member, recording it in batch b.
func (c *Cluster) Remove(b *pebble.Batch, id uint64) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.removed[id] {
		return ErrIDRemoved
	}
	if _, ok := c.members[id]; !ok {
		return ErrIDNotFound
	}
	delete(c.members, id)
	c.removed[id] = true
	return put(b, record{Member: Member{ID: id}, Removed: true})
}

// Update changes a member with fn, recording it in batch b.
func (c *Cluster) Update(b *pebble.Batch, id uint64, fn func(*Member)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, ok := c.members[id]
	if !ok {
		if c.removed[id] {
			return ErrIDRemoved
		}
		return ErrIDNotFound
	}
	fn(m)
	return put(b, record{Member: *m})
}

func put(b *pebble.Batch, rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("membership: encode member %x: %w", rec.ID, err)
	}
	return b.Set(storage.IDKey(storage.PrefixMember, rec.ID), data, nil)
}

// Reload replaces the member set with the one in db (after the member
// installed a snapshot from the leader).
func (c *Cluster) Reload(db *pebble.DB) error {
	fresh, err := Load(db, c.id)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.members, c.removed = fresh.members, fresh.removed
	c.mu.Unlock()
	return nil
}

// CheckAdd reports whether m could be added: its ID must be new and never
// removed, and its peer URLs unused.
func (c *Cluster) CheckAdd(m Member) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.removed[m.ID] {
		return ErrIDRemoved
	}
	if _, ok := c.members[m.ID]; ok {
		return ErrIDExists
	}
	return c.checkPeerURLsLocked(m.ID, m.PeerURLs)
}

// CheckPeerURLs reports whether member id may use urls: no other member
// may have any of them.
func (c *Cluster) CheckPeerURLs(id uint64, urls []string) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.checkPeerURLsLocked(id, urls)
}

func (c *Cluster) checkPeerURLsLocked(id uint64, urls []string) error {
	for _, other := range c.members {
		if other.ID == id {
			continue
		}
		for _, u := range other.PeerURLs {
			for _, v := range urls {
				if u == v {
					return ErrPeerURLExists
				}
			}
		}
	}
	return nil
}

// SameURLs reports whether a and b hold the same URLs, in any order.
func SameURLs(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	seen := map[string]int{}
	for _, u := range a {
		seen[u]++
	}
	for _, u := range b {
		if seen[u] == 0 {
			return false
		}
		seen[u]--
	}
	return true
}
