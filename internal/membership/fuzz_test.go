package membership_test

import (
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/internal/membership"
)

// Seed corpora live in testdata/fuzz/<FuzzName>; plain `go test` runs them.

// FuzzParseInitialCluster: parsing never panics and fails only with
// ErrBadInitialCluster; what it accepts is a well-formed member list that
// prints back to a flag value parsing to the same members.
func FuzzParseInitialCluster(f *testing.F) {
	f.Fuzz(func(t *testing.T, s, token string) {
		ms, err := membership.ParseInitialCluster(s, token)
		if err != nil {
			if !errors.Is(err, membership.ErrBadInitialCluster) {
				t.Fatalf("ParseInitialCluster(%q): %v is not ErrBadInitialCluster", s, err)
			}
			return
		}
		if len(ms) == 0 {
			t.Fatalf("ParseInitialCluster(%q) accepted no members", s)
		}
		names := map[string]bool{}
		ids := map[uint64]bool{}
		var parts []string
		for _, m := range ms {
			if m.Name == "" || names[m.Name] {
				t.Fatalf("ParseInitialCluster(%q): empty or repeated name %q", s, m.Name)
			}
			names[m.Name] = true
			if ids[m.ID] {
				t.Fatalf("ParseInitialCluster(%q): two members with ID %x", s, m.ID)
			}
			ids[m.ID] = true
			if len(m.PeerURLs) == 0 {
				t.Fatalf("ParseInitialCluster(%q): member %q without peer URLs", s, m.Name)
			}
			if id := membership.MemberID(m.PeerURLs, token, nil); id != m.ID {
				t.Fatalf("ParseInitialCluster(%q): member %q has ID %x, MemberID says %x", s, m.Name, m.ID, id)
			}
			for _, u := range m.PeerURLs {
				if err := membership.ValidateURL(u); err != nil {
					t.Fatalf("ParseInitialCluster(%q) accepted %v", s, err)
				}
				parts = append(parts, m.Name+"="+u)
			}
		}
		again, err := membership.ParseInitialCluster(strings.Join(parts, ","), token)
		if err != nil || !reflect.DeepEqual(again, ms) {
			t.Fatalf("ParseInitialCluster(%q) = %+v, which prints as %q and parses back to %+v, %v", s, ms, strings.Join(parts, ","), again, err)
		}
	})
}
