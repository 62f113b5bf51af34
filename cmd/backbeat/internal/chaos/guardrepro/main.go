// Command guardrepro reproduces, without the services, the job loss the
// chaos run's nats-leader phase found: after a nats-server node of an R3
// cluster restarts, bus.Runs.Guard (what every worker calls before it works on
// a job) refuses runs that are current, because its KV watch (an R1 ordered
// consumer) may be placed on the restarted node before that node's KV_runs
// replica has caught up, and an empty replay means "no current run".
//
//	cd cmd/backbeat && go run ./internal/chaos/guardrepro ../../.cache/bin/nats-server
//
// Each round SIGKILLs one node, writes 20 run states while it is down (each
// put acknowledged by the other two), restarts it, and calls Guard for those
// runs for 4 seconds. It prints how many calls were refused and exits 1 when
// any was.
package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/backbeat/backbeat/pkg/bus"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: guardrepro NATS-SERVER-BINARY")
		os.Exit(2)
	}
	refused, err := run(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, "guardrepro:", err)
		os.Exit(2)
	}
	if refused > 0 {
		os.Exit(1)
	}
}

// freePorts returns n ports the kernel had free on 127.0.0.1.
func freePorts(n int) ([]int, error) {
	var out []int
	for i := 0; i < n; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		defer l.Close()
		out = append(out, l.Addr().(*net.TCPAddr).Port)
	}
	return out, nil
}

func run(bin string) (int, error) {
	dir, err := os.MkdirTemp("", "guardrepro.")
	if err != nil {
		return 0, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	ports, err := freePorts(6)
	if err != nil {
		return 0, err
	}
	var routes, urls []string
	for i := 0; i < 3; i++ {
		routes = append(routes, fmt.Sprintf("nats://127.0.0.1:%d", ports[3+i]))
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", ports[i]))
	}
	start := func(i int) (*exec.Cmd, error) {
		cmd := exec.Command(bin, "-js", "-n", fmt.Sprintf("n%d", i), "-a", "127.0.0.1", "-p", fmt.Sprint(ports[i]),
			"--cluster_name", "repro", "--cluster", routes[i], "--routes", strings.Join(routes, ","),
			"-sd", filepath.Join(dir, fmt.Sprint(i)))
		f, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("n%d.log", i)), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return nil, fmt.Errorf("log: %w", err)
		}
		cmd.Stdout, cmd.Stderr = f, f
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start n%d: %w", i, err)
		}
		return cmd, nil
	}
	cmds := make([]*exec.Cmd, 3)
	defer func() {
		for _, c := range cmds {
			if c != nil {
				_ = c.Process.Signal(syscall.SIGKILL)
				_ = c.Wait()
			}
		}
	}()
	for i := range cmds {
		if cmds[i], err = start(i); err != nil {
			return 0, err
		}
	}
	nc, err := nats.Connect(strings.Join(urls, ","), nats.RetryOnFailedConnect(true), nats.MaxReconnects(-1))
	if err != nil {
		return 0, fmt.Errorf("connect: %w", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return 0, fmt.Errorf("jetstream: %w", err)
	}
	ctx := context.Background()
	var kv jetstream.KeyValue
	for i := 0; i < 100; i++ {
		// The bucket as the topology makes it: R3, history 5.
		if kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: bus.BucketRuns, History: 5, Replicas: 3}); err == nil {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if err != nil {
		return 0, fmt.Errorf("create bucket: %w", err)
	}
	runs := bus.NewRuns(kv)
	total, refused := 0, 0
	for round := 0; round < 3; round++ {
		victim := round % 3
		_ = cmds[victim].Process.Signal(syscall.SIGKILL)
		_ = cmds[victim].Wait()
		time.Sleep(3 * time.Second)
		var videos []string
		for i := 0; i < 20; i++ {
			vid := fmt.Sprintf("v%d-%02d", round, i)
			if err := putUntil(ctx, runs, vid, bus.RunState{RunID: "r-" + vid, State: bus.RunActive}); err != nil {
				return 0, err
			}
			videos = append(videos, vid)
		}
		if cmds[victim], err = start(victim); err != nil {
			return 0, err
		}
		n, r := 0, 0
		first := ""
		for deadline := time.Now().Add(4 * time.Second); time.Now().Before(deadline); {
			for _, vid := range videos {
				_, cancel, err := runs.Guard(ctx, vid, "r-"+vid, 0)
				n++
				if err != nil {
					r++
					if first == "" {
						first = err.Error()
					}
					continue
				}
				cancel()
			}
		}
		fmt.Printf("round %d: n%d SIGKILLed, 20 runs written, n%d restarted: %d of %d Guard calls refused a current run", round, victim, victim, r, n)
		if first != "" {
			fmt.Printf(" (first: %s)", first)
		}
		fmt.Println()
		total, refused = total+n, refused+r
		time.Sleep(3 * time.Second)
	}
	fmt.Printf("total: %d of %d Guard calls refused a current run\n", refused, total)
	return refused, nil
}

// putUntil writes a run state, retrying while the bucket elects a leader.
func putUntil(ctx context.Context, runs *bus.Runs, vid string, s bus.RunState) error {
	var err error
	for i := 0; i < 100; i++ {
		if err = runs.Set(ctx, vid, s); err == nil {
			return nil
		}
		time.Sleep(200 * time.Millisecond)
	}
	return fmt.Errorf("put %s: %w", vid, err)
}
