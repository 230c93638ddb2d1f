package e2e

import "go.etcd.io/etcd/api/v3/v3rpc/rpctypes"

var rpctypesCompacted = rpctypes.ErrCompacted
