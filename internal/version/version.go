// Package version holds cairn's own version and the etcd versions it
// reports, so that etcd clients that check the server version accept it.
package version

var (
	// Version is cairn's release version; set at link time with
	// -ldflags "-X github.com/cairn-io/cairn/internal/version.Version=...".
	Version = "0.1.0-dev"

	// EtcdServerVersion is the etcd server version cairn reports in Status
	// and /version. Clients such as etcdctl and Kubernetes gate features on
	// it, so it names the etcd release whose API cairn implements.
	EtcdServerVersion = "3.6.0"

	// EtcdClusterVersion is the cluster version reported in /version.
	EtcdClusterVersion = "3.6.0"

	// StorageVersion is reported as "storage" in /version and as
	// storageVersion in Status.
	StorageVersion = "3.6.0"

	// APIVersion is the etcd API major.minor cairn speaks.
	APIVersion = "3.6"
)
