// Command benchmark is etcd's own benchmark tool (tools/benchmark of
// go.etcd.io/etcd/v3 v3.5.11, the last release that publishes it), built
// from its module so cairn and etcd are measured by the same client.
package main

import (
	"fmt"
	"os"

	"go.etcd.io/etcd/v3/tools/benchmark/cmd"
)

func main() {
	if err := cmd.RootCmd.Execute(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
