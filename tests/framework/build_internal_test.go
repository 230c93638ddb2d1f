package framework

import "testing"

// TestBuildTags checks that extra build tags give the binary a file name
// of its own, starting with its name, the same whatever their order.
func TestBuildTags(t *testing.T) {
	b := &binary{name: "cairn", tagsVar: "CAIRN_TEST_BUILD_TAGS"}
	for _, tc := range []struct{ env, tags, file string }{
		{"", "", "cairn"},
		{"cairn_unsafe_ack", "cairn_unsafe_ack", "cairn-cairn_unsafe_ack"},
		{" b,a a ", "a,b", "cairn-a-b"},
	} {
		t.Setenv("CAIRN_TEST_BUILD_TAGS", tc.env)
		if got := b.tags(); got != tc.tags {
			t.Errorf("CAIRN_TEST_BUILD_TAGS=%q: tags %q, want %q", tc.env, got, tc.tags)
		}
		if got := b.fileName(); got != tc.file {
			t.Errorf("CAIRN_TEST_BUILD_TAGS=%q: file name %q, want %q", tc.env, got, tc.file)
		}
	}
	// The other binaries take no tags.
	t.Setenv("CAIRN_TEST_BUILD_TAGS", "x")
	if etcdBin.fileName() != "etcd" {
		t.Errorf("etcd's file name %q", etcdBin.fileName())
	}
}
