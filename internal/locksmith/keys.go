package locksmith

import (
	"net/url"
	"strings"
)

// The key layout (see DESIGN.md). The names are locksmith's, without its
// etcd v2 leading slash, so operators find the semaphore where they have
// always looked for it:
//
//	coreos.com/updateengine/rebootlock/semaphore                 default group
//	coreos.com/updateengine/rebootlock/holders/<id>              its lease-bound holders
//	coreos.com/updateengine/rebootlock/groups/<group>/semaphore  any other group
//	coreos.com/updateengine/rebootlock/groups/<group>/holders/<id>
//
// <group> and <id> are url.QueryEscape'd, as locksmith escaped the group.
const (
	// KeyPrefix is the common prefix of every key this package writes.
	KeyPrefix = "coreos.com/updateengine/rebootlock"

	// DefaultGroup is the group of a node that names none. The empty group
	// and "default" (Zincati's default FleetLock group) are the same
	// semaphore, stored at locksmith's ungrouped key.
	DefaultGroup = "default"

	groupsBranch    = "groups"
	semaphoreBranch = "semaphore"
	holdersBranch   = "holders"
)

// Keys is the key layout of one group.
type Keys struct {
	// Group is the normalised group name: DefaultGroup for "".
	Group string
	// Semaphore is the key of the group's JSON document.
	Semaphore string
	// Holders is the prefix, ending in "/", of the group's holder keys.
	Holders string
}

// GroupKeys returns the key layout of group.
func GroupKeys(group string) Keys {
	group = NormalizeGroup(group)
	base := KeyPrefix
	if group != DefaultGroup {
		base = KeyPrefix + "/" + groupsBranch + "/" + url.QueryEscape(group)
	}
	return Keys{
		Group:     group,
		Semaphore: base + "/" + semaphoreBranch,
		Holders:   base + "/" + holdersBranch + "/",
	}
}

// Holder is the key of a lease-bound holder's entry.
func (k Keys) Holder(id string) string { return k.Holders + url.QueryEscape(id) }

// NormalizeGroup maps the empty group to DefaultGroup.
func NormalizeGroup(group string) string {
	if group == "" {
		return DefaultGroup
	}
	return group
}

// keyKind says what a key under KeyPrefix is.
type keyKind int

const (
	otherKey keyKind = iota
	semaphoreKey
	holderKey
)

// parseKey reads a key under KeyPrefix: which group it belongs to, whether
// it is a semaphore or a holder key, and for a holder key the holder's id.
func parseKey(key string) (group string, kind keyKind, id string) {
	rest, ok := strings.CutPrefix(key, KeyPrefix+"/")
	if !ok {
		return "", otherKey, ""
	}
	group = DefaultGroup
	if g, ok := strings.CutPrefix(rest, groupsBranch+"/"); ok {
		esc, tail, found := strings.Cut(g, "/")
		if !found {
			return "", otherKey, ""
		}
		name, err := url.QueryUnescape(esc)
		if err != nil || name == "" || name == DefaultGroup {
			// groups/default is not where the default group lives.
			return "", otherKey, ""
		}
		group, rest = name, tail
	}
	if rest == semaphoreBranch {
		return group, semaphoreKey, ""
	}
	if esc, ok := strings.CutPrefix(rest, holdersBranch+"/"); ok && esc != "" && !strings.Contains(esc, "/") {
		if id, err := url.QueryUnescape(esc); err == nil {
			return group, holderKey, id
		}
	}
	return "", otherKey, ""
}
