// Package proc runs the child processes of the harnesses that start Backbeat
// in its production shape (cmd/backbeat/internal/chaos, pipebench): each in
// its own process group, its output appended to a log file, stopped with
// SIGTERM then SIGKILL, and waited for until its /readyz answers.
package proc

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is one child process: a service or a nats-server. Each runs in its own
// process group, so a kill also ends what it started (the renderer's ffmpeg),
// as a pod kill would; its output is appended to Log across restarts.
type Proc struct {
	// Name names the process in errors and in its log's start lines.
	Name string
	// Argv is the program and its arguments.
	Argv []string
	// Env is added to the harness's own environment.
	Env []string
	// Log is the file the output is appended to (LogPath).
	Log string
	// Addr is the HTTP address whose /readyz says the process is up (empty
	// for nats-server).
	Addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// Start runs the process; a running one is an error.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("start %s: already running", p.Name)
		}
	}
	f, err := os.OpenFile(p.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	fmt.Fprintf(f, "----- start %s at %s\n", p.Name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.Argv[0], p.Argv[1:]...)
	cmd.Env = append(os.Environ(), p.Env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		f.Close()
		p.mu.Lock()
		p.err = err
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

// CPU is the CPU time (user and system) the running process has used, read
// from /proc/<pid>/stat (Linux); 0 when it is not running or cannot be read.
func (p *Proc) CPU() time.Duration {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil || !p.Running() {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", cmd.Process.Pid))
	if err != nil {
		return 0
	}
	// The command name, field 2, is in parentheses and may hold spaces;
	// utime and stime are fields 14 and 15, in clock ticks (USER_HZ, 100 on
	// Linux).
	s := string(b)
	fields := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(fields) < 13 {
		return 0
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// Running reports whether the process was started and has not exited.
func (p *Proc) Running() bool {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return false
	}
	select {
	case <-done:
		return false
	default:
		return true
	}
}

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("signal %s: not started", p.Name)
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s %v: %w", p.Name, sig, err)
	}
	return nil
}

// Wait waits up to d for the process to exit and returns its exit error.
func (p *Proc) Wait(d time.Duration) (exited bool, err error) {
	p.mu.Lock()
	done := p.done
	p.mu.Unlock()
	if done == nil {
		return true, nil
	}
	select {
	case <-done:
		p.mu.Lock()
		defer p.mu.Unlock()
		return true, p.err
	case <-time.After(d):
		return false, nil
	}
}

// Kill sends SIGKILL to the process group and reaps it.
func (p *Proc) Kill() error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGKILL); err != nil {
		return err
	}
	if exited, _ := p.Wait(10 * time.Second); !exited {
		return fmt.Errorf("kill %s: still running 10s after SIGKILL", p.Name)
	}
	return nil
}

// Stop sends SIGTERM, waits up to grace, then SIGKILL. It returns the exit
// error of a graceful exit (nil for status 0) or an error saying it was
// killed.
func (p *Proc) Stop(grace time.Duration) error {
	if !p.Running() {
		return nil
	}
	if err := p.Signal(syscall.SIGTERM); err != nil {
		return err
	}
	if exited, err := p.Wait(grace); exited {
		if err != nil {
			return fmt.Errorf("%s exited on SIGTERM: %w", p.Name, err)
		}
		return nil
	}
	if err := p.Kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.Name, grace)
}

// WaitReady polls http://addr/readyz until it answers 200, the process exits
// or ctx ends.
func (p *Proc) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("%s readyz: %w", p.Name, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.Running() {
			return fmt.Errorf("%s exited before /readyz answered 200 (see %s)", p.Name, p.Log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: /readyz not 200 within %s (see %s)", p.Name, timeout, p.Log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// FreePorts returns n distinct TCP ports the kernel had free on 127.0.0.1.
func FreePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

// LogPath is NAME's log file in dir.
func LogPath(dir, name string) string { return filepath.Join(dir, name+".log") }
