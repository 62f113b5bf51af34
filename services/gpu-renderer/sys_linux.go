//go:build linux

package renderer

import (
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"unsafe"

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

// composeNice is the nice value of compose worker threads during a render.
const composeNice = 19

// yieldToEncoder lowers the calling thread's CPU priority to composeNice.
// Linux schedules threads, so ffmpeg and the rest of the process keep
// theirs: when x264 has work for every core it gets them, and the compose
// workers run in the gaps (x264 leaves some while it waits on its own
// threads), filling the frames in flight ahead of it. Within a container,
// priorities only rank the container's own threads against each other.
func yieldToEncoder() error {
	if err := unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), composeNice); err != nil {
		return fmt.Errorf("lower compose thread priority: %w", err)
	}
	return nil
}

// spliceSink hands frames to ffmpeg with vmsplice(2): the kernel puts
// references to the frame's pages in the pipe instead of copying 1.75 MB
// per frame into it, and ffmpeg's read copies them out once, as it would
// from a file. That saves the renderer the copy (docs/benchmarks.md, round
// 4, step 1, has the figures).
//
// The pages stay referenced until ffmpeg has read them, so a buffer must
// not be rewritten before then. The pipe holds at most capacity bytes (one
// slot per page or part of one), so once capacity bytes or more have been
// spliced after a frame, every page of that frame has left the pipe: that is
// when send gives the buffer back. The caller keeps the sink, and so the
// buffers it still holds, alive until ffmpeg has exited.
//
// The buffers are mapped outside the Go heap, aligned to and advised for
// 2 MiB transparent huge pages (THP "always" or "madvise"): vmsplice takes
// a reference per page it splices and ffmpeg's read drops it, so a frame
// on huge pages costs both processes less kernel time (measured in
// docs/benchmarks.md, round 5). Render unmaps them with release once ffmpeg
// has exited, when the pipe holds none of their pages and no goroutine
// uses them.
type spliceSink struct {
	rc       syscall.RawConn
	capacity int64
	total    int64 // bytes spliced so far
	held     []heldFrame
	mu       sync.Mutex // guards maps: workers ask for buffers at once
	maps     [][]byte   // what buffer mapped, for release
}

// heldFrame is a spliced buffer and the byte count at its end.
type heldFrame struct {
	f   *yuvFrame
	end int64
}

// newFrameSink returns the sink Render writes frames to: a spliceSink when
// the pipe's capacity is known and no larger than a frame (so at most one
// buffer is held back), else plain writes.
func newFrameSink(pipe *os.File, frameBytes int) frameSink {
	plain := writeSink{pipe}
	rc, err := pipe.SyscallConn()
	if err != nil {
		return plain
	}
	capacity := 0
	var ferr error
	if err := rc.Control(func(fd uintptr) {
		capacity, ferr = unix.FcntlInt(fd, unix.F_GETPIPE_SZ, 0)
	}); err != nil || ferr != nil || capacity <= 0 || capacity > frameBytes {
		return plain
	}
	return &spliceSink{rc: rc, capacity: int64(capacity)}
}

// hugePage is the size of a transparent huge page on amd64 and arm64 (4 KiB
// base pages).
const hugePage = 2 << 20

// buffer maps n bytes on their own, aligned to a huge page; if mapping
// fails it falls back to the heap.
func (s *spliceSink) buffer(n int) []byte {
	whole := (n + hugePage - 1) &^ (hugePage - 1)
	m, err := unix.Mmap(-1, 0, whole+hugePage, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_PRIVATE|unix.MAP_ANONYMOUS)
	if err != nil {
		return make([]byte, n)
	}
	s.mu.Lock()
	s.maps = append(s.maps, m)
	s.mu.Unlock()
	off := int(-uintptr(unsafe.Pointer(unsafe.SliceData(m))) & (hugePage - 1))
	// Only a hint: refused (THP "never"), the pages are small ones.
	_ = unix.Madvise(m[off:off+whole], unix.MADV_HUGEPAGE)
	return m[off : off+n : off+n]
}

// release unmaps every buffer. The caller guarantees that ffmpeg has
// exited and that no goroutine will touch a buffer again.
func (s *spliceSink) release() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, m := range s.maps {
		_ = unix.Munmap(m)
	}
	s.maps = nil
}

func (s *spliceSink) send(f *yuvFrame, free func(*yuvFrame)) error {
	b := f.b
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		for len(b) > 0 {
			iov := []unix.Iovec{{Base: &b[0]}}
			iov[0].SetLen(len(b))
			n, err := unix.Vmsplice(int(fd), iov, unix.SPLICE_F_NONBLOCK)
			switch {
			case errors.Is(err, unix.EAGAIN):
				return false // wait until ffmpeg has read some
			case errors.Is(err, unix.EINTR):
				continue
			case err != nil:
				serr = err
				return true
			}
			b = b[n:]
		}
		return true
	})
	if err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	s.total += int64(len(f.b))
	s.held = append(s.held, heldFrame{f: f, end: s.total})
	for len(s.held) > 0 && s.total-s.held[0].end >= s.capacity {
		free(s.held[0].f)
		s.held = s.held[1:]
	}
	return nil
}
