package natsconf

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestNodeShipped writes both kinds of node from the shipped files: the
// store directory is replaced, the standalone node loses exactly the cluster
// block and keeps the accounts include.
func TestNodeShipped(t *testing.T) {
	root, err := filepath.Abs("../../../..")
	if err != nil {
		t.Fatal(err)
	}
	for _, standalone := range []bool{false, true} {
		dir := t.TempDir()
		conf, err := Node(root, dir, "nats-0", "/tmp/store dir", standalone)
		if err != nil {
			t.Fatalf("standalone=%v: %v", standalone, err)
		}
		data, err := os.ReadFile(conf)
		if err != nil {
			t.Fatal(err)
		}
		text := string(data)
		if !strings.Contains(text, `store_dir: "/tmp/store dir"`) || strings.Contains(text, "store_dir: /data") {
			t.Errorf("standalone=%v: store_dir not replaced:\n%s", standalone, text)
		}
		if got := strings.Contains(text, "cluster {"); got == standalone {
			t.Errorf("standalone=%v: cluster block present=%v:\n%s", standalone, got, text)
		}
		if !strings.Contains(text, "include ./accounts.conf") || !strings.Contains(text, "jetstream {") {
			t.Errorf("standalone=%v: lost the accounts include or the jetstream block:\n%s", standalone, text)
		}
		if _, err := os.Stat(filepath.Join(dir, "accounts.conf")); err != nil {
			t.Errorf("accounts.conf not copied: %v", err)
		}
	}
}
