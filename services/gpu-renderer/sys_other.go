//go:build !linux

package renderer

import (
	"errors"
	"os"
)

// setPipeSize is Linux-only (F_SETPIPE_SZ); elsewhere the pipe keeps the
// system's default size.
func setPipeSize(_ *os.File, _ int) (int, error) {
	return 0, errors.New("pipe size: not supported on this system")
}

// newFrameSink writes frames with plain writes: vmsplice is Linux-only.
func newFrameSink(pipe *os.File, _ int) frameSink { return writeSink{pipe} }

// yieldToEncoder does nothing here: thread priorities are set on Linux only.
func yieldToEncoder() error { return nil }
