// Package framework runs real store processes for end-to-end tests: the cairn
// binary, the reference etcd server and the official etcdctl, each built from
// source on first use and talked to over real sockets.
//
// A test starts a member, or a cluster, and talks to it with a clientv3
// client or a command-line tool:
//
//	func TestPutGet(t *testing.T) {
//		m := framework.Start(t, framework.Config{}) // cairn serve on free ports
//		cli := m.Client(t)
//		if _, err := cli.Put(ctx, "k", "v"); err != nil {
//			t.Fatal(err)
//		}
//		out, _, err := framework.Etcdctl(t, []string{m.Endpoint()}, "get", "k")
//		...
//	}
//
// Set Config.Binary to EtcdBinary(t) to run the same test against etcd v3.6.16;
// that is how the framework itself and the conformance suite are validated.
// Members are started with etcd's own flags (--name, --data-dir,
// --listen-client-urls, ...), so one Config drives either server. A binary
// whose file name starts with "cairn" is run as "cairn serve"; any other
// binary is run with the flags alone.
//
// Everything a test starts is stopped by t.Cleanup, and a failed test gets the
// log of each of its members. Waits poll the real condition (a linearizable
// Get, a leader in Status) up to a generous deadline; nothing sleeps and hopes.
//
// Binaries are built once per test process into a directory of this checkout's
// own under os.UserCacheDir()/cairn-tests (override with CAIRN_TEST_BIN_DIR).
// The Go build cache makes a rebuild with no source change little more than a
// link. CAIRN_TEST_BUILD_TAGS builds cairn with extra tags (go build -tags)
// into a binary of its own. To use prebuilt binaries instead, set
// CAIRN_TEST_CAIRN_BINARY, CAIRN_TEST_ETCD_BINARY or
// CAIRN_TEST_ETCDCTL_BINARY to their paths. The start deadline defaults to 60s
// and can be raised with CAIRN_TEST_START_TIMEOUT (a Go duration) on slow
// machines.
package framework
