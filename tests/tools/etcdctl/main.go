// Command etcdctl is the official etcdctl v3.6.16, built from its published
// module so integration tests can drive a store with the real client tool.
package main

import "go.etcd.io/etcd/etcdctl/v3/ctlv3"

func main() { ctlv3.MustStart() }
