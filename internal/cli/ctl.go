package cli

import "github.com/spf13/cobra"

// addCtlCommands registers the etcdctl-shaped client commands.
func addCtlCommands(root *cobra.Command, s streams) {}
