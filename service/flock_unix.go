//go:build unix

package service

import (
	"errors"
	"os"
	"syscall"
)

// flock takes an exclusive lock on f, held until f is closed or the
// process ends. With try it does not wait: got is false if another holds it.
func flock(f *os.File, try bool) (got bool, err error) {
	how := syscall.LOCK_EX
	if try {
		how |= syscall.LOCK_NB
	}
	if err := syscall.Flock(int(f.Fd()), how); err != nil {
		if try && errors.Is(err, syscall.EWOULDBLOCK) {
			return false, nil
		}
		return false, err
	}
	return true, nil
}
