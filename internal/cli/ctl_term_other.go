//go:build !linux

package cli

import (
	"errors"
	"os"
)

// ctlDisableEcho is only implemented on Linux; elsewhere the password echoes.
func ctlDisableEcho(*os.File) (restore func(), err error) {
	return nil, errors.New("echo control not supported on this platform")
}

// ctlIsTerminal is only implemented on Linux; elsewhere no progress is shown.
func ctlIsTerminal(*os.File) bool { return false }
