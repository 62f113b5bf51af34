package testenv

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/backbeat/backbeat/pkg/blob"
)

// LocalKeys lists every object key in a local store (not its .blob sidecars),
// sorted: what a test checks to prove a worker wrote only where it should.
func LocalKeys(t testing.TB, s *blob.Local) []string {
	t.Helper()
	var keys []string
	err := filepath.WalkDir(s.Dir(), func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.Dir(), path)
		if err == nil && !strings.HasPrefix(rel, ".blob"+string(filepath.Separator)) {
			keys = append(keys, filepath.ToSlash(rel))
		}
		return err
	})
	if err != nil {
		t.Fatalf("list %s: %v", s.Dir(), err)
	}
	sort.Strings(keys)
	return keys
}
