// Package media runs ffmpeg and ffprobe so that they die with their context:
// each process gets its own process group, and when the context is done the
// whole group is SIGKILLed, so a cancelled run leaves no encoder behind. It
// also probes media files and checks that a rendered video plays. Sources a
// user supplies are vetted by pkg/netguard before they reach it.
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
	"time"
)

// Binary names looked up on PATH. They are constants rather than settings so
// that no configuration can point the services at another program.
const (
	FFmpegBin  = "ffmpeg"
	FFprobeBin = "ffprobe"
)

// stderrTail is how much of a failed command's stderr is kept in its error:
// enough for ffmpeg's last complaints, small enough for a log line or a
// StepFailed reason.
const stderrTail = 4 << 10

// waitDelay bounds how long Wait keeps waiting for the output pipes after the
// process group was killed (a grandchild holding a pipe open must not hang us).
const waitDelay = 2 * time.Second

// ExitError is returned when ffmpeg or ffprobe fails; it carries the tail of
// stderr because that is where ffmpeg says what went wrong.
type ExitError struct {
	// Bin is the program that failed (ffmpeg or ffprobe).
	Bin string
	// Stderr is the last few KiB of the program's standard error.
	Stderr string
	// Err is the underlying error (*exec.ExitError, or the context's cause
	// when the process was killed because its context was done).
	Err error
}

// Error reports the program, the cause and the last lines of stderr.
func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s: %v", e.Bin, e.Err)
	if s := strings.TrimSpace(e.Stderr); s != "" {
		msg += ": " + s
	}
	return msg
}

// Unwrap exposes the cause, so errors.Is(err, context.Canceled) and
// errors.Is(err, bus.ErrNotCurrent) work through an ExitError.
func (e *ExitError) Unwrap() error { return e.Err }

// Cmd is one ffmpeg or ffprobe invocation bound to a context. Set Stdin and
// Stdout before Start; stderr is always captured (its tail goes into errors).
type Cmd struct {
	// Stdin feeds the process; nil means /dev/null.
	Stdin io.Reader
	// Stdout receives the process's output; nil discards it.
	Stdout io.Writer

	ctx  context.Context
	bin  string
	cmd  *exec.Cmd
	tail *tailBuffer
}

// Command prepares bin (FFmpegBin or FFprobeBin) with args. The process runs
// in its own process group, which is SIGKILLed as soon as ctx is done.
func Command(ctx context.Context, bin string, args ...string) *Cmd {
	c := exec.CommandContext(ctx, bin, args...)
	setProcessGroup(c)
	c.WaitDelay = waitDelay
	return &Cmd{ctx: ctx, bin: bin, cmd: c, tail: &tailBuffer{max: stderrTail}}
}

// FFmpeg prepares ffmpeg with -hide_banner prepended to args.
func FFmpeg(ctx context.Context, args ...string) *Cmd {
	return Command(ctx, FFmpegBin, append([]string{"-hide_banner"}, args...)...)
}

// FFprobe prepares ffprobe with -hide_banner prepended to args.
func FFprobe(ctx context.Context, args ...string) *Cmd {
	return Command(ctx, FFprobeBin, append([]string{"-hide_banner"}, args...)...)
}

// StdinPipe returns a pipe to the process's stdin, for streaming raw frames.
// Call it before Start; close it to tell ffmpeg the input has ended.
func (c *Cmd) StdinPipe() (io.WriteCloser, error) {
	w, err := c.cmd.StdinPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdin pipe: %w", c.bin, err)
	}
	return w, nil
}

// StdoutPipe returns a pipe from the process's stdout. Call it before Start
// and read it to the end before Wait.
func (c *Cmd) StdoutPipe() (io.ReadCloser, error) {
	r, err := c.cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("%s stdout pipe: %w", c.bin, err)
	}
	return r, nil
}

// Start starts the process.
func (c *Cmd) Start() error {
	if c.Stdin != nil {
		c.cmd.Stdin = c.Stdin
	}
	if c.Stdout != nil {
		c.cmd.Stdout = c.Stdout
	}
	c.cmd.Stderr = c.tail
	if err := c.cmd.Start(); err != nil {
		return c.wrap(err)
	}
	return nil
}

// Wait waits for the process and returns an *ExitError on failure. When the
// context was done the error wraps context.Cause(ctx).
func (c *Cmd) Wait() error {
	if err := c.cmd.Wait(); err != nil {
		return c.wrap(err)
	}
	return nil
}

// Run starts the process and waits for it.
func (c *Cmd) Run() error {
	if err := c.Start(); err != nil {
		return err
	}
	return c.Wait()
}

// Output runs the process and returns its stdout.
func (c *Cmd) Output() ([]byte, error) {
	var out bytes.Buffer
	c.Stdout = &out
	err := c.Run()
	return out.Bytes(), err
}

// Pid returns the process id once started (the process group id too), or 0.
func (c *Cmd) Pid() int {
	if c.cmd.Process == nil {
		return 0
	}
	return c.cmd.Process.Pid
}

func (c *Cmd) wrap(err error) error {
	if c.ctx.Err() != nil {
		// The kill is ours: report why the context ended, not "signal: killed".
		err = fmt.Errorf("killed (%v): %w", err, context.Cause(c.ctx))
	}
	return &ExitError{Bin: c.bin, Stderr: c.tail.String(), Err: err}
}

// Run runs ffmpeg with args (after -hide_banner -nostdin) and returns an
// *ExitError with the tail of stderr when it fails or ctx ends.
func Run(ctx context.Context, args []string) error {
	return FFmpeg(ctx, append([]string{"-nostdin"}, args...)...).Run()
}

// StartPipe starts ffmpeg with args (after -hide_banner) reading its input
// from stdin, e.g. "-f rawvideo ... -i pipe:0". The caller writes to stdin,
// closes it, then calls wait. If ctx ends, ffmpeg is killed, writes fail and
// wait returns an error wrapping context.Cause(ctx).
func StartPipe(ctx context.Context, args []string) (stdin io.WriteCloser, wait func() error, err error) {
	c := FFmpeg(ctx, args...)
	stdin, err = c.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	if err := c.Start(); err != nil {
		return nil, nil, err
	}
	var once sync.Once
	var werr error
	wait = func() error {
		once.Do(func() { werr = c.Wait() })
		return werr
	}
	return stdin, wait, nil
}

// Available reports whether ffmpeg and ffprobe are on PATH, so services can
// refuse to start (and /readyz can fail) instead of failing every job.
func Available() error {
	var errs []error
	for _, bin := range []string{FFmpegBin, FFprobeBin} {
		if _, err := exec.LookPath(bin); err != nil {
			errs = append(errs, fmt.Errorf("%s not found on PATH: %w", bin, err))
		}
	}
	return errors.Join(errs...)
}

// tailBuffer keeps the last max bytes written to it.
type tailBuffer struct {
	mu   sync.Mutex
	max  int
	buf  []byte
	drop bool
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := len(p)
	t.buf = append(t.buf, p...)
	if over := len(t.buf) - t.max; over > 0 {
		t.buf = append(t.buf[:0], t.buf[over:]...)
		t.drop = true
	}
	return n, nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.drop {
		return "…" + string(t.buf)
	}
	return string(t.buf)
}
