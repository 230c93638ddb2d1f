// Command etcd is the real etcd server v3.6.16, built from its published
// module. Tests use it as the reference implementation that cairn's store is
// compared against.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
