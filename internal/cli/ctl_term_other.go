//go:build !linux

package cli

import (
	"errors"
	"os"
)

// disableEcho is only implemented on Linux; elsewhere the password echoes.
func disableEcho(*os.File) (restore func(), err error) {
	return nil, errors.New("echo control not supported on this platform")
}
