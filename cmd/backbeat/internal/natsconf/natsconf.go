// Package natsconf turns the shipped deployments/nats/nats.conf and
// accounts.conf into the configuration of a nats-server the harnesses start
// on this machine (cmd/backbeat/internal/chaos, pipebench): the same file
// but for its store directory, and for one standalone node, without its
// cluster block.
//
// The addresses are set by the command-line flags nats-server applies over
// the file (-a, -p, -m, --cluster, --routes, -P). The store directory cannot
// be: in nats-server 2.15 ConfigureOptions reads the file into the options
// -sd already set, and the file's jetstream.store_dir then fails with
// "Duplicate 'store_dir' configuration". So each node runs a copy of
// nats.conf that differs in that line, next to a copy of accounts.conf.
package natsconf

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Users are the users of deployments/nats/accounts.conf; nats-server reads
// each one's password from NATS_PASSWORD_<USER> (PasswordEnv).
var Users = []string{"coordinator", "api", "audio", "renderer", "cdn", "thumbnail", "admin", "sys"}

// PasswordEnv is the environment that gives nats-server the password of each
// user in passwords.
func PasswordEnv(passwords map[string]string) []string {
	env := []string{}
	for user, pw := range passwords {
		env = append(env, "NATS_PASSWORD_"+strings.ToUpper(user)+"="+pw)
	}
	return env
}

// Node writes into dir a copy of the shipped accounts.conf and NAME.conf, the
// shipped nats.conf with its store_dir set to storeDir and, when standalone,
// without its cluster block; it returns the path of NAME.conf. root is the
// repository.
func Node(root, dir, name, storeDir string, standalone bool) (string, error) {
	accounts, err := os.ReadFile(filepath.Join(root, "deployments/nats/accounts.conf"))
	if err != nil {
		return "", fmt.Errorf("read accounts.conf: %w", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "accounts.conf"), accounts, 0o644); err != nil {
		return "", fmt.Errorf("copy accounts.conf: %w", err)
	}
	shipped, err := os.ReadFile(filepath.Join(root, "deployments/nats/nats.conf"))
	if err != nil {
		return "", fmt.Errorf("read nats.conf: %w", err)
	}
	text, err := nodeConfig(string(shipped), storeDir, standalone)
	if err != nil {
		return "", err
	}
	conf := filepath.Join(dir, name+".conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		return "", fmt.Errorf("write %s: %w", conf, err)
	}
	return conf, nil
}

// nodeConfig is the shipped nats.conf with its one store_dir line pointing
// at storeDir and, when standalone, without the lines of its cluster block;
// every other line is kept as shipped.
func nodeConfig(shipped, storeDir string, standalone bool) (string, error) {
	var out []string
	found, depth := 0, 0
	for _, l := range strings.Split(shipped, "\n") {
		t := strings.TrimSpace(l)
		if standalone && (depth > 0 || strings.HasPrefix(t, "cluster {") || strings.HasPrefix(t, "cluster:")) {
			depth += strings.Count(t, "{") - strings.Count(t, "}")
			continue
		}
		if strings.HasPrefix(t, "store_dir:") {
			found++
			indent := l[:len(l)-len(strings.TrimLeft(l, " \t"))]
			l = fmt.Sprintf("%sstore_dir: %q", indent, storeDir)
		}
		out = append(out, l)
	}
	if found != 1 {
		return "", fmt.Errorf("deployments/nats/nats.conf: want one store_dir line, found %d", found)
	}
	if depth != 0 {
		return "", fmt.Errorf("deployments/nats/nats.conf: unbalanced braces in the cluster block")
	}
	return strings.Join(out, "\n"), nil
}
