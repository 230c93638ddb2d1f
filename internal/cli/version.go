package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/cairn-io/cairn/internal/version"
)

func newVersionCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the cairn version and the etcd API version it speaks",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			fmt.Fprintf(s.out, "cairn Version: %s\nAPI version: %s\n", version.Version, version.APIVersion)
			return nil
		},
	}
}
