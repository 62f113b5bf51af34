//go:build !unix

package media

import "os/exec"

// setProcessGroup falls back to killing the process itself where process
// groups do not exist.
func setProcessGroup(c *exec.Cmd) {
	c.Cancel = func() error { return c.Process.Kill() }
}
