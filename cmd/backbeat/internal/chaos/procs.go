package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// proc is one child process: a service or a nats-server. Each runs in its own
// process group, so a kill also ends what it started (the renderer's ffmpeg),
// as a pod kill would; its output is appended to DIR/<name>.log across
// restarts.
type proc struct {
	name string
	argv []string
	env  []string
	log  string
	// addr is the HTTP address whose /readyz says the process is up (empty
	// for nats-server).
	addr string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// start runs the process; a running one is an error.
func (p *proc) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("start %s: already running", p.name)
		}
	}
	f, err := os.OpenFile(p.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("start %s: %w", p.name, err)
	}
	fmt.Fprintf(f, "----- chaos: start %s at %s\n", p.name, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(p.argv[0], p.argv[1:]...)
	cmd.Env = append(os.Environ(), p.env...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		f.Close()
		return fmt.Errorf("start %s: %w", p.name, err)
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

// running reports whether the process was started and has not exited.
func (p *proc) running() bool {
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

// signal sends sig to the process group.
func (p *proc) signal(sig syscall.Signal) error {
	p.mu.Lock()
	cmd := p.cmd
	p.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		return fmt.Errorf("signal %s: not started", p.name)
	}
	if err := syscall.Kill(-cmd.Process.Pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s %v: %w", p.name, sig, err)
	}
	return nil
}

// wait waits up to d for the process to exit and returns its exit error.
func (p *proc) wait(d time.Duration) (exited bool, err error) {
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

// kill sends SIGKILL to the process group and reaps it.
func (p *proc) kill() error {
	if !p.running() {
		return nil
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if exited, _ := p.wait(10 * time.Second); !exited {
		return fmt.Errorf("kill %s: still running 10s after SIGKILL", p.name)
	}
	return nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILL. It returns the exit
// error of a graceful exit (nil for status 0) or an error saying it was
// killed.
func (p *proc) stop(grace time.Duration) error {
	if !p.running() {
		return nil
	}
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if exited, err := p.wait(grace); exited {
		if err != nil {
			return fmt.Errorf("%s exited on SIGTERM: %w", p.name, err)
		}
		return nil
	}
	if err := p.kill(); err != nil {
		return err
	}
	return fmt.Errorf("%s did not stop within %s of SIGTERM: killed", p.name, grace)
}

// waitReady polls http://addr/readyz until it answers 200, the process exits
// or ctx ends.
func (p *proc) waitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.addr+"/readyz", nil)
		if err != nil {
			return fmt.Errorf("%s readyz: %w", p.name, err)
		}
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if !p.running() {
			return fmt.Errorf("%s exited before /readyz answered 200 (see %s)", p.name, p.log)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: /readyz not 200 within %s (see %s)", p.name, timeout, p.log)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// freePorts returns n distinct TCP ports the kernel had free on 127.0.0.1.
func freePorts(n int) ([]int, error) {
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

// logPath is NAME's log file in dir.
func logPath(dir, name string) string { return filepath.Join(dir, name+".log") }
