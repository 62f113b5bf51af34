// Package workspace is where the harnesses that start Backbeat on this
// machine (cmd/backbeat/internal/chaos, pipebench) find themselves: the
// repository's root, its binaries and tools, and how loaded the machine is,
// which every figure they print must be read with.
package workspace

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Paths are the repository root and what the harnesses run from it.
type Paths struct {
	// Root is the repository (the folder holding go.work).
	Root string
	// Bin holds the service binaries (`make build`: ROOT/bin).
	Bin string
	// NATSServer is the nats-server binary (ROOT/.cache/bin/nats-server).
	NATSServer string
}

// Resolve fills what p leaves empty: Root is found above the working
// directory (the first folder holding go.work), Bin and NATSServer under it;
// Root is made absolute.
func (p Paths) Resolve() (Paths, error) {
	if p.Root == "" {
		dir, err := os.Getwd()
		if err != nil {
			return p, fmt.Errorf("working directory: %w", err)
		}
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.work")); err == nil {
				break
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				return p, errors.New("no go.work above the working directory: pass -root")
			}
			dir = parent
		}
		p.Root = dir
	}
	root, err := filepath.Abs(p.Root)
	if err != nil {
		return p, fmt.Errorf("root: %w", err)
	}
	p.Root = root
	if p.Bin == "" {
		p.Bin = filepath.Join(root, "bin")
	}
	if p.NATSServer == "" {
		p.NATSServer = filepath.Join(root, ".cache/bin/nats-server")
	}
	return p, nil
}

// LoadAvg is the first three fields of /proc/loadavg, "?" where there is
// none.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}
