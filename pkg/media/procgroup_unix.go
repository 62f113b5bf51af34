//go:build unix

package media

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the child in a new process group and makes context
// cancellation SIGKILL the whole group, so helpers ffmpeg spawns die too.
func setProcessGroup(c *exec.Cmd) {
	c.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	c.Cancel = func() error {
		if c.Process == nil {
			return nil
		}
		// A negative pid names the process group (pgid == pid after Setpgid).
		if err := syscall.Kill(-c.Process.Pid, syscall.SIGKILL); err != nil && err != syscall.ESRCH {
			return c.Process.Kill()
		}
		return nil
	}
}
