package cli

import (
	"errors"

	"github.com/spf13/cobra"
)

func newServeCommand(s streams) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run a store member",
		RunE: func(cmd *cobra.Command, args []string) error {
			return errors.New("not implemented yet")
		},
	}
}
