//go:build !unix

package service

import "os"

// flock cannot lock here: nothing is taken for a dead process's file.
func flock(f *os.File, try bool) (bool, error) { return !try, nil }
