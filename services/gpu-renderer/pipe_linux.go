//go:build linux

package renderer

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// setPipeSize asks the kernel for a pipe buffer of size bytes on f (either
// end) and returns the size it got. A default Linux pipe holds 64 KiB, so a
// 1.75 MB frame would cross it in ~27 pieces, each a wake-up of the writer
// and of ffmpeg's reader; with 1 MiB it takes two.
func setPipeSize(f *os.File, size int) (int, error) {
	sc, err := f.SyscallConn()
	if err != nil {
		return 0, fmt.Errorf("pipe size: %w", err)
	}
	var got int
	var ferr error
	if err := sc.Control(func(fd uintptr) {
		got, ferr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, size)
	}); err != nil {
		return 0, fmt.Errorf("pipe size: %w", err)
	}
	if ferr != nil {
		return 0, fmt.Errorf("pipe size %d: %w", size, ferr)
	}
	return got, nil
}
